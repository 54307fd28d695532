"""age recipients and identities: X25519 (``age1…`` / ``AGE-SECRET-KEY-1…``) and scrypt
passphrases. A recipient wraps the file key into stanzas; an identity unwraps it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from mlsec.crypt import bech32
from mlsec.crypt.header import Stanza, b64decode, b64encode, hkdf
from mlsec.errors import CryptError
from mlsec.ioutil import read_capped
from mlsec.secrets import Passphrase

__all__ = [
    "DEFAULT_SCRYPT_WORK_FACTOR",
    "MAX_SCRYPT_WORK_FACTOR",
    "Identity",
    "Recipient",
    "ScryptIdentity",
    "ScryptRecipient",
    "X25519Identity",
    "X25519Recipient",
    "generate_identity",
    "load_identities",
    "load_recipients",
    "parse_identities",
    "parse_recipient",
    "parse_recipients",
]

_X25519_INFO = b"age-encryption.org/v1/X25519"
_SCRYPT_SALT_LABEL = b"age-encryption.org/v1/scrypt"
_ZERO_NONCE = bytes(12)
DEFAULT_SCRYPT_WORK_FACTOR = 18  # log2(N), what age uses
MAX_SCRYPT_WORK_FACTOR = 22  # refuse more: 2^22 * 8 * 128 B = 4 GiB of memory, a DoS
_LOG_N = re.compile(r"[1-9][0-9]{0,2}")
MAX_KEY_FILE_BYTES = 16 << 20


class Recipient(Protocol):
    """Wraps a file key into one or more stanzas."""

    def wrap(self, file_key: bytes) -> list[Stanza]: ...


class Identity(Protocol):
    """Unwraps the file key from the stanzas addressed to it; None if none is."""

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None: ...


def _seal(key: bytes, file_key: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(_ZERO_NONCE, file_key, None)


def _open(key: bytes, body: bytes) -> bytes | None:
    try:
        return ChaCha20Poly1305(key).decrypt(_ZERO_NONCE, body, None)
    except InvalidTag:
        return None


@dataclass(frozen=True)
class X25519Recipient:
    """An ``age1…`` public key."""

    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> X25519Recipient:
        """Parse an ``age1…`` string (raises CryptError)."""
        try:
            hrp, data = bech32.decode(text)
        except bech32.Bech32Error as exc:
            raise CryptError(f"invalid recipient {text[:20]!r}: {exc}") from None
        if hrp != "age":
            raise CryptError(f"invalid recipient {text[:20]!r}: not an age1… X25519 recipient")
        if len(data) != 32:
            raise CryptError(f"invalid recipient {text[:20]!r}: wrong key length")
        return cls(data)

    def __str__(self) -> str:
        return bech32.encode("age", self.public_key)

    def wrap(self, file_key: bytes) -> list[Stanza]:
        eph = X25519PrivateKey.generate()
        share = eph.public_key().public_bytes_raw()
        try:
            shared = eph.exchange(X25519PublicKey.from_public_bytes(self.public_key))
        except ValueError:
            shared = bytes(32)
        if shared == bytes(32):
            raise CryptError(f"invalid recipient {self}: low-order point")
        key = hkdf(shared, share + self.public_key, _X25519_INFO)
        return [Stanza("X25519", (b64encode(share),), _seal(key, file_key))]


@dataclass(frozen=True)
class X25519Identity:
    """An ``AGE-SECRET-KEY-1…`` private key. Its repr never shows the secret."""

    secret: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> X25519Identity:
        return cls(X25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def parse(cls, text: str) -> X25519Identity:
        """Parse an ``AGE-SECRET-KEY-1…`` string (raises CryptError, never echoing the key)."""
        try:
            hrp, data = bech32.decode(text)
        except bech32.Bech32Error as exc:
            raise CryptError(f"invalid identity: {exc}") from None
        if hrp.upper() != "AGE-SECRET-KEY-" or len(data) != 32:
            raise CryptError("invalid identity: not an AGE-SECRET-KEY-1… X25519 identity")
        return cls(data)

    def to_string(self) -> str:
        return bech32.encode("AGE-SECRET-KEY-", self.secret).upper()

    def recipient(self) -> X25519Recipient:
        key = X25519PrivateKey.from_private_bytes(self.secret)
        return X25519Recipient(key.public_key().public_bytes_raw())

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        key = X25519PrivateKey.from_private_bytes(self.secret)
        ours = key.public_key().public_bytes_raw()
        for s in stanzas:
            if s.type != "X25519":
                continue
            if len(s.args) != 1:
                raise CryptError("malformed X25519 stanza: wrong number of arguments")
            share = b64decode(s.args[0], "X25519 share")
            if len(share) != 32:
                raise CryptError("malformed X25519 stanza: share is not 32 bytes")
            if len(s.body) != 32:
                raise CryptError("malformed X25519 stanza: body is not 32 bytes")
            try:  # cryptography refuses an all-zero shared secret; the spec says abort
                shared = key.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:
                shared = bytes(32)
            if shared == bytes(32):
                raise CryptError("malformed X25519 stanza: low-order share")
            file_key = _open(hkdf(shared, share + ours, _X25519_INFO), s.body)
            if file_key is not None:
                return file_key
        return None


def _as_bytes(passphrase: Passphrase | str | bytes) -> bytes:
    if isinstance(passphrase, Passphrase):
        return passphrase.value
    return passphrase.encode() if isinstance(passphrase, str) else passphrase


def _scrypt(passphrase: bytes, salt: bytes, log_n: int) -> bytes:
    kdf = Scrypt(salt=_SCRYPT_SALT_LABEL + salt, length=32, n=1 << log_n, r=8, p=1)
    return kdf.derive(passphrase)


@dataclass(frozen=True)
class ScryptRecipient:
    """Encrypt to a passphrase. It must be the only recipient of a file."""

    passphrase: Passphrase
    work_factor: int = DEFAULT_SCRYPT_WORK_FACTOR

    def __init__(
        self, passphrase: Passphrase | str | bytes, work_factor: int = DEFAULT_SCRYPT_WORK_FACTOR
    ) -> None:
        if not 1 <= work_factor <= 30:
            raise CryptError(f"scrypt work factor {work_factor} out of range 1..30")
        pw = _as_bytes(passphrase)
        if not pw:
            raise CryptError("empty passphrase")
        object.__setattr__(self, "passphrase", Passphrase(pw))
        object.__setattr__(self, "work_factor", work_factor)

    def wrap(self, file_key: bytes) -> list[Stanza]:
        salt = os.urandom(16)
        key = _scrypt(self.passphrase.value, salt, self.work_factor)
        return [Stanza("scrypt", (b64encode(salt), str(self.work_factor)), _seal(key, file_key))]


@dataclass(frozen=True)
class ScryptIdentity:
    """Decrypt with a passphrase; refuses work factors above ``max_work_factor``."""

    passphrase: Passphrase
    max_work_factor: int = MAX_SCRYPT_WORK_FACTOR

    def __init__(
        self, passphrase: Passphrase | str | bytes, max_work_factor: int = MAX_SCRYPT_WORK_FACTOR
    ) -> None:
        object.__setattr__(self, "passphrase", Passphrase(_as_bytes(passphrase)))
        object.__setattr__(self, "max_work_factor", max_work_factor)

    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        for s in stanzas:
            if s.type != "scrypt":
                continue
            if len(s.args) != 2:
                raise CryptError("malformed scrypt stanza: wrong number of arguments")
            salt = b64decode(s.args[0], "scrypt salt")
            if len(salt) != 16:
                raise CryptError("malformed scrypt stanza: salt is not 16 bytes")
            if not _LOG_N.fullmatch(s.args[1]):
                raise CryptError("malformed scrypt stanza: invalid work factor")
            log_n = int(s.args[1])
            if log_n > self.max_work_factor:
                raise CryptError(
                    f"scrypt work factor 2^{log_n} exceeds the limit 2^{self.max_work_factor}"
                )
            if len(s.body) != 32:
                raise CryptError("malformed scrypt stanza: body is not 32 bytes")
            file_key = _open(_scrypt(self.passphrase.value, salt, log_n), s.body)
            if file_key is None:
                raise CryptError("wrong passphrase")
            return file_key
        return None


def generate_identity() -> tuple[str, str]:
    """A new X25519 key pair as ``(identity, recipient)`` strings.

    >>> identity, recipient = generate_identity()
    >>> identity.startswith("AGE-SECRET-KEY-1"), recipient.startswith("age1")
    (True, True)
    """
    ident = X25519Identity.generate()
    return ident.to_string(), str(ident.recipient())


def _lines(text: str) -> Iterable[tuple[int, str]]:
    # As age does: split on LF, drop one trailing CR, skip empty lines and "#" comments; anything
    # else (even whitespace) must be a key.
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        if line and not line.startswith("#"):
            yield n, line


def parse_identities(text: str, source: str = "identities") -> list[X25519Identity]:
    """Parse identity-file text as ``age -i`` does: one ``AGE-SECRET-KEY-1…`` per line, ``#``
    comments and blank lines ignored, at least one identity."""
    out: list[X25519Identity] = []
    for n, line in _lines(text):
        try:
            out.append(X25519Identity.parse(line))
        except CryptError as exc:
            raise CryptError(f"{source}: line {n}: {exc.message}") from None
    if not out:
        raise CryptError(f"{source}: no identities found")
    return out


def parse_recipient(text: str) -> X25519Recipient:
    """Parse one ``age1…`` recipient string."""
    return X25519Recipient.parse(text.strip())


def parse_recipients(text: str, source: str = "recipients") -> list[X25519Recipient]:
    """Parse a recipients file (``age -R``): one ``age1…`` per line, comments and blanks
    ignored."""
    out: list[X25519Recipient] = []
    for n, line in _lines(text):
        try:
            out.append(X25519Recipient.parse(line))
        except CryptError as exc:
            raise CryptError(f"{source}: line {n}: {exc.message}") from None
    if not out:
        raise CryptError(f"{source}: no recipients found")
    return out


def _read_text(path: str | os.PathLike[str]) -> str:
    # Capped by bytes read, not by stat: /dev/zero or a FIFO must not fill memory.
    data = read_capped(path, MAX_KEY_FILE_BYTES, what="key file", error=CryptError)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CryptError(f"{path}: not a text key file") from None


def load_identities(path: str | os.PathLike[str]) -> list[X25519Identity]:
    """Read an identity file (the output of ``age-keygen`` / ``mlsec age-keygen``)."""
    return parse_identities(_read_text(path), str(path))


def load_recipients(path: str | os.PathLike[str]) -> list[X25519Recipient]:
    """Read a recipients file: one ``age1…`` per line."""
    return parse_recipients(_read_text(path), str(path))
