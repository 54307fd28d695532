"""Blob windows and views (what the container analyzers hand on), and shared counters."""

from __future__ import annotations

from pathlib import Path

from mlsec.formats import Format
from mlsec.scan.base import Blob, ScanContext, ScanOptions


def test_window_of_a_file_reads_only_its_range(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"0123456789abcdef")
    blob = Blob("f", path=p)
    w = blob.window("w", 4, 6)
    assert (w.size, w.head(3), w.read()) == (6, b"456", b"456789")
    assert w.path is None and blob.path == p
    ww = w.window("ww", 2, 100)  # clipped to the window
    assert ww.read() == b"6789"
    with w.open() as f:
        f.seek(-2, 2)
        assert f.read() == b"89"
        f.seek(0)
        assert f.read(2) == b"45"
    with w.view() as v:
        assert bytes(v) == b"456789"


def test_window_of_bytes_and_empty_views(tmp_path: Path) -> None:
    assert Blob("b", data=b"abcdef").window("w", 1, 3).read() == b"bcd"
    p = tmp_path / "empty"
    p.write_bytes(b"")
    with Blob("e", path=p).view() as v:
        assert len(v) == 0


def test_counters_are_shared_by_nested_contexts() -> None:
    ctx = ScanContext(file="f", options=ScanOptions(), format=Format.ZIP)
    child = ctx.child("a", Format.TAR).child("b", Format.ZIP)
    child.charge_extracted(10)
    child.counters.members_scanned += 2
    assert (ctx.extracted_bytes, ctx.members_scanned, child.member) == (10, 2, "a!b")
    assert ctx.extract_budget() == ctx.limits.max_total_extracted - 10
