"""`mlsec encrypt` / `decrypt` / `age-keygen` end to end, against the real `age` CLI."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from tests.unit.crypt.helpers import age, age_keygen, age_with_tty


@pytest.fixture(autouse=True, scope="module")
def _crypt_commands_registered():
    """Until app.py wires the crypt commands in, register them here; afterwards do nothing."""
    from mlsec.cli import app as app_mod
    from mlsec.cli import crypt

    if "encrypt" not in {c.name for c in app_mod.app.registered_commands}:
        crypt.register(app_mod.app)


@pytest.fixture
def no_env_passphrase(monkeypatch):
    monkeypatch.delenv("MLSEC_PASSPHRASE", raising=False)


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(os.urandom(3 * 65536 + 123))
    return path


def one_error_line(res, text: str) -> None:
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("mlsec: error: ") and text in lines[0], res.stderr
    assert all(line.startswith("mlsec: ") for line in lines)
    assert "Traceback" not in res.stderr


def test_commands_have_help(cli):
    for name in ("encrypt", "decrypt", "age-keygen"):
        res = cli(name, "--help")
        assert res.exit_code == 0
        assert f"Usage: mlsec {name}" in res.stdout


def test_age_keygen_writes_a_0600_identity_that_age_accepts(cli, tmp_path):
    key = tmp_path / "key.txt"
    res = cli("age-keygen", "-o", key)
    assert res.exit_code == 0, res.stderr
    recipient = res.stdout.strip()
    assert recipient.startswith("age1")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    text = key.read_text()
    assert text.startswith("# created: ") and f"# public key: {recipient}\n" in text
    proc = subprocess.run(["age-keygen", "-y", str(key)], capture_output=True, text=True)
    assert proc.stdout.strip() == recipient
    assert cli("age-keygen", "-y", key).stdout.strip() == recipient
    one_error_line(cli("age-keygen", "-o", key), "already exists")
    assert cli("age-keygen", "-o", key, "--force").stdout.strip() != recipient


def test_age_keygen_to_stdout(cli):
    res = cli("age-keygen")
    assert res.exit_code == 0
    assert res.stdout.splitlines()[-1].startswith("AGE-SECRET-KEY-1")


def test_encrypt_to_recipients_then_age_decrypts(cli, tmp_path, model):
    key = tmp_path / "key.txt"
    recipient = age_keygen(key)
    res = cli("encrypt", model, "-r", recipient)
    assert res.exit_code == 0, res.stderr
    out = model.with_name(model.name + ".age")
    assert f"-> {out}" in res.stdout
    proc = age("-d", "-i", key, out)
    assert proc.returncode == 0 and proc.stdout == model.read_bytes()


def test_encrypt_with_a_recipients_file_and_armor(cli, tmp_path, model):
    k1, k2 = tmp_path / "k1", tmp_path / "k2"
    rfile = tmp_path / "recipients.txt"
    rfile.write_text(f"# team\n{age_keygen(k1)}\n{age_keygen(k2)}\n")
    out = tmp_path / "m.age"
    res = cli("encrypt", model, "-R", rfile, "--armor", "-o", out)
    assert res.exit_code == 0, res.stderr
    assert "2 recipients" in res.stdout
    assert out.read_bytes().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    for k in (k1, k2):
        assert age("-d", "-i", k, out).stdout == model.read_bytes()


def test_age_encrypts_then_mlsec_decrypts(cli, tmp_path, model):
    key = tmp_path / "key.txt"
    enc = tmp_path / "weights.bin.age"
    subprocess.run(["age", "-r", age_keygen(key), "-o", enc, model], check=True)
    res = cli("decrypt", enc, "-i", key)
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "weights.bin").read_bytes() == model.read_bytes()
    one_error_line(cli("decrypt", enc, "-i", key), "already exists (use --force")
    (tmp_path / "weights.bin").write_bytes(b"old")
    assert cli("decrypt", enc, "-i", key, "--force").exit_code == 0
    assert (tmp_path / "weights.bin").read_bytes() == model.read_bytes()


def test_passphrase_from_env_then_age_decrypts_via_a_terminal(cli, tmp_path, model, monkeypatch):
    monkeypatch.setenv("MLSEC_PASSPHRASE", "correct horse battery")
    out = tmp_path / "m.age"
    assert cli("encrypt", "-p", model, "-o", out).exit_code == 0
    plain = tmp_path / "plain"
    code, transcript = age_with_tty(
        ["age", "-d", "-o", str(plain), str(out)], b"correct horse battery"
    )
    assert code == 0, transcript
    assert plain.read_bytes() == model.read_bytes()


def test_passphrase_file_decrypts_what_age_encrypted(cli, tmp_path, model, no_env_passphrase):
    enc = tmp_path / "m.age"
    code, transcript = age_with_tty(["age", "-p", "-o", str(enc), str(model)], b"s3cret")
    assert code == 0, transcript
    pw = tmp_path / "pw.txt"
    pw.write_text("s3cret\n")
    res = cli("decrypt", enc, "--passphrase-file", pw, "-o", tmp_path / "out")
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "out").read_bytes() == model.read_bytes()
    pw.write_text("wrong\n")
    res = cli("decrypt", enc, "--passphrase-file", pw, "-o", tmp_path / "out2")
    one_error_line(res, f"{enc}: wrong passphrase")
    assert not (tmp_path / "out2").exists()


def test_wrong_identity_is_one_line_and_leaves_nothing(cli, tmp_path, model):
    key, other = tmp_path / "key.txt", tmp_path / "other.txt"
    enc = tmp_path / "m.age"
    subprocess.run(["age", "-r", age_keygen(key), "-o", enc, model], check=True)
    age_keygen(other)
    res = cli("decrypt", enc, "-i", other)
    one_error_line(res, f"{enc}: no identity matches any recipient")
    assert not (tmp_path / "m").exists()


def test_tampered_file_leaves_nothing(cli, tmp_path, model):
    key = tmp_path / "key.txt"
    enc = tmp_path / "m.age"
    subprocess.run(["age", "-r", age_keygen(key), "-o", enc, model], check=True)
    blob = bytearray(enc.read_bytes())
    blob[-5] ^= 1
    enc.write_bytes(bytes(blob))
    one_error_line(cli("decrypt", enc, "-i", key), "does not authenticate")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.txt", "m.age", model.name]


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["encrypt", "IN"], "give recipients"),
        (["encrypt", "IN", "-p", "-r", "age1x"], "cannot be combined"),
        (["decrypt", "IN.age"], "give an identity file"),
        (["decrypt", "IN.age", "-p", "-i", "k"], "cannot be combined"),
        (["decrypt", "IN", "-i", "k"], "does not end in .age"),
        (["encrypt", "IN", "-r", "age1notakey"], "invalid recipient"),
        (["age-keygen", "-y", "k", "-o", "x"], "cannot be combined"),
    ],
)
def test_usage_errors(cli, tmp_path, model, args, text):
    args = [str(model) if a == "IN" else a for a in args]
    args = [str(model) + ".age" if a == "IN.age" else a for a in args]
    one_error_line(cli(*args), text)


def test_no_passphrase_source_is_a_clean_error(cli, model, no_env_passphrase):
    res = cli("encrypt", "-p", model)
    one_error_line(res, "no terminal to ask for it")
    assert "MLSEC_PASSPHRASE" in res.stderr
    assert not model.with_name(model.name + ".age").exists()


def test_missing_input(cli, tmp_path):
    one_error_line(
        cli("encrypt", tmp_path / "nope", "-r", age_keygen(tmp_path / "k")), "no such file"
    )
    one_error_line(cli("decrypt", tmp_path / "nope.age", "-i", tmp_path / "k"), "no such file")


def test_directory_model_round_trip(cli, tmp_path):
    model = tmp_path / "tiny-model"
    (model / "shards").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "shards" / "w.bin").write_bytes(os.urandom(100_000))
    key = tmp_path / "key.txt"
    res = cli("encrypt", model, "-r", age_keygen(key))
    assert res.exit_code == 0, res.stderr
    enc = tmp_path / "tiny-model.tar.age"
    assert "2 files" in res.stdout and f"-> {enc}" in res.stdout
    # age + tar read it too
    plain = age("-d", "-i", key, enc).stdout
    listing = subprocess.run(["tar", "-t"], input=plain, capture_output=True).stdout.decode()
    assert listing.split() == ["config.json", "shards/", "shards/w.bin"]
    res = cli("decrypt", enc, "-i", key, "--extract", tmp_path / "restored")
    assert res.exit_code == 0, res.stderr
    restored = tmp_path / "restored" / "shards" / "w.bin"
    assert restored.read_bytes() == (model / "shards" / "w.bin").read_bytes()
    one_error_line(cli("decrypt", enc, "-i", key, "-x", tmp_path / "restored"), "already exists")
    one_error_line(
        cli("decrypt", enc, "-i", key, "-x", tmp_path / "r2", "-o", tmp_path / "o"),
        "cannot be combined",
    )


@pytest.mark.parametrize("spelling", [".", "./", "DIR/", "DIR"])
def test_encrypt_dir_default_output_is_beside_never_inside(cli, tmp_path, monkeypatch, spelling):
    model = tmp_path / "m"
    (model / "sub").mkdir(parents=True)
    (model / "w.bin").write_bytes(b"w" * 100)
    pub = cli("age-keygen", "-o", tmp_path / "k.txt").stderr.split()[-1]
    monkeypatch.chdir(model if spelling.startswith(".") else tmp_path)
    arg = spelling.replace("DIR", "m")
    r = cli("encrypt", arg, "-r", pub)
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "m.tar.age").is_file()
    assert sorted(p.name for p in model.iterdir()) == ["sub", "w.bin"]


def test_encrypt_dir_output_inside_it_is_refused(cli, tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"w")
    pub = cli("age-keygen", "-o", tmp_path / "k.txt").stderr.split()[-1]
    r = cli("encrypt", model, "-r", pub, "-o", model / "sealed.age")
    assert r.exit_code == 2 and "inside the directory" in r.stderr
    assert sorted(p.name for p in model.iterdir()) == ["w.bin"]
