"""The library API: round trips, armor strictness, file helpers (atomic, no clobber, modes),
argument errors and progress reporting."""

from __future__ import annotations

import io
import os
import stat

import pytest

from mlsec.crypt import (
    CHUNK_SIZE,
    Passphrase,
    ScryptRecipient,
    X25519Recipient,
    decrypt,
    decrypt_file,
    encrypt,
    encrypt_file,
    load_recipients,
    parse_identities,
    parse_recipients,
)
from mlsec.crypt.armor import BEGIN, END
from mlsec.errors import CryptError
from tests.unit.crypt.helpers import Keys, seal, unseal

KEYS = Keys()


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * CHUNK_SIZE])
def test_round_trip_and_ciphertext_size(size):
    data = os.urandom(size)
    blob = seal(data, [KEYS.recipient])
    chunks = max(1, -(-size // CHUNK_SIZE))
    header = blob.index(b"\n--- ") + 49
    assert len(blob) == header + 16 + size + 16 * chunks
    assert unseal(blob, KEYS.identities) == data


def test_each_encryption_is_fresh():
    a, b = seal(b"same", [KEYS.recipient]), seal(b"same", [KEYS.recipient])
    assert a != b
    assert unseal(a, KEYS.identities) == unseal(b, KEYS.identities) == b"same"


def test_passphrase_round_trip_with_a_low_work_factor():
    blob = seal(b"p" * 70000, [ScryptRecipient(Passphrase(b"pw"), work_factor=10)])
    assert b"\n-> scrypt " in blob and blob.split(b"\n")[1].endswith(b" 10")
    assert unseal(blob, Passphrase(b"pw")) == b"p" * 70000


def test_passphrase_object_uses_the_age_default_work_factor():
    assert seal(b"x", Passphrase(b"pw")).split(b"\n")[1].endswith(b" 18")


def test_recipient_arguments_are_checked():
    with pytest.raises(CryptError, match="cannot be combined"):
        seal(b"x", [KEYS.recipient, ScryptRecipient(b"pw", work_factor=10)])  # type: ignore[list-item]
    with pytest.raises(CryptError, match="no recipients"):
        seal(b"x", [])
    with pytest.raises(CryptError, match="sequence"):
        seal(b"x", KEYS.recipient)  # type: ignore[arg-type]
    with pytest.raises(CryptError, match="empty passphrase"):
        ScryptRecipient(b"")
    with pytest.raises(CryptError, match="invalid recipient"):
        seal(b"x", ["age1notakey"])


def test_recipients_and_identities_files(tmp_path):
    f = tmp_path / "recipients.txt"
    f.write_text(f"# team\n{KEYS.recipient}\n\n{Keys().recipient}\n")
    assert str(load_recipients(f)[0]) == KEYS.recipient
    with pytest.raises(CryptError, match="no recipients found"):
        parse_recipients("# nothing\n")
    with pytest.raises(CryptError, match="no identities found"):
        parse_identities("\n# nothing\n")
    with pytest.raises(CryptError, match="line 2: invalid identity"):
        parse_identities(f"# x\n{KEYS.recipient}\n")


# --- armor -------------------------------------------------------------------------------


def armored(data: bytes = b"a" * 1000) -> bytes:
    return seal(data, [KEYS.recipient], armor=True)


def test_armor_shape():
    text = armored()
    lines = text.split(b"\n")
    assert lines[0] == BEGIN and lines[-2] == END and lines[-1] == b""
    assert all(len(line) == 64 for line in lines[1:-3])
    assert 0 < len(lines[-3]) <= 64


def test_armor_tolerates_surrounding_whitespace_and_crlf():
    text = armored()
    assert unseal(b"\n  \n" + text + b"\n\n", KEYS.identities) == b"a" * 1000
    assert unseal(text.replace(b"\n", b"\r\n"), KEYS.identities) == b"a" * 1000


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda t: t + b"junk\n", "trailing data after the END line"),
        (
            lambda t: t.replace(END, b"-----END AGE ENCRYPTED FILX-----"),
            "bad END line|invalid base64",
        ),
        (lambda t: t[: t.index(END)], "truncated armor"),
        (lambda t: t.replace(b"\n", b"\nA", 1), "longer than 64|invalid base64"),
        (lambda t: t.replace(BEGIN + b"\n", BEGIN + b"\n\n"), "non-canonical|invalid base64"),
        (lambda t: t.replace(BEGIN, b"-----BEGIN AGE ENCRYPTED FILE----- x"), "bad BEGIN"),
    ],
)
def test_armor_is_strict(mutate, match):
    with pytest.raises(CryptError, match=match):
        unseal(mutate(armored()), KEYS.identities)


def test_armor_with_a_full_last_line():
    # find a size whose armored form ends with a full 64-column line
    for size in range(0, 200):
        text = armored(b"z" * size)
        if len(text.split(b"\n")[-3]) == 64:
            assert unseal(text, KEYS.identities) == b"z" * size
            return
    raise AssertionError("no size produced a full last line")


