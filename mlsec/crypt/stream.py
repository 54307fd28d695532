"""Streaming age v1 encryption and decryption: constant memory, one 64 KiB chunk at a time."""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from mlsec.crypt.armor import BEGIN, ArmorReader, ArmorWriter
from mlsec.crypt.header import AgeHeader, hkdf
from mlsec.crypt.keys import (
    MAX_SCRYPT_WORK_FACTOR,
    Identity,
    Recipient,
    ScryptIdentity,
    ScryptRecipient,
    X25519Recipient,
)
from mlsec.errors import CryptError
from mlsec.signing.keys import Passphrase

if TYPE_CHECKING:
    from mlsec.progress import Progress

__all__ = ["CHUNK_SIZE", "decrypt", "encrypt"]

CHUNK_SIZE = 64 * 1024
_TAG = 16
_ENC_CHUNK = CHUNK_SIZE + _TAG
_NONCE = struct.Struct(">3xQB")  # 11-byte big-endian counter, then the last-chunk flag


def _recipients(recipients: Sequence[Recipient | str] | Passphrase) -> list[Recipient]:
    if isinstance(recipients, Passphrase):
        return [ScryptRecipient(recipients)]
    if isinstance(recipients, str | bytes):
        raise CryptError("recipients must be a sequence (or a Passphrase)")
    out: list[Recipient] = [
        X25519Recipient.parse(r.strip()) if isinstance(r, str) else r for r in recipients
    ]
    if not out:
        raise CryptError("no recipients")
    if len(out) > 1 and any(isinstance(r, ScryptRecipient) for r in out):
        raise CryptError("a passphrase cannot be combined with other recipients")
    return out


def _fill(readinto: object, mv: memoryview, have: int) -> int:
    """Read into ``mv[have:]`` until it is full or the stream ends; return the new fill."""
    size = len(mv)
    read = readinto  # a bound method
    while have < size:
        n = read(mv[have:])  # type: ignore[operator]
        if not n:
            break
        have += n
    return have


def encrypt(
    src: BinaryIO,
    dst: BinaryIO,
    recipients: Sequence[Recipient | str] | Passphrase,
    *,
    armor: bool = False,
    progress: Progress | None = None,
) -> int:
    """Encrypt everything ``src`` yields into ``dst`` as an age v1 file; return the plaintext
    size. ``recipients`` are :class:`Recipient` objects or ``age1…`` strings, or a
    :class:`Passphrase` (scrypt, which must then be the only recipient). ``progress.advance`` is
    called with plaintext byte counts (the caller starts and finishes it).

    >>> import io
    >>> from mlsec.crypt import generate_identity
    >>> identity, recipient = generate_identity()
    >>> out = io.BytesIO()
    >>> encrypt(io.BytesIO(b"weights"), out, [recipient])
    7
    """
    file_key = os.urandom(16)
    stanzas = [s for r in _recipients(recipients) for s in r.wrap(file_key)]
    header = AgeHeader.build(stanzas, file_key)
    nonce = os.urandom(16)
    out: BinaryIO | ArmorWriter = ArmorWriter(dst) if armor else dst
    write = out.write
    write(header.encode())
    write(nonce)
    seal = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload")).encrypt_into
    pack = _NONCE.pack
    advance = progress.advance if progress is not None else None
    buf = bytearray(CHUNK_SIZE + 1)
    mv = memoryview(buf)
    chunk = mv[:CHUNK_SIZE]
    enc = bytearray(_ENC_CHUNK)
    enc_mv = memoryview(enc)
    readinto = getattr(src, "readinto", None) or _ReadInto(src).readinto
    counter = total = 0
    have = _fill(readinto, mv, 0)
    while have > CHUNK_SIZE:  # a full chunk with more after it: not the last
        seal(pack(counter, 0), chunk, None, enc)
        write(enc)
        buf[0] = buf[CHUNK_SIZE]
        counter += 1
        total += CHUNK_SIZE
        if advance is not None:
            advance(CHUNK_SIZE)
        have = _fill(readinto, mv, 1)
    seal(pack(counter, 1), mv[:have], None, enc_mv[: have + _TAG])
    write(enc_mv[: have + _TAG])
    total += have
    if advance is not None and have:
        advance(have)
    if isinstance(out, ArmorWriter):
        out.close()
    return total


class _ReadInto:
    """``readinto`` for streams that only have ``read``."""

    def __init__(self, src: BinaryIO) -> None:
        self._read = src.read

    def readinto(self, b: memoryview) -> int:
        data = self._read(len(b))
        b[: len(data)] = data
        return len(data)


class _Prefixed(io.RawIOBase):
    """``prefix`` then the rest of ``src``: lets us sniff armor without needing ``peek``."""

    def __init__(self, prefix: bytes, src: BinaryIO) -> None:
        super().__init__()
        self._prefix = prefix
        self._readinto = getattr(src, "readinto", None) or _ReadInto(src).readinto

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return int(self._readinto(memoryview(b).cast("B")))


