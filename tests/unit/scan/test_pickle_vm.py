"""The static VM: every opcode of protocols 0-5, symbolic tracking, broken streams, fuzzing."""

from __future__ import annotations

import collections
import datetime
import io
import os
import pickle
import pickletools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlsec.scan import Severity
from mlsec.scan.pickle.vm import Call, Global, PDict, PersId, PList, run_stream

from .samples import Reduce, call1, glob, proto, s, stack_glob


class Plain:
    def __init__(self) -> None:
        self.a = 1


class Slotted:
    __slots__ = ("x",)

    def __init__(self) -> None:
        self.x = 2

    def __getstate__(self) -> tuple[None, dict[str, int]]:
        return None, {"x": self.x}

    def __setstate__(self, state: tuple[None, dict[str, int]]) -> None:
        self.x = state[1]["x"]


class NewEx:
    def __new__(cls, *args: object, **kw: object) -> NewEx:
        return super().__new__(cls)

    def __getnewargs_ex__(self) -> tuple[tuple[object, ...], dict[str, object]]:
        return (1,), {"k": 2}


class Persist(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        return ("storage", "k1") if obj == "PERSIST-ME" else None


class Persist0(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        return "pid1" if obj == "PERSIST-ME" else None


def _rich() -> object:
    return {
        "ints": [0, 1, 255, 256, 65535, 65536, -1, 2**31, 2**70, -(2**2000)],
        "floats": [0.5, -1e300],
        "str": ["", "é" * 300, "x" * 70000],
        "bytes": [b"", b"b" * 300, bytearray(b"ba")],
        "containers": ((), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), {1, 2}, frozenset({3})),
        "bools": [True, False, None],
        "shared": [[1]] * 3,
        "objects": [Plain(), Slotted(), collections.OrderedDict(a=1), datetime.date(2020, 1, 1)],
    }


def _samples() -> list[bytes]:
    out = [pickle.dumps(_rich(), protocol=p) for p in range(6)]
    out += [pickle.dumps(NewEx(), protocol=4)]
    for cls, p in ((Persist, 2), (Persist0, 0)):
        buf = io.BytesIO()
        cls(buf, protocol=p).dump(["PERSIST-ME"])
        out.append(buf.getvalue())
    # Protocol 5 out-of-band buffers: NEXT_BUFFER, READONLY_BUFFER.
    out.append(
        pickle.dumps(pickle.PickleBuffer(b"abc"), protocol=5, buffer_callback=lambda b: False)
    )
    out.append(
        pickle.dumps([pickle.PickleBuffer(b"abc")], protocol=5, buffer_callback=list().append)
    )
    # Hand-assembled: the opcodes the pickler never writes today.
    out += [
        b"(I1\nI2\nL3L\nF1.5\nS'a\\x00'\nV\\u00e9\nN0(1" + b"2" + b"0l.",  # text ops, POP_MARK, DUP
        b"\x80\x02" + b"T\x01\x00\x00\x00aU\x01b" + b"\x8b\x01\x00\x00\x00\x05" + b"\x87.",
        b"\x80\x02\x82\x01\x83\x02\x00\x84\x03\x00\x00\x00\x87.",  # EXT1/2/4
        b"(i" + b"collections\nOrderedDict\n" + b".",  # INST
        b"(" + glob("collections", "OrderedDict") + b"o.",  # OBJ
        b"\x80\x04\x8f(K\x01\x90\x95\x00\x00\x00\x00\x00\x00\x00\x00(K\x02\x91\x86.",
        b"\x80\x04((K\x01K\x02d}(K\x03K\x04uK\x05K\x06s]K\x05a"
        + b"\x8e\x01\x00\x00\x00\x00\x00\x00\x00xt.",
        b"\x80\x04\x8d\x01\x00\x00\x00\x00\x00\x00\x00z\x96\x01\x00\x00\x00\x00\x00\x00\x00y\x86.",
        b"(K\x01p0\ng0\nj\x00\x00\x00\x00r\x01\x00\x00\x00h\x01t.",
        b"K\x01\x94K\x02\x94\x86\x94.",
        b"\x80\x02" + glob("collections", "OrderedDict") + b")\x81}\x80\x02b.",  # NEWOBJ + BUILD
        b"\x80\x02]\x94G?\xf0\x00\x00\x00\x00\x00\x00a.",
        b"\x80\x03C\x01xB\x01\x00\x00\x00yM\x00\x01J\x00\x00\x00\x80\x8a\x01\x05\x87.",
        b"X\x01\x00\x00\x00a\x88\x89\x86.",
        b"\x80\x04" + stack_glob("collections", "OrderedDict") + b")}\x92.",  # NEWOBJ_EX
        b"\x80\x02" + glob("collections", "OrderedDict") + b")R.",
        b"\x80\x02" + b"(K\x01tP1\nQ.",  # PERSID / BINPERSID
    ]
    return out


def test_every_opcode_of_protocols_0_to_5_is_decoded() -> None:
    seen: set[str] = set()
    for data in _samples():
        res = run_stream(data)
        assert res.complete, (res.error, data[:80])
        assert res.end == len(data)
        seen |= {op.name for op, _a, _p in pickletools.genops(data)}
    assert seen == {op.name for op in pickletools.opcodes}


def test_bytes_memoryview_and_mmap_inputs_agree(tmp_path) -> None:
    import mmap

    for data in _samples():
        p = tmp_path / "s.pkl"
        p.write_bytes(data)
        with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            got = {
                kind: (r.end, r.error, [(x.rule, x.symbol) for x in r.findings])
                for kind, r in (
                    ("bytes", run_stream(data)),
                    ("memoryview", run_stream(memoryview(data))),
                    ("mmap", run_stream(mm)),
                )
            }
        assert got["bytes"] == got["memoryview"] == got["mmap"], data[:60]


def test_result_matches_real_structure() -> None:
    res = run_stream(pickle.dumps({"a": [1, (2, "x")], "b": b"y"}, protocol=2))
    assert isinstance(res.result, PDict)
    items = dict(res.result.items)  # type: ignore[arg-type]
    assert isinstance(items["a"], PList)
    assert list(items["a"]) == [1, (2, "x")]


def test_reduce_records_callable_and_arguments() -> None:
    data = proto(2, glob("collections", "OrderedDict") + b"K\x05\x85R")
    res = run_stream(data)
    assert isinstance(res.result, Call)
    assert isinstance(res.result.func, Global) and res.result.func.qual == "collections.OrderedDict"
    assert res.result.args == (5,)
    assert res.findings == []


def test_persistent_id_is_symbolic() -> None:
    res = run_stream(b"\x80\x02(X\x07\x00\x00\x00storageK\x01tQ.")
    assert isinstance(res.result, PersId) and res.result.pid == ("storage", 1)


def test_strings_from_memo_resolve_stack_global() -> None:
    body = s("os") + b"\x94" + s("system") + b"\x94" + b"h\x00h\x01\x93" + s("id") + b"\x85R"
    res = run_stream(proto(4, body))
    assert [(f.rule, f.symbol) for f in res.findings] == [("PICKLE-DANGEROUS-GLOBAL", "os.system")]


def test_computed_module_name_is_high() -> None:
    # STACK_GLOBAL whose module is the result of a call (str.join…) cannot be checked statically.
    body = glob("builtins", "str") + s("os") + b"\x85R" + s("system") + b"\x93"
    res = run_stream(proto(4, body))
    assert any(
        f.rule == "PICKLE-DYNAMIC-GLOBAL" and f.severity is Severity.HIGH for f in res.findings
    )


def test_broken_stream_keeps_findings_before_the_break() -> None:
    data = proto(2, call1(glob("os", "system"), s("id")))[:-1] + b"\xff\xff"
    res = run_stream(data)
    assert not res.complete and res.error
    assert [f.symbol for f in res.findings] == ["os.system"]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80",
        b"\x80\x02",
        b"h\x05.",  # memo key never defined
        b"t.",  # TUPLE without MARK
        b"X\xff\xff\xff\x7fab.",  # length past the end
        b"\x80\x09N.",  # unknown protocol
        b"cos\nsys",  # unterminated line
        b"S'abc\n.",  # unquoted STRING
        b"\xfe.",  # unknown opcode
    ],
)
def test_malformed_input_is_an_error_not_a_crash(data: bytes) -> None:
    res = run_stream(data)
    assert not res.complete and res.error