# --- file helpers ------------------------------------------------------------------------


def test_encrypt_file_and_decrypt_file(tmp_path):
    src = tmp_path / "model.safetensors"
    src.write_bytes(os.urandom(200_000))
    assert encrypt_file(src, tmp_path / "m.age", [KEYS.recipient]) == 200_000
    assert decrypt_file(tmp_path / "m.age", tmp_path / "m.out", KEYS.identities) == 200_000
    assert (tmp_path / "m.out").read_bytes() == src.read_bytes()


def test_no_clobber_without_overwrite(tmp_path):
    src = tmp_path / "m"
    src.write_bytes(b"data")
    dest = tmp_path / "m.age"
    dest.write_bytes(b"keep")
    with pytest.raises(CryptError, match="already exists"):
        encrypt_file(src, dest, [KEYS.recipient])
    assert dest.read_bytes() == b"keep"
    encrypt_file(src, dest, [KEYS.recipient], overwrite=True)
    assert unseal(dest.read_bytes(), KEYS.identities) == b"data"


def test_output_modes(tmp_path):
    src = tmp_path / "m"
    src.write_bytes(b"data")
    old = os.umask(0o000)
    try:
        encrypt_file(src, tmp_path / "a.age", [KEYS.recipient])
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.age").stat().st_mode)
    assert mode == 0o664  # the umask's, but never world-writable
    decrypt_file(tmp_path / "a.age", tmp_path / "a", KEYS.identities, mode=0o600)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o600


def test_missing_input_and_directory(tmp_path):
    with pytest.raises(CryptError, match="no such file"):
        encrypt_file(tmp_path / "nope", tmp_path / "x", [KEYS.recipient])
    with pytest.raises(CryptError, match="is a directory"):
        encrypt_file(tmp_path, tmp_path / "x", [KEYS.recipient])
    assert list(tmp_path.iterdir()) == []


def test_progress_is_told_the_total_and_every_byte(tmp_path):
    class Recorder:
        def __init__(self):
            self.calls = []

        def start(self, description, total):
            self.calls.append(("start", total))

        def advance(self, n):
            self.calls.append(("advance", n))

        def finish(self):
            self.calls.append(("finish",))

    src = tmp_path / "m"
    src.write_bytes(b"x" * (CHUNK_SIZE * 2 + 5))
    rec = Recorder()
    encrypt_file(src, tmp_path / "m.age", [KEYS.recipient], progress=rec)
    assert rec.calls[0] == ("start", CHUNK_SIZE * 2 + 5) and rec.calls[-1] == ("finish",)
    assert sum(c[1] for c in rec.calls if c[0] == "advance") == CHUNK_SIZE * 2 + 5
    rec = Recorder()
    decrypt_file(tmp_path / "m.age", tmp_path / "m.out", KEYS.identities, progress=rec)
    assert sum(c[1] for c in rec.calls if c[0] == "advance") == CHUNK_SIZE * 2 + 5
    assert rec.calls[-1] == ("finish",)


def test_streams_without_readinto():
    class ReadOnly:
        def __init__(self, data):
            self._f = io.BytesIO(data)

        def read(self, n=-1):
            return self._f.read(n)

    data = os.urandom(CHUNK_SIZE + 10)
    out = io.BytesIO()
    encrypt(ReadOnly(data), out, [X25519Recipient.parse(KEYS.recipient)])  # type: ignore[arg-type]
    back = io.BytesIO()
    decrypt(ReadOnly(out.getvalue()), back, KEYS.identities)  # type: ignore[arg-type]
    assert back.getvalue() == data


def test_works_without_encrypt_into(monkeypatch):
    """cryptography < 47 has no AEAD encrypt_into/decrypt_into: the fallback gives the same
    files and the same checks."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from mlsec.crypt import stream

    class OldAead:
        def __init__(self, key):
            self._aead = ChaCha20Poly1305(key)

        def encrypt(self, nonce, data, aad):
            return self._aead.encrypt(nonce, data, aad)

        def decrypt(self, nonce, data, aad):
            return self._aead.decrypt(nonce, data, aad)

    monkeypatch.setattr(stream, "ChaCha20Poly1305", OldAead)
    data = os.urandom(3 * CHUNK_SIZE + 7)
    blob = seal(data, [KEYS.recipient])
    assert unseal(blob, KEYS.identities) == data
    out = io.BytesIO()
    with stream.EncryptWriter(out, [KEYS.recipient]) as w:
        w.write(data)
    assert stream.DecryptReader(io.BytesIO(out.getvalue()), KEYS.identities).read() == data
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    with pytest.raises(CryptError, match="final payload chunk 3 does not authenticate"):
        unseal(bytes(tampered), KEYS.identities)
    monkeypatch.undo()
    assert unseal(blob, KEYS.identities) == data  # the same bytes as the fast path
