"""A UI-neutral progress observer, so the library never imports rich.

Library functions that take long accept ``progress: Progress | None``; the CLI passes a rich-backed
implementation on a terminal and nothing in CI/JSON mode.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["NULL_PROGRESS", "NullProgress", "Progress"]


class Progress(Protocol):
    """Receives progress of one long operation. ``advance`` may be called from several threads."""

    def start(self, description: str, total: int) -> None: ...

    def advance(self, amount: int) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """Progress that reports nothing."""

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, amount: int) -> None:
        pass

    def finish(self) -> None:
        pass


NULL_PROGRESS: Progress = NullProgress()
