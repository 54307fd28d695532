"""Tampered, truncated and hostile age files: each is a CryptError with a clear one-line reason,
leaves no output file, and never touches an existing destination (even with overwrite)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from mlsec.crypt import (
    AgeHeader,
    Passphrase,
    ScryptIdentity,
    ScryptRecipient,
    X25519Recipient,
    decrypt_file,
)
from mlsec.crypt.header import b64encode, hkdf
from mlsec.errors import CryptError
from tests.unit.crypt.helpers import Keys, header_end, seal

KEYS = Keys()
PLAIN = os.urandom(2 * 65536 + 1000)  # two full chunks and a short final one
BLOB = seal(PLAIN, [KEYS.recipient])
HDR = header_end(BLOB)  # nonce starts here
PAYLOAD = HDR + 16
ENC = 65536 + 16
PRECIOUS = b"an existing file that must survive"


def craft(chunks: list[tuple[bytes, int]], *, stanzas=None, file_key=None) -> bytes:
    """An age file whose payload chunks are ``(plaintext, last_flag)`` exactly as given."""
    file_key = file_key or os.urandom(16)
    stanzas = stanzas or X25519Recipient.parse(KEYS.recipient).wrap(file_key)
    nonce = os.urandom(16)
    aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    body = b"".join(
        aead.encrypt(struct.pack(">3xQB", i, flag), data, None)
        for i, (data, flag) in enumerate(chunks)
    )
    return AgeHeader.build(stanzas, file_key).encode() + nonce + body


def flip(blob: bytes, pos: int) -> bytes:
    b = bytearray(blob)
    b[pos] ^= 0x01
    return bytes(b)


def noncanonical(text: str) -> str:
    """Same decoded bytes' prefix, but non-zero unused trailing bits in the last character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(text[-1])
    return text[:-1] + alphabet[last | 1 if not last & 1 else last & ~1 | 1]


def expect_failure(tmp_path: Path, blob: bytes, match: str, identities=None) -> None:
    src = tmp_path / "model.bin.age"
    src.write_bytes(blob)
    fresh = tmp_path / "fresh.bin"
    with pytest.raises(CryptError, match=match) as info:
        decrypt_file(src, fresh, identities or KEYS.identities)
    msg = info.value.message
    assert "\n" not in msg and msg.startswith(f"{src}: ")
    assert not fresh.exists()
    existing = tmp_path / "existing.bin"
    existing.write_bytes(PRECIOUS)
    with pytest.raises(CryptError, match=match):
        decrypt_file(src, existing, identities or KEYS.identities, overwrite=True)
    assert existing.read_bytes() == PRECIOUS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.bin", "model.bin.age"]


def test_the_untampered_file_decrypts(tmp_path):
    (tmp_path / "in.age").write_bytes(BLOB)
    assert decrypt_file(tmp_path / "in.age", tmp_path / "out", KEYS.identities) == len(PLAIN)
    assert (tmp_path / "out").read_bytes() == PLAIN


@pytest.mark.parametrize(
    ("where", "match"),
    [
        ("version", "not an age file|unsupported age format version"),
        ("stanza_arg", "no identity matches|malformed"),
        ("stanza_body", "no identity matches|malformed"),
        # a flipped bit in the base64 MAC may leave the alphabet: invalid, or a different MAC
        ("mac", "header MAC mismatch|non-canonical|invalid header MAC"),
        ("nonce", "payload chunk 0 does not authenticate"),
        ("first_chunk", "payload chunk 0 does not authenticate"),
        ("middle_chunk", "payload chunk 1 does not authenticate"),
        ("last_chunk", "final payload chunk 2 does not authenticate"),
        ("last_byte", "final payload chunk 2 does not authenticate"),
    ],
)
def test_a_flipped_bit_is_detected(tmp_path, where, match):
    stanza = BLOB.index(b"-> X25519 ")
    pos = {
        "version": 3,
        "stanza_arg": stanza + 12,
        "stanza_body": BLOB.index(b"\n", stanza) + 5,
        "mac": BLOB.index(b"\n--- ") + 10,
        "nonce": HDR + 3,
        "first_chunk": PAYLOAD + 100,
        "middle_chunk": PAYLOAD + ENC + 100,
        "last_chunk": PAYLOAD + 2 * ENC + 10,
        "last_byte": len(BLOB) - 1,
    }[where]
    expect_failure(tmp_path, flip(BLOB, pos), match)


