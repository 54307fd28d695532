"""A static pickle VM: decodes every opcode of protocols 0-5 and tracks the stack symbolically.

Nothing is imported or called. A GLOBAL is a :class:`Global` value, a call (REDUCE, NEWOBJ,
NEWOBJ_EX, OBJ, INST) is a :class:`Call` value holding its callable and arguments, so the VM knows
which callable is imported and called even when module and name strings come from the memo or are
computed, when the callable is the result of another call (getattr chains), and what bytes a
loads-like callable receives (nested pickles).

The decoder is a hand-written loop over the bytes (no ``pickletools.genops``): a 20,000-tensor
checkpoint has a pickle of a few hundred thousand opcodes and must be analysed in well under a
second. The loop is long on purpose; its branches are ordered by how often opcodes occur in real
checkpoints.
"""

from __future__ import annotations

import codecs
import gc
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlsec.scan.model import Severity
from mlsec.scan.pickle import rules

__all__ = ["Call", "Global", "PersId", "RawFinding", "StreamResult", "run_stream"]


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
        return f"{_describe(self.func)}(...)"


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


class BytesRef:
    """A large bytes constant, kept as a reference into the data (array payloads are not copied)."""

    __slots__ = ("n", "start")

    def __init__(self, start: int, n: int) -> None:
        self.start = start
        self.n = n


class LongStr:
    """A string constant too long to be a module or attribute name: only its length is kept."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n


class PDict:
    """A dict under construction: its (key, value) pairs, in order (keys may be unhashable)."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[object, object]] = []

    def get(self, key: str) -> object:
        for k, v in self.items:
            if k == key:
                return v
        return None


class PList(list[object]):
    """A list (or set) under construction."""

    __slots__ = ()


_MISSING = object()


@dataclass(frozen=True, slots=True)
class RawFinding:
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
    nested: list[tuple[int, bytes]] = field(default_factory=list)
    error: str | None = None
    result: object = _MISSING
    protocol: int = 0

    @property
    def complete(self) -> bool:
        return self.end >= 0


class _Malformed(Exception):
    pass


def _describe(v: object, depth: int = 0) -> str:
    if isinstance(v, Global):
        return repr(v)
    if isinstance(v, Call) and depth < 3:
        return f"{_describe(v.func, depth + 1)}(...)"
    if isinstance(v, str):
        return repr(v[:60])
    return type(v).__name__


_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct(">d")

_WHY_GLOBAL = "Unpickling imports this object and can call it: code runs at load time."


class _Reporter:
    """Collects findings, one per (rule, symbol) per stream (the first offset wins)."""

    __slots__ = ("data", "extra", "findings", "globals", "judged", "seen")

    def __init__(self, extra: frozenset[str], data: Any = b"") -> None:
        self.extra = extra
        self.data = data
        self.findings: list[RawFinding] = []
        self.seen: set[tuple[str, str | None]] = set()
        self.globals: set[str] = set()
        self.judged: dict[tuple[str, str], bool] = {}

    def add(
        self,
        rule: str,
        severity: Severity,
        message: str,
        symbol: str | None,
        offset: int,
        why: str = "",
    ) -> None:
        key = (rule, symbol)
        if key in self.seen:
            return
        self.seen.add(key)
        self.findings.append(RawFinding(rule, severity, message, symbol, offset, why))

    def global_(self, module: str, name: str, offset: int) -> Global:
        g = Global(module, name, offset)
        key = (module, name)
        if key not in self.judged:
            self.judged[key] = True
            self.globals.add(f"{module}.{name}")
            v = rules.judge_global(module, name, self.extra)
            if v.severity is not None:
                self.add(v.rule, v.severity, v.reason, v.symbol, offset, _WHY_GLOBAL)
        return g


def _is_str(v: object) -> bool:
    return type(v) is str


