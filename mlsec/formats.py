"""Format detection from content (magic bytes), never from the file name alone.

``sniff(path)`` reads a small prefix of the file (and, for a zip, its central directory) and returns
a :class:`Format`. The name is only used to break ties between formats whose bytes say nothing
(YAML versus plain text, a TF SavedModel's ``saved_model.pb``). Every byte-level decision lives in
this module so that the scanner, the SBOM and ``inspect`` agree on what a file is.
"""

from __future__ import annotations

import io
import struct
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

__all__ = ["PREFIX_SIZE", "Format", "is_pickle_prefix", "sniff", "sniff_bytes", "sniff_file"]

# How much of a file detection reads. Enough for every magic number and for a pickle prefix check.
PREFIX_SIZE = 64 * 1024


class Format(StrEnum):
    """What a file is, decided from its bytes."""

    PICKLE = "pickle"
    PYTORCH_ZIP = "pytorch-zip"
    KERAS_ZIP = "keras-zip"
    NPZ = "npz"
    ZIP = "zip"
    TAR = "tar"
    SEVEN_ZIP = "7z"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    ZSTD = "zstd"
    LZ4 = "lz4"
    ZLIB = "zlib"
    NUMPY = "npy"
    HDF5 = "hdf5"
    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    AGE = "age"
    ONNX = "onnx"
    TF_SAVEDMODEL = "tf-savedmodel"
    PROTOBUF = "protobuf"
    JSON = "json"
    YAML = "yaml"
    TEXT = "text"
    EMPTY = "empty"
    UNKNOWN = "unknown"

    @property
    def is_archive(self) -> bool:
        return self in _ARCHIVES


_ARCHIVES = frozenset(
    {
        Format.PYTORCH_ZIP,
        Format.KERAS_ZIP,
        Format.NPZ,
        Format.ZIP,
        Format.TAR,
        Format.SEVEN_ZIP,
        Format.GZIP,
        Format.BZIP2,
        Format.XZ,
        Format.ZSTD,
        Format.LZ4,
        Format.ZLIB,
    }
)

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# Opcodes a protocol 0/1 pickle can start with (protocol 2+ starts with PROTO, 0x80).
_PICKLE_FIRST = frozenset(b"(}])NIJKLMFGSTUVXcidlt")


def sniff(path: Path) -> Format:
    """Detect the format of the file at ``path`` from its content.

    >>> sniff(Path("model.safetensors"))  # doctest: +SKIP
    <Format.SAFETENSORS: 'safetensors'>
    """
    with open(path, "rb") as f:
        return sniff_file(f, f.read(PREFIX_SIZE), name=path.name)


def sniff_file(f: BinaryIO, head: bytes, *, name: str = "") -> Format:
    """Detect the format of the open file ``f`` whose first bytes are ``head``.

    ``head`` may be longer than :data:`PREFIX_SIZE` (a hashing read); only the prefix decides,
    except where the format needs more: a zip's central directory, an HDF5 superblock after a
    user block. ``f``'s position is left wherever these reads end; callers seek if they care.
    """
    fmt = sniff_bytes(head[:PREFIX_SIZE], name=name)
    if fmt is Format.ZIP:
        return _zip_kind(f)
    if fmt is not Format.UNKNOWN:
        return fmt
    # HDF5 allows the superblock at 512, 1024, 2048, … (user block before it).
    offset = 512
    while offset <= 8192:
        if len(head) >= offset + 8:
            magic = head[offset : offset + 8]
        else:
            f.seek(offset)
            magic = f.read(8)
        if magic == _HDF5_MAGIC:
            return Format.HDF5
        offset *= 2
    return fmt


