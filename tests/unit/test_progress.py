"""Progress bars: only on a terminal, never in CI or with --quiet; the rich adapter counts bytes."""

from __future__ import annotations

import io
import sys

from mlsec.cli import common
from mlsec.cli.common import RichProgressAdapter, State, wants_progress


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_progress_off_terminal_in_ci_or_quiet(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.delenv("CI", raising=False)
    assert not wants_progress(10**12)  # not a terminal
    monkeypatch.setattr(sys, "stderr", _TTY())
    assert wants_progress(10**12)
    assert not wants_progress(1024)  # small work: no bar
    monkeypatch.setenv("CI", "true")
    assert not wants_progress(10**12)
    monkeypatch.delenv("CI")
    monkeypatch.setattr(State, "quiet", True)
    assert not wants_progress(10**12)


def test_rich_adapter_tracks_the_bytes(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _TTY())
    bar = RichProgressAdapter()
    bar.start("hashing", 100)
    bar.advance(40)
    bar.advance(60)
    task = bar._progress.tasks[0]
    assert task.completed == 100 and task.finished
    bar.finish()
    assert common.progress_for(1) is None