def _on_call(
    rep: _Reporter, func: object, args: object, offset: int, res: StreamResult
) -> Global | None:
    """Judge a call by what its callable is and what it receives. Returns the value the call
    stands for when it is known statically (a resolver naming a global), else None."""
    if isinstance(func, Global):
        q = func.qual
        argv = args if isinstance(args, tuple) else ()
        if q in rules.RESOLVERS:
            if len(argv) == 2 and _is_str(argv[0]) and _is_str(argv[1]):
                return rep.global_(argv[0], argv[1], offset)
            rep.add(
                "PICKLE-DYNAMIC-GLOBAL",
                Severity.HIGH,
                f"{q} imports a module/name that is not a constant string",
                q,
                offset,
                "An import whose name is computed while loading cannot be checked statically.",
            )
            return None
        for i in rules.CALLS_ARGUMENTS.get(q, ()):
            if i < len(argv) and isinstance(argv[i], Call | PersId | Ext):
                what = _describe(argv[i])
                rep.add(
                    "PICKLE-INDIRECT-CALL",
                    Severity.HIGH,
                    f"{q} is given a computed object ({what}) that it will call",
                    f"{q}({what})",
                    offset,
                    "An allowed helper that calls its argument runs whatever that argument is.",
                )
        if q in rules.LOADS_LIKE:
            for a in argv:
                if len(res.nested) >= 16:
                    break
                if isinstance(a, bytes | bytearray):
                    res.nested.append((offset, bytes(a)))
                elif isinstance(a, BytesRef) and a.n <= _MAX_NESTED:
                    res.nested.append((offset, bytes(rep.data[a.start : a.start + a.n])))
        if q in ("builtins.getattr", "operator.attrgetter", "operator.methodcaller"):
            names = argv[1:2] if q == "builtins.getattr" else argv[:1]
            target = argv[0] if q == "builtins.getattr" and argv else None
            for a in names:
                if not _is_str(a):
                    rep.add(
                        "PICKLE-DYNAMIC-ATTRIBUTE",
                        Severity.HIGH,
                        f"{q} with a computed attribute name",
                        q,
                        offset,
                    )
                    continue
                assert isinstance(a, str)
                sev = rules.judge_attribute(a)
                sym = f"{_describe(target)}.{a}" if target is not None else f"{q}({a!r})"
                if sev is not None:
                    rep.add(
                        "PICKLE-DUNDER-ACCESS",
                        sev,
                        f"attribute access {sym} reaches interpreter internals or a dangerous "
                        "callable",
                        sym,
                        offset,
                        "Attribute chains from an allowed object reach builtins and the OS.",
                    )
                if isinstance(target, Global):
                    rep.global_(target.module, f"{target.name}.{a}", offset)
        return None
    if isinstance(func, Ext):
        return None  # already reported at the EXT opcode
    what = _describe(func)
    rep.add(
        "PICKLE-INDIRECT-CALL",
        Severity.HIGH,
        f"calls a computed object ({what}), not an imported callable",
        what,
        offset,
        "A callable obtained from another call (getattr, attrgetter, a factory) hides what runs.",
    )
    return None


def _mutate(rep: _Reporter, target: object, offset: int, opname: str) -> None:
    """SETITEM(S)/APPEND(S)/ADDITEMS on something that is not a list/dict/set being built."""
    if isinstance(target, Global):
        rep.add(
            "PICKLE-GLOBAL-MUTATION",
            Severity.CRITICAL,
            f"{opname} modifies the global object {target!r} itself (e.g. a module-level registry)",
            repr(target),
            offset,
            "Changing module-level state redirects code that runs later.",
        )
    elif not isinstance(target, Call | PersId | Ext):
        # The real unpickler fails here (str, int, tuple… have no __setitem__/append).
        raise _Malformed(f"offset {offset}: {opname} on a {type(target).__name__}")


def _on_build(rep: _Reporter, inst: object, state: object, offset: int) -> None:
    if isinstance(inst, Global):
        rep.add(
            "PICKLE-GLOBAL-MUTATION",
            Severity.CRITICAL,
            f"BUILD sets attributes on the global object {inst!r} itself (monkey-patching)",
            repr(inst),
            offset,
            "Setting attributes of a module-level object changes code that runs later.",
        )
        return
    dicts: list[object] = [state]
    if isinstance(state, tuple) and len(state) == 2:
        dicts = list(state)
    for d in dicts:
        if isinstance(d, PDict):
            for k, _v in d.items:
                if _is_str(k) and rules.is_dunder(k):  # type: ignore[arg-type]
                    rep.add(
                        "PICKLE-DUNDER-STATE",
                        Severity.HIGH,
                        f"BUILD sets the attribute {k} on {_describe(inst)}",
                        f"{_describe(inst)}.{k}",
                        offset,
                        "Restoring dunder attributes can swap an object's class or methods.",
                    )
    if isinstance(inst, Call):
        inst.state = state


