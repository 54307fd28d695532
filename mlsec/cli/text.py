"""Text for people: whatever a file name or a message holds, it prints as one inert line.

A model's file names come from whoever made the model: a name with a newline turns a one-line
error into two, an ESC sequence recolours or rewrites the terminal, a bidirectional override
makes ``exe.txt`` read as ``txt.exe``, an undecodable name (a lone surrogate) crashes ``print``.
Every human-facing string that can carry such a name goes through :func:`escape`; JSON output
does not need it (``json.dumps`` escapes control characters itself).
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["cell", "escape"]

# Categories that never print as themselves: controls, format characters (bidi overrides, zero
# width joiners...), surrogates (undecodable bytes of a file name), unassigned code points,
# line and paragraph separators.
_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _needs(ch: str) -> bool:
    return ch == "\\" or unicodedata.category(ch) in _UNSAFE


def escape(text: object) -> str:
    r"""``text`` with every character that does not print as itself written as an escape
    (``\n``, ``\t``, ``\x1b``, ``\u202e``, ``\udcff``) and ``\`` as ``\\``, so the result is one
    line, changes nothing on the terminal and tells names apart.

    >>> escape("a\nb\x1b[2J")
    'a\\nb\\x1b[2J'
    """
    s = str(text)
    if s.isprintable() and "\\" not in s:
        return s  # the common case, in C
    out: list[str] = []
    for ch in s:
        if not _needs(ch) or ch == " ":
            out.append(ch)
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def cell(text: object, style: str | None = None) -> Text:
    """A rich table cell showing ``text`` escaped and literally (``[red]`` is not markup)."""
    from rich.text import Text

    return Text(escape(text), style=style or "")