@pytest.mark.parametrize(
    ("cut", "match"),
    [
        (0, "empty file"),
        (10, "not an age file"),
        ("in_header", "truncated header|malformed header"),
        ("before_mac", "truncated header"),
        ("header_only", "payload nonce is missing"),
        ("mid_nonce", "payload nonce is missing"),
        ("nonce_only", "truncated file"),
        ("mid_first_chunk", "final payload chunk 0 does not authenticate"),
        ("first_chunk_boundary", "ends without a final chunk"),
        ("second_chunk_boundary", "ends without a final chunk"),
        ("inside_a_tag", "truncated file|does not authenticate"),
        ("last_byte", "final payload chunk 2 does not authenticate"),
    ],
)
def test_truncation_is_detected(tmp_path, cut, match):
    at = {
        "in_header": BLOB.index(b"-> X25519") + 20,
        "before_mac": BLOB.index(b"\n--- ") + 1,
        "header_only": HDR,
        "mid_nonce": HDR + 7,
        "nonce_only": PAYLOAD,
        "mid_first_chunk": PAYLOAD + 1000,
        "first_chunk_boundary": PAYLOAD + ENC,
        "second_chunk_boundary": PAYLOAD + 2 * ENC,
        "inside_a_tag": PAYLOAD + 2 * ENC + 8,
        "last_byte": len(BLOB) - 1,
    }.get(cut, cut)
    expect_failure(tmp_path, BLOB[:at], match)


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (b"\x00", "final payload chunk 2 does not authenticate"),
        (b"x" * (ENC + 5), "trailing data|does not authenticate"),
    ],
)
def test_appended_data_is_rejected(tmp_path, extra, match):
    expect_failure(tmp_path, BLOB + extra, match)


def test_a_chunk_after_the_final_chunk_is_rejected(tmp_path):
    blob = craft([(b"a" * 65536, 1), (b"b" * 10, 1)])
    expect_failure(tmp_path, blob, "trailing data after the end of the encrypted payload")


def test_an_empty_final_chunk_after_a_full_one_is_rejected(tmp_path):
    blob = craft([(b"a" * 65536, 0), (b"", 1)])
    expect_failure(tmp_path, blob, "empty final chunk")


def test_an_empty_payload_is_one_empty_final_chunk(tmp_path):
    (tmp_path / "e.age").write_bytes(craft([(b"", 1)]))
    assert decrypt_file(tmp_path / "e.age", tmp_path / "e", KEYS.identities) == 0
    assert (tmp_path / "e").read_bytes() == b""


def test_a_short_non_final_chunk_is_rejected(tmp_path):
    expect_failure(tmp_path, craft([(b"a" * 100, 0)]), "ends without a final chunk")


def test_wrong_identity(tmp_path):
    expect_failure(tmp_path, BLOB, "^.*: no identity matches any recipient$", Keys().identities)


def test_wrong_passphrase(tmp_path):
    blob = seal(PLAIN[:1000], [ScryptRecipient(b"right", work_factor=10)])
    expect_failure(tmp_path, blob, "wrong passphrase$", Passphrase(b"wrong"))


def test_passphrase_for_a_public_key_file_and_vice_versa(tmp_path):
    expect_failure(tmp_path, BLOB, "not passphrase-encrypted", Passphrase(b"pw"))
    blob = seal(b"x", [ScryptRecipient(b"pw", work_factor=10)])
    expect_failure(tmp_path, blob, "encrypted with a passphrase")


def test_a_huge_scrypt_work_factor_is_refused_before_any_work(tmp_path):
    blob = seal(b"x", [ScryptRecipient(b"pw", work_factor=10)])
    line = blob.split(b"\n")[1]
    assert line.endswith(b" 10")
    hostile = blob.replace(line, line[:-3] + b" 40", 1)
    expect_failure(
        tmp_path, hostile, r"work factor 2\^40 exceeds the limit 2\^22", Passphrase(b"pw")
    )
    # the limit is a parameter
    src = tmp_path / "ok.age"
    src.write_bytes(blob)
    with pytest.raises(CryptError, match="exceeds the limit"):
        decrypt_file(src, tmp_path / "o", [ScryptIdentity(b"pw", max_work_factor=9)])


@pytest.mark.parametrize("log_n", [b"018", b"0", b"-1", b"1e1", b"x"])
def test_malformed_scrypt_work_factor(tmp_path, log_n):
    blob = seal(b"x", [ScryptRecipient(b"pw", work_factor=10)])
    line = blob.split(b"\n")[1]
    hostile = blob.replace(line, line[:-3] + b" " + log_n, 1)
    expect_failure(tmp_path, hostile, "invalid work factor", Passphrase(b"pw"))


