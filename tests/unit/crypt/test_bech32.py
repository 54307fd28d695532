"""Bech32 as age uses it: the spec's example key pair, checksums, case rules."""

from __future__ import annotations

import pytest

from mlsec.crypt import X25519Identity, X25519Recipient
from mlsec.crypt.bech32 import Bech32Error, decode, encode
from mlsec.errors import CryptError

# The example X25519 identity and recipient printed in the C2SP age spec.
SPEC_IDENTITY = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
SPEC_RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"


def test_spec_example_identity_gives_spec_recipient():
    ident = X25519Identity.parse(SPEC_IDENTITY)
    assert ident.secret == bytes([0x42]) * 32
    assert str(ident.recipient()) == SPEC_RECIPIENT
    assert ident.to_string() == SPEC_IDENTITY


def test_round_trip_long_data_has_no_length_limit():
    data = bytes(range(256)) * 4
    hrp, back = decode(encode("age1pq", data))
    assert (hrp, back) == ("age1pq", data)


def test_uppercase_is_accepted_mixed_case_is_not():
    assert decode(SPEC_RECIPIENT.upper())[1] == decode(SPEC_RECIPIENT)[1]
    with pytest.raises(Bech32Error, match="mixed case"):
        decode("age1Zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj")


@pytest.mark.parametrize("pos", [5, 20, -1])
def test_a_changed_character_breaks_the_checksum(pos):
    chars = list(SPEC_RECIPIENT)
    chars[pos] = "q" if chars[pos] != "q" else "p"
    with pytest.raises(Bech32Error, match="checksum"):
        decode("".join(chars))


def test_bad_characters_and_separator():
    with pytest.raises(Bech32Error):
        decode("age1bbbbbbbbbbbbbbbbbbbb")  # 'b' is not in the charset
    with pytest.raises(Bech32Error):
        decode("noseparator")


def test_recipient_and_identity_parse_errors_are_crypt_errors_without_the_secret():
    with pytest.raises(CryptError, match="invalid recipient"):
        X25519Recipient.parse(SPEC_RECIPIENT[:-1] + "q")
    with pytest.raises(CryptError, match="not an age1"):
        X25519Recipient.parse(encode("xyz", bytes(32)))
    bad = SPEC_IDENTITY[:-1] + "Q"
    with pytest.raises(CryptError) as info:
        X25519Identity.parse(bad)
    assert bad not in str(info.value)
    assert "GFPYYSJZ" not in repr(X25519Identity.parse(SPEC_IDENTITY))
