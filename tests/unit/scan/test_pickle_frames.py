"""Frames as CPython's C unpickler reads them (Modules/_pickle.c, _Unpickler_ReadImpl/load_frame).

``pickle.loads`` reads a framed stream contiguously; ``pickle.load`` on a file without ``peek``
(``io.BytesIO``: what ``torch.load`` hands the unpickler) buffers each frame and takes a read that
does not fit in what is left of it from the bytes *after* the frame. Samples are built from bytes;
the malicious ones only ever run in a throwaway subprocess in a temp dir.
"""

from __future__ import annotations

import json
import pickle
import random
import struct
import subprocess
import sys
from pathlib import Path

from mlsec.scan.pickle.frames import file_reading
from mlsec.scan.pickle.vm import run_stream

from .conftest import ScanBytes, rules_of, worst
from .samples import s


def frame(n: int) -> bytes:
    return b"\x95" + struct.pack("<Q", n)


def system(cmd: str, module: str = "posix") -> bytes:
    return b"c" + module.encode() + b"\nsystem\n" + s(cmd) + b"\x85R."


def straddle(evil: bytes) -> bytes:
    """pickle.loads: a string ``'ab' + 'N0N'`` and STOP. A frame-buffering reader: the string's
    bytes come from after the frame (``'N0N.X'``), then ``evil`` runs."""
    return b"\x80\x04" + frame(4) + b"\x8c\x05ab" + b"N0N" + b".X" + evil


