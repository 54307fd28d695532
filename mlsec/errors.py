"""One error hierarchy for the whole library; the CLI maps each error to an exit code.

Exit codes (DESIGN.md): 0 the check passed, 1 the check failed, 2 the tool could not do its job.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ArtifactError",
    "ExitCode",
    "MlsecError",
    "UsageError",
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


class ArtifactError(MlsecError):
    """The artifact cannot be opened: missing path, unreadable file, unsafe symlink, loop."""
