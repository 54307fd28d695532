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
import re
import struct
import warnings
from _compat_pickle import NAME_MAPPING
from typing import Any

from mlsec.scan.model import Severity
from mlsec.scan.pickle.frames import MAX_REPLAY, file_reading
from mlsec.scan.pickle.semantics import (
    JOBLIB_WRAPPER,
    WATCHED,
    Reporter,
    is_str,
    joblib_skip,
    mutate,
    on_build,
    on_call,
)
from mlsec.scan.pickle.values import (
    MISSING,
    BytesRef,
    Call,
    Ext,
    Global,
    LongStr,
    Malformed,
    OutOfBand,
    PDict,
    PersId,
    PList,
    PSet,
    RawFinding,
    StreamResult,
    describe,
)

__all__ = ["Call", "Global", "PDict", "PList", "PersId", "StreamResult", "run_stream"]

_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct(">d")


_NO_FRAME = 1 << 62
_MIXED_BITS = 4  # straddles whose two readings are combined in every way (2**4 replays at most)
_WHY_FRAME = (
    "CPython reads such a stream differently depending on the loader (pickle.loads, a buffered "
    "or unbuffered file, the pure-Python unpickler): a scanner that reads it one way misses "
    "what runs the other way."
)


def _global(rep: Reporter, module: str, name: str, at: int, proto: int) -> Global:
    """``find_class``: below protocol 3 (and with no PROTO at all) the unpickler maps Python 2
    names first, ``__builtin__.reduce`` to ``functools.reduce`` and so on (fix_imports)."""
    if proto < 3:
        module, name = NAME_MAPPING.get((module, name), (module, name))
    return rep.global_(module, name, at)


def _callee(p: PersId) -> object:
    """What a persistent id called as a function stands for. Legacy ``torch.save`` of a whole
    module stores each class as ``('module', cls, source_file, source)`` and its
    ``persistent_load`` returns ``cls`` (the source is only compared, never run); the tar format's
    ``(cls, source_file, source)`` the same. The class is then judged as the global it is; any
    other id stays a computed object."""
    pid = p.pid
    if type(pid) is tuple and pid:
        if len(pid) > 1 and (pid[0] == "module" or pid[0] == b"module"):
            if isinstance(pid[1], Global):
                return pid[1]
        elif isinstance(pid[0], Global):
            return pid[0]
    return p


def _frame_split(rep: Reporter, res: StreamResult, fe: int, what: str) -> None:
    rep.add(
        "PICKLE-FRAME-MISMATCH",
        Severity.HIGH,
        f"{what} (frame ends at offset {fe}): pickle.loads and a loader that buffers frames "
        "run different opcodes",
        None,
        fe,
        _WHY_FRAME,
    )
    res.frame_split = True


