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
from typing import TYPE_CHECKING, BinaryIO

from mlsec._protobuf import prefix_fields as _protobuf_fields

if TYPE_CHECKING:
    from pickletools import OpcodeInfo

__all__ = [
    "PICKLE_FIRST",
    "PREFIX_SIZE",
    "Format",
    "is_pickle_prefix",
    "sniff",
    "sniff_bytes",
    "sniff_file",
]

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
# First opcodes of the pickles pickle.dump writes without PROTO (protocols 0 and 1): MARK and the
# protocol 0/1 opcodes that take nothing from the stack. Only a first test for sniffing:
# is_pickle_prefix decides. A headerless stream that starts with a protocol 2+ opcode is made by
# hand; it sniffs as unknown and the pickle probe reports it as a disguised pickle.
PICKLE_FIRST = frozenset(b"(IJKLMSTUNVXFG])}ghjcP")


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
    if head[0] in PICKLE_FIRST and is_pickle_prefix(head):
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
    """The bytes are (the start of) a pickle stream as CPython's unpickler reads it.

    Decided by running the opcode stream against the unpickler's stack discipline (a MARK before
    TUPLE/LIST/DICT/INST/…, enough items for every opcode, memo keys defined before GET, GLOBAL
    names that can be imported), not by a first byte: ``torch==2.1.0`` starts with TUPLE, which
    needs a MARK, so ``pickle.load`` fails on its first opcode. It is a pickle when

    - the stream reaches STOP validly (``pickle.load`` returns there) and what follows is
      nothing, another such stream (legacy ``torch.save`` writes five), or binary data (raw
      storage, tar padding); prose after a STOP is a text file in which ``Mrs.`` happened to
      parse (BININT2 "rs", STOP), or
    - at least 64 opcodes parse validly up to the end of ``head`` (a long pickle cut by the
      prefix). Text essentially never survives that many.

    A stream that imports something and then breaks is not a pickle *file*, but ``pickle.load``
    still runs its import: text and unknown bytes therefore also go through the scanner's pickle
    probe (see ``mlsec.scan.registry``), so no file type is a free pass. Bounded by ``head`` and
    8 streams.
    """
    pos = 0
    for _ in range(8):
        verdict, end = _pickle_stream(head, pos)
        if verdict != "stop":
            # A later stream cut by the end of a full prefix may have begun just before it.
            return verdict == "cut" and (end >= 64 or (pos > 0 and len(head) >= PREFIX_SIZE))
        if end >= len(head) or not _is_text(head[end : end + 4096]):
            return True
        pos = end
    return True


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return len(data) >= 4096 and exc.start >= len(data) - 4  # a character cut by the slice
    return True


# Opcodes that change the stack in ways the generic count does not model.
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})
_EVEN = frozenset({"DICT", "SETITEMS"})
# pickletools' wording when the bytes end inside an argument or between two opcodes.
_CUT_WORDS = ("no newline found", "remain", "not enough data", "exhausted before seeing STOP")


def _dotted(name: object) -> bool:
    return isinstance(name, str) and all(part.isidentifier() for part in name.split("."))


# What kind of value an opcode pushes (pickletools' stack_after names), as far as the checks
# below need it; "any" is an object the stream cannot know (a global, a call's result).
_KINDS = {"list": "list", "dict": "dict", "set": "set", "bytearray": "bytearray", "tuple": "tuple"}
_UNHASHABLE = frozenset({"list", "dict", "set", "bytearray", "utuple"})
_TARGET = {"APPEND": "list", "APPENDS": "list", "SETITEM": "dict", "SETITEMS": "dict"}
_TARGET |= {"ADDITEMS": "set"}


def _tuple_kind(items: list[str]) -> str:
    return "utuple" if any(k in _UNHASHABLE for k in items) else "tuple"


