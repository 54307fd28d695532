"""One error hierarchy for the whole library; the CLI maps each error to an exit code.

Exit codes (DESIGN.md): 0 the check passed, 1 the check failed, 2 the tool could not do its job.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ArtifactError",
    "BundleError",
    "CryptError",
    "ExitCode",
    "KeyFileError",
    "MlsecError",
    "PolicyError",
    "RegistryError",
    "SbomError",
    "SigningError",
    "UsageError",
    "VerificationError",
]


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    ERROR = 2


class MlsecError(Exception):
    """Root of every error mlsec raises on purpose.

    ``message`` is one line that names the file and the reason; ``hint`` optionally says what to do.
    """

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(MlsecError):
    """The caller asked for something that cannot be done (bad option combination, bad value)."""


class ConfigError(UsageError):
    """The config file (mlsec.toml, [tool.mlsec]) cannot be read or names an unknown option."""


class ArtifactError(MlsecError):
    """The artifact cannot be opened: missing path, unreadable file, unsafe symlink, loop."""


class SigningError(MlsecError):
    """Signing could not be done: unusable key or certificate, empty model, signer failure."""


class KeyFileError(SigningError):
    """A key cannot be loaded or written: wrong passphrase, unsupported type or curve, bad PEM."""


class BundleError(SigningError):
    """A signature bundle is malformed or of a kind mlsec does not read (exit 2, not 1)."""


class CryptError(MlsecError):
    """Encryption or decryption could not be done: wrong key or passphrase, a malformed, truncated
    or tampered age file, an unusable recipient or identity. Nothing partial is left behind."""


class RegistryError(MlsecError):
    """A push or pull could not be done: unreachable registry, authentication refused, unknown
    reference, a blob whose digest does not match, a malformed manifest or layout."""


class PolicyError(MlsecError):
    """A policy cannot be loaded or evaluated (malformed file, unknown rule or field)."""


class SbomError(MlsecError):
    """An SBOM cannot be built: unreadable or malformed requirements or model card, a vulnerability
    service that cannot be reached (auditing fails closed), an SBOM that fails schema validation."""


class VerificationError(MlsecError):
    """The signature does not verify, or the model differs from what was signed (exit 1).

    ``result`` optionally carries the structured verification result (``mlsec.signing``'s
    ``Verification``) so the CLI can print it with ``--format json``.
    """

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None, result: object = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result
