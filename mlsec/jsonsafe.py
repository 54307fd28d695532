"""JSON from untrusted documents (bundles, statements, manifests, policies, SBOMs, config.json).

``json.loads`` recurses once per nesting level: a document nested a few thousand deep raises
``RecursionError`` (an "internal error", or a crash in a thread), and a duplicated key silently
keeps its last value, so two readers of one signed document can disagree. :func:`loads` bounds
size and depth *before* parsing (an iterative scan, so the limit is a clean error at any depth),
refuses duplicate keys naming the key and its line, refuses ``NaN``/``Infinity`` unless asked, and
turns every problem into one :class:`~mlsec.errors.MlsecError` line naming the document.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from mlsec.errors import MlsecError

__all__ = ["MAX_DEPTH", "check_depth", "loads"]

MAX_DEPTH = 128
"""Deepest nesting accepted: far beyond any real bundle, SBOM or config, far below the stack."""

# A string (escapes included, the loop unrolled so a long string is one fast match) or a
# bracket; nothing else can change the nesting.
_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
_STRINGS = re.compile(_STRING, re.DOTALL)
_TOKEN = re.compile(_STRING + rb"|[\[\]{}]", re.DOTALL)
_TOKEN_KEYS = re.compile(_STRING + rb"|[\[\]{},:]", re.DOTALL)
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
_DELTA = [0] * 256
for _c in b"[{":
    _DELTA[_c] = 1
for _c in b"]}":
    _DELTA[_c] = -1


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def check_depth(data: bytes, max_depth: int = MAX_DEPTH) -> int | None:
    """Return the offset where nesting first exceeds ``max_depth`` in JSON ``data``, else None.

    Strings are skipped, so brackets inside them do not count. Linear and non-recursive: the
    strings are cut out and the brackets kept in C; only the error path walks tokens in Python.
    """
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return None
    brackets = _STRINGS.sub(b"", data).translate(None, _NOT_BRACKETS)
    if max(accumulate(map(_DELTA.__getitem__, brackets)), default=0) <= max_depth:
        return None
    depth = 0
    for m in _TOKEN.finditer(data):
        c = data[m.start()]
        if c in b"[{":
            depth += 1
            if depth > max_depth:
                return m.start()
        elif c in b"]}":
            depth -= 1
    return None


def _line(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Duplicate(k)
        out[k] = v
    return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _duplicate_line(data: bytes, key: str) -> int | None:
    """Find the line of the second occurrence of ``key`` within one object (error path only)."""
    stack: list[set[str] | None] = []
    expect_key = False
    for m in _TOKEN_KEYS.finditer(data):
        tok = m.group()
        c = tok[:1]
        if c == b"{":
            stack.append(set())
            expect_key = True
        elif c == b"[":
            stack.append(None)
            expect_key = False
        elif c in (b"]", b"}"):
            if stack:
                stack.pop()
            expect_key = False
        elif c == b",":
            expect_key = bool(stack) and stack[-1] is not None
        elif c == b":":
            expect_key = False
        elif expect_key and stack and stack[-1] is not None:
            expect_key = False
            try:
                k = json.loads(tok)
            except ValueError:
                continue
            if k in stack[-1]:
                if k == key:
                    return _line(data, m.start())
            else:
                stack[-1].add(k)
    return None


def loads(
    data: bytes | str,
    name: str,
    error: type[MlsecError],
    *,
    what: str = "JSON",
    max_depth: int = MAX_DEPTH,
    max_bytes: int | None = None,
    allow_nan: bool = False,
) -> Any:
    """Parse JSON ``data`` (from ``name``) or raise ``error`` with one line naming it.

    Refused: more than ``max_bytes`` bytes, nesting deeper than ``max_depth``, a key twice in one
    object (the message names the key and line), ``NaN``/``Infinity`` unless ``allow_nan``,
    invalid UTF-8. Example::

        doc = loads(blob, "manifest sha256:ab…", RegistryError, what="manifest")
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if max_bytes is not None and len(raw) > max_bytes:
        raise error(f"{name}: {what} larger than {max_bytes} bytes is not accepted")
    at = check_depth(raw, max_depth)
    if at is not None:
        raise error(
            f"{name}:{_line(raw, at)}: {what} nested deeper than {max_depth} levels is not accepted"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{name}: {what} is not UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        if allow_nan:
            return json.loads(text, object_pairs_hook=_pairs)
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_refuse_constant)
    except _Duplicate as dup:
        line = _duplicate_line(raw, dup.key)
        where = f":{line}" if line else ""
        raise error(f"{name}{where}: duplicate key {dup.key!r} in {what}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{name}:{exc.lineno}: malformed {what}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # int digit limit, NaN; RecursionError unreachable
        raise error(f"{name}: malformed {what}: {str(exc).splitlines()[0]}") from None