def sniff_bytes(head: bytes, *, name: str = "") -> Format:
    """Detect a format from the first bytes of a file (at most :data:`PREFIX_SIZE` are looked at).

    A zip is returned as plain :attr:`Format.ZIP`: telling PyTorch from Keras or npz needs the
    central directory, which :func:`sniff` reads.
    """
    if not head:
        return Format.EMPTY
    lname = name.lower()
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return Format.ZIP
    if len(head) >= 262 and head[257:262] == b"ustar":
        return Format.TAR  # before the prefixed-zip test: a tar whose first member is a zip
    if _is_zip_with_prefix(head):
        return Format.ZIP
    if _is_safetensors(head):
        # Before the pickle test: a header length of 128-133 (+ k*256) starts with 0x80 0x0N.
        # Byte 8 is "{", not a pickle opcode, so such a file cannot also be a working pickle.
        return Format.SAFETENSORS
    if head[0] == 0x80 and len(head) > 1 and head[1] <= 5:
        return Format.PICKLE
    if head.startswith(b"\x93NUMPY"):
        return Format.NUMPY
    if head.startswith(_HDF5_MAGIC):
        return Format.HDF5
    if head.startswith(b"GGUF"):
        return Format.GGUF
    if head.startswith((b"age-encryption.org/v1\n", b"-----BEGIN AGE ENCRYPTED FILE-----")):
        return Format.AGE  # encrypted: nothing inside can be seen without the key
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return Format.SEVEN_ZIP
    if head.startswith(b"\x1f\x8b\x08") and (len(head) < 4 or not head[3] & 0xE0):
        return Format.GZIP  # deflate method, reserved flag bits clear (not random bytes)
    if head.startswith(b"BZh") and len(head) > 3 and head[3:4].isdigit():
        return Format.BZIP2
    if head.startswith(b"\xfd7zXZ\x00"):
        return Format.XZ
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return Format.ZSTD
    if head.startswith(b"\x04\x22\x4d\x18"):
        return Format.LZ4
    if _is_lzma_alone(head):
        return Format.XZ  # the legacy .lzma container (joblib's "lzma"); xz readers take both
    if _is_zlib(head):
        return Format.ZLIB
    if head[0] in _PICKLE_FIRST and is_pickle_prefix(head):
        return Format.PICKLE
    proto = _protobuf_kind(head, lname)
    if proto is not None:
        return proto
    return _text_kind(head, lname)


def _is_zip_with_prefix(head: bytes) -> bool:
    # Data before the first local header (a zip appended to something else) still opens as a zip
    # in Python and in PyTorch; a scanner that only looks at offset 0 misses it.
    return head.find(b"PK\x03\x04", 1, 4096) != -1 and head.find(b"PK\x01\x02") != -1


_LZMA_DICT_SIZES = frozenset(size for n in range(12, 32) for size in (1 << n, 3 << (n - 1)))


def _is_lzma_alone(head: bytes) -> bool:
    # props byte (lc/lp/pb, 0x5D by default), a dictionary size of 2^n or 2^n + 2^(n-1), and an
    # uncompressed size that is unknown (all 0xFF) or plausible.
    if len(head) < 13 or head[0] >= 9 * 5 * 5:
        return False
    (dict_size, usize) = struct.unpack_from("<IQ", head, 1)
    if dict_size not in _LZMA_DICT_SIZES:
        return False
    return bool(usize == 0xFFFFFFFFFFFFFFFF or usize < 1 << 48)


def _is_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= 100 * 1024 * 1024 and head[8:9] == b"{"


def _is_zlib(head: bytes) -> bool:
    # joblib's default compression. CMF 0x78 (deflate, 32 KiB window) and a valid FCHECK.
    if len(head) < 2 or head[0] != 0x78 or (head[0] * 256 + head[1]) % 31 != 0:
        return False
    import zlib

    try:
        zlib.decompressobj().decompress(head[:4096], 64)
    except zlib.error:
        return False
    return True


def is_pickle_prefix(head: bytes) -> bool:
    """The bytes parse as pickle opcodes from offset 0 up to a STOP, or for at least 64 opcodes
    (a long pickle cut by the prefix end). Random binary data essentially never does."""
    import pickletools  # stdlib modules load when needed: `mlsec --help` stays fast
    import warnings

    count = 0
    with warnings.catch_warnings():
        # pickletools decodes string arguments of random bytes with escape_decode, which warns
        warnings.simplefilter("ignore")
        try:
            for opcode, _arg, _pos in pickletools.genops(io.BytesIO(head)):
                count += 1
                if opcode.name == "STOP":
                    return count >= 2
        except Exception:  # a parse failure, or running off the end of the prefix
            return count >= 64
    return count >= 64


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _protobuf_fields(head: bytes, limit: int = 8) -> list[tuple[int, int]] | None:
    """(field number, wire type) of the first top-level protobuf fields, or None if the bytes
    are not one."""
    fields: list[tuple[int, int]] = []
    pos = 0
    try:
        while pos < len(head) and len(fields) < limit:
            key, pos = _read_varint(head, pos)
            field, wire = key >> 3, key & 7
            if field == 0 or wire not in (0, 1, 2, 5):
                return None
            if wire == 0:
                _, pos = _read_varint(head, pos)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            else:
                length, pos = _read_varint(head, pos)
                if length > 1 << 34:
                    return None
                pos += length
            fields.append((field, wire))
    except ValueError:
        pass  # a prefix ends mid-field; what was parsed still counts
    return fields or None


