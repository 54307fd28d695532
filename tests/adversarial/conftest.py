from __future__ import annotations

import pytest

from tests.unit.scan.formats.helpers import install_fake_pickle


@pytest.fixture
def fake_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand in for the pickle engine: every pickle handed on yields a TEST-PICKLE finding."""
    install_fake_pickle(monkeypatch)
