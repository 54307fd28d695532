"""Keyless (sigstore) verification, offline, on real bundles.

mlsec cannot make keyless signatures here (no network, no OIDC token), and the repository ships
no third-party bundles, so these tests run on the historical sigstore bundles of the OpenSSF
conformance suite when ``MLSEC_CONFORMANCE_DIR`` points at a checkout of
sampras343/model-signing-conformance; otherwise they skip. They prove verification against the
production trust root shipped inside sigstore-python, without network access.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_mlsec

SUITE = os.environ.get("MLSEC_CONFORMANCE_DIR")
HIST = Path(SUITE or "/nonexistent") / "test/test-cases/verify/historical"
CASES = sorted(p for p in HIST.glob("*-sigstore") if p.is_dir()) if SUITE else []

pytestmark = pytest.mark.skipif(not CASES, reason="MLSEC_CONFORMANCE_DIR not set")


def _case(case: Path, tmp_path: Path) -> tuple[Path, dict]:
    cfg = json.loads((case / "config.json").read_text())
    model = tmp_path / "model"
    shutil.copytree(case / "model", model)
    return model, cfg["verify"]


def _verify(model: Path, case: Path, v: dict, identity: str | None = None):
    args = ["verify", model, "-s", case / "bundle.sig"]
    args += ["--identity", identity or v["identity"], "--issuer", v["identity_provider"]]
    for p in v.get("ignore_paths", []):
        args += ["--ignore", p]
    # HOME without a TUF cache: only the trust root inside sigstore-python's wheel is available.
    return run_mlsec(*args, env={"HOME": str(model.parent)})


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_historical_sigstore_bundle_verifies_offline(case: Path, tmp_path: Path):
    model, v = _case(case, tmp_path)
    proc = _verify(model, case, v)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("case", CASES[:1], ids=[c.name for c in CASES[:1]])
def test_sigstore_tamper_and_wrong_identity_fail(case: Path, tmp_path: Path):
    model, v = _case(case, tmp_path)
    assert _verify(model, case, v, identity="someone-else@example.com").returncode == 1
    victim = next(p for p in sorted(model.iterdir()) if p.is_file() and p.name != "ignore-me")
    victim.write_bytes(victim.read_bytes() + b"!")
    proc = _verify(model, case, v)
    assert proc.returncode == 1
    assert f"{victim.name}: digest differs" in proc.stderr