def _pickle_stream(head: bytes, start: int) -> tuple[str, int]:
    """Run one stream from ``start`` the way CPython's C unpickler checks it: stack and MARK
    fences, the kinds of values (APPEND needs a list, SETITEM a dict and a hashable key, REDUCE
    a global and a tuple, …), the memo, argument syntax. Returns ("stop", end), ("cut", opcodes)
    when the bytes end first, or ("invalid", opcodes). Bounded by ``head``."""
    import pickletools  # stdlib modules load when needed: `mlsec --help` stays fast
    import warnings

    frames: list[list[str]] = [[]]  # the kinds above each MARK fence; frames[0] is the bottom
    memo: dict[object, str] = {}
    count = 0
    f = io.BytesIO(head)
    f.seek(start)
    ops = pickletools.genops(f)
    with warnings.catch_warnings():
        # pickletools decodes string arguments of random bytes with escape_decode, which warns
        warnings.simplefilter("ignore")
        while True:
            try:
                opcode, arg, _pos = next(ops)
            except StopIteration:
                return ("cut", count)
            except Exception as exc:  # a malformed argument, or one cut by the end of head
                message = str(exc)  # pickletools' wording for an argument that runs off the end
                cut = any(w in message for w in _CUT_WORDS)
                return ("cut" if cut else "invalid", count)
            count += 1
            if not _apply(opcode, arg, frames, memo):
                return ("invalid", count)
            if opcode.name == "STOP":
                return ("stop", f.tell())


def _apply(
    opcode: OpcodeInfo, arg: object, frames: list[list[str]], memo: dict[object, str]
) -> bool:
    """One opcode's effect on the stack of kinds; False when CPython's unpickler would raise."""
    name = opcode.name
    top = frames[-1]
    if name == "MARK":
        frames.append([])
        return True
    if name == "POP":
        if top:
            top.pop()
        elif len(frames) > 1:
            frames.pop()  # CPython's POP takes the MARK when nothing is above it
        else:
            return False
        return True
    if name == "STOP":
        return bool(top)
    if name in _MEMO_PUT or name == "MEMOIZE":
        if not top:
            return False
        memo[arg if name != "MEMOIZE" else len(memo)] = top[-1]
        return True
    if name in _MEMO_GET:
        if arg not in memo:
            return False
        top.append(memo[arg])
        return True
    if name in ("GLOBAL", "INST"):
        module, _, attr = str(arg).partition(" ")
        if not (_dotted(module) and _dotted(attr)):
            return False
    before = [s.name for s in opcode.stack_before]
    after = [s.name for s in opcode.stack_after]
    if "mark" in before:
        if len(frames) < 2:
            return False
        below = before.index("mark")
        items = frames.pop()
        lower = frames[-1]
        if len(items) < len([s for s in before[below + 1 :] if s != "stackslice"]):
            return False
        if len(lower) < below:
            return False
        if name in _EVEN and len(items) % 2:
            return False
        if name in ("DICT", "SETITEMS") and any(k in _UNHASHABLE for k in items[::2]):
            return False
        if name in ("ADDITEMS", "FROZENSET") and any(k in _UNHASHABLE for k in items):
            return False
        if name == "OBJ" and items[0] != "any":
            return False
        if name in _TARGET and lower[-1] not in (_TARGET[name], "any"):
            return False
        if name == "TUPLE":
            lower.append(_tuple_kind(items))
        elif below == 0 and after:
            lower.append(_KINDS.get(after[0], "any" if name in ("INST", "OBJ") else after[0]))
        return True
    n = len(before)
    if len(top) < n:
        return False
    args = top[len(top) - n :] if n else []
    if name in _TARGET and args[0] not in (_TARGET[name], "any"):
        return False
    if name == "SETITEM" and args[1] in _UNHASHABLE:
        return False
    if name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD") and args[0] != "any":
        return False
    if name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX") and args[1] not in ("tuple", "utuple", "any"):
        return False
    if name == "STACK_GLOBAL" and any(k not in ("str", "bytes_or_str", "any") for k in args):
        return False
    if n:
        del top[len(top) - n :]
    if name in _TARGET or name == "BUILD" or name == "READONLY_BUFFER":
        top.append(args[0])  # the container or object, changed in place
    elif name == "DUP":
        top.extend(args * 2)
    elif name.startswith("TUPLE"):
        top.append(_tuple_kind(args))
    else:
        top.extend(
            _KINDS.get(k, "any" if k == "any" or name.endswith("PERSID") else k) for k in after
        )
    return True


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
            from mlsec.jsonsafe import check_depth

            if check_depth(body) is not None:
                return Format.JSON  # too deep to parse safely: JSON to the scanner, which says so
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
    """Member names from the central directory, as the scanner reads it (:mod:`mlsec._zipindex`,
    the one zip reader): sniffing and scanning cannot disagree on what a zip holds. An archive
    that reader refuses is a plain zip here; the scanner reports why."""
    import zipfile

    from mlsec._zipindex import read_index

    try:
        size = f.seek(0, 2)
        return [e.name for e in read_index(f, size).entries]
    except (zipfile.BadZipFile, OSError, ValueError, struct.error):
        return []