def _identities(identities: Sequence[Identity] | Passphrase, max_work: int) -> list[Identity]:
    if isinstance(identities, Passphrase):
        return [ScryptIdentity(identities, max_work_factor=max_work)]
    out = list(identities)
    if not out:
        raise CryptError("no identities")
    return out


def _file_key(header: AgeHeader, identities: list[Identity]) -> bytes:
    stanzas = header.stanzas
    has_scrypt = any(s.type == "scrypt" for s in stanzas)
    if has_scrypt and len(stanzas) != 1:
        raise CryptError("malformed header: an scrypt stanza must be the only stanza")
    only_passphrase = all(isinstance(i, ScryptIdentity) for i in identities)
    if has_scrypt and not any(isinstance(i, ScryptIdentity) for i in identities):
        raise CryptError("the file is encrypted with a passphrase: decrypt with a passphrase")
    if not has_scrypt and only_passphrase:
        raise CryptError(
            "the file is not passphrase-encrypted: it is encrypted to public keys "
            "(decrypt with an identity file)"
        )
    for ident in identities:
        file_key = ident.unwrap(stanzas)
        if file_key is not None:
            if len(file_key) != 16:
                raise CryptError("malformed header: the file key is not 16 bytes")
            header.verify_mac(file_key)
            return file_key
    raise CryptError("no identity matches any recipient")


def decrypt(
    src: BinaryIO,
    dst: BinaryIO,
    identities: Sequence[Identity] | Passphrase,
    *,
    progress: Progress | None = None,
    max_work_factor: int = MAX_SCRYPT_WORK_FACTOR,
) -> int:
    """Decrypt an age v1 file (binary or armored, detected) from ``src`` into ``dst``; return the
    plaintext size. ``identities`` are :class:`Identity` objects (see :func:`load_identities`),
    or a :class:`Passphrase` (refusing scrypt work factors above ``2**max_work_factor``).

    Plaintext reaches ``dst`` one authenticated chunk at a time, so if this raises, ``dst`` may
    hold a prefix of the plaintext: use :func:`decrypt_file` (or discard ``dst``) unless that
    is acceptable. Raises :class:`CryptError` for a wrong key or passphrase and for a malformed,
    truncated or tampered file.
    """
    ids = _identities(identities, max_work_factor)
    start = src.read(len(BEGIN) + 64)
    raw: io.RawIOBase = _Prefixed(start, src)
    if start.lstrip().startswith(BEGIN[:11]):
        raw = ArmorReader(io.BufferedReader(raw))
    stream = io.BufferedReader(raw, buffer_size=_ENC_CHUNK + 1)
    header = AgeHeader.parse(stream)
    file_key = _file_key(header, ids)
    nonce = stream.read(16)
    if len(nonce) != 16:
        raise CryptError("truncated file: the payload nonce is missing")
    aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    open_ = aead.decrypt_into
    pack = _NONCE.pack
    write = dst.write
    advance = progress.advance if progress is not None else None
    buf = bytearray(_ENC_CHUNK + 1)
    mv = memoryview(buf)
    chunk = mv[:_ENC_CHUNK]
    plain = bytearray(CHUNK_SIZE)
    plain_mv = memoryview(plain)
    readinto = stream.readinto
    counter = total = 0
    have = _fill(readinto, mv, 0)
    while have > _ENC_CHUNK:
        try:
            open_(pack(counter, 0), chunk, None, plain)
        except InvalidTag:
            if _opens(aead, pack(counter, 1), chunk):
                raise CryptError("trailing data after the end of the encrypted payload") from None
            raise CryptError(
                f"payload chunk {counter} does not authenticate: the file is corrupted or was "
                "modified"
            ) from None
        write(plain)
        buf[0] = buf[_ENC_CHUNK]
        counter += 1
        total += CHUNK_SIZE
        if advance is not None:
            advance(CHUNK_SIZE)
        have = _fill(readinto, mv, 1)
    if have < _TAG or (have == _TAG and counter > 0):
        if have == _TAG and _opens(aead, pack(counter, 1), mv[:have]):
            raise CryptError("malformed payload: empty final chunk")
        raise CryptError("truncated file: the payload ends inside a chunk")
    last = mv[:have]
    try:
        open_(pack(counter, 1), last, None, plain_mv[: have - _TAG])
    except InvalidTag:
        if _opens(aead, pack(counter, 0), last):
            raise CryptError("truncated file: it ends without a final chunk") from None
        raise CryptError(
            f"final payload chunk {counter} does not authenticate: the file is truncated, "
            "corrupted or was modified"
        ) from None
    write(plain_mv[: have - _TAG])
    total += have - _TAG
    if advance is not None and have > _TAG:
        advance(have - _TAG)
    return total


def _opens(aead: ChaCha20Poly1305, nonce: bytes, data: memoryview) -> bool:
    try:
        aead.decrypt(nonce, data, None)
    except InvalidTag:
        return False
    return True
