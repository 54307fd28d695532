"""Sign a model: walk it once, hash it once, build the manifest, sign the statement."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mlsec.artifact import Artifact, open_artifact
from mlsec.errors import SigningError
from mlsec.progress import Progress
from mlsec.signing.bundle import Bundle
from mlsec.signing.manifest import Manifest
from mlsec.signing.signers import Signer

__all__ = ["Signed", "default_signature_path", "sign_artifact", "sign_model"]


@dataclass(frozen=True)
class Signed:
    """A signature and what it covers."""

    bundle: Bundle
    manifest: Manifest
    artifact: Artifact


def default_signature_path(model: str | os.PathLike[str]) -> Path:
    """``<model>.sig`` beside the model (``my-model/`` → ``my-model.sig``), never inside it.

    ``model_signing`` writes ``model.sig`` in the current directory whatever the model is called,
    so two models signed from one directory overwrite each other's signature; a sibling named
    after the model does not.
    """
    p = Path(os.path.abspath(model))
    return p.with_name(p.name + ".sig")


def _inside(path: Path, root: Path) -> str | None:
    try:
        rel = Path(os.path.realpath(path)).relative_to(os.path.realpath(root))
    except ValueError:
        return None
    return rel.as_posix() if rel.parts else None


def sign_artifact(
    artifact: Artifact, signer: Signer, *, extra_ignores: Iterable[str] = ()
) -> Signed:
    """Sign an artifact whose digests are computed.

    Raises ``SigningError`` if it is empty, or if it holds symlinks that the walk did not follow
    (``model_signing`` refuses those too: signing around them would leave them unverified).
    """
    links = [i.path for i in artifact.ignored if i.reason.startswith("symlink")]
    if links:
        raise SigningError(
            f"{links[0]}: is a symlink"
            + (f" (and {len(links) - 1} more)" if len(links) > 1 else "")
            + "; symlinks are not signed by default",
            hint="pass --allow-symlinks to sign the target's content, or --ignore the link",
        )
    manifest = Manifest.from_artifact(artifact, extra_ignores=tuple(extra_ignores))
    return Signed(signer.sign(manifest.payload()), manifest, artifact)


def sign_model(
    path: str | os.PathLike[str],
    signer: Signer,
    *,
    ignore: Iterable[str] = (),
    ignore_git: bool = True,
    allow_symlinks: bool = False,
    signature_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> Signed:
    """Sign the model at ``path``. A ``signature_path`` inside the model is left out of it.

    >>> from mlsec.signing import KeySigner, load_private_key
    >>> signed = sign_model("my-model", KeySigner(load_private_key("k.key")))  # doctest: +SKIP
    >>> Path("my-model.sig").write_bytes(signed.bundle.to_json())  # doctest: +SKIP
    """
    extra: list[str] = []
    ignores = list(ignore)
    if signature_path is not None and Path(path).is_dir():
        rel = _inside(Path(signature_path), Path(path))
        if rel is not None:
            extra.append(rel)
            ignores.append(os.path.abspath(signature_path))
    art = open_artifact(
        path,
        ignore=ignores,
        ignore_git=ignore_git,
        allow_symlinks=allow_symlinks,
        digests=True,
        progress=progress,
    )
    return sign_artifact(art, signer, extra_ignores=extra)
