"""HDF5 files, the legacy Keras ``.h5`` model format (Keras 2 / tf.keras ``model.save("m.h5")``,
Keras 3's ``legacy_h5_format``).

Keras rebuilds the model from the JSON held in the root group's ``model_config`` attribute and
compiles it from ``training_config``; a ``Lambda`` layer there carries marshalled bytecode that
runs on load, and ``safe_mode`` is ignored for ``.h5`` files (CVE-2025-9905). Both attributes are
read structurally, the way Keras reads them — through h5py, which parses the file's metadata and
runs nothing — and judged like a ``.keras`` config (:func:`mlsec.scan.formats.keras.
config_findings`). Only the root group's attribute headers are read, never the datasets.

Fail closed: a file h5py cannot open, an attribute that is too large, not a string, or not JSON is
a finding; without h5py installed (``pip install 'mlsec[hdf5]'``) the file is searched byte-wise
for configs and reported as not inspected (``HDF5-NOT-INSPECTED``, high).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.formats.hydra import too_deep_finding
from mlsec.scan.formats.keras import config_findings
from mlsec.scan.model import Finding, Severity

__all__ = ["CONFIG_ATTRIBUTES", "analyze_hdf5"]

# The root attributes keras' legacy HDF5 loader deserialises.
CONFIG_ATTRIBUTES = ("model_config", "training_config")
_MAX_CONFIG = 64 * 1024 * 1024


class _Unreadable(Exception):
    pass


def analyze_hdf5(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Judge the Keras configs in an HDF5 file's root attributes."""
    try:
        import h5py  # type: ignore[import-untyped]
    except ImportError:
        yield from _without_h5py(blob, ctx)
        return
    try:
        values = _root_configs(h5py, blob)
    except _Unreadable as exc:
        yield ctx.finding(
            "HDF5-UNREADABLE",
            Severity.HIGH,
            f"the HDF5 file cannot be read: {exc}",
            why="A model file the scanner cannot read may hide a Lambda layer; other readers "
            "may still load it.",
        )
        return
    for name, value in values:
        yield from _judge(name, value, ctx)


def _root_configs(h5py: Any, blob: Blob) -> list[tuple[str, object]]:
    stream: BinaryIO | None = None
    try:
        if blob.path is not None:
            f = h5py.File(str(blob.path), "r", locking=False)
        else:
            stream = blob.open()
            f = h5py.File(stream, "r", locking=False)
        with f:
            out: list[tuple[str, object]] = []
            for name in CONFIG_ATTRIBUTES:
                if name not in f.attrs:
                    continue
                size = f.attrs.get_id(name).get_storage_size()
                if size > _MAX_CONFIG:
                    raise _Unreadable(f"attribute {name} holds {size} bytes")
                out.append((name, f.attrs[name]))
            return out
    except _Unreadable:
        raise
    except Exception as exc:  # libhdf5 raises OSError, KeyError, RuntimeError… on hostile files
        raise _Unreadable(f"{exc.__class__.__name__}: {str(exc)[:200]}") from None
    finally:
        if stream is not None:
            stream.close()


def _judge(name: str, value: object, ctx: ScanContext) -> Iterator[Finding]:
    # keras: `if hasattr(model_config, "decode"): model_config = model_config.decode("utf-8")`
    # then json.loads; anything else makes load_model fail, yet is no config the scanner read.
    if isinstance(value, bytes):
        with contextlib.suppress(UnicodeDecodeError):
            value = value.decode("utf-8")
    if not isinstance(value, str):
        yield _unreadable(ctx, name, f"is a {type(value).__name__}, not a JSON string")
        return
    try:
        config = json.loads(value)
    except RecursionError:
        yield too_deep_finding(ctx, name)
        return
    except ValueError as exc:
        yield _unreadable(ctx, name, f"is not JSON ({exc})")
        return
    yield from config_findings(config, ctx, name)


def _unreadable(ctx: ScanContext, name: str, why: str) -> Finding:
    return ctx.finding(
        "KERAS-CONFIG-UNREADABLE",
        Severity.HIGH,
        f"the {name} attribute {why}",
        why="What the scanner cannot parse may hide a Lambda layer.",
        symbol=name,
    )


def _without_h5py(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    yield from _byte_scan(blob, ctx)
    if (ctx.member or "").endswith(".weights.h5"):
        return  # the weights of a .keras archive: Keras reads no config from them
    yield ctx.finding(
        "HDF5-NOT-INSPECTED",
        Severity.HIGH,
        "h5py is not installed: the model_config attribute was not read structurally",
        why="Keras runs the Lambda layers of an .h5 model's config on load; install h5py "
        "(pip install 'mlsec[hdf5]') so that mlsec reads it the way Keras does.",
    )


_MARKERS = (b'{"class_name"', b'{"module"')
_CHUNK = 16 * 1024 * 1024
_MAX_HITS = 64


def _find_configs(blob: Blob) -> Iterator[int]:
    """Offsets where a JSON model config may start (streamed search, bounded memory)."""
    hits = 0
    overlap = max(len(m) for m in _MARKERS)
    with blob.open() as f:
        base = 0
        prev = b""
        while hits < _MAX_HITS:
            chunk = f.read(_CHUNK)
            if not chunk:
                return
            hay = prev + chunk
            start = base - len(prev)
            found = sorted(i for m in _MARKERS for i in _all(hay, m) if i + len(m) > len(prev))
            for i in found:
                hits += 1
                yield start + i
            prev = hay[-overlap:]
            base += len(chunk)


def _all(hay: bytes, needle: bytes) -> Iterator[int]:
    i = hay.find(needle)
    while i != -1:
        yield i
        i = hay.find(needle, i + 1)


def _byte_scan(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Without h5py: model configs found verbatim in the bytes (HDF5 stores attribute strings
    uncompressed), a best effort only: reordered keys or decoys defeat it."""
    decoder = json.JSONDecoder()
    parsed = 0
    unreadable = 0
    covered = -1  # configs contain nested objects that match the markers again
    spent = 0
    with blob.open() as f:
        for offset in list(_find_configs(blob)):
            if offset < covered:
                continue
            config, end, used = _decode_at(f, offset, decoder)
            spent += used
            if config is None:
                unreadable += 1
            else:
                covered = offset + end
                if isinstance(config, dict):
                    parsed += 1
                    yield from config_findings(config, ctx, f"model_config@{offset}")
            if spent > _READ_BUDGET:
                break
    if unreadable and not parsed:
        yield ctx.finding(
            "KERAS-CONFIG-UNREADABLE",
            Severity.HIGH,
            "the HDF5 file holds a model config that could not be parsed",
            why="What the scanner cannot parse may hide a Lambda layer.",
        )


_READ_BUDGET = 256 * 1024 * 1024


def _decode_at(f: BinaryIO, offset: int, decoder: json.JSONDecoder) -> tuple[Any, int, int]:
    """Parse the JSON document starting at ``offset``: read 1 MiB, and more (up to 64 MiB) only
    while the document runs off the end of what was read. Returns (value or None, its length in
    bytes, bytes read)."""
    size = 1 << 20
    while True:
        f.seek(offset)
        raw = f.read(size)
        text = raw.split(b"\x00", 1)[0].decode("utf-8", "replace")
        try:
            value, end = decoder.raw_decode(text)
        except RecursionError:
            return None, 0, len(raw)
        except ValueError as exc:
            cut = len(raw) == size and b"\x00" not in raw
            if cut and size < _MAX_CONFIG and getattr(exc, "pos", 0) >= len(text) - 16:
                size *= 4
                continue
            return None, 0, len(raw)
        return value, len(text[:end].encode()), len(raw)