# --- joblib: raw array bytes follow a NumpyArrayWrapper BUILD in uncompressed files -------------

_JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"


def _dtype_info(dtype: object) -> tuple[bool, int] | None:
    """(has_object, itemsize) of a symbolic ``numpy.dtype(...)`` value, or None if unknown."""
    if not (isinstance(dtype, Call) and isinstance(dtype.func, Global)):
        return None
    if dtype.func.qual != "numpy.dtype" or not isinstance(dtype.args, tuple) or not dtype.args:
        return None
    code = dtype.args[0]
    if not _is_str(code):
        return None
    assert isinstance(code, str)
    st = dtype.state
    elsize = st[5] if isinstance(st, tuple) and len(st) >= 6 and type(st[5]) is int else -1
    fields = st[4] if isinstance(st, tuple) and len(st) >= 5 else None
    letter = code.lstrip("<>|=")[:1]
    digits = code.lstrip("<>|=")[1:]
    if letter == "O" or (isinstance(fields, PDict) and elsize < 0):
        return True, 8
    if fields is not None and not isinstance(fields, type(None)):
        # Structured dtype: objects may hide in its fields; treat as having objects unless sized.
        return (elsize <= 0, max(elsize, 0))
    if elsize > 0:
        return False, elsize
    if letter == "b" and not digits:
        return False, 1
    if not digits.isdigit():
        return None
    n = int(digits)
    return False, n * 4 if letter == "U" else n


def _joblib_skip(wrapper: Call, data: Any, pos: int, end: int) -> tuple[int, bool] | None:
    """Where the raw array after a NumpyArrayWrapper ends: (new_pos, is_nested_pickle)."""
    st = wrapper.state
    if not isinstance(st, PDict):
        return None
    shape = st.get("shape")
    info = _dtype_info(st.get("dtype"))
    if not isinstance(shape, tuple) or info is None:
        return None
    count = 1
    for d in shape:
        if type(d) is not int or d < 0:
            return None
        count *= d
    has_object, itemsize = info
    if has_object:
        return pos, True
    if st.get("numpy_array_alignment_bytes") is not None:
        if pos >= end:
            return None
        pos += 1 + data[pos]
    pos += count * itemsize
    return (pos, False) if pos <= end else None


def _loader_confusion(rep: _Reporter, data: Any, pos: int, end: int, at: int) -> None:
    """joblib skips the raw array bytes after a wrapper, but plain ``pickle.load`` decodes them as
    opcodes: a file can look like joblib to a scanner and run code under pickle.load."""
    alt = run_stream(data, pos, end, allow_globals=rep.extra, max_ops=10_000, joblib=False)
    crit = [f for f in alt.findings if f.severity is Severity.CRITICAL]
    if crit:
        rep.add(
            "PICKLE-LOADER-CONFUSION",
            Severity.CRITICAL,
            f"the raw array bytes after a joblib array wrapper decode as pickle opcodes that "
            f"reach {crit[0].symbol} when the file is loaded with pickle.load instead of joblib",
            crit[0].symbol,
            pos,
            "Scanner/loader differentials are a classic bypass: each loader must see a safe file.",
        )


# --- the decoder -------------------------------------------------------------------------------


