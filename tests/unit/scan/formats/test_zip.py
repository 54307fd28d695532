"""The zip analyzer: PyTorch checkpoints, npz, generic zips, and hostile structure."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mlsec.artifact import open_artifact
from mlsec.scan import Limits, ScanOptions, scan
from tests.unit.scan.formats.helpers import (
    BENIGN_PICKLE,
    EVIL_PICKLE,
    Member,
    build_zip,
    pickle_members,
    rules,
    scan_bytes,
)


def test_torch_checkpoint_dispatches_data_pkl_only(tmp_path: Path, fake_pickle: None) -> None:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.randn(64, 64), "b": torch.zeros(64), "n": 3}, path)
    report = scan(open_artifact(path))
    assert report.files[0].format == "pytorch-zip"
    members = pickle_members(report)
    assert [m.rsplit("/", 1)[-1] for m in members] == ["data.pkl"]
    assert rules(report) == {"TEST-PICKLE"}
    assert report.files[0].members_scanned == 1


def test_torch_checkpoint_without_pickle_engine_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.randn(8, 8)}, path)
    assert scan(open_artifact(path)).findings == ()


def test_pickle_under_any_name_is_dispatched(tmp_path: Path, fake_pickle: None) -> None:
    data = build_zip(
        [Member("readme.txt", b"hello"), Member("weights/blob.bin", EVIL_PICKLE, method=8)]
    )
    report = scan_bytes(tmp_path, data, "x.zip")
    assert pickle_members(report) == ["weights/blob.bin"]
    assert report.failed(report.findings[0].severity)


def test_protocol0_pickle_member_is_dispatched(tmp_path: Path, fake_pickle: None) -> None:
    proto0 = b"cposix\nsystem\n(S'touch pwned'\ntR."
    report = scan_bytes(tmp_path, build_zip([Member("a", proto0)]), "x.zip")
    assert pickle_members(report) == ["a"]


def test_npz_members_are_dispatched_as_numpy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsec.formats import Format
    from mlsec.scan import registry

    seen: list[tuple[str | None, int]] = []

    def fake_npy(blob, ctx):  # type: ignore[no-untyped-def]
        seen.append((ctx.member, blob.size))
        assert blob.head(6) == b"\x93NUMPY"
        return []

    monkeypatch.setitem(registry._cache, Format.NUMPY, fake_npy)
    path = tmp_path / "arrays.npz"
    np.savez(path, a=np.arange(10), b=np.ones((3, 3)))
    report = scan(open_artifact(path))
    assert report.files[0].format == "npz"
    assert sorted(m for m, _ in seen) == ["a.npy", "b.npy"]
    assert report.findings == ()
    seen.clear()
    np.savez_compressed(path, a=np.zeros(1000))
    report = scan(open_artifact(path))
    assert [m for m, _ in seen] == ["a.npy"]
    assert report.findings == ()


def test_nested_zip_in_zip(tmp_path: Path, fake_pickle: None) -> None:
    inner = build_zip([Member("inner/data.pkl", EVIL_PICKLE)])
    outer = build_zip([Member("pkg/inner.zip", inner, method=8)])
    report = scan_bytes(tmp_path, outer, "x.zip")
    assert pickle_members(report) == ["pkg/inner.zip!inner/data.pkl"]


def test_depth_limit(tmp_path: Path, fake_pickle: None) -> None:
    data = build_zip([Member("p.pkl", BENIGN_PICKLE)])
    for i in range(8):
        data = build_zip([Member(f"l{i}.zip", data)])
    report = scan_bytes(tmp_path, data, "x.zip")
    assert "CONTAINER-DEPTH" in rules(report)


def test_encrypted_member(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, build_zip([Member("data.pkl", b"\x00" * 40, flags=1)]), "x.zip")
    assert "ZIP-ENCRYPTED" in rules(report)


def test_unsupported_method(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, build_zip([Member("data.pkl", b"abc", method=93)]), "x.zip")
    assert "ZIP-UNSUPPORTED-COMPRESSION" in rules(report)


def test_bad_crc_is_reported_and_still_scanned(tmp_path: Path, fake_pickle: None) -> None:
    data = build_zip([Member("a/data.pkl", EVIL_PICKLE, crc=1234)])
    report = scan_bytes(tmp_path, data, "x.zip")
    assert {"ZIP-BAD-CRC", "TEST-PICKLE"} <= rules(report)


@pytest.mark.parametrize(
    "name", ["../evil.pkl", "/etc/cron.d/x", "a/../../b", "..\\..\\x", "C:\\x.pkl"]
)
def test_path_traversal_names(tmp_path: Path, name: str) -> None:
    report = scan_bytes(tmp_path, build_zip([Member(name, b"x")]), "x.zip")
    assert "ARCHIVE-PATH-TRAVERSAL" in rules(report)


def test_backslash_name(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, build_zip([Member("a\\b.txt", b"x")]), "x.zip")
    assert "ARCHIVE-ODD-NAME" in rules(report)


def test_member_count_limit(tmp_path: Path) -> None:
    data = build_zip([Member(f"f{i}", b"x") for i in range(20)])
    p = tmp_path / "x.zip"
    p.write_bytes(data)
    report = scan(open_artifact(p), ScanOptions(limits=Limits(max_members=5)))
    assert "ZIP-TOO-MANY-MEMBERS" in rules(report)


def test_entry_count_mismatch(tmp_path: Path) -> None:
    data = build_zip([Member("a", b"x"), Member("b", b"y")], count=1)
    assert "ZIP-ENTRY-COUNT-MISMATCH" in rules(scan_bytes(tmp_path, data, "x.zip"))


def test_zip_bomb_is_bounded(tmp_path: Path, fake_pickle: None) -> None:
    bomb = build_zip([Member("data.pkl", BENIGN_PICKLE + b"\x00" * (64 * 1024 * 1024), method=8)])
    p = tmp_path / "bomb.zip"
    p.write_bytes(bomb)
    limits = Limits(max_member_size=16 * 1024 * 1024)
    report = scan(open_artifact(p), ScanOptions(limits=limits))
    assert "ZIP-BOMB" in rules(report)


def test_total_extraction_budget(tmp_path: Path, fake_pickle: None) -> None:
    members = [Member(f"{i}.pkl", BENIGN_PICKLE + b"\x00" * 1_000_000, method=8) for i in range(5)]
    p = tmp_path / "x.zip"
    p.write_bytes(build_zip(members))
    limits = Limits(max_total_extracted=2_500_000)
    report = scan(open_artifact(p), ScanOptions(limits=limits))
    assert "EXTRACT-LIMIT" in rules(report)


def test_corrupt_deflate_member(tmp_path: Path) -> None:
    data = bytearray(build_zip([Member("data.pkl", EVIL_PICKLE * 50, method=8)]))
    start = data.index(b"data.pkl") + len("data.pkl")
    data[start : start + 8] = b"\xff" * 8
    report = scan_bytes(tmp_path, bytes(data), "x.zip")
    assert "ZIP-CORRUPT-MEMBER" in rules(report)


def test_not_a_zip_at_all_is_a_parse_error(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, b"PK\x03\x04" + b"\x00" * 100, "x.zip")
    assert "PARSE-ERROR" in rules(report)


def test_python_zipfile_output_is_clean(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("config.json", '{"a": 1}')
        zf.writestr("weights.bin", bytes(range(256)) * 100, compress_type=zipfile.ZIP_BZIP2)
        zf.writestr("notes.txt", "x" * 1000, compress_type=zipfile.ZIP_LZMA)
        zf.writestr("big/zeros.bin", b"\0" * 10_000_000, compress_type=zipfile.ZIP_DEFLATED)
    assert scan_bytes(tmp_path, buf.getvalue(), "x.zip").findings == ()


def test_lzma_and_bzip2_members_are_read(tmp_path: Path, fake_pickle: None) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.pkl", EVIL_PICKLE, compress_type=zipfile.ZIP_LZMA)
        zf.writestr("b.pkl", EVIL_PICKLE, compress_type=zipfile.ZIP_BZIP2)
    report = scan_bytes(tmp_path, buf.getvalue(), "x.zip")
    assert sorted(pickle_members(report)) == ["a.pkl", "b.pkl"]
    assert rules(report) == {"TEST-PICKLE"}


def test_zip64_checkpoint(tmp_path: Path, fake_pickle: None) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", allowZip64=True) as zf:
        with zf.open("archive/data.pkl", "w", force_zip64=True) as w:
            w.write(EVIL_PICKLE)
        zf.writestr("archive/version", "3\n")
    report = scan_bytes(tmp_path, buf.getvalue(), "x.pt")
    assert pickle_members(report) == ["archive/data.pkl"]


def test_pickle_planted_in_tensor_storage_is_dispatched(tmp_path: Path, fake_pickle: None) -> None:
    proto0 = b"cposix\nsystem\n(S'touch pwned'\ntR."
    data = build_zip(
        [
            Member("archive/data.pkl", BENIGN_PICKLE),
            Member("archive/data/0", proto0),
            Member("archive/data/1", EVIL_PICKLE),
            Member("archive/data/2", b"cannot be a pickle " * 10),
            Member("archive/version", b"3\n"),
        ]
    )
    report = scan_bytes(tmp_path, data, "model.pt")
    assert report.files[0].format == "pytorch-zip"
    assert sorted(pickle_members(report)) == [
        "archive/data.pkl",
        "archive/data/0",
        "archive/data/1",
    ]


def test_random_tensor_storage_is_never_dispatched(tmp_path: Path, fake_pickle: None) -> None:
    rng = np.random.default_rng(0)
    members = [Member("archive/data.pkl", BENIGN_PICKLE), Member("archive/version", b"3\n")]
    members += [
        Member(f"archive/data/{i}", rng.standard_normal(64).astype(np.float32).tobytes())
        for i in range(3000)
    ]
    report = scan_bytes(tmp_path, build_zip(members), "model.pt")
    assert pickle_members(report) == ["archive/data.pkl"]


def test_symlink_members(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, target in (("ok", "weights.bin"), ("evil", "../../../../etc/passwd")):
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16) | 0x20
            info.create_system = 3
            zf.writestr(info, target)
    report = scan_bytes(tmp_path, buf.getvalue(), "x.zip")
    found = {(f.rule, f.severity) for f in report.findings}
    assert found == {("ARCHIVE-SYMLINK", "low"), ("ARCHIVE-LINK-ESCAPE", "high")}


def test_directory_version_python_refuses(tmp_path: Path, fake_pickle: None) -> None:
    # zipfile raises NotImplementedError for "version needed" > 6.3 (sniffing used to crash on it)
    data = bytearray(build_zip([Member("archive/data.pkl", EVIL_PICKLE)]))
    cd = data.index(b"PK\x01\x02")
    data[cd + 6 : cd + 8] = (99).to_bytes(2, "little")
    report = scan_bytes(tmp_path, bytes(data), "model.pt")
    assert pickle_members(report) == ["archive/data.pkl"]


def test_findings_before_a_late_parse_error_are_kept(tmp_path: Path, fake_pickle: None) -> None:
    # a good data.pkl, then a directory record cut short: the pickle finding must survive
    data = bytearray(build_zip([Member("a/data.pkl", EVIL_PICKLE)]))
    from mlsec.formats import Format
    from mlsec.scan.base import Blob, ScanContext, ScanOptions
    from mlsec.scan.engine import _dispatch

    def analyzer(blob, ctx):  # type: ignore[no-untyped-def]
        from mlsec.scan.formats.zip import analyze_zip

        yield from analyze_zip(blob, ctx)
        raise ValueError("late failure")

    import mlsec.scan.registry as registry

    registry._cache[Format.ZIP] = analyzer
    try:
        ctx = ScanContext(file="f", options=ScanOptions(), format=Format.ZIP, dispatch=_dispatch)
        rules_seen = [f.rule for f in _dispatch(Blob("f", data=bytes(data)), ctx)]
    finally:
        registry._cache.pop(Format.ZIP)
    assert rules_seen == ["TEST-PICKLE", "PARSE-ERROR"]


def test_repeated_findings_are_summarised(tmp_path: Path) -> None:
    data = build_zip([Member(f"../x{i}", b"x") for i in range(120)])
    report = scan_bytes(tmp_path, data, "x.zip")
    traversal = [f for f in report.findings if f.rule == "ARCHIVE-PATH-TRAVERSAL"]
    assert len(traversal) == 51
    assert "70 more" in traversal[-1].message


def test_unicode_path_extra_field_confusion(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("weights.bin")
        alt = b"../../.bashrc"
        info.extra = struct.pack("<HHB", 0x7075, 5 + len(alt), 1) + struct.pack("<I", 0) + alt
        zf.writestr(info, b"x")
    report = scan_bytes(tmp_path, buf.getvalue(), "x.zip")
    [f] = report.findings
    assert (f.rule, f.severity) == ("ZIP-NAME-CONFUSION", "high")


def _with_zip64_end(data: bytes, locator_offset: int | None = None) -> bytes:
    """Rewrite a small zip's end record as zip64 (record + locator + saturated EOCD)."""
    eocd = data.rindex(b"PK\x05\x06")
    n, cd_size, cd_offset = struct.unpack_from("<HLL", data, eocd + 10)
    body = data[:eocd]
    rec = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, cd_size, cd_offset)
    at = len(body) if locator_offset is None else locator_offset
    loc = struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return body + rec + loc + end


def test_zip64_locator_pointing_elsewhere(tmp_path: Path, fake_pickle: None) -> None:
    good = _with_zip64_end(build_zip([Member("archive/data.pkl", EVIL_PICKLE)]))
    assert zipfile.ZipFile(io.BytesIO(good)).namelist() == ["archive/data.pkl"]
    report = scan_bytes(tmp_path, good, "a.zip")
    assert rules(report) == {"TEST-PICKLE"}
    bad = _with_zip64_end(build_zip([Member("archive/data.pkl", EVIL_PICKLE)]), locator_offset=0)
    assert "ZIP64-LOCATOR-MISMATCH" in rules(scan_bytes(tmp_path, bad, "b.zip"))
