"""Hypothesis fuzzing of the header parser, the armor reader and decryption: hostile input
yields a parsed header / the right plaintext, or a CryptError — never any other exception."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlsec.crypt import AgeHeader, Stanza, decrypt
from mlsec.crypt.header import b64decode, b64encode
from mlsec.errors import CryptError
from tests.unit.crypt.helpers import Keys, seal

KEYS = Keys()
PLAIN = b"weights" * 100
BLOB = seal(PLAIN, [KEYS.recipient])
ARMORED = seal(PLAIN, [KEYS.recipient], armor=True)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

header_lines = st.lists(
    st.sampled_from(
        [
            b"-> X25519 " + b64encode(bytes(32)).encode() + b"\n",
            b"-> scrypt AAAAAAAAAAAAAAAAAAAAAA 18\n",
            b"-> a b c\n",
            b"A" * 64 + b"\n",
            b"AAAA\n",
            b"\n",
            b"--- " + b"A" * 43 + b"\n",
            b"---\n",
            b"-> \n",
        ]
    )
    | st.binary(max_size=80),
    max_size=8,
)


@FUZZ
@given(header_lines)
def test_header_parser_only_raises_crypt_error(lines):
    data = b"age-encryption.org/v1\n" + b"".join(lines)
    try:
        header = AgeHeader.parse(io.BytesIO(data))
    except CryptError:
        return
    assert header.stanzas
    assert len(header.mac) == 32
    assert data.startswith(header.mac_input)


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data):
    try:
        decrypt(io.BytesIO(data), io.BytesIO(), KEYS.identities)
    except CryptError:
        return
    raise AssertionError("random bytes decrypted")


@FUZZ
@given(st.data())
def test_mutated_files_fail_cleanly_or_decrypt_correctly(data):
    blob = bytearray(data.draw(st.sampled_from([BLOB, ARMORED])))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    out = io.BytesIO()
    try:
        decrypt(io.BytesIO(bytes(blob)), out, KEYS.identities)
    except CryptError:
        return
    # armor tolerates whitespace changes only around the block; otherwise the bytes are intact
    assert out.getvalue() == PLAIN


@FUZZ
@given(st.binary(max_size=200), st.lists(st.text(alphabet="abcXYZ019+/.-", min_size=1), max_size=3))
def test_stanza_encoding_round_trips(body, args):
    stanza = Stanza("t", tuple(args), body)
    header = AgeHeader.build([stanza], bytes(16))
    parsed = AgeHeader.parse(io.BytesIO(header.encode() + b"payload"))
    assert parsed.stanzas == (stanza,)
    parsed.verify_mac(bytes(16))


@FUZZ
@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=12
    )
)
def test_base64_decoder_accepts_only_canonical_unpadded(text):
    try:
        data = b64decode(text)
    except CryptError:
        return
    assert b64encode(data) == text