def _loader_confusion(rep: Reporter, data: Any, pos: int, end: int, at: int) -> None:
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
) -> StreamResult:
    """Run one pickle stream from ``start`` to its STOP, symbolically.

    ``data`` is anything indexable as bytes (bytes, mmap, memoryview); ``end`` bounds argument
    lengths and should be ``len(data)`` (opcodes are read up to the end of ``data``, as a loader
    reading the file would). Never raises on bad input: a stream that breaks is returned with
    ``complete`` False, ``error`` set, and every finding seen before the break.
    """
    if end is None:
        end = len(data)
    res = StreamResult(start=start)
    rep = Reporter(allow_globals, data)
    # The VM allocates one small object per opcode and no cycles: the cyclic GC would only rescan
    # a growing heap again and again (a third of the run time on a 20k-tensor checkpoint).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _loop(data, start, end, rep, res, max_ops, joblib, depth)
    except Malformed as exc:
        res.error = str(exc)
    except IndexError as exc:
        res.error = f"data ends before STOP, or an opcode needs more stack ({exc})"
    except struct.error:
        res.error = "truncated: an opcode's argument runs past the end of the data"
    except (ValueError, UnicodeDecodeError, OverflowError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    except (MemoryError, RecursionError) as exc:
        res.error = type(exc).__name__
    finally:
        if gc_was_enabled:
            gc.enable()
    res.findings = rep.findings + res.findings
    res.globals = rep.globals | res.globals
    if res.frame_split or (res.framed and res.error is not None):
        # A stream that breaks in the contiguous reading may still run under the other one.
        _file_reading(data, start, end, allow_globals, max_ops, res)
    return res


def _file_reading(
    data: Any, start: int, end: int, allow_globals: frozenset[str], max_ops: int, res: StreamResult
) -> None:
    """Analyse the opcodes a frame-buffering file loader runs (frames.py), and the mixtures a
    buffered file can produce (some frames read contiguously, some buffered; the first
    ``_MIXED_BITS`` straddles), and report what they reach that the contiguous reading did not."""
    alt, split, alt_end, events = file_reading(data, start, end, max_ops)
    if not split:
        return
    seen = {(f.rule, f.symbol) for f in res.findings}
    if not res.frame_split:
        res.findings.append(
            RawFinding(
                "PICKLE-FRAME-MISMATCH",
                Severity.HIGH,
                "the stream breaks when read contiguously (pickle.loads) but a loader that buffers "
                "frames reads other opcodes",
                None,
                start,
                _WHY_FRAME,
            )
        )
    # Bit k of a mask: the k-th straddle read contiguously (served from a read-ahead), later
    # straddles dropping. Each reading's straddles branch into new mixtures, up to _MIXED_BITS.
    readings = [(alt, alt_end)]
    todo = [(1 << j, j + 1) for j in range(min(events, _MIXED_BITS))]
    budget = MAX_REPLAY - len(alt)  # bytes copied for all the readings of one stream
    while todo and len(readings) < 1 << _MIXED_BITS and budget > 0:
        mask, nbits = todo.pop()
        a2, _s, e2, n2 = file_reading(data, start, end, max_ops, mask=mask, nbits=nbits)
        readings.append((a2, e2))
        budget -= len(a2)
        todo.extend((mask | 1 << j, j + 1) for j in range(nbits, min(n2, _MIXED_BITS)))
    for stream, stream_end in readings:
        if stream_end >= 0 and stream_end != res.end and stream_end not in res.alt_ends:
            res.alt_ends.append(stream_end)
        other = run_stream(stream, 0, len(stream), allow_globals=allow_globals, max_ops=max_ops)
        res.globals |= other.globals
        for _off, payload, loader in other.nested:
            if isinstance(payload, BytesRef):
                payload = payload.read(stream)
            res.nested.append((start, payload, loader))
        for f in other.findings:
            if (f.rule, f.symbol) in seen or not f.severity.at_least(Severity.MEDIUM):
                continue
            seen.add((f.rule, f.symbol))
            res.findings.append(
                RawFinding(
                    f.rule,
                    f.severity,
                    f"{f.message} (when read from a file object that buffers frames, e.g. "
                    "torch.load or pickle.load on a file)",
                    f.symbol,
                    start,
                    f.why,
                )
            )


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
        # pickle.load on a file takes the rest of the file as the last line and drops its last
        # byte as if it were the newline (the import still happens): judge that line too.
        if pos >= end:
            raise Malformed(f"offset {pos}: unterminated line argument")
        return bytes(data[pos : end - 1]), end
    return bytes(data[pos:nl]), nl + 1


_MAX_BYTES_COPY = 4096  # bytes constants larger than this stay references (BytesRef)
_MAX_STR = 64 * 1024  # longer strings become LongStr placeholders (names are short)
MAX_NESTED = 256 * 1024 * 1024  # nested payloads materialised for a loads-like call


def _bytes_const(data: Any, pos: int, n: int, end: int) -> bytes | BytesRef:
    if n < 0 or pos + n > end:
        raise Malformed(f"offset {pos}: argument of {n} bytes runs past the end of the data")
    return bytes(data[pos : pos + n]) if n <= _MAX_BYTES_COPY else BytesRef(pos, n)


def _str_const(data: Any, pos: int, n: int, end: int, encoding: str) -> str | LongStr:
    if n < 0 or pos + n > end:
        raise Malformed(f"offset {pos}: string of {n} bytes runs past the end of the data")
    if n > _MAX_STR:
        return LongStr(n, pos, encoding)
    return str(data[pos : pos + n], encoding, "surrogatepass")


def _take(data: Any, pos: int, n: int, end: int) -> bytes:
    if n < 0 or pos + n > end:
        raise Malformed(f"offset {pos}: argument of {n} bytes runs past the end of the data")
    return bytes(data[pos : pos + n])


def _decode_string_line(line: bytes) -> str:
    # STRING's argument is a Python repr: quoted, with escapes.
    if len(line) >= 2 and line[0] == line[-1] and line[:1] in (b"'", b'"'):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes warn, as in the unpickler
            return codecs.escape_decode(line[1:-1])[0].decode("latin-1")
    raise Malformed("STRING argument is not quoted")


_STRTOL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def _int_line(line: bytes) -> int | bool:
    """INT as ``load_int`` reads it: C ``strtol`` with base 0 (``0x1f`` hex, ``017`` octal), a
    bool for the two-character ``00``/``01``-style spellings of 0 and 1, else a Python int literal
    (base 0, underscores allowed)."""
    m = _STRTOL.fullmatch(line)
    if m is not None:
        digits = m.group(2)
        base = 16 if digits[:2] in (b"0x", b"0X") else 8 if digits[:1] == b"0" else 10
        x = int(digits, base) * (-1 if m.group(1) == b"-" else 1)
        if len(line) == 2 and x in (0, 1) and abs(x) < 1 << 63:
            return bool(x)
        if -(1 << 63) <= x < 1 << 63:
            return x
    return int(line, 0)


def _long_line(line: bytes) -> int:
    """LONG: the trailing ``L`` dropped, then a Python int literal in base 0, as ``load_long``."""
    return int(line[:-1] if line.endswith(b"L") else line, 0)


def _loop(  # one flat dispatch loop: the fast shape in CPython
    data: Any,
    pos: int,
    end: int,
    rep: Reporter,
    res: StreamResult,
    max_ops: int,
    joblib: bool,
    depth: int,
) -> None:
    # Like CPython's unpickler: MARK starts a new stack; the ones below (the metastack) are out
    # of reach until the matching pop-mark, so a pop past a MARK fails here as it does there.
    stack: list[object] = []
    metastack: list[list[object]] = []
    memo: dict[int, object] = {}
    append = stack.append
    pop = stack.pop
    u16 = _U16.unpack_from
    i32 = _I32.unpack_from
    u32 = _U32.unpack_from
    u64 = _U64.unpack_from
    ops = 0
    # End of the frame a file loader holds in its buffer (frames.py): an opcode that runs
    # across it is read differently by pickle.loads and by pickle.load on an unbuffered file.
    fe = _NO_FRAME
    # Every opcode takes at least one byte, so the opcode limit cannot be passed before this
    # offset: the loop tests one bound (``guard``) per opcode for both.
    op_guard = pos + max_ops
    guard = min(fe, op_guard)
    limit = min(end, len(data))
    end = limit

    def readline(p: int, at: int) -> tuple[bytes, int]:
        return _readline(data, p, end)

    is_inst = isinstance
    CallT = Call
    GlobalT = Global
    watched = WATCHED
    missing = MISSING
    while True:
        at = pos
        op = data[pos]  # IndexError past the end: "data ends before STOP"
        pos += 1
        ops += 1
        if at >= guard:  # one test per opcode covers the frame end and the opcode limit
            if at >= fe:
                if at > fe:
                    _frame_split(rep, res, fe, "an opcode runs across the end of its FRAME")
                fe = _NO_FRAME
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
                raise Malformed(f"offset {at}: opcode limit reached")
            if at >= op_guard:
                op_guard = at + max_ops - ops + 1
            guard = min(fe, op_guard)
        # ---- the frequent opcodes first (by count in real checkpoints) -------------------------
        if op == 0x72:  # LONG_BINPUT
            memo[u32(data, pos)[0]] = stack[-1]
            pos += 4
        elif op == 0x68:  # BINGET
            v = memo.get(data[pos], missing)
            if v is missing:
                raise Malformed(f"offset {at}: memo key {data[pos]} not defined")
            append(v)
            pos += 1
        elif op == 0x4B:  # BININT1
            append(data[pos])
            pos += 1
        elif op == 0x28:  # MARK
            metastack.append(stack)
            stack = []
            append = stack.append
            pop = stack.pop
        elif op == 0x58:  # BINUNICODE
            n = u32(data, pos)[0]
            pos += 4
            e = pos + n
            if e > end:
                raise Malformed(f"offset {at}: string runs past the end")
            append(str(data[pos:e], "utf-8", "surrogatepass") if n <= _MAX_STR else LongStr(n, pos))
            pos = e
        elif op == 0x74:  # TUPLE
            if not metastack:
                raise Malformed(f"offset {at}: TUPLE without a MARK")
            t = tuple(stack)
            stack = metastack.pop()
            append = stack.append
            pop = stack.pop
            append(t)
        elif op == 0x85:  # TUPLE1
            stack[-1] = (stack[-1],)
        elif op == 0x52:  # REDUCE
            args = pop()
            func = stack[-1]
            if not is_inst(func, GlobalT) or func.qual in watched:  # type: ignore[attr-defined]
                if is_inst(func, PersId):
                    func = _callee(func)  # type: ignore[arg-type]
                stack[-1] = on_call(rep, func, args, at, res) or CallT(func, args, at)
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
                raise Malformed(f"offset {at}: string runs past the end")
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
            v = memo.get(k, MISSING)
            if v is MISSING:
                raise Malformed(f"offset {at}: memo key {k} not defined")
            append(v)
            pos += 4
        elif op == 0x7D:  # EMPTY_DICT
            append(PDict())
        elif op == 0x5D:  # EMPTY_LIST
            append(PList())
        elif op == 0x75:  # SETITEMS
            if not metastack:
                raise Malformed(f"offset {at}: no MARK on the stack")
            items = stack
            stack = metastack.pop()
            append = stack.append
            pop = stack.pop
            if not stack:
                raise Malformed(f"offset {at}: SETITEMS without a target")
            d = stack[-1]
            if len(items) % 2:
                raise Malformed(f"offset {at}: odd number of items for SETITEMS")
            if not items:
                pass  # CPython returns before looking at the target
            elif isinstance(d, PDict):
                d.items.extend(zip(items[::2], items[1::2], strict=False))
            else:
                mutate(rep, d, at, "SETITEMS")
        elif op == 0x65:  # APPENDS
            if not metastack:
                raise Malformed(f"offset {at}: no MARK on the stack")
            items = stack
            stack = metastack.pop()
            append = stack.append
            pop = stack.pop
            if not stack:
                raise Malformed(f"offset {at}: APPENDS without a target")
            lst = stack[-1]
            if not items:
                pass  # CPython returns before looking at the target
            elif isinstance(lst, PList):
                lst.extend(items)
            else:
                mutate(rep, lst, at, "APPENDS")
        elif op == 0x4A:  # BININT
            append(i32(data, pos)[0])
            pos += 4
        elif op == 0x4D:  # BININT2
            append(u16(data, pos)[0])
            pos += 2
        elif op == 0x95:  # FRAME: the C unpickler only checks that its bytes exist
            n = u64(data, pos)[0]
            pos += 8
            if pos > fe:
                _frame_split(
                    rep, res, fe, "a FRAME's length field runs across the end of its FRAME"
                )
                fe = _NO_FRAME
            if n > end - pos:
                # The C unpickler stops here; the pure-Python one (joblib's) reads the short
                # frame and runs the rest of the bytes: analyse them.
                rep.add(
                    "PICKLE-FRAME-MISMATCH",
                    Severity.HIGH,
                    f"a FRAME declares {n} bytes but only {end - pos} remain",
                    None,
                    at,
                    _WHY_FRAME,
                )
                fe = _NO_FRAME
            elif fe != _NO_FRAME:
                if pos + n > fe:
                    _frame_split(rep, res, fe, "a FRAME inside a frame runs past its end")
                else:
                    rep.add(
                        "PICKLE-FRAME-NESTED",
                        Severity.LOW,
                        "a FRAME inside a frame (no pickler writes this; CPython's C unpickler "
                        "reads it as pickle.loads does, the pure-Python one refuses it)",
                        None,
                        at,
                    )
            else:
                fe = pos + n
                guard = min(fe, op_guard)
            res.framed = True
        elif op == 0x63:  # GLOBAL
            mod, pos = readline(pos, at)
            name, pos = readline(pos, at)
            append(_global(rep, mod.decode("utf-8"), name.decode("utf-8"), at, res.protocol))
        elif op == 0x93:  # STACK_GLOBAL
            name_v = pop()
            mod_v = pop()
            if is_str(name_v) and is_str(mod_v):
                append(_global(rep, mod_v, name_v, at, res.protocol))  # type: ignore[arg-type]
            else:
                what = f"{describe(mod_v)}.{describe(name_v)}"
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
            on_build(rep, inst, state, at)
            if (
                joblib
                and isinstance(inst, Call)
                and isinstance(inst.func, Global)
                and inst.func.qual == JOBLIB_WRAPPER
            ):
                skip = joblib_skip(inst, data, pos, end)
                if skip is None:
                    rep.add(
                        "PICKLE-MALFORMED",
                        Severity.HIGH,
                        "joblib array wrapper whose raw data size cannot be determined",
                        JOBLIB_WRAPPER,
                        at,
                    )
                    raise Malformed(f"offset {at}: joblib array of unknown size")
                if not skip[1]:
                    _loader_confusion(rep, data, pos, end, at)
                if pos < fe:
                    _frame_split(rep, res, fe, "raw array bytes start inside a FRAME")
                fe = _NO_FRAME  # joblib writes the raw bytes outside frames
                guard = op_guard
                pos, nested = skip
                if nested:
                    if depth >= 8:
                        raise Malformed(f"offset {at}: joblib arrays nested too deep")
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
                        raise Malformed(f"offset {pos}: joblib object array: {inner.error}")
                    ops += inner.ops
                    pos = inner.end
        elif op == 0x81:  # NEWOBJ
            args = pop()
            cls = stack[-1]
            if is_inst(cls, PersId):
                cls = _callee(cls)  # type: ignore[arg-type]
            stack[-1] = Call(cls, args, at)
            if not isinstance(cls, Global):
                on_call(rep, cls, args, at, res)
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
                raise Malformed(f"offset {at}: LONG4 of {n} bytes")
            append(int.from_bytes(_take(data, pos, n, end), "little", signed=True))
            pos += n
        elif op == 0x2E:  # STOP
            if not stack:
                raise Malformed(f"offset {at}: STOP with nothing on the stack")
            res.result = pop()
            res.end = pos
            if pos < fe != _NO_FRAME:
                # A loader that buffered the frame has read it whole: the next stream starts
                # after it; one that peeks (a buffered file) starts right after STOP.
                rep.add(
                    "PICKLE-FRAME-MISMATCH",
                    Severity.HIGH,
                    f"STOP inside a FRAME with {fe - pos} bytes of the frame left",
                    None,
                    at,
                    "Loaders disagree on where the next pickle starts; both places are analysed.",
                )
                res.alt_ends.append(pos)
                res.end = fe
            res.ops = ops
            return
        elif op == 0x80:  # PROTO
            res.protocol = data[pos]
            if res.protocol > 5:
                raise Malformed(f"offset {at}: unsupported pickle protocol {res.protocol}")
            pos += 1
        elif op == 0x30:  # POP
            if stack:
                pop()
            elif metastack:  # POP on an empty stack discards the MARK, as in CPython
                stack = metastack.pop()
                append = stack.append
                pop = stack.pop
            else:
                raise Malformed(f"offset {at}: POP on an empty stack")
        elif op == 0x31:  # POP_MARK
            if not metastack:
                raise Malformed(f"offset {at}: no MARK on the stack")
            items = stack
            stack = metastack.pop()
            append = stack.append
            pop = stack.pop
        elif op == 0x32:  # DUP
            append(stack[-1])
        elif op == 0x61:  # APPEND
            v = pop()
            lst = stack[-1]
            if isinstance(lst, PList):
                lst.append(v)
            else:
                mutate(rep, lst, at, "APPEND")
        elif op == 0x73:  # SETITEM
            v = pop()
            k = pop()
            d = stack[-1]
            if isinstance(d, PDict):
                d.items.append((k, v))
            else:
                mutate(rep, d, at, "SETITEM")
        elif op == 0x8F:  # EMPTY_SET
            append(PSet())
        elif op == 0x90:  # ADDITEMS
            if not metastack:
                raise Malformed(f"offset {at}: no MARK on the stack")
            items = stack
            stack = metastack.pop()
            append = stack.append
            pop = stack.pop
            if not stack:
                raise Malformed(f"offset {at}: ADDITEMS without a target")
            s = stack[-1]
            if not items:
                pass  # CPython returns before looking at the target
            elif isinstance(s, PSet):
                s.extend(items)
            else:
                mutate(rep, s, at, "ADDITEMS")
        elif op == 0x91 or op == 0x6C:  # FROZENSET, LIST
            if not metastack:
                raise Malformed(f"offset {at}: no MARK on the stack")
            items = stack
            stack = metastack.pop()
            append = stack.append
            pop = stack.pop
            append(PSet(items) if op == 0x91 else PList(items))
        elif op == 0x64:  # DICT
            if not metastack:
                raise Malformed(f"offset {at}: no MARK on the stack")
            items = stack
            stack = metastack.pop()
            append = stack.append
            pop = stack.pop
            if len(items) % 2:
                raise Malformed(f"offset {at}: odd number of items for DICT")
            d = PDict()
            d.items.extend(zip(items[::2], items[1::2], strict=False))
            append(d)
        elif op == 0x92:  # NEWOBJ_EX
            kwargs = pop()
            args = pop()
            cls = stack[-1]
            if is_inst(cls, PersId):
                cls = _callee(cls)  # type: ignore[arg-type]
            stack[-1] = Call(cls, args, at)
            if not isinstance(cls, Global):
                on_call(rep, cls, args, at, res)
            elif isinstance(kwargs, PDict) and kwargs.items:
                pass  # keyword arguments to a class constructor: the class is judged already
        elif op == 0x6F:  # OBJ
            if not metastack:
                raise Malformed(f"offset {at}: no MARK on the stack")
            items = stack
            stack = metastack.pop()
            append = stack.append
            pop = stack.pop
            if not items:
                raise Malformed(f"offset {at}: OBJ without a class")
            cls = _callee(items[0]) if is_inst(items[0], PersId) else items[0]  # type: ignore[arg-type]
            c = Call(cls, tuple(items[1:]), at)
            on_call(rep, cls, c.args, at, res)
            append(c)
        elif op == 0x69:  # INST
            mod, pos = readline(pos, at)
            name, pos = readline(pos, at)
            g = _global(rep, mod.decode("utf-8"), name.decode("utf-8"), at, res.protocol)
            if not metastack:
                raise Malformed(f"offset {at}: no MARK on the stack")
            items = stack
            stack = metastack.pop()
            append = stack.append
            pop = stack.pop
            args_t = tuple(items)
            on_call(rep, g, args_t, at, res)
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
        elif op == 0x97:  # NEXT_BUFFER (out-of-band data, protocol 5): bytes not in the stream
            append(OutOfBand())
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
            line, pos = readline(pos, at)
            append(_decode_string_line(line))
        elif op == 0x56:  # UNICODE
            line, pos = readline(pos, at)
            append(line.decode("raw-unicode-escape"))
        elif op == 0x49:  # INT
            line, pos = readline(pos, at)
            append(_int_line(line))
        elif op == 0x4C:  # LONG
            line, pos = readline(pos, at)
            append(_long_line(line))
        elif op == 0x46:  # FLOAT
            line, pos = readline(pos, at)
            append(float(line))
        elif op == 0x70:  # PUT
            line, pos = readline(pos, at)
            if not stack:
                raise Malformed(f"offset {at}: PUT on an empty stack")
            memo[int(line)] = stack[-1]
        elif op == 0x67:  # GET
            line, pos = readline(pos, at)
            v = memo.get(int(line), MISSING)
            if v is MISSING:
                raise Malformed(f"offset {at}: memo key {int(line)} not defined")
            append(v)
        elif op == 0x50:  # PERSID
            line, pos = readline(pos, at)
            append(PersId(line.decode("ascii")))
        else:
            raise Malformed(f"offset {at}: unknown opcode 0x{op:02x}")
