"""Interoperability with the real `age` / `age-keygen` CLIs, both directions."""

from __future__ import annotations

import os

import pytest

from mlsec.crypt import Passphrase, ScryptRecipient, load_identities
from mlsec.errors import CryptError
from tests.unit.crypt.helpers import Keys, age, age_keygen, age_with_tty, seal, unseal

SIZES = [0, 1, 65535, 65536, 65537, 2 * 65536, 3 * 65536 + 1000]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    k = Keys()
    k.file = k.write(tmp_path_factory.mktemp("keys") / "key.txt")
    return k


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
def test_mlsec_encrypts_age_decrypts(keys, size, armor):
    data = os.urandom(size)
    proc = age("-d", "-i", keys.file, input=seal(data, [keys.recipient], armor=armor))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armor"])
def test_age_encrypts_mlsec_decrypts(keys, size, armor):
    data = os.urandom(size)
    args = ["-a"] if armor else []
    proc = age(*args, "-r", keys.recipient, input=data)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"-----BEGIN AGE" if armor else b"age-encryption.org/v1\n")
    assert unseal(proc.stdout, keys.identities) == data


def test_identity_file_from_age_keygen(tmp_path):
    recipient = age_keygen(tmp_path / "k.txt")
    (ident,) = load_identities(tmp_path / "k.txt")  # comments are skipped
    assert str(ident.recipient()) == recipient
    proc = age("-r", recipient, input=b"model")
    assert unseal(proc.stdout, [ident]) == b"model"


def test_multiple_recipients_each_can_decrypt(tmp_path):
    a, b, c = Keys(), Keys(), Keys()
    blob = seal(b"shared weights", [a.recipient, b.recipient])
    assert blob.count(b"\n-> X25519 ") == 2
    for k in (a, b):
        proc = age("-d", "-i", k.write(tmp_path / "k"), input=blob)
        assert proc.stdout == b"shared weights"
    proc = age("-d", "-i", c.write(tmp_path / "k"), input=blob)
    assert proc.returncode != 0
    # age to several recipients -> mlsec with the second identity only
    proc = age("-r", a.recipient, "-r", b.recipient, input=b"x" * 70000)
    assert unseal(proc.stdout, b.identities) == b"x" * 70000


def test_identity_file_with_several_keys_and_comments(tmp_path):
    a, b = Keys(), Keys()
    f = tmp_path / "ids.txt"
    f.write_bytes(f"# first\r\n\r\n{a.identity}\r\n# second\n{b.identity}\n".encode())
    ids = load_identities(f)
    assert len(ids) == 2
    proc = age("-r", b.recipient, input=b"for b")
    assert unseal(proc.stdout, ids) == b"for b"
    # and age itself accepts the same file
    proc = age("-d", "-i", f, input=seal(b"for a", [a.recipient]))
    assert proc.stdout == b"for a"


def test_identity_file_lines_are_not_trimmed_like_age(tmp_path):
    a = Keys()
    f = tmp_path / "ids.txt"
    f.write_text(f"# ok\n  # indented comment is not a comment for age\n{a.identity}\n")
    with pytest.raises(CryptError, match="line 2"):
        load_identities(f)
    assert age("-d", "-i", f, input=seal(b"x", [a.recipient])).returncode != 0


@pytest.mark.parametrize("size", [0, 65537])
def test_passphrase_mlsec_encrypts_age_decrypts_via_a_terminal(tmp_path, size):
    data = os.urandom(size)
    enc = tmp_path / "p.age"
    # a low work factor keeps the test fast; the default (18) is checked in test_api
    enc.write_bytes(seal(data, [ScryptRecipient(b"correct horse", work_factor=12)]))
    out = tmp_path / "p.out"
    code, transcript = age_with_tty(["age", "-d", "-o", str(out), str(enc)], b"correct horse")
    assert code == 0, transcript
    # age creates its output lazily: an empty plaintext leaves no file
    assert (out.read_bytes() if out.exists() else b"") == data


def test_passphrase_age_encrypts_mlsec_decrypts_via_a_terminal(tmp_path):
    data = os.urandom(100_000)
    (tmp_path / "in").write_bytes(data)
    enc = tmp_path / "in.age"
    code, transcript = age_with_tty(
        ["age", "-p", "-o", str(enc), str(tmp_path / "in")], b"battery staple"
    )
    assert code == 0, transcript
    blob = enc.read_bytes()
    assert b"\n-> scrypt " in blob
    assert unseal(blob, Passphrase(b"battery staple")) == data


def test_age_rejects_a_wrong_passphrase_from_mlsec(tmp_path):
    enc = tmp_path / "p.age"
    enc.write_bytes(seal(b"secret", [ScryptRecipient(b"right", work_factor=12)]))
    code, _ = age_with_tty(["age", "-d", "-o", str(tmp_path / "o"), str(enc)], b"wrong")
    assert code != 0
    assert not (tmp_path / "o").exists() or (tmp_path / "o").read_bytes() == b""
