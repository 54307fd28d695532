"""Streaming age v1 encryption and decryption: constant memory, one 64 KiB chunk at a time."""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

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
from mlsec.secrets import Passphrase

if TYPE_CHECKING:
    from mlsec.progress import Progress

__all__ = ["CHUNK_SIZE", "DecryptReader", "EncryptWriter", "decrypt", "encrypt"]

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


_IntoFn = Callable[[bytes, Any, None, Any], object]


def _seal_into(aead: ChaCha20Poly1305) -> _IntoFn:
    """``aead.encrypt_into`` (cryptography 47+: no allocation per chunk), or the same over
    ``encrypt`` on older versions."""
    into: _IntoFn | None = getattr(aead, "encrypt_into", None)
    if into is not None:
        return into
    encrypt = aead.encrypt

    def seal(nonce: bytes, data: Any, aad: None, out: Any) -> None:
        out[:] = encrypt(nonce, bytes(data), aad)

    return seal


def _open_into(aead: ChaCha20Poly1305) -> _IntoFn:
    """``aead.decrypt_into``, or the same over ``decrypt`` (see :func:`_seal_into`)."""
    into: _IntoFn | None = getattr(aead, "decrypt_into", None)
    if into is not None:
        return into
    decrypt = aead.decrypt

    def open_(nonce: bytes, data: Any, aad: None, out: Any) -> None:
        out[:] = decrypt(nonce, bytes(data), aad)

    return open_


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


def _start_file(
    write: Callable[[bytes], object], recipients: Sequence[Recipient | str] | Passphrase
) -> ChaCha20Poly1305:
    """Write the header and the nonce; return the payload AEAD."""
    file_key = os.urandom(16)
    stanzas = [s for r in _recipients(recipients) for s in r.wrap(file_key)]
    nonce = os.urandom(16)
    write(AgeHeader.build(stanzas, file_key).encode())
    write(nonce)
    return ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))


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
    out: BinaryIO | ArmorWriter = ArmorWriter(dst) if armor else dst
    write = out.write
    aead = _start_file(write, recipients)
    seal = _seal_into(aead)
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


def _open_payload(
    src: BinaryIO, identities: Sequence[Identity] | Passphrase, max_work_factor: int
) -> tuple[io.BufferedReader[io.RawIOBase], ChaCha20Poly1305]:
    """Parse the header (binary or armored), unwrap the file key, read the nonce: return the
    stream positioned at the first chunk and the payload AEAD."""
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
    return stream, ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))


def _chunk_error(aead: ChaCha20Poly1305, counter: int, data: memoryview, last: bool) -> CryptError:
    """Say why chunk ``counter`` did not authenticate: the flag tells truncation and trailing
    data apart from corruption."""
    if not last:
        if _opens(aead, _NONCE.pack(counter, 1), data):
            return CryptError("trailing data after the end of the encrypted payload")
        return CryptError(
            f"payload chunk {counter} does not authenticate: the file is corrupted or was modified"
        )
    if _opens(aead, _NONCE.pack(counter, 0), data):
        return CryptError("truncated file: it ends without a final chunk")
    return CryptError(
        f"final payload chunk {counter} does not authenticate: the file is truncated, "
        "corrupted or was modified"
    )


def _check_final_size(aead: ChaCha20Poly1305, counter: int, data: memoryview) -> None:
    have = len(data)
    if have < _TAG or (have == _TAG and counter > 0):
        if have == _TAG and _opens(aead, _NONCE.pack(counter, 1), data):
            raise CryptError("malformed payload: empty final chunk")
        raise CryptError("truncated file: the payload ends inside a chunk")


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
    stream, aead = _open_payload(src, identities, max_work_factor)
    open_ = _open_into(aead)
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
            raise _chunk_error(aead, counter, chunk, last=False) from None
        write(plain)
        buf[0] = buf[_ENC_CHUNK]
        counter += 1
        total += CHUNK_SIZE
        if advance is not None:
            advance(CHUNK_SIZE)
        have = _fill(readinto, mv, 1)
    last = mv[:have]
    _check_final_size(aead, counter, last)
    try:
        open_(pack(counter, 1), last, None, plain_mv[: have - _TAG])
    except InvalidTag:
        raise _chunk_error(aead, counter, last, last=True) from None
    write(plain_mv[: have - _TAG])
    total += have - _TAG
    if advance is not None and have > _TAG:
        advance(have - _TAG)
    return total