# ONNX ModelProto fields and their wire types: ir_version=1 and model_version=5 are varints;
# producer_name=2, producer_version=3, domain=4, doc_string=6, graph=7, opset_import=8,
# metadata_props=14, training_info=20, functions=25 are length-delimited.
_ONNX_FIELDS = frozenset({(1, 0), (5, 0)} | {(f, 2) for f in (2, 3, 4, 6, 7, 8, 14, 20, 25)})


def _protobuf_kind(head: bytes, lname: str) -> Format | None:
    if head[0] not in (0x08, 0x12, 0x0A):
        return None
    fields = _protobuf_fields(head)
    if not fields:
        return None
    if lname.endswith("saved_model.pb"):
        return Format.TF_SAVEDMODEL
    # ONNX: starts with a plausible ir_version (1-15; 10 is current), only ModelProto fields
    # with their own wire types, and a graph or opset. Random bytes rarely pass all three.
    if (
        head[0] == 0x08
        and len(head) > 1
        and 1 <= head[1] <= 15
        and set(fields) <= _ONNX_FIELDS
        and any(f in (7, 8) for f, _w in fields)
    ):
        return Format.ONNX
    if lname.endswith((".pb", ".onnx", ".pbtxt")):
        return Format.PROTOBUF
    return None


def _text_kind(head: bytes, lname: str) -> Format:
    import json

    if b"\x00" in head:
        return Format.UNKNOWN
    body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the prefix end is still text.
        if exc.start < len(body) - 4:
            return Format.UNKNOWN
        text = body[: exc.start].decode("utf-8")
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        if len(head) < PREFIX_SIZE:
            try:
                json.loads(text)
            except RecursionError:
                return Format.JSON  # too deep to decode here: the JSON analyzer reports it
            except ValueError:
                return Format.TEXT
        return Format.JSON
    if lname.endswith((".yaml", ".yml")):
        return Format.YAML
    return Format.TEXT


_KERAS_MEMBERS = frozenset({"metadata.json", "config.json"})


def _zip_kind(f: BinaryIO) -> Format:
    """Tell PyTorch, Keras v3, npz and generic zips apart by their member names."""
    names = _zip_names(f)
    if not names:
        return Format.ZIP  # empty or unreadable: the scanner reports why
    if any(n.endswith(("/data.pkl", "/constants.pkl")) or n == "data.pkl" for n in names) and any(
        n.endswith("version") for n in names
    ):
        return Format.PYTORCH_ZIP
    if set(names) >= _KERAS_MEMBERS and any(n.endswith(".weights.h5") for n in names):
        return Format.KERAS_ZIP
    if all(n.endswith(".npy") for n in names):
        return Format.NPZ
    return Format.ZIP


def _zip_names(f: BinaryIO) -> list[str]:
    """Member names from the central directory, read directly: building a ZipInfo per entry
    (``zipfile.namelist``) costs ~0.1 s on a 20,000-tensor checkpoint. Anything unusual (zip64,
    a comment that hides the end record, a prefix before the archive) goes to ``zipfile``."""
    try:
        size = f.seek(0, 2)
        tail_len = min(size, 98)  # end record (22) + zip64 locator (20) + zip64 end record (56)
        f.seek(size - tail_len)
        tail = f.read(tail_len)
        if len(tail) >= 22 and tail[-22:-18] == b"PK\x05\x06":
            count, cd_size, cd_offset = struct.unpack_from("<HII", tail, len(tail) - 12)
            cd_end = size - 22
            if len(tail) == 98 and tail[-42:-38] == b"PK\x06\x07" and tail[:4] == b"PK\x06\x06":
                # zip64 (PyTorch always writes it): the real counts are in the zip64 end record.
                count, cd_size, cd_offset = struct.unpack_from("<QQQ", tail, 32)
                cd_end = size - 98
            if cd_offset + cd_size == cd_end and count < 10_000_000:
                f.seek(cd_offset)
                names = _central_names(f.read(cd_size), count)
                if names is not None:
                    return names
    except (OSError, ValueError, struct.error):
        pass
    return _zipfile_names(f)


def _central_names(cd: bytes, count: int) -> list[str] | None:
    names: list[str] = []
    pos = 0
    unpack = struct.unpack_from
    for _ in range(count):
        if cd[pos : pos + 4] != b"PK\x01\x02" or pos + 46 > len(cd):
            return None
        flags = unpack("<H", cd, pos + 8)[0]
        n, m, k = unpack("<HHH", cd, pos + 28)
        raw = cd[pos + 46 : pos + 46 + n]
        names.append(raw.decode("utf-8" if flags & 0x800 else "cp437", "replace"))
        pos += 46 + n + m + k
    return names if pos == len(cd) else None


def _zipfile_names(f: BinaryIO) -> list[str]:
    import zipfile

    f.seek(0)
    try:
        with zipfile.ZipFile(f) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
        return []
