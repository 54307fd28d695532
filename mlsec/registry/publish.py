"""``publish``: push a model with what describes it (signature, SBOM, attestations), the one call
behind ``mlsec push``. Every attachment is checked to be about this model before any byte is
uploaded; key material is refused."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from mlsec.errors import UsageError

if TYPE_CHECKING:
    from mlsec.crypt import Recipient
    from mlsec.progress import Progress
    from mlsec.registry.reference import Reference
    from mlsec.registry.store import Store
    from mlsec.registry.transfer import PushResult

__all__ = ["publish"]


def _regular(paths: Sequence[Path]) -> None:
    for p in paths:
        if not p.exists():
            raise UsageError(f"{p}: no such file")
        if not p.is_file():
            raise UsageError(f"{p}: not a regular file")


def publish(
    path: str | os.PathLike[str],
    reference: Reference,
    *,
    store: Store,
    signature: Path | None = None,
    sbom: Path | None = None,
    attestations: Sequence[Path] = (),
    ignore: Sequence[str] = (),
    allow_symlinks: bool = False,
    recipients: Sequence[Recipient] = (),
    progress: Progress | None = None,
) -> PushResult:
    """Push the model at ``path`` to ``reference`` in ``store`` (sealed with age for
    ``recipients`` when given), then attach ``signature``, ``sbom`` and each attestation as
    referrers. Before anything is uploaded each attachment must be about this model (a signature
    of it, an SBOM of its files, an attestation whose subjects are its files): :class:`UsageError`
    (exit 2) otherwise, and for key material of any kind."""
    from mlsec.artifact import open_artifact
    from mlsec.registry.oci import SBOM_ARTIFACT_TYPE, SIGNATURE_ARTIFACT_TYPE
    from mlsec.registry.referrers import (
        attach,
        check_sbom_for,
        check_signature_for,
        read_attachment,
    )
    from mlsec.registry.transfer import push

    given = [p for p in (signature, sbom, *attestations) if p is not None]
    _regular(given)
    sig_bytes = read_attachment(signature) if signature is not None else None
    sbom_bytes = read_attachment(sbom) if sbom is not None else None
    att_bytes = [read_attachment(a) for a in attestations]
    if recipients and (ignore or allow_symlinks):
        raise UsageError(
            "--encrypt-to seals the whole model: --ignore/--allow-symlinks do not apply"
        )
    own = [os.path.abspath(p) for p in given]
    art = None
    if not recipients or sbom_bytes is not None or attestations:
        art = open_artifact(
            path,
            ignore=[*ignore, *own],
            allow_symlinks=allow_symlinks,
            digests=True,
            progress=progress,
        )
    if sig_bytes is not None and signature is not None:
        check_signature_for(
            sig_bytes, str(signature), path, ignore=ignore, signature_path=signature
        )
    if sbom_bytes is not None and sbom is not None and art is not None:
        check_sbom_for(sbom_bytes, str(sbom), art)
    predicate_types: list[str] = []
    if attestations:
        from mlsec.attest import check_attestation_for

        assert art is not None
        for a, content in zip(attestations, att_bytes, strict=True):
            predicate_types.append(check_attestation_for(content, str(a), art))
    if recipients:
        from mlsec.registry.sealed import push_encrypted

        result = push_encrypted(path, reference, list(recipients), store=store, progress=progress)
    else:
        assert art is not None
        result = push(art, reference, store=store, progress=progress)
    attached = []
    for extra, kind in ((signature, SIGNATURE_ARTIFACT_TYPE), (sbom, SBOM_ARTIFACT_TYPE)):
        if extra is not None:
            attached.append(attach(reference, extra, kind, store=store))
    if attestations:
        from mlsec.attest import PREDICATE_ANNOTATION

        for a, ptype in zip(attestations, predicate_types, strict=True):
            notes = {PREDICATE_ANNOTATION: ptype}
            attached.append(
                attach(reference, a, SIGNATURE_ARTIFACT_TYPE, store=store, annotations=notes)
            )
    return replace(result, referrers=tuple(attached))