def test_opcode_limit_is_a_finding() -> None:
    data = b"(" + b"N" * 1000 + b"t."
    res = run_stream(data, max_ops=100)
    assert not res.complete
    assert any(f.rule == "PICKLE-LIMIT" for f in res.findings)


def test_large_pickle_is_linear() -> None:
    obj = {f"k{i}": (i, "v", [i]) for i in range(20000)}
    res = run_stream(pickle.dumps(obj, protocol=4))
    assert res.complete and res.ops > 100_000


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_fuzz_arbitrary_bytes_never_crash(data: bytes) -> None:
    res = run_stream(data, max_ops=100_000)
    assert res.complete or res.error


@settings(max_examples=300, deadline=2000)
@given(st.data())
def test_fuzz_mutated_real_pickles_never_crash(data: st.DataObject) -> None:
    base = bytearray(data.draw(st.sampled_from(_samples())))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, max(0, len(base) - 1)))
        base[i : i + 1] = bytes([data.draw(st.integers(0, 255))])
    res = run_stream(bytes(base), max_ops=100_000)
    assert res.complete or res.error


def test_deep_nesting_bounded() -> None:
    # 100k nested MARK/TUPLE pairs: no recursion in the VM, bounded time.
    data = b"(" * 100_000 + b"t" * 100_000 + b"."
    res = run_stream(data)
    assert res.complete


