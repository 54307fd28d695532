"""Encrypted models in a registry: push sealed with age, pull and open with an identity.

A sealed model is an ordinary mlsec model artifact with **one** layer: the age v1 encryption of
the model (a directory as the deterministic tar ``mlsec encrypt`` makes, ``NAME.tar.age``; a single
file as ``NAME.age``). The manifest says so in annotations (``dev.mlsec.encryption: age``,
``dev.mlsec.plaintext-kind: directory|file``). File names and sizes inside the model are not
visible to the registry. Anyone can still pull the sealed layer (verified as usual) and open it
with ``age -d``; ``pull_decrypted`` does it in one step and installs the plaintext only after the
last chunk authenticates.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mlsec.errors import RegistryError, UsageError
from mlsec.progress import Progress
from mlsec.registry._base import fetch_manifest, store_for
from mlsec.registry.oci import Manifest
from mlsec.registry.reference import Reference, parse_reference
from mlsec.registry.store import Store
from mlsec.registry.transfer import PullResult, PushResult, _check_dest, _install, pull, push

if TYPE_CHECKING:
    from mlsec.crypt import Identity, Passphrase, Recipient

__all__ = ["ENCRYPTION_ANNOTATION", "KIND_ANNOTATION", "pull_decrypted", "push_encrypted"]

ENCRYPTION_ANNOTATION = "dev.mlsec.encryption"
KIND_ANNOTATION = "dev.mlsec.plaintext-kind"


def push_encrypted(
    source: str | os.PathLike[str],
    ref: str | Reference,
    recipients: Sequence[Recipient | str],
    *,
    store: Store | None = None,
    progress: Progress | None = None,
) -> PushResult:
    """Encrypt the model at ``source`` to ``recipients`` (age) and push it as one sealed layer.

    The ciphertext is staged in a temporary directory and removed afterwards.
    """
    from mlsec.crypt import encrypt_dir, encrypt_file

    if not recipients:
        raise UsageError("encrypting needs at least one recipient")
    src = Path(source)
    if not src.exists():
        raise UsageError(f"{source}: no such file or directory")
    with tempfile.TemporaryDirectory(prefix="mlsec-seal-") as tmp:
        if src.is_dir():
            sealed, kind = Path(tmp) / f"{src.resolve().name}.tar.age", "directory"
            encrypt_dir(src, sealed, recipients, progress=progress)
        else:
            sealed, kind = Path(tmp) / f"{src.name}.age", "file"
            encrypt_file(src, sealed, recipients, progress=progress)
        annotations = {ENCRYPTION_ANNOTATION: "age", KIND_ANNOTATION: kind}
        return push(sealed, ref, store=store, progress=progress, annotations=annotations)


def pull_decrypted(
    ref: str | Reference,
    dest: str | os.PathLike[str],
    identities: Sequence[Identity] | Passphrase,
    *,
    store: Store | None = None,
    progress: Progress | None = None,
    force: bool = False,
    with_referrers: bool = False,
) -> PullResult:
    """Pull the sealed model at ``ref``, verify it, decrypt it and install the plaintext at
    ``dest`` (a directory; a sealed single file lands as ``DEST/NAME``).

    Nothing appears at ``dest`` unless the pull verified and every chunk authenticated; a wrong
    identity is a :class:`~mlsec.errors.CryptError` and leaves nothing behind. The returned
    result describes the verified *sealed* layer (its digest is what the registry holds).
    """
    from mlsec.crypt import decrypt_extract, decrypt_file

    reference = parse_reference(ref) if isinstance(ref, str) else ref
    target = Path(os.path.abspath(dest))
    _check_dest(target, force)
    with store_for(reference, store) as st:
        data, _, _ = fetch_manifest(st, reference.reference, str(reference))
        manifest = Manifest.parse(data, f"{reference}: manifest")
        if manifest.annotations.get(ENCRYPTION_ANNOTATION) != "age":
            raise RegistryError(f"{reference}: not an encrypted model (pull it without --identity)")
        kind = manifest.annotations.get(KIND_ANNOTATION)
        if kind not in ("directory", "file") or len(manifest.layers) != 1:
            raise RegistryError(f"{reference}: malformed encrypted model manifest")
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".open", dir=target.parent))
        try:
            sealed_dir = work / "sealed"
            result = pull(
                reference,
                sealed_dir,
                store=st,
                progress=progress,
                with_referrers=with_referrers,
            )
            (sealed,) = result.files
            sealed_path = sealed_dir / sealed.path
            plain = work / "plain"
            if kind == "directory":
                decrypt_extract(sealed_path, plain, identities, progress=progress)
            else:
                name = sealed.path.removesuffix(".age") or "model"
                plain.mkdir()
                decrypt_file(sealed_path, plain / name, identities, progress=progress)
            extracted = tuple(
                (q.relative_to(plain).as_posix(), q.stat().st_size)
                for q in sorted(plain.rglob("*"))
                if q.is_file() and not q.is_symlink()
            )
            try:
                _install(plain, target, force)
            except OSError as exc:
                raise RegistryError(f"{target}: cannot replace: {exc.strerror or exc}") from None
            moved = []
            for extra in result.referrer_files:  # DEST.sig / DEST.cdx.json belong beside DEST
                final = target.parent / (target.name + extra.name.removeprefix(sealed_dir.name))
                os.replace(extra, final)
                moved.append(final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return PullResult(
        reference=result.reference,
        digest=result.digest,
        dest=target,
        files=result.files,
        total_bytes=result.total_bytes,
        referrer_files=tuple(moved),
        extracted=extracted,
    )