def run_stream(
    data: Any,
    start: int = 0,
    end: int | None = None,
    *,
    allow_globals: frozenset[str] = frozenset(),
    max_ops: int = 20_000_000,
    joblib: bool = True,
    depth: int = 0,
    on_inner: Callable[[int], StreamResult] | None = None,
) -> StreamResult:
    """Run one pickle stream from ``start`` to its STOP, symbolically.

    ``data`` is anything indexable as bytes (bytes, mmap, memoryview). Never raises on bad input:
    a stream that breaks is returned with ``end == -1``, ``error`` set, and every finding seen
    before the break.
    """
    if end is None:
        end = len(data)
    res = StreamResult(start=start)
    rep = _Reporter(allow_globals, data)
    # The VM allocates one small object per opcode and no cycles: the cyclic GC would only rescan
    # a growing heap again and again (a third of the run time on a 20k-tensor checkpoint).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _loop(data, start, end, rep, res, max_ops, joblib, depth)
    except _Malformed as exc:
        res.error = str(exc)
    except IndexError as exc:
        res.error = f"data ends before STOP, or an opcode needs more stack ({exc})"
    except (struct.error, ValueError, UnicodeDecodeError, OverflowError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    except (MemoryError, RecursionError) as exc:
        res.error = type(exc).__name__
    finally:
        if gc_was_enabled:
            gc.enable()
    res.findings = rep.findings + res.findings
    res.globals = rep.globals | res.globals
    return res


def _find_newline(data: Any, pos: int, end: int) -> int:
    if hasattr(data, "find"):  # bytes, mmap
        return int(data.find(b"\n", pos, end))
    at = pos  # a memoryview: search it in chunks
    while at < end:
        chunk = bytes(data[at : min(end, at + 4096)])
        i = chunk.find(b"\n")
        if i >= 0:
            return at + i
        at += len(chunk)
    return -1


def _readline(data: Any, pos: int, end: int) -> tuple[bytes, int]:
    nl = _find_newline(data, pos, end)
    if nl < 0:
        raise _Malformed(f"offset {pos}: unterminated line argument")
    return bytes(data[pos:nl]), nl + 1


_MAX_BYTES_COPY = 4096  # bytes constants larger than this stay references (BytesRef)
_MAX_STR = 1024 * 1024  # longer strings become LongStr placeholders
_MAX_NESTED = 256 * 1024 * 1024  # nested payloads materialised for a loads-like call


def _bytes_const(data: Any, pos: int, n: int, end: int) -> bytes | BytesRef:
    if n < 0 or pos + n > end:
        raise _Malformed(f"offset {pos}: argument of {n} bytes runs past the end of the data")
    return bytes(data[pos : pos + n]) if n <= _MAX_BYTES_COPY else BytesRef(pos, n)


def _str_const(data: Any, pos: int, n: int, end: int, encoding: str) -> str | LongStr:
    if n < 0 or pos + n > end:
        raise _Malformed(f"offset {pos}: string of {n} bytes runs past the end of the data")
    if n > _MAX_STR:
        return LongStr(n)
    return str(data[pos : pos + n], encoding, "surrogatepass")


def _take(data: Any, pos: int, n: int, end: int) -> bytes:
    if n < 0 or pos + n > end:
        raise _Malformed(f"offset {pos}: argument of {n} bytes runs past the end of the data")
    return bytes(data[pos : pos + n])


def _decode_string_line(line: bytes) -> str:
    # STRING's argument is a Python repr: quoted, with escapes.
    if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
        return codecs.escape_decode(line[1:-1])[0].decode("latin-1")
    raise _Malformed("STRING argument is not quoted")


def _int_line(line: bytes) -> int | bool:
    if line == b"00":
        return False
    if line == b"01":
        return True
    return int(line.rstrip(b"L"))


def _loop(  # one flat dispatch loop: the fast shape in CPython
    data: Any,
    pos: int,
    end: int,
    rep: _Reporter,
    res: StreamResult,
    max_ops: int,
    joblib: bool,
    depth: int,
) -> None:
    stack: list[object] = []
    marks: list[int] = []
    memo: dict[int, object] = {}
    append = stack.append
    pop = stack.pop
    u16 = _U16.unpack_from
    i32 = _I32.unpack_from
    u32 = _U32.unpack_from
    u64 = _U64.unpack_from
    ops = 0
    limit = min(end, len(data))
    end = limit

    def pop_mark() -> list[object]:
        if not marks:
            raise _Malformed(f"offset {pos}: no MARK on the stack")
        i = marks.pop()
        items = stack[i:]
        del stack[i:]
        return items

    is_inst = isinstance
    CallT = Call
    GlobalT = Global
    watched = _WATCHED
    missing = _MISSING
    while True:
        op = data[pos]  # IndexError past the end: "data ends before STOP"
        at = pos
        pos += 1
        ops += 1
        if ops > max_ops:
            res.ops = ops
            rep.add(
                "PICKLE-LIMIT",
                Severity.HIGH,
                f"pickle stream has more than {max_ops} opcodes; analysis stopped",
                None,
                at,
                "Bounded work on hostile input: the rest of the stream was not analysed.",
            )
            raise _Malformed(f"offset {at}: opcode limit reached")
        # ---- the frequent opcodes first (by count in real checkpoints) -------------------------
        if op == 0x72:  # LONG_BINPUT
            memo[u32(data, pos)[0]] = stack[-1]
            pos += 4
        elif op == 0x68:  # BINGET
            v = memo.get(data[pos], missing)
            if v is missing:
                raise _Malformed(f"offset {at}: memo key {data[pos]} not defined")
            append(v)
            pos += 1
        elif op == 0x4B:  # BININT1
            append(data[pos])
            pos += 1
        elif op == 0x28:  # MARK
            marks.append(len(stack))
        elif op == 0x58:  # BINUNICODE
            n = u32(data, pos)[0]
            pos += 4
            e = pos + n
            if e > end:
                raise _Malformed(f"offset {at}: string runs past the end")
            append(str(data[pos:e], "utf-8", "surrogatepass") if n <= _MAX_STR else LongStr(n))
            pos = e
        elif op == 0x74:  # TUPLE
            if not marks:
                raise _Malformed(f"offset {at}: no MARK on the stack")
            i = marks.pop()
            t = tuple(stack[i:])
            del stack[i:]
            append(t)
        elif op == 0x85:  # TUPLE1
            stack[-1] = (stack[-1],)
        elif op == 0x52:  # REDUCE
            args = pop()
            func = stack[-1]
            if not is_inst(func, GlobalT) or func.qual in watched:  # type: ignore[attr-defined]
                stack[-1] = _on_call(rep, func, args, at, res) or CallT(func, args, at)
            else:
                stack[-1] = CallT(func, args, at)
        elif op == 0x71:  # BINPUT
            memo[data[pos]] = stack[-1]
            pos += 1
        elif op == 0x51:  # BINPERSID
            stack[-1] = PersId(stack[-1])
        elif op == 0x89:  # NEWFALSE
            append(False)
        elif op == 0x29:  # EMPTY_TUPLE
            append(())
        elif op == 0x94:  # MEMOIZE
            memo[len(memo)] = stack[-1]
        elif op == 0x8C:  # SHORT_BINUNICODE
            n = data[pos]
            pos += 1
            if pos + n > end:
                raise _Malformed(f"offset {at}: string runs past the end")
            append(str(data[pos : pos + n], "utf-8", "surrogatepass"))
            pos += n
        elif op == 0x86:  # TUPLE2
            b = pop()
            stack[-1] = (stack[-1], b)
        elif op == 0x87:  # TUPLE3
            c = pop()
            b = pop()
            stack[-1] = (stack[-1], b, c)
        elif op == 0x88:  # NEWTRUE
            append(True)
        elif op == 0x4E:  # NONE
            append(None)
        elif op == 0x6A:  # LONG_BINGET
            k = u32(data, pos)[0]
            v = memo.get(k, _MISSING)
            if v is _MISSING:
                raise _Malformed(f"offset {at}: memo key {k} not defined")
            append(v)
            pos += 4
        elif op == 0x7D:  # EMPTY_DICT
            append(PDict())
        elif op == 0x5D:  # EMPTY_LIST
            append(PList())
        elif op == 0x75:  # SETITEMS
            items = pop_mark()
            d = stack[-1] if stack else None
            if isinstance(d, PDict):
                d.items.extend(zip(items[::2], items[1::2], strict=False))
            else:
                _mutate(rep, d, at, "SETITEMS")
        elif op == 0x65:  # APPENDS
            items = pop_mark()
            lst = stack[-1] if stack else None
            if isinstance(lst, PList):
                lst.extend(items)
            else:
                _mutate(rep, lst, at, "APPENDS")
        elif op == 0x4A:  # BININT
            append(i32(data, pos)[0])
            pos += 4
        elif op == 0x4D:  # BININT2
            append(u16(data, pos)[0])
            pos += 2
        elif op == 0x95:  # FRAME: frames are transparent to the VM
            pos += 8
        elif op == 0x63:  # GLOBAL
            mod, pos = _readline(data, pos, end)
            name, pos = _readline(data, pos, end)
            append(rep.global_(mod.decode("utf-8"), name.decode("utf-8"), at))
        elif op == 0x93:  # STACK_GLOBAL
            name_v = pop()
            mod_v = pop()
            if _is_str(name_v) and _is_str(mod_v):
                append(rep.global_(mod_v, name_v, at))  # type: ignore[arg-type]
            else:
                what = f"{_describe(mod_v)}.{_describe(name_v)}"
                rep.add(
                    "PICKLE-DYNAMIC-GLOBAL",
                    Severity.HIGH,
                    f"STACK_GLOBAL with a module/name that is not a constant string ({what})",
                    what,
                    at,
                    "An import whose name is computed while loading cannot be checked statically.",
                )
                append(Global("?", "?", at))
        elif op == 0x62:  # BUILD
            state = pop()
            inst = stack[-1]
            _on_build(rep, inst, state, at)
            if (
                joblib
                and isinstance(inst, Call)
                and isinstance(inst.func, Global)
                and inst.func.qual == _JOBLIB_WRAPPER
            ):
                skip = _joblib_skip(inst, data, pos, end)
                if skip is None:
                    rep.add(
                        "PICKLE-MALFORMED",
                        Severity.HIGH,
                        "joblib array wrapper whose raw data size cannot be determined",
                        _JOBLIB_WRAPPER,
                        at,
                    )
                    raise _Malformed(f"offset {at}: joblib array of unknown size")
                if not skip[1]:
                    _loader_confusion(rep, data, pos, end, at)
                pos, nested = skip
                if nested:
                    if depth >= 8:
                        raise _Malformed(f"offset {at}: joblib arrays nested too deep")
                    inner = run_stream(
                        data,
                        pos,
                        end,
                        allow_globals=rep.extra,
                        max_ops=max_ops - ops,
                        joblib=joblib,
                        depth=depth + 1,
                    )
                    rep.globals |= inner.globals
                    res.findings.extend(inner.findings)
                    res.nested.extend(inner.nested)
                    if not inner.complete:
                        raise _Malformed(f"offset {pos}: joblib object array: {inner.error}")
                    ops += inner.ops
                    pos = inner.end
        elif op == 0x81:  # NEWOBJ
            args = pop()
            cls = stack[-1]
            stack[-1] = Call(cls, args, at)
            if not isinstance(cls, Global):
                _on_call(rep, cls, args, at, res)
        elif op == 0x43:  # SHORT_BINBYTES
            n = data[pos]
            pos += 1
            append(_take(data, pos, n, end))
            pos += n
        elif op == 0x42:  # BINBYTES
            n = u32(data, pos)[0]
            pos += 4
            append(_bytes_const(data, pos, n, end))
            pos += n
        elif op == 0x47:  # BINFLOAT
            append(_F64.unpack_from(data, pos)[0])
            pos += 8
        elif op == 0x8A:  # LONG1
            n = data[pos]
            pos += 1
            append(int.from_bytes(_take(data, pos, n, end), "little", signed=True))
            pos += n
        elif op == 0x8B:  # LONG4
            n = i32(data, pos)[0]
            pos += 4
            if n > 1 << 20:
                raise _Malformed(f"offset {at}: LONG4 of {n} bytes")
            append(int.from_bytes(_take(data, pos, n, end), "little", signed=True))
            pos += n
        elif op == 0x2E:  # STOP
            res.result = pop() if stack else _MISSING
            res.end = pos
            res.ops = ops
            return
        elif op == 0x80:  # PROTO
            res.protocol = data[pos]
            if res.protocol > 5:
                raise _Malformed(f"offset {at}: unsupported pickle protocol {res.protocol}")
            pos += 1
        elif op == 0x30:  # POP
            if stack and (not marks or len(stack) > marks[-1]):
                pop()
            elif marks:
                marks.pop()
            else:
                raise _Malformed(f"offset {at}: POP on an empty stack")
        elif op == 0x31:  # POP_MARK
            pop_mark()
        elif op == 0x32:  # DUP
            append(stack[-1])
        elif op == 0x61:  # APPEND
            v = pop()
            lst = stack[-1]
            if isinstance(lst, PList):
                lst.append(v)
            else:
                _mutate(rep, lst, at, "APPEND")
        elif op == 0x73:  # SETITEM
            v = pop()
            k = pop()
            d = stack[-1]
            if isinstance(d, PDict):
                d.items.append((k, v))
            else:
                _mutate(rep, d, at, "SETITEM")
        elif op == 0x8F:  # EMPTY_SET
            append(PList())
        elif op == 0x90:  # ADDITEMS
            items = pop_mark()
            s = stack[-1] if stack else None
            if isinstance(s, PList):
                s.extend(items)
            else:
                _mutate(rep, s, at, "ADDITEMS")
        elif op == 0x91 or op == 0x6C:  # FROZENSET, LIST
            append(PList(pop_mark()))
        elif op == 0x64:  # DICT
            items = pop_mark()
            d = PDict()
            d.items.extend(zip(items[::2], items[1::2], strict=False))
            append(d)
        elif op == 0x92:  # NEWOBJ_EX
            kwargs = pop()
            args = pop()
            cls = stack[-1]
            stack[-1] = Call(cls, args, at)
            if not isinstance(cls, Global):
                _on_call(rep, cls, args, at, res)
            elif isinstance(kwargs, PDict) and kwargs.items:
                pass  # keyword arguments to a class constructor: the class is judged already
        elif op == 0x6F:  # OBJ
            items = pop_mark()
            if not items:
                raise _Malformed(f"offset {at}: OBJ without a class")
            c = Call(items[0], tuple(items[1:]), at)
            _on_call(rep, items[0], c.args, at, res)
            append(c)
        elif op == 0x69:  # INST
            mod, pos = _readline(data, pos, end)
            name, pos = _readline(data, pos, end)
            g = rep.global_(mod.decode("utf-8"), name.decode("utf-8"), at)
            args_t = tuple(pop_mark())
            _on_call(rep, g, args_t, at, res)
            append(Call(g, args_t, at))
        elif op == 0x8D:  # BINUNICODE8
            n = u64(data, pos)[0]
            pos += 8
            append(_str_const(data, pos, n, end, "utf-8"))
            pos += n
        elif op == 0x8E or op == 0x96:  # BINBYTES8, BYTEARRAY8
            n = u64(data, pos)[0]
            pos += 8
            # Large constants (array data) are not copied: memory does not grow with the file.
            append(_bytes_const(data, pos, n, end))
            pos += n
        elif op == 0x97:  # NEXT_BUFFER (out-of-band data, protocol 5)
            append(b"")
        elif op == 0x98:  # READONLY_BUFFER
            pass
        elif op == 0x82 or op == 0x83 or op == 0x84:  # EXT1, EXT2, EXT4
            if op == 0x82:
                code = data[pos]
                pos += 1
            elif op == 0x83:
                code = u16(data, pos)[0]
                pos += 2
            else:
                code = i32(data, pos)[0]
                pos += 4
            rep.add(
                "PICKLE-EXTENSION-CODE",
                Severity.HIGH,
                f"EXT opcode loads copyreg extension code {code}: the object it names is "
                "registered at run time and cannot be known statically",
                f"ext:{code}",
                at,
                "copyreg's extension registry maps codes to any importable callable.",
            )
            append(Ext(code))
        elif op == 0x55:  # SHORT_BINSTRING
            n = data[pos]
            pos += 1
            append(_take(data, pos, n, end).decode("latin-1"))
            pos += n
        elif op == 0x54:  # BINSTRING
            n = i32(data, pos)[0]
            pos += 4
            append(_str_const(data, pos, n, end, "latin-1"))
            pos += n
        elif op == 0x53:  # STRING
            line, pos = _readline(data, pos, end)
            append(_decode_string_line(line))
        elif op == 0x56:  # UNICODE
            line, pos = _readline(data, pos, end)
            append(line.decode("raw-unicode-escape"))
        elif op == 0x49:  # INT
            line, pos = _readline(data, pos, end)
            append(_int_line(line))
        elif op == 0x4C:  # LONG
            line, pos = _readline(data, pos, end)
            append(int(line.rstrip(b"L")))
        elif op == 0x46:  # FLOAT
            line, pos = _readline(data, pos, end)
            append(float(line))
        elif op == 0x70:  # PUT
            line, pos = _readline(data, pos, end)
            if not stack:
                raise _Malformed(f"offset {at}: PUT on an empty stack")
            memo[int(line)] = stack[-1]
        elif op == 0x67:  # GET
            line, pos = _readline(data, pos, end)
            v = memo.get(int(line), _MISSING)
            if v is _MISSING:
                raise _Malformed(f"offset {at}: memo key {int(line)} not defined")
            append(v)
        elif op == 0x50:  # PERSID
            line, pos = _readline(data, pos, end)
            append(PersId(line.decode("ascii")))
        else:
            raise _Malformed(f"offset {at}: unknown opcode 0x{op:02x}")


# Globals whose REDUCE needs a look at the arguments (everything else is judged at import time).
_WATCHED = (
    rules.LOADS_LIKE
    | rules.RESOLVERS
    | rules.CALLS_ARGUMENTS.keys()
    | {"builtins.getattr", "operator.attrgetter", "operator.methodcaller"}
)
