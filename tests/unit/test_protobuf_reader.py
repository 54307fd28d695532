"""The one protobuf wire reader: the sniffer's prefix view agrees with the scanner's full walk,
and both decode like the protobuf library."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsec._protobuf import fields, prefix_fields, varint


def _fields_or_none(data: bytes, limit: int = 8) -> list[tuple[int, int]] | None:
    out: list[tuple[int, int]] = []
    try:
        for f, w, _a, _b in fields(data):
            out.append((f, w))
            if len(out) == limit:
                break
    except ValueError:
        return None
    return out or None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_sniffer_and_scanner_agree_on_whole_messages(data: bytes) -> None:
    full = _fields_or_none(data)
    if full is not None:
        # Whatever the scanner walks, the sniffer sees the same first fields.
        assert prefix_fields(data) == full


def test_varint_matches_protobuf_library() -> None:
    from google.protobuf.internal import decoder, encoder

    for n in (0, 1, 127, 128, 300, 1 << 31, (1 << 64) - 1):
        raw = encoder._VarintBytes(n)
        assert varint(raw, 0, len(raw)) == decoder._DecodeVarint(raw, 0)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01",  # field number 0
        b"\x0b\x0c",  # a group
        b"\x08" + b"\xff" * 10 + b"\x01",  # 11-byte varint
        b"\x0a\xff\xff\xff\xff\x0f",  # length past 2 GiB
    ],
)
def test_both_refuse_the_same_bytes(data: bytes) -> None:
    assert _fields_or_none(data) is None
    assert prefix_fields(data) is None


def test_prefix_cut_inside_a_field_still_counts() -> None:
    data = b"\x08\x01\x3a\x90\x4e" + b"x" * 100  # graph field of 10000 bytes, cut by the prefix
    assert prefix_fields(data) == [(1, 0), (7, 2)]
    with pytest.raises(ValueError):
        list(fields(data))
