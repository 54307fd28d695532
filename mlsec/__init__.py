# ruff: noqa: F401 - the TYPE_CHECKING imports name the lazily loaded public API for type checkers
"""mlsec: secure the supply chain of machine-learning models.

The library is the product; the ``mlsec`` command is a thin layer over it. The names below are the
public API (docs/library.md): they are stable within a major version. Each is imported only when
first used, so ``import mlsec`` stays cheap.

>>> import mlsec
>>> art = mlsec.open_artifact("my-model/", digests=True)  # doctest: +SKIP
>>> report = mlsec.scan(art)  # doctest: +SKIP
>>> decision = mlsec.admit("my-model/", "strict")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> (module, attribute). One table: __all__, the lazy import and the docs test.
_API: dict[str, tuple[str, str]] = {
    # the artifact: files, formats, digests (opened once, handed to every capability)
    "Artifact": ("mlsec.artifact", "Artifact"),
    "ArtifactFile": ("mlsec.artifact", "ArtifactFile"),
    "open_artifact": ("mlsec.artifact", "open_artifact"),
    # scan
    "scan": ("mlsec.scan", "scan"),
    "ScanOptions": ("mlsec.scan", "ScanOptions"),
    "ScanReport": ("mlsec.scan", "ScanReport"),
    "Finding": ("mlsec.scan", "Finding"),
    "Severity": ("mlsec.scan", "Severity"),
    "IgnoreFile": ("mlsec.ignore", "IgnoreFile"),
    # sign / verify (OpenSSF model signing)
    "sign": ("mlsec.signing", "sign_model"),
    "sign_artifact": ("mlsec.signing", "sign_artifact"),
    "verify": ("mlsec.signing", "verify_model"),
    "Bundle": ("mlsec.signing", "Bundle"),
    "Verification": ("mlsec.signing", "Verification"),
    "KeySigner": ("mlsec.signing", "KeySigner"),
    "KeyVerifier": ("mlsec.signing", "KeyVerifier"),
    "CertificateSigner": ("mlsec.signing", "CertificateSigner"),
    "CertificateVerifier": ("mlsec.signing", "CertificateVerifier"),
    "SigstoreSigner": ("mlsec.signing", "SigstoreSigner"),
    "SigstoreVerifier": ("mlsec.signing", "SigstoreVerifier"),
    "load_private_key": ("mlsec.signing", "load_private_key"),
    "load_public_key": ("mlsec.signing", "load_public_key"),
    # SBOM
    "make_sbom": ("mlsec.sbom.api", "make_sbom"),
    "build_sbom": ("mlsec.sbom.builder", "build_sbom"),
    "Sbom": ("mlsec.sbom.builder", "Sbom"),
    # encryption (age v1)
    "encrypt_file": ("mlsec.crypt", "encrypt_file"),
    "decrypt_file": ("mlsec.crypt", "decrypt_file"),
    "encrypt_dir": ("mlsec.crypt", "encrypt_dir"),
    "decrypt_extract": ("mlsec.crypt", "decrypt_extract"),
    "generate_identity": ("mlsec.crypt", "generate_identity"),
    # registries and OCI layouts
    "push": ("mlsec.registry", "push"),
    "pull": ("mlsec.registry", "pull"),
    "PushResult": ("mlsec.registry", "PushResult"),
    "PullResult": ("mlsec.registry", "PullResult"),
    # the deployment gate
    "admit": ("mlsec.policy.api", "admit"),
    "admit_reference": ("mlsec.policy.api", "admit_reference"),
    "load_policy": ("mlsec.policy.model", "load_policy"),
    "Policy": ("mlsec.policy.model", "Policy"),
    "Decision": ("mlsec.policy.evaluate", "Decision"),
    # errors and contracts
    "MlsecError": ("mlsec.errors", "MlsecError"),
    "ExitCode": ("mlsec.errors", "ExitCode"),
    "Schema": ("mlsec.schemas", "Schema"),
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    try:
        module, attr = _API[name]
    except KeyError:
        raise AttributeError(f"module 'mlsec' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


if TYPE_CHECKING:  # what type checkers and IDEs see
    from mlsec.artifact import Artifact, ArtifactFile, open_artifact
    from mlsec.crypt import (
        decrypt_extract,
        decrypt_file,
        encrypt_dir,
        encrypt_file,
        generate_identity,
    )
    from mlsec.errors import ExitCode, MlsecError
    from mlsec.ignore import IgnoreFile
    from mlsec.policy.api import admit, admit_reference
    from mlsec.policy.evaluate import Decision
    from mlsec.policy.model import Policy, load_policy
    from mlsec.registry import PullResult, PushResult, pull, push
    from mlsec.sbom.api import make_sbom
    from mlsec.sbom.builder import Sbom, build_sbom
    from mlsec.scan import Finding, ScanOptions, ScanReport, Severity, scan
    from mlsec.schemas import Schema
    from mlsec.signing import (
        Bundle,
        CertificateSigner,
        CertificateVerifier,
        KeySigner,
        KeyVerifier,
        SigstoreSigner,
        SigstoreVerifier,
        Verification,
        load_private_key,
        load_public_key,
        sign_artifact,
    )
    from mlsec.signing import sign_model as sign
    from mlsec.signing import verify_model as verify