def _opens(aead: ChaCha20Poly1305, nonce: bytes, data: memoryview) -> bool:
    try:
        aead.decrypt(nonce, bytes(data), None)
    except InvalidTag:
        return False
    return True


class EncryptWriter:
    """A writable stream that encrypts what it is given into ``dst`` as an age file; ``close()``
    (or leaving the ``with`` block) seals the final chunk. ``dst`` is not closed.

    For producers that write (a tar archive, a network download) rather than being read from.

    >>> import io
    >>> from mlsec.crypt import generate_identity
    >>> identity, recipient = generate_identity()
    >>> out = io.BytesIO()
    >>> with EncryptWriter(out, [recipient]) as w:
    ...     _ = w.write(b"weights")
    """

    def __init__(
        self,
        dst: BinaryIO,
        recipients: Sequence[Recipient | str] | Passphrase,
        *,
        armor: bool = False,
    ) -> None:
        self._out: BinaryIO | ArmorWriter = ArmorWriter(dst) if armor else dst
        self._aead = _start_file(self._out.write, recipients)
        self._seal = _seal_into(self._aead)
        self._buf = bytearray()
        self._counter = 0
        self._enc = bytearray(_ENC_CHUNK)
        self.closed = False
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.closed:
            raise ValueError("write to a closed EncryptWriter")
        self._buf += data
        n = len(data)
        self.size += n
        if len(self._buf) > CHUNK_SIZE:  # seal full chunks only once more data follows them
            full = (len(self._buf) - 1) // CHUNK_SIZE
            with memoryview(self._buf) as mv:
                for i in range(full):
                    with mv[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE] as chunk:
                        nonce = _NONCE.pack(self._counter, 0)
                        self._seal(nonce, chunk, None, self._enc)
                    self._out.write(self._enc)
                    self._counter += 1
            del self._buf[: full * CHUNK_SIZE]
        return n

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._out.write(self._aead.encrypt(_NONCE.pack(self._counter, 1), bytes(self._buf), None))
        self._buf.clear()
        if isinstance(self._out, ArmorWriter):
            self._out.close()

    def __enter__(self) -> EncryptWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.closed = True  # never seal a final chunk after a failure: the file stays invalid


class DecryptReader(io.RawIOBase):
    """A readable stream of the plaintext of an age file. It yields only authenticated chunks
    and raises :class:`CryptError` on the first bad one; reading to EOF (``read()`` returning
    ``b""``) is what proves the file was complete and untampered.
    """

    def __init__(
        self,
        src: BinaryIO,
        identities: Sequence[Identity] | Passphrase,
        *,
        max_work_factor: int = MAX_SCRYPT_WORK_FACTOR,
    ) -> None:
        super().__init__()
        self._stream, self._aead = _open_payload(src, identities, max_work_factor)
        self._open = _open_into(self._aead)
        self._buf = bytearray(_ENC_CHUNK + 1)
        self._mv = memoryview(self._buf)
        self._have = _fill(self._stream.readinto, self._mv, 0)
        self._counter = 0
        self._plain = bytearray(CHUNK_SIZE)
        self._pos = self._len = 0
        self._eof = False
        self.size = 0

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        mv, have, counter = self._mv, self._have, self._counter
        if have > _ENC_CHUNK:
            chunk = mv[:_ENC_CHUNK]
            try:
                self._open(_NONCE.pack(counter, 0), chunk, None, self._plain)
            except InvalidTag:
                raise _chunk_error(self._aead, counter, chunk, last=False) from None
            self._len = CHUNK_SIZE
            self._buf[0] = self._buf[_ENC_CHUNK]
            self._have = _fill(self._stream.readinto, mv, 1)
        else:
            last = mv[:have]
            _check_final_size(self._aead, counter, last)
            out = memoryview(self._plain)[: have - _TAG]
            try:
                self._open(_NONCE.pack(counter, 1), last, None, out)
            except InvalidTag:
                raise _chunk_error(self._aead, counter, last, last=True) from None
            self._len = have - _TAG
            self._eof = True
        self._counter += 1
        self._pos = 0
        self.size += self._len

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._pos == self._len:
            if self._eof:
                return 0
            self._next_chunk()
        n = min(len(b), self._len - self._pos)
        b[:n] = self._plain[self._pos : self._pos + n]
        self._pos += n
        return n
