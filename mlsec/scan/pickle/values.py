"""The symbolic values of the static pickle VM and what a stream run returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlsec.scan.model import Severity
from mlsec.scan.pickle import rules

__all__ = [
    "MISSING",
    "BytesRef",
    "Call",
    "Ext",
    "Global",
    "LongStr",
    "Malformed",
    "OutOfBand",
    "PDict",
    "PList",
    "PSet",
    "PersId",
    "RawFinding",
    "StreamResult",
    "describe",
]


class Global:
    """An imported global (``module.name``), as pushed by GLOBAL / STACK_GLOBAL / INST."""

    __slots__ = ("module", "name", "offset", "qual")

    def __init__(self, module: str, name: str, offset: int) -> None:
        self.module = module
        self.name = name
        self.offset = offset
        self.qual = f"{rules.normalise_module(module)}.{name}"

    def __repr__(self) -> str:
        return f"{self.module}.{self.name}"


class Call:
    """The result of calling ``func`` with ``args`` (REDUCE, NEWOBJ, OBJ, INST)."""

    __slots__ = ("args", "func", "offset", "state")

    def __init__(self, func: object, args: object, offset: int) -> None:
        self.func = func
        self.args = args
        self.offset = offset
        self.state: object = None

    def __repr__(self) -> str:
        return f"{describe(self.func)}(...)"


class PersId:
    """A persistent id (PERSID / BINPERSID): resolved by the loader, e.g. PyTorch storages."""

    __slots__ = ("pid",)

    def __init__(self, pid: object) -> None:
        self.pid = pid


class Ext:
    """An object from the copyreg extension registry (EXT1/2/4): unknowable statically."""

    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        self.code = code


class OutOfBand:
    """A protocol-5 out-of-band buffer (NEXT_BUFFER): its bytes are not in the stream."""

    __slots__ = ()


class BytesRef:
    """A large bytes constant, kept as a reference into the data (array payloads are not copied).
    ``text`` is the encoding of a string constant whose bytes these are once encoded to latin-1
    (protocol 2 pickles bytes as ``_codecs.encode(str, "latin1")``)."""

    __slots__ = ("n", "start", "text")

    def __init__(self, start: int, n: int, text: str = "") -> None:
        self.start = start
        self.n = n
        self.text = text

    def read(self, data: Any) -> bytes:
        """The bytes this reference stands for, read from ``data``."""
        raw = bytes(data[self.start : self.start + self.n])
        if not self.text:
            return raw
        return str(raw, self.text, "surrogatepass").encode("latin-1", "replace")


class LongStr:
    """A string constant too long to be a module or attribute name: its length, and where its
    bytes are (``start`` -1 when unknown) in which encoding."""

    __slots__ = ("encoding", "n", "start")

    def __init__(self, n: int, start: int = -1, encoding: str = "utf-8") -> None:
        self.n = n
        self.start = start
        self.encoding = encoding


class PDict:
    """A dict under construction: its (key, value) pairs, in order (keys may be unhashable)."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[object, object]] = []

    def get(self, key: str) -> object:
        """The value of the first string key ``key``, or None."""
        for k, v in self.items:
            if k == key:
                return v
        return None


class PList(list[object]):
    """A list under construction."""

    __slots__ = ()


class PSet(list[object]):
    """A set or frozenset under construction (its items, in order). Not a PList: APPEND on a
    set fails in the real unpickler, ADDITEMS on a list too."""

    __slots__ = ()


MISSING = object()


@dataclass(frozen=True, slots=True)
class RawFinding:
    """A finding of the VM, before a scan context gives it a file and member."""

    rule: str
    severity: Severity
    message: str
    symbol: str | None
    offset: int
    why: str = ""


@dataclass
class StreamResult:
    """What one pickle stream did: where it ended, what it imported, what it looked like."""

    start: int
    end: int = -1  # offset after STOP; -1 when the stream broke
    ops: int = 0
    findings: list[RawFinding] = field(default_factory=list)
    globals: set[str] = field(default_factory=set)
    # (offset, payload, loader) of each nested loader called with constant bytes
    nested: list[tuple[int, bytes | BytesRef, str]] = field(default_factory=list)
    error: str | None = None
    result: object = MISSING
    protocol: int = 0
    frame_split: bool = False  # an opcode runs across a frame's end (loaders read it differently)
    # Where another CPython reader starts the next stream (STOP inside a frame: a peeking reader;
    # a stream a frame-buffering reader reads differently ends elsewhere)
    alt_ends: list[int] = field(default_factory=list)
    framed: bool = False  # the stream has a FRAME

    @property
    def complete(self) -> bool:
        """The stream reached its STOP."""
        return self.end >= 0


def describe(v: object, depth: int = 0) -> str:
    """A short human-readable name for a symbolic value (findings and messages)."""
    if isinstance(v, Global):
        return repr(v)
    if isinstance(v, Call) and depth < 3:
        return f"{describe(v.func, depth + 1)}(...)"
    if isinstance(v, str):
        return repr(v[:60])
    return type(v).__name__


class Malformed(Exception):
    """The stream cannot be decoded further (the real unpickler would raise here too)."""