def test_huge_declared_lengths_do_not_allocate() -> None:
    data = b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"x."
    res = run_stream(data)
    assert not res.complete


def test_real_os_system_pickle_from_dumps() -> None:
    from .samples import dumps_reduce

    for p in range(6):
        res = run_stream(dumps_reduce(os.system, "touch /tmp/x", protocol=p))
        assert any(f.severity is Severity.CRITICAL for f in res.findings), p


def test_memory_does_not_grow_with_constant_size(tmp_path) -> None:
    import mmap
    import tracemalloc

    big = 64 * 1024 * 1024
    p = tmp_path / "big.pkl"
    with open(p, "wb") as f:
        f.write(b"\x80\x04(\x8e" + struct.pack("<Q", big))
        f.truncate(f.tell() + big)
        f.seek(0, 2)
        f.write(b"\x8d" + struct.pack("<Q", 3 * 1024 * 1024) + b"a" * (3 * 1024 * 1024) + b"t.")
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        tracemalloc.start()
        res = run_stream(mm)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del res
    assert peak < 1024 * 1024


def test_large_nested_payload_is_still_scanned() -> None:
    inner = pickle.dumps([b"x" * 10_000, os.system], protocol=4)
    outer = pickle.dumps(Reduce(pickle.loads, inner), protocol=4)
    res = run_stream(outer)
    assert res.nested
    ref = res.nested[0][1]  # a large constant stays a reference into the data until scanned
    got = ref if isinstance(ref, bytes) else outer[ref.start : ref.start + ref.n]
    assert got == inner


def _ctx():  # a scan context as the engine builds it
    from mlsec.formats import Format
    from mlsec.scan.base import ScanContext, ScanOptions
    from mlsec.scan.engine import _dispatch

    return ScanContext(file="f", options=ScanOptions(), format=Format.PICKLE, dispatch=_dispatch)


@settings(max_examples=300, deadline=2000)
@given(st.binary(max_size=2048), st.sampled_from(["pickle", "npy", "unknown"]))
def test_fuzz_analyzers_only_produce_findings(data: bytes, kind: str) -> None:
    """End to end through the analyzers: no exception ever escapes (it would be a PARSE-ERROR)."""
    from mlsec.formats import Format
    from mlsec.scan.base import Blob
    from mlsec.scan.registry import analyzer_for

    ctx = _ctx()
    ctx.format = Format(kind)
    prefix = {"npy": b"\x93NUMPY\x01\x00", "pickle": b"\x80\x04"}.get(kind, b"")
    analyzer = analyzer_for(ctx.format)
    assert analyzer is not None
    findings = list(analyzer(Blob("f", data=prefix + data), ctx))
    assert all(f.rule and f.severity for f in findings)


def test_trailing_garbage_is_info_but_a_broken_second_stream_with_payload_is_not() -> None:
    from mlsec.scan.pickle.driver import analyze_pickle

    first = pickle.dumps([1, 2], protocol=2)
    found = list(analyze_pickle(first + b"\xff\xfe garbage", _ctx()))
    assert [(f.rule, f.severity) for f in found] == [("PICKLE-TRAILING-DATA", Severity.INFO)]
    second = proto(2, call1(glob("os", "system"), s("id")))[:-2] + b"\xff"
    rules_ = {f.rule for f in analyze_pickle(first + second, _ctx())}
    assert rules_ == {"PICKLE-DANGEROUS-GLOBAL", "PICKLE-MALFORMED"}


def test_looks_like_pickle_for_raw_tensor_bytes() -> None:
    import random

    from mlsec.scan.pickle import looks_like_pickle

    assert looks_like_pickle(pickle.dumps(collections.OrderedDict(a=1), protocol=2))
    assert not looks_like_pickle(pickle.dumps({"a": 1}, protocol=2))  # constants only
    assert looks_like_pickle(b"cos\nsystem\n\xff")  # imports before it breaks
    assert not looks_like_pickle(b"\x80\x02t.")  # TUPLE without MARK: pickle.load raises
    rng = random.Random(0)
    noise = [b"\x80\x02" + rng.randbytes(62) for _ in range(2000)]
    assert sum(looks_like_pickle(n) for n in noise) == 0


_plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=5), inner, max_size=5)
        | st.frozensets(st.integers(), max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=2000)
@given(_plain, st.integers(0, 5))
def test_plain_data_of_every_protocol_decodes_cleanly(obj: object, protocol: int) -> None:
    data = pickle.dumps(obj, protocol=protocol)
    res = run_stream(data)
    assert res.complete and res.end == len(data), res.error
    assert res.findings == []
