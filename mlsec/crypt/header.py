"""The age v1 header: version line, recipient stanzas, MAC. Parsed strictly (C2SP age spec)."""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import BinaryIO

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mlsec.errors import CryptError

__all__ = ["VERSION_LINE", "AgeHeader", "Stanza", "b64decode", "b64encode", "hkdf"]

VERSION_LINE = b"age-encryption.org/v1\n"
_VERSION_PREFIX = b"age-encryption.org/"
# Bounds on hostile input: a real header is a few hundred bytes per recipient.
MAX_HEADER_BYTES = 1 << 20
MAX_STANZAS = 4096
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def b64encode(data: bytes) -> str:
    """Unpadded standard base64, as the age header uses it."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").decode("ascii")


def b64decode(text: str | bytes, what: str = "base64") -> bytes:
    """Decode unpadded canonical base64; raise CryptError on padding, a bad character or
    non-canonical trailing bits (the spec requires rejecting them)."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    if not _B64_ALPHABET.issuperset(raw) or len(raw) % 4 == 1:
        raise CryptError(f"malformed header: invalid {what}")
    padded = raw + b"=" * (-len(raw) % 4)
    try:
        data = binascii.a2b_base64(padded, strict_mode=True)
    except binascii.Error:
        raise CryptError(f"malformed header: invalid {what}") from None
    if b64encode(data).encode() != raw:
        raise CryptError(f"malformed header: non-canonical {what}")
    return data


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA-256 with a 32-byte output, as every age key derivation uses."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: a type, its arguments, and the decoded body."""

    type: str
    args: tuple[str, ...]
    body: bytes

    def encode(self) -> bytes:
        line = " ".join(("->", self.type, *self.args)).encode("ascii") + b"\n"
        text = b64encode(self.body)
        # The body ends with a line shorter than 64 columns, possibly empty.
        lines = [text[i : i + 64] for i in range(0, len(text), 64)]
        if not lines or len(lines[-1]) == 64:
            lines.append("")
        return line + "".join(f"{ln}\n" for ln in lines).encode("ascii")


def _valid_arg(arg: bytes) -> bool:
    return bool(arg) and all(0x21 <= c <= 0x7E for c in arg)


@dataclass(frozen=True)
class AgeHeader:
    """A parsed age v1 header. ``mac_input`` is the header up to and including ``---``."""

    stanzas: tuple[Stanza, ...]
    mac: bytes
    mac_input: bytes

    @staticmethod
    def mac_for(file_key: bytes, mac_input: bytes) -> bytes:
        return hmac.new(hkdf(file_key, b"", b"header"), mac_input, sha256).digest()

    @classmethod
    def build(cls, stanzas: Sequence[Stanza], file_key: bytes) -> AgeHeader:
        """A header for ``stanzas``, MACed with ``file_key``."""
        mac_input = VERSION_LINE + b"".join(s.encode() for s in stanzas) + b"---"
        return cls(tuple(stanzas), cls.mac_for(file_key, mac_input), mac_input)

    def encode(self) -> bytes:
        return self.mac_input + b" " + b64encode(self.mac).encode("ascii") + b"\n"

    def verify_mac(self, file_key: bytes) -> None:
        """Raise CryptError unless the header MAC matches ``file_key``."""
        if not hmac.compare_digest(self.mac_for(file_key, self.mac_input), self.mac):
            raise CryptError("header MAC mismatch: the header was modified")

    @classmethod
    def parse(cls, src: BinaryIO) -> AgeHeader:
        """Read exactly one header from ``src`` (which must support ``readline``), leaving the
        stream at the first payload byte. Raises CryptError on anything the spec does not allow.
        """
        consumed = 0

        def line() -> bytes:
            nonlocal consumed
            raw = src.readline(MAX_HEADER_BYTES - consumed + 1)
            consumed += len(raw)
            if consumed > MAX_HEADER_BYTES:
                raise CryptError("malformed header: larger than 1 MiB")
            if not raw.endswith(b"\n"):
                raise CryptError("truncated header")
            return raw

        first = src.readline(len(VERSION_LINE) + 64)
        consumed = len(first)
        if first != VERSION_LINE:
            if first.startswith(_VERSION_PREFIX):
                version = first[len(_VERSION_PREFIX) :].rstrip(b"\n")[:32]
                raise CryptError(
                    f"unsupported age format version {version.decode('ascii', 'replace')!r}"
                )
            if not first:
                raise CryptError("empty file, not an age file")
            raise CryptError("not an age file (no age-encryption.org/v1 header)")
        parts = [first]
        stanzas: list[Stanza] = []
        while True:
            raw = line()
            parts.append(raw)
            if raw.startswith(b"-> "):
                args = raw[3:-1].split(b" ")
                if not all(_valid_arg(a) for a in args):
                    raise CryptError("malformed header: invalid stanza arguments")
                body_lines: list[bytes] = []
                while True:
                    body = line()
                    parts.append(body)
                    text = body[:-1]
                    if len(text) > 64:
                        raise CryptError("malformed header: stanza body line longer than 64")
                    body_lines.append(text)
                    if len(text) < 64:
                        break
                data = b64decode(b"".join(body_lines), "stanza body")
                names = [a.decode("ascii") for a in args]
                stanzas.append(Stanza(names[0], tuple(names[1:]), data))
                if len(stanzas) > MAX_STANZAS:
                    raise CryptError("malformed header: too many stanzas")
            elif raw.startswith(b"---"):
                if len(raw) != 48 or raw[3:4] != b" ":
                    raise CryptError("malformed header: invalid MAC line")
                mac = b64decode(raw[4:-1], "header MAC")
                if not stanzas:
                    raise CryptError("malformed header: no recipient stanzas")
                parts[-1] = b"---"
                return cls(tuple(stanzas), mac, b"".join(parts))
            else:
                raise CryptError("malformed header: unexpected line")