@pytest.mark.parametrize("ident", ["x25519", "passphrase"])
def test_an_scrypt_stanza_mixed_with_others_is_rejected(tmp_path, ident):
    file_key = os.urandom(16)
    stanzas = [
        *X25519Recipient.parse(KEYS.recipient).wrap(file_key),
        *ScryptRecipient(b"pw", work_factor=10).wrap(file_key),
    ]
    blob = craft([(b"data", 1)], stanzas=stanzas, file_key=file_key)
    ids = KEYS.identities if ident == "x25519" else Passphrase(b"pw")
    expect_failure(tmp_path, blob, "scrypt stanza must be the only stanza", ids)


def test_non_canonical_base64_in_a_stanza_argument(tmp_path):
    stanza = BLOB.split(b"\n")[1]
    share = stanza.split(b" ")[2].decode()
    bad = stanza.replace(share.encode(), noncanonical(share).encode())
    expect_failure(tmp_path, BLOB.replace(stanza, bad, 1), "non-canonical X25519 share")


def test_non_canonical_base64_in_a_stanza_body_and_mac(tmp_path):
    lines = BLOB[:HDR].split(b"\n")
    body = lines[2].decode()
    bad = BLOB.replace(lines[2], noncanonical(body).encode(), 1)
    expect_failure(tmp_path, bad, "non-canonical stanza body")
    mac = lines[3][4:].decode()
    bad = BLOB.replace(lines[3], b"--- " + noncanonical(mac).encode(), 1)
    expect_failure(tmp_path, bad, "non-canonical header MAC")


def test_padded_base64_is_rejected(tmp_path):
    lines = BLOB[:HDR].split(b"\n")
    expect_failure(tmp_path, BLOB.replace(lines[2], lines[2] + b"=", 1), "invalid stanza body")


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b"age-encryption.org/v2\n", "unsupported age format version 'v2'"),
        (b"age-encryption.org/v1\n--- " + b"A" * 43 + b"\n", "no recipient stanzas"),
        (b"age-encryption.org/v1\n->\n\n", "unexpected line"),
        (b"age-encryption.org/v1\n-> \n\n", "invalid stanza arguments"),
        (b"age-encryption.org/v1\n-> X25519  x\n\n", "invalid stanza arguments"),
        (b"age-encryption.org/v1\n-> X\xff\n\n", "invalid stanza arguments"),
        (b"age-encryption.org/v1\n-> X\n" + b"A" * 65 + b"\n", "longer than 64"),
        (b"age-encryption.org/v1\n-> X\n" + b"A" * 64 + b"\n", "truncated header"),
        (b"age-encryption.org/v1\n-> X\n\n--- " + b"A" * 42 + b"\n", "invalid MAC line"),
        (b"age-encryption.org/v1\n-> X\n\n---" + b"A" * 44 + b"\n", "invalid MAC line"),
        (b"age-encryption.org/v1\n-> X\n\nxx\n", "unexpected line"),
        (b"\xef\xbb\xbfage-encryption.org/v1\n", "not an age file"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\nnot base64!\n", "malformed armor"),
    ],
)
def test_malformed_headers(tmp_path, header, match):
    expect_failure(tmp_path, header + bytes(100), match)


def test_x25519_stanza_shape_is_checked(tmp_path):
    file_key = os.urandom(16)
    (real,) = X25519Recipient.parse(KEYS.recipient).wrap(file_key)
    from mlsec.crypt import Stanza

    cases = [
        (Stanza("X25519", (*real.args, "extra"), real.body), "wrong number of arguments"),
        (Stanza("X25519", (b64encode(bytes(31)),), real.body), "share is not 32 bytes"),
        (Stanza("X25519", real.args, real.body + b"\x00"), "body is not 32 bytes"),
        (Stanza("X25519", (b64encode(bytes(32)),), real.body), "low-order share"),
    ]
    for stanza, match in cases:
        blob = craft([(b"x", 1)], stanzas=[stanza], file_key=file_key)
        expect_failure(tmp_path, blob, match)
        for p in tmp_path.iterdir():
            p.unlink()


def test_unknown_stanzas_are_ignored(tmp_path):
    file_key = os.urandom(16)
    from mlsec.crypt import Stanza

    stanzas = [
        Stanza("example.com/enigma", ("a", "b"), os.urandom(70)),
        *X25519Recipient.parse(KEYS.recipient).wrap(file_key),
    ]
    (tmp_path / "f.age").write_bytes(craft([(b"ok", 1)], stanzas=stanzas, file_key=file_key))
    decrypt_file(tmp_path / "f.age", tmp_path / "f", KEYS.identities)
    assert (tmp_path / "f").read_bytes() == b"ok"