def runs(tmp_path: Path, data: bytes, how: str) -> bool:
    """Load ``data`` with CPython in a subprocess; True when the payload touched its file."""
    work = tmp_path / f"run-{how}"
    work.mkdir()
    (work / "sample").write_bytes(data)
    code = {
        "loads": "pickle.loads(open('sample','rb').read())",
        "bytesio": "pickle.load(io.BytesIO(open('sample','rb').read()))",
        "rawfile": "pickle.load(open('sample','rb',buffering=0))",
        "python": "pickle._loads(open('sample','rb').read())",
        "file-twice": "f=open('sample','rb'); pickle.load(f); pickle.load(f)",
    }[how]
    subprocess.run(
        [sys.executable, "-c", f"import io, pickle\ntry:\n    {code}\nexcept Exception:\n    pass"],
        cwd=work,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return (work / "pwned").exists()


def test_opcode_straddling_a_frame_end_hides_a_call_from_pickle_loads(
    tmp_path: Path, scan_bytes: ScanBytes
) -> None:
    data = straddle(system("touch pwned"))
    assert not runs(tmp_path, data, "loads")  # the contiguous reading is harmless...
    assert runs(tmp_path, data, "bytesio")  # ...torch.load's reading runs os.system
    assert runs(tmp_path, data, "rawfile")
    report = scan_bytes(data)
    assert worst(report) == "critical"
    assert "PICKLE-FRAME-MISMATCH" in rules_of(report)
    assert any(f.symbol == "posix.system" for f in report.findings)


def test_line_argument_straddling_a_frame_end(tmp_path: Path, scan_bytes: ScanBytes) -> None:
    # loads: GLOBAL 'XXos.system' (no such module: the load fails). BytesIO: the rest of the
    # line comes from after the frame, 'os'.
    data = b"\x80\x04" + frame(3) + b"cXX" + b"os\nsystem\n" + s("touch pwned") + b"\x85R."
    assert not runs(tmp_path, data, "loads")
    assert runs(tmp_path, data, "bytesio")
    report = scan_bytes(data)
    assert worst(report) == "critical"
    assert "PICKLE-FRAME-MISMATCH" in rules_of(report)
    assert any(f.symbol == "os.system" for f in report.findings)


def test_frame_inside_a_frame_running_past_its_end(tmp_path: Path, scan_bytes: ScanBytes) -> None:
    # The inner frame does not fit in what is left of the outer one: a buffering reader drops
    # the outer frame's last byte (STOP for pickle.loads) and reads the inner frame after it.
    evil = system("touch pwned")
    inner = b"K\x01" + frame(len(evil)) + b"."
    data = b"\x80\x04" + frame(len(inner)) + inner + evil
    assert not runs(tmp_path, data, "loads")
    assert runs(tmp_path, data, "bytesio")
    report = scan_bytes(data)
    assert worst(report) == "critical"
    assert "PICKLE-FRAME-MISMATCH" in rules_of(report)


def test_frame_length_field_straddling_the_frame_end(scan_bytes: ScanBytes) -> None:
    body = b"N0" + b"\x95" + struct.pack("<Q", 0)[:3]
    data = b"\x80\x04" + frame(len(body)) + body + struct.pack("<Q", 0)[3:] + b"N."
    report = scan_bytes(data)
    assert "PICKLE-FRAME-MISMATCH" in rules_of(report)
    assert worst(report) == "high"


def test_stop_inside_a_frame_with_bytes_left(tmp_path: Path, scan_bytes: ScanBytes) -> None:
    # A buffered file (peek) starts the second load right after STOP, BytesIO after the frame.
    hidden = system("touch pwned")
    body = b"N." + hidden
    data = b"\x80\x04" + frame(len(body)) + body + b"N."
    assert runs(tmp_path, data, "file-twice")
    report = scan_bytes(data)
    assert worst(report) == "critical"
    assert "PICKLE-FRAME-MISMATCH" in rules_of(report)


def test_frame_longer_than_the_data_is_read_on_like_the_pure_python_unpickler(
    tmp_path: Path, scan_bytes: ScanBytes
) -> None:
    data = b"\x80\x04" + frame(1000) + system("touch pwned")
    assert not runs(tmp_path, data, "loads")  # C: "pickle data was truncated"
    assert runs(tmp_path, data, "python")  # pure Python (joblib's base) runs the short frame
    report = scan_bytes(data)
    assert worst(report) == "critical"
    assert "PICKLE-FRAME-MISMATCH" in rules_of(report)


def test_nested_frame_that_fits_is_read_as_pickle_loads_does(scan_bytes: ScanBytes) -> None:
    data = b"\x80\x04" + frame(11) + frame(2) + b"N."
    report = scan_bytes(data)
    assert "PICKLE-FRAME-NESTED" in rules_of(report)
    assert "PICKLE-FRAME-MISMATCH" not in rules_of(report)
    assert worst(report) == "low"


def test_python2_names_are_mapped_below_protocol_3() -> None:
    reduce2 = run_stream(b"c__builtin__\nreduce\n.")
    assert {f.symbol for f in reduce2.findings} == {"functools.reduce"}
    assert reduce2.findings[0].severity.value == "critical"
    # PROTO mid-stream switches the mapping, as in CPython's find_class.
    again = run_stream(b"\x80\x04\x80\x02c__builtin__\nreduce\n.")
    assert {f.symbol for f in again.findings} == {"functools.reduce"}


def test_benign_framed_pickles_have_no_frame_finding(scan_bytes: ScanBytes) -> None:
    value = {
        "rows": [(i, str(i) * (i % 50), float(i), b"\x00" * (i % 300)) for i in range(20_000)],
        "blob": b"\x01" * 200_000,  # written outside frames by the pickler
    }
    for protocol in (4, 5):
        data = pickle.dumps(value, protocol=protocol)
        report = scan_bytes(data)
        assert not {"PICKLE-FRAME-MISMATCH", "PICKLE-FRAME-NESTED"} & rules_of(report)
        assert worst(report) is None


def _random_framed_stream(rng: random.Random) -> bytes:
    """Import-free opcodes (ints, strings, lines, tuples) cut by FRAMEs of random, often wrong,
    lengths, some nested."""
    ops: list[bytes] = []
    for _ in range(rng.randint(3, 14)):
        kind = rng.randrange(6)
        if kind == 0:
            ops.append(b"K" + bytes([rng.randrange(256)]))
        elif kind == 1:
            ops.append(b"J" + struct.pack("<i", rng.randrange(-999, 999)))
        elif kind == 2:
            txt = "".join(rng.choice("abcxyz") for _ in range(rng.randrange(8)))
            ops.append(s(txt))
        elif kind == 3:
            ops.append(b"I" + str(rng.randrange(1000)).encode() + b"\n")
        elif kind == 4:
            ops.append(b"N")
        else:
            ops.append(b"\x8c\x01.")
    body = b"(" + b"".join(ops) + b"t."
    out = b"\x80\x04"
    i = 0
    while i < len(body):
        if rng.random() < 0.5:
            n = max(0, rng.randrange(1, 12) + rng.choice((-2, -1, 0, 0, 1, 2)))
            out += frame(n)
        step = rng.randrange(1, 8)
        out += body[i : i + step]
        i += step
    return out + b"K\x07K\x08t."


_DIFF = """
import io, json, pickle, sys
out = []
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    replay = open(path + ".replay", "rb").read()
    row = []
    for how in ("loads", "bytesio", "replay"):
        try:
            if how == "loads":
                v = pickle.loads(data)
            elif how == "bytesio":
                v = pickle.load(io.BytesIO(data))
            else:
                v = pickle.loads(replay)
            row.append(repr(v))
        except Exception as exc:
            row.append("error")
    out.append(row)
print(json.dumps(out))
"""


def test_random_framed_streams_differential(tmp_path: Path) -> None:
    # CPython (in a subprocess) reads each stream with pickle.loads and from a BytesIO; the replay
    # must give what BytesIO gives, and whenever the two CPython readings differ the VM must say
    # so (high), never pass the stream as clean.
    rng = random.Random(8)
    streams = [_random_framed_stream(rng) for _ in range(400)]
    paths = []
    for i, data in enumerate(streams):
        p = tmp_path / f"s{i}"
        p.write_bytes(data)
        (tmp_path / f"s{i}.replay").write_bytes(file_reading(data, 0, len(data), 10_000)[0])
        paths.append(str(p))
    proc = subprocess.run(
        [sys.executable, "-c", _DIFF, *paths], capture_output=True, timeout=120, check=True
    )
    rows = json.loads(proc.stdout)
    differing = 0
    for data, (loads, bytesio, replay) in zip(streams, rows, strict=True):
        assert replay == bytesio, data
        if loads != bytesio:
            differing += 1
            res = run_stream(data)
            assert any(
                f.rule == "PICKLE-FRAME-MISMATCH" and f.severity.value == "high"
                for f in res.findings
            ), data
    assert differing > 20  # the generator does exercise the divergence


def test_next_stream_of_the_buffering_reading_is_analysed(
    tmp_path: Path, scan_bytes: ScanBytes
) -> None:
    # pickle.loads-style reading: 'abN0N', STOP, then bytes that do not parse (a second load
    # fails). The buffering reader's first stream ends one byte later; its second load runs
    # posix.system.
    data = b"\x80\x04" + frame(4) + b"\x8c\x05ab" + b"N0N.X" + b"." + system("touch pwned")
    work = tmp_path / "twice"
    work.mkdir()
    (work / "x.pkl").write_bytes(data)
    code = "import io, pickle\nf = io.BytesIO(open('x.pkl','rb').read())\npickle.load(f)\n"
    code += "pickle.load(f)"
    subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, timeout=60)
    assert (work / "pwned").exists()
    report = scan_bytes(data)
    assert worst(report) == "critical"
    assert any(f.symbol == "posix.system" for f in report.findings)


def test_buffered_file_mixing_both_readings(tmp_path: Path, scan_bytes: ScanBytes) -> None:
    # pickle.load(open(path, "rb")): the small first frame is served from the read-ahead
    # (contiguous), the second, larger than the read-ahead, is read into its own buffer (its tail
    # dropped). Neither pure reading runs the payload; that mixture does.
    f2 = b"N0" * 5886 + b"\x8c\x05ab"
    assert len(f2) == 0x2E00  # its length field's second byte is STOP for the other reading
    data = b"\x80\x04" + frame(4) + b"\x8c\x05ab" + b"cde" + frame(len(f2)) + f2
    data += b"xyz.Q" + system("touch pwned")
    assert not runs(tmp_path, data, "loads")
    assert not runs(tmp_path, data, "bytesio")
    work = tmp_path / "buffered"
    work.mkdir()
    (work / "x.pkl").write_bytes(data)
    code = "import pickle\ntry:\n    pickle.load(open('x.pkl', 'rb'))\nexcept Exception:\n    pass"
    subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, timeout=60)
    assert (work / "pwned").exists()
    report = scan_bytes(data)
    assert worst(report) == "critical"
    assert any(f.symbol == "posix.system" for f in report.findings)
