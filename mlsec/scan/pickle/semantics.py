"""What the VM's opcodes mean for security: judging imports, calls, BUILD and mutations, and
joblib's raw array layout. The decoder (:mod:`.vm`) calls these; they only record findings."""

from __future__ import annotations

from typing import Any

from mlsec.scan.model import Severity
from mlsec.scan.pickle import rules
from mlsec.scan.pickle.values import (
    BytesRef,
    Call,
    Ext,
    Global,
    LongStr,
    Malformed,
    PDict,
    PersId,
    RawFinding,
    StreamResult,
    describe,
)

__all__ = [
    "JOBLIB_WRAPPER",
    "JUDGED_AT_CALL",
    "WATCHED",
    "Reporter",
    "is_str",
    "joblib_skip",
    "mutate",
    "on_build",
    "on_call",
]

MAX_NESTED = 256 * 1024 * 1024  # nested payloads materialised for a loads-like call

WHY_GLOBAL = "Unpickling imports this object and can call it: code runs at load time."


class Reporter:
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
        """Record a finding unless this (rule, symbol) was already reported in the stream."""
        key = (rule, symbol)
        if key in self.seen:
            return
        self.seen.add(key)
        self.findings.append(RawFinding(rule, severity, message, symbol, offset, why))

    def global_(self, module: str, name: str, offset: int) -> Global:
        """The value of an import of ``module.name``, judged once per stream."""
        g = Global(module, name, offset)
        key = (module, name)
        if key not in self.judged:
            self.judged[key] = True
            self.globals.add(f"{module}.{name}")
            if g.qual in JUDGED_AT_CALL:
                return g  # judged where it is used: see on_call and report_use
            v = rules.judge_global(module, name, self.extra)
            if v.severity is not None:
                self.add(v.rule, v.severity, v.reason, v.symbol, offset, WHY_GLOBAL)
        return g

    def report_use(self, g: Global, offset: int) -> None:
        """Report ``g`` (a global judged at call) by its own verdict: it is used in a way whose
        effect cannot be read from the stream."""
        v = rules.judge_global(g.module, g.name, self.extra)
        if v.severity is not None:
            self.add(v.rule, v.severity, v.reason, v.symbol, g.offset, WHY_GLOBAL)


def is_str(v: object) -> bool:
    """Exactly a str (what STACK_GLOBAL and getattr accept as names)."""
    return type(v) is str


# Denied globals judged where they are called, by what the call reaches: getattr(X, "name") with
# an imported X and a constant name *is* the global X.name (a ZoneInfo pickles as
# builtins.getattr(zoneinfo.ZoneInfo, "_unpickle")). Any other use of them (computed target or
# name, passed to a helper that calls its argument) is reported with their own verdict.
JUDGED_AT_CALL = frozenset({"builtins.getattr", "operator.getitem"})

# operator.getitem(X, args) with X one of these allowed generic forms builds a type alias
# (typing.List[int] pickles as operator.getitem(typing.List, int)): __class_getitem__ /
# _GenericAlias only store their arguments.
_SUBSCRIPTABLE_MODULES = frozenset({"typing", "typing_extensions", "collections.abc"})


# torch helpers that restore an object's attributes from a dict argument, like BUILD does.
_STATE_ARGS = {
    "torch._tensor._rebuild_from_type_v2": 3,
    "torch._utils._rebuild_parameter_with_state": 3,
}
_LATIN1 = frozenset({"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"})


def on_call(
    rep: Reporter, func: object, args: object, offset: int, res: StreamResult
) -> Global | bytes | BytesRef | None:
    """Judge a call by what its callable is and what it receives. Returns the value the call
    stands for when it is known statically (a resolver naming a global, the bytes protocol 2
    spells as ``_codecs.encode(str, "latin1")``), else None."""
    if isinstance(func, Global):
        q = func.qual
        argv = args if isinstance(args, tuple) else ()
        if q == "codecs.encode":
            if len(argv) == 2 and is_str(argv[0]) and is_str(argv[1]) and argv[1] in _LATIN1:
                try:
                    return bytes(argv[0].encode("latin-1"))
                except UnicodeEncodeError:
                    return None
            big = argv[0] if len(argv) == 2 else None
            if (
                isinstance(big, LongStr)
                and big.start >= 0
                and is_str(argv[1])
                and argv[1] in _LATIN1
            ):
                return BytesRef(big.start, big.n, big.encoding)  # large protocol-2 bytes
            return None
        if q in _STATE_ARGS and len(argv) > _STATE_ARGS[q]:
            on_build(rep, Call(func, args, offset), argv[_STATE_ARGS[q]], offset)
        if q in rules.RESOLVERS:
            if len(argv) == 2 and is_str(argv[0]) and is_str(argv[1]):
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
        if q in JUDGED_AT_CALL:
            resolver = _resolve_getattr if q == "builtins.getattr" else _resolve_subscript
            resolved = resolver(rep, func, argv, offset)
            if resolved is not None:
                return resolved
            rep.report_use(func, offset)
        for i in rules.CALLS_ARGUMENTS.get(q, ()):
            a = argv[i] if i < len(argv) else None
            if isinstance(a, Global) and a.qual in JUDGED_AT_CALL:
                rep.report_use(a, offset)
            if i < len(argv) and isinstance(argv[i], Call | PersId | Ext):
                what = describe(argv[i])
                rep.add(
                    "PICKLE-INDIRECT-CALL",
                    Severity.HIGH,
                    f"{q} is given a computed object ({what}) that it will call",
                    f"{q}({what})",
                    offset,
                    "An allowed helper that calls its argument runs whatever that argument is.",
                )
        if q in rules.LOADS_LIKE:
            from mlsec.scan.pickle.nested import on_loader

            on_loader(rep, q, argv if isinstance(args, tuple) else (), offset, res)
        if q in ("builtins.getattr", "operator.attrgetter", "operator.methodcaller"):
            names = argv[1:2] if q == "builtins.getattr" else argv[:1]
            target = argv[0] if q == "builtins.getattr" and argv else None
            for a in names:
                if not is_str(a):
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
                sym = f"{describe(target)}.{a}" if target is not None else f"{q}({a!r})"
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
    what = describe(func)
    rep.add(
        "PICKLE-INDIRECT-CALL",
        Severity.HIGH,
        f"calls a computed object ({what}), not an imported callable",
        what,
        offset,
        "A callable obtained from another call (getattr, attrgetter, a factory) hides what runs.",
    )
    return None


