"""SOURCE_DATE_EPOCH (reproducible-builds.org): the same model gives a byte-identical SBOM."""

from __future__ import annotations

import json


def test_same_model_same_bytes(cli, example_model, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert cli("sbom", example_model, "-o", a).exit_code == 0
    assert cli("sbom", example_model, "-o", b).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    doc = json.loads(a.read_text())
    assert doc["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"
    # the serial follows the content: another file changes it
    (example_model / "extra.txt").write_text("x")
    c = tmp_path / "c.json"
    assert cli("sbom", example_model, "-o", c).exit_code == 0
    assert json.loads(c.read_text())["serialNumber"] != doc["serialNumber"]
    xa, xb = tmp_path / "a.xml", tmp_path / "b.xml"
    assert cli("sbom", example_model, "--format", "cyclonedx-xml", "-o", xa).exit_code == 0
    assert cli("sbom", example_model, "--format", "cyclonedx-xml", "-o", xb).exit_code == 0
    assert xa.read_bytes() == xb.read_bytes()


def test_without_the_variable_serials_differ(cli, example_model, tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert cli("sbom", example_model, "-o", a).exit_code == 0
    assert cli("sbom", example_model, "-o", b).exit_code == 0
    assert json.loads(a.read_text())["serialNumber"] != json.loads(b.read_text())["serialNumber"]


def test_malformed_variable_is_exit_2(cli, example_model, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    res = cli("sbom", example_model)
    assert res.exit_code == 2
    assert "SOURCE_DATE_EPOCH" in res.stderr
