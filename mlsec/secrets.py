"""Secrets shared by the capabilities that take them (signing keys, age passphrases): one type
that never shows up in a repr, a log or a traceback's locals."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Passphrase"]


@dataclass(frozen=True)
class Passphrase:
    """A secret that never shows up in a repr, a log or a traceback's locals."""

    value: bytes

    def __repr__(self) -> str:
        return "Passphrase(***)"