def _resolve_getattr(
    rep: Reporter, func: Global, argv: tuple[object, ...], offset: int
) -> Global | None:
    """``getattr(X, "name"[, default])`` with X an imported global and a constant name: the
    global ``X.name``, judged as such (dunders and I/O methods stay critical). None otherwise."""
    if not (2 <= len(argv) <= 3 and isinstance(argv[0], Global) and is_str(argv[1])):
        return None
    target, attr = argv[0], argv[1]
    assert isinstance(attr, str)
    if not attr or target.qual in JUDGED_AT_CALL or target.module == "?":
        return None
    sev = rules.judge_attribute(attr)
    if sev is not None:
        sym = f"{target!r}.{attr}"
        rep.add(
            "PICKLE-DUNDER-ACCESS",
            sev,
            f"attribute access {sym} reaches interpreter internals or a dangerous callable",
            sym,
            offset,
            "Attribute chains from an allowed object reach builtins and the OS.",
        )
    return rep.global_(target.module, f"{target.name}.{attr}", offset)


def _type_argument(v: object, depth: int = 0) -> bool:
    """A typing subscript's argument: an imported global (judged on import), a constant, or a
    tuple/list of them; never a value computed while loading."""
    if isinstance(v, Global):
        return v.qual not in JUDGED_AT_CALL
    if v is None or type(v) in (str, int, float, bool, bytes):
        return True
    if type(v) in (tuple, list) and depth < 8:
        return all(_type_argument(x, depth + 1) for x in v)  # type: ignore[attr-defined]
    return False


def _resolve_subscript(
    rep: Reporter, func: Global, argv: tuple[object, ...], offset: int
) -> Global | None:
    """``operator.getitem(typing.X, args)``: a generic alias such as ``typing.List[int]``, when X
    is an allowed typing form and the arguments are globals or constants. None otherwise (the
    call keeps operator.getitem's own verdict)."""
    if len(argv) != 2 or not isinstance(argv[0], Global):
        return None
    target = argv[0]
    if rules.normalise_module(target.module) not in _SUBSCRIPTABLE_MODULES:
        return None
    if rules.judge_global(target.module, target.name, rep.extra).severity is not None:
        return None
    return target if _type_argument(argv[1]) else None


def mutate(rep: Reporter, target: object, offset: int, opname: str) -> None:
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
        raise Malformed(f"offset {offset}: {opname} on a {type(target).__name__}")


def on_build(rep: Reporter, inst: object, state: object, offset: int) -> None:
    """BUILD (``__setstate__`` or ``__dict__`` update) on ``inst``: judged by what it reaches."""
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
                if is_str(k) and rules.is_dunder(k):  # type: ignore[arg-type]
                    rep.add(
                        "PICKLE-DUNDER-STATE",
                        Severity.HIGH,
                        f"BUILD sets the attribute {k} on {describe(inst)}",
                        f"{describe(inst)}.{k}",
                        offset,
                        "Restoring dunder attributes can swap an object's class or methods.",
                    )
    if isinstance(inst, Call):
        inst.state = state


# --- joblib: raw array bytes follow a NumpyArrayWrapper BUILD in uncompressed files -------------

JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"


def dtype_info(dtype: object) -> tuple[bool, int] | None:
    """(has_object, itemsize) of a symbolic ``numpy.dtype(...)`` value, or None if unknown."""
    if not (isinstance(dtype, Call) and isinstance(dtype.func, Global)):
        return None
    if dtype.func.qual != "numpy.dtype" or not isinstance(dtype.args, tuple) or not dtype.args:
        return None
    code = dtype.args[0]
    if not is_str(code):
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


def joblib_skip(wrapper: Call, data: Any, pos: int, end: int) -> tuple[int, bool] | None:
    """Where the raw array after a NumpyArrayWrapper ends: (new_pos, is_nested_pickle)."""
    st = wrapper.state
    if not isinstance(st, PDict):
        return None
    shape = st.get("shape")
    info = dtype_info(st.get("dtype"))
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


# Globals whose REDUCE needs a look at the arguments (everything else is judged at import time).
WATCHED = (
    JUDGED_AT_CALL
    | rules.LOADS_LIKE
    | rules.RESOLVERS
    | rules.CALLS_ARGUMENTS.keys()
    | _STATE_ARGS.keys()
    | {"codecs.encode", "builtins.getattr", "operator.attrgetter", "operator.methodcaller"}
)
