"""Hostile input to the non-scan commands: every case built here, every outcome documented.

Issue 9: deep config.json / policies / model cards (items 4, 7), push attachments (2), manifests
pull cannot read (6), terminal escapes (8), misleading messages and exit codes (9).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.signing.pki import keypair


def _model(root: Path, files: dict[str, bytes] | None = None) -> Path:
    root.mkdir(parents=True)
    for name, data in (files or {"weights.bin": b"w" * 64, "config.json": b"{}"}).items():
        (root / name).write_bytes(data)
    return root


def _one_line(stderr: str) -> None:
    lines = [ln for ln in stderr.splitlines() if not ln.startswith("mlsec: hint:")]
    assert len(lines) == 1, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr


# --- item 4: a config.json nested 2,000 deep --------------------------------------------------


def test_a_deep_config_json_never_crashes_a_command(cli, tmp_path: Path) -> None:
    deep = b'{"a":' * 2000 + b"1" + b"}" * 2000
    model = _model(tmp_path / "m", {"config.json": deep, "weights.bin": b"w" * 64})
    key, pub = keypair(tmp_path)
    r = cli("inspect", model, "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert {f["path"] for f in json.loads(r.stdout)["artifact"]["files"]} >= {"config.json"}
    # Signing only hashes: it works, and the signature verifies.
    sig = tmp_path / "m.sig"
    r = cli("sign", model, "--key", key, "-o", sig)
    assert r.exit_code == 0, r.stderr
    assert cli("verify", model, "--signature", sig, "--key", pub).exit_code == 0
    # The SBOM reads config.json for metadata: a bounded parser says why it cannot (exit 2).
    r = cli("sbom", model)
    assert r.exit_code == 2
    _one_line(r.stderr)
    assert "config.json:1: JSON nested deeper than" in r.stderr
    r = cli("push", model, f"oci:{tmp_path / 'lay'}:v1", "--signature", sig)
    assert r.exit_code == 0, r.stderr
    r = cli("admit", model, "--policy", "permissive", "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["allowed"] is True


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_deep_policy_is_exit_2_in_one_line(cli, tmp_path: Path, suffix: str) -> None:
    model = _model(tmp_path / "m")
    p = tmp_path / f"p{suffix}"
    if suffix == ".json":
        p.write_text('{"scan":' * 3000 + "{}" + "}" * 3000)
    else:
        p.write_text("scan: " + "[" * 3000 + "]" * 3000 + "\n")
    r = cli("admit", model, "--policy", p)
    assert r.exit_code == 2
    _one_line(r.stderr)
    assert "nested deeper than" in r.stderr


# --- item 7: silent acceptance ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("p.yaml", "apiVersion: mlsec/policy/v1\nscan:\n  fail_on: low\n  fail_on: critical\n", 4),
        (
            "p.json",
            '{"apiVersion": "mlsec/policy/v1",\n "scan": {"fail_on": "low",\n'
            ' "fail_on": "critical"}}',
            3,
        ),
    ],
)
def test_a_duplicate_policy_key_is_an_error_naming_key_and_line(
    cli, tmp_path: Path, name: str, text: str, line: int
) -> None:
    model = _model(tmp_path / "m")
    p = tmp_path / name
    p.write_text(text)
    r = cli("admit", model, "--policy", p)
    assert r.exit_code == 2
    _one_line(r.stderr)
    assert f"{name}:{line}: duplicate key 'fail_on'" in r.stderr


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ("---\nlicense: mit\ndatasets:\n  - imdb\n# Model\n", "never closed"),
        ("---\nlicense: mit\ndatasets:\n  imdb: true\n---\n# Model\n", "'datasets' must be"),
        ("---\nlicense: {name: mit}\n---\n", "'license' must be"),
    ],
)
def test_a_card_that_would_lose_licence_or_datasets_is_exit_2(
    cli, tmp_path: Path, card: str, message: str
) -> None:
    model = _model(tmp_path / "m", {"README.md": card.encode(), "w.bin": b"w"})
    r = cli("sbom", model)
    assert r.exit_code == 2
    _one_line(r.stderr)
    assert message in r.stderr


# --- item 2: push attachments --------------------------------------------------------------------


def _no_upload(layout: Path) -> None:
    assert not layout.exists() or not any((layout / "blobs").rglob("*"))


def test_push_refuses_what_is_not_this_models_signature_or_sbom(cli, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    model = _model(tmp_path / "m")
    other = _model(tmp_path / "other", {"x.bin": b"x"})
    key, _pub = keypair(tmp_path)
    other_sig = tmp_path / "other.sig"
    assert cli("sign", other, "--key", key, "-o", other_sig).exit_code == 0
    good_sig = tmp_path / "m.sig"
    assert cli("sign", model, "--key", key, "-o", good_sig).exit_code == 0
    other_bom = tmp_path / "other.cdx.json"
    assert cli("sbom", other, "-o", other_bom).exit_code == 0
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    age_key = tmp_path / "age.txt"
    age_key.write_text("# created: now\nAGE-SECRET-KEY-1" + "Q" * 58 + "\n")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\xff garbage")
    layout = tmp_path / "lay"
    cases = [
        (("--signature", ec_key), "private key material"),
        (("--signature", age_key), "private key material"),
        (("--sbom", age_key), "private key material"),
        (("--signature", garbage), "not a signature bundle"),
        (("--signature", other_sig), "not a signature of"),
        (("--signature", other_bom), "not a signature bundle"),
        (("--sbom", other_bom), "does not describe"),
        (("--sbom", good_sig), "not a CycloneDX"),
        (("--signature", good_sig, "--sbom", other_bom), "does not describe"),
    ]
    for args, message in cases:
        r = cli("push", model, f"oci:{layout}:v1", *args)
        assert r.exit_code == 2, (args, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        _no_upload(layout)
    good_bom = tmp_path / "m.cdx.json"
    assert cli("sbom", model, "-o", good_bom).exit_code == 0
    r = cli("push", model, f"oci:{layout}:v1", "--signature", good_sig, "--sbom", good_bom)
    assert r.exit_code == 0, r.stderr


# --- item 6: a manifest pull would refuse -------------------------------------------------------


def test_push_fails_before_uploading_a_manifest_pull_cannot_read(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsec.registry import oci

    model = _model(tmp_path / "m", {f"f{i:03}.bin": bytes([i]) for i in range(40)})
    monkeypatch.setattr(oci, "MAX_MANIFEST_SIZE", 2048)  # what pull accepts, made small
    layout = tmp_path / "lay"
    r = cli("push", model, f"oci:{layout}:v1")
    assert r.exit_code == 2
    assert "larger than the 2048 bytes a pull accepts" in r.stderr
    _no_upload(layout)


# --- item 8: terminal escapes ---------------------------------------------------------------------


def test_names_with_control_characters_print_escaped(cli, tmp_path: Path) -> None:
    evil = "a\nb\x1b[2J\u202e.bin"
    model = _model(tmp_path / "m", {evil: b"x", "[red]x.bin": b"y"})
    r = cli("inspect", model, "-f", "table")
    assert r.exit_code == 0
    assert "\x1b" not in r.stdout and "\u202e" not in r.stdout
    assert "a\\nb\\x1b[2J\\u202e.bin" in r.stdout
    assert "[red]x.bin" in r.stdout  # rich markup in a name is shown, not applied
    key, pub = keypair(tmp_path)
    sig = tmp_path / "m.sig"
    assert cli("sign", model, "--key", key, "-o", sig).exit_code == 0
    (model / evil).write_bytes(b"changed")
    r = cli("verify", model, "--signature", sig, "--key", pub)
    assert r.exit_code == 1
    assert "\x1b" not in r.stdout + r.stderr
    assert "a\\nb\\x1b[2J" in r.stdout + r.stderr
    # Error lines stay one line.
    r = cli("push", model, f"oci:{tmp_path / 'lay'}:v1", "--signature", sig)
    assert r.exit_code == 2
    _one_line(r.stderr)
    assert "\x1b" not in r.stderr


def test_cyclonedx_xml_is_well_formed_or_refused(cli, tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    ok = _model(tmp_path / "ok", {'a&b <c> "d".bin': b"x", "caf\u00e9.bin": b"y"})
    out = tmp_path / "ok.xml"
    assert cli("sbom", ok, "--format", "cyclonedx-xml", "-o", out).exit_code == 0
    names = [e.text for e in ET.parse(out).iter() if e.tag.endswith("name")]
    assert 'a&b <c> "d".bin' in names and "caf\u00e9.bin" in names
    bad = _model(tmp_path / "bad", {"x\x1by.bin": b"x"})
    r = cli("sbom", bad, "--format", "cyclonedx-xml", "-o", tmp_path / "bad.xml")
    assert r.exit_code == 2
    _one_line(r.stderr)
    assert "cannot be written in XML" in r.stderr
    assert not (tmp_path / "bad.xml").exists()


# --- item 9: messages and exit codes ------------------------------------------------------------


def test_admit_of_a_missing_path_says_so(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for arg in ("./nonexistent-model", "../nope", str(tmp_path / "absent")):
        r = cli("admit", arg, "--policy", "permissive")
        assert r.exit_code == 2
        _one_line(r.stderr)
        assert "no such file or directory" in r.stderr
        assert "registry host" not in r.stderr


def test_swapped_signature_and_sbom_bundles_are_exit_1_both_ways(cli, tmp_path: Path) -> None:
    model = _model(tmp_path / "m")
    key, pub = keypair(tmp_path)
    sig = tmp_path / "m.sig"
    bom = tmp_path / "bom.json"
    assert cli("sign", model, "--key", key, "-o", sig).exit_code == 0
    assert cli("sbom", model, "-o", bom).exit_code == 0
    assert cli("sign", "--sbom", bom, model, "--key", key).exit_code == 0
    bom_sig = tmp_path / "bom.json.sig"
    r = cli("verify", model, "--signature", bom_sig, "--key", pub)
    assert r.exit_code == 1, r.stderr
    r = cli("verify", "--sbom", bom, "--signature", sig, model, "--key", pub)
    assert r.exit_code == 1, r.stderr


def test_a_model_card_nested_100k_deep_is_exit_2_in_one_line(cli, tmp_path: Path) -> None:
    card = "---\nlicense: mit\ntags: " + "[" * 100_000 + "]" * 100_000 + "\n---\n# Model\n"
    model = _model(tmp_path / "m", {"README.md": card.encode(), "w.bin": b"w"})
    r = cli("sbom", model)
    assert r.exit_code == 2
    _one_line(r.stderr)
    assert "README.md:3: the YAML front matter is nested deeper than 64 levels" in r.stderr


def _limit_memory() -> None:  # in the child: a read that is not capped fails fast, not the host
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_signature_that_never_ends_is_read_with_a_cap(tmp_path: Path) -> None:
    from tests.conftest import run_mlsec

    model = _model(tmp_path / "m")
    _key, pub = keypair(tmp_path)
    r = run_mlsec(
        "verify", model, "--signature", "/dev/zero", "--key", pub, preexec_fn=_limit_memory
    )
    assert r.returncode == 2
    assert "/dev/zero: larger than 64 MiB, not a signature bundle" in r.stderr
    r = run_mlsec("push", model, f"oci:{tmp_path / 'lay'}:v1", "--signature", "/dev/zero")
    assert r.returncode == 2
    assert "/dev/zero: not a regular file" in r.stderr


def test_keygen_into_a_directory_is_refused_not_written_beside_it(cli, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    r = cli("keygen", "-o", f"{keys}/", "--no-passphrase")
    assert r.exit_code == 2
    assert "is a directory" in r.stderr
    assert list(tmp_path.iterdir()) == [keys] and not any(keys.iterdir())


def test_decrypt_extract_and_log_lines_escape_control_characters(cli, tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "bad\x1b[31mname\n.bin").write_bytes(b"x")
    pub = cli("age-keygen", "-o", tmp_path / "k.txt").stderr.split()[-1]
    r = cli("encrypt", model, "-r", pub, "-o", tmp_path / "m.tar.age")
    assert r.exit_code == 0, r.stderr
    assert "\x1b" not in r.stdout + r.stderr
    r = cli(
        "decrypt", tmp_path / "m.tar.age", "-i", tmp_path / "k.txt", "-x", tmp_path / "out\x1bx"
    )
    assert r.exit_code == 0, r.stderr
    assert "\x1b" not in r.stdout and len(r.stdout.strip().splitlines()) == 1
