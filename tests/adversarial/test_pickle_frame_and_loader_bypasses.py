"""Frame-boundary divergence and nested-loader bypasses (issue 8), built from bytes. Payloads
touch a file in a temp dir and only ever run in a throwaway subprocess."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mlsec.artifact import open_artifact
from mlsec.scan import ScanReport, scan

from ..unit.scan.samples import binbytes, glob, proto, s


def frame(n: int) -> bytes:
    return b"\x95" + struct.pack("<Q", n)


def system(cmd: str) -> bytes:
    return b"cposix\nsystem\n" + s(cmd) + b"\x85R."


@pytest.fixture
def check(tmp_path: Path):  # type: ignore[no-untyped-def]
    def run(data: bytes) -> ScanReport:
        p = tmp_path / "model.pkl"
        p.write_bytes(data)
        return scan(open_artifact(p))

    return run


def _runs_under_bytesio(tmp_path: Path, data: bytes) -> bool:
    work = tmp_path / "run"
    work.mkdir()
    (work / "x.pkl").write_bytes(data)
    code = "import io, pickle\ntry:\n    pickle.load(io.BytesIO(open('x.pkl','rb').read()))\n"
    code += "except Exception:\n    pass"
    subprocess.run([sys.executable, "-c", code], cwd=work, timeout=60, check=False)
    return (work / "pwned").exists()


def test_issue8_frame_straddle_hides_posix_system(tmp_path: Path, check) -> None:  # type: ignore[no-untyped-def]
    # pickle.loads sees a string and STOP; torch.load / pickle.load(BytesIO) run posix.system.
    data = b"\x80\x04" + frame(4) + b"\x8c\x05ab" + b"N0N.X" + system("touch pwned")
    assert _runs_under_bytesio(tmp_path, data)
    report = check(data)
    assert report.max_severity is not None and report.max_severity.value == "critical"
    assert "PICKLE-FRAME-MISMATCH" in {f.rule for f in report.findings}


def test_stream_broken_for_loads_runs_under_a_buffering_reader(tmp_path: Path, check) -> None:  # type: ignore[no-untyped-def]
    # Contiguously the string is invalid UTF-8 (pickle.loads fails); the buffering reader drops
    # the bad byte and runs the rest.
    data = b"\x80\x04" + frame(3) + b"\x8c\x05\xff" + b"abcdX" + system("touch pwned")
    assert _runs_under_bytesio(tmp_path, data)
    report = check(data)
    assert report.max_severity is not None and report.max_severity.value == "critical"
    assert "PICKLE-FRAME-MISMATCH" in {f.rule for f in report.findings}


def test_issue8_load_from_bytes_with_a_computed_payload(check) -> None:  # type: ignore[no-untyped-def]
    # torch.storage._load_from_bytes(zlib.decompress(b"...")): nothing constant to scan.
    computed = glob("zlib", "decompress") + binbytes(b"x\x9c\x03\x00\x00\x00\x00\x01") + b"\x85R"
    data = proto(2, glob("torch.storage", "_load_from_bytes") + computed + b"\x85R")
    report = check(data)
    assert any(
        f.rule == "PICKLE-NESTED-LOADER" and f.severity.value == "critical" for f in report.findings
    )


def test_out_of_band_buffer_handed_to_a_loader_is_critical(check) -> None:  # type: ignore[no-untyped-def]
    data = proto(5, s("pickle") + s("loads") + b"\x93" + b"\x97" + b"\x85R")
    report = check(data)
    assert any(
        f.rule == "PICKLE-NESTED-LOADER" and f.severity.value == "critical" for f in report.findings
    )


def test_python2_reduce_name_is_functools_reduce(check) -> None:  # type: ignore[no-untyped-def]
    report = check(proto(2, glob("__builtin__", "reduce")))
    assert any(f.symbol == "functools.reduce" for f in report.findings)
    assert report.max_severity is not None and report.max_severity.value == "critical"
