"""HDF5 files, the legacy Keras ``.h5`` model format (Keras 2 / tf.keras ``model.save("m.h5")``,
Keras 3's ``legacy_h5_format``).

Keras rebuilds the model from the JSON held in the root group's ``model_config`` attribute and
compiles it from ``training_config``; a ``Lambda`` layer there carries marshalled bytecode that
runs on load, and ``safe_mode`` is ignored for ``.h5`` files (CVE-2025-9905). Both attributes are
read structurally, the way Keras reads them — through h5py, which parses the file's metadata and
runs nothing — and judged like a ``.keras`` config (:func:`mlsec.scan.formats.keras.
config_findings`). Only the root group's attributes are read, never the datasets. libhdf5 is C and
crashes on some hostile files (a few flipped bytes of a real model suffice), so it runs in a child
process with a time and address-space limit: a crash or a timeout is a finding, never a crashed
scanner. That costs a process start per ``.h5`` file (about 0.2 s); the weights file of a
``.keras`` archive is skipped (Keras reads no config from it).

Fail closed: a file h5py cannot open, an attribute that is too large, not a string, or not JSON is
a finding. Without h5py installed (``pip install 'mlsec[hdf5]'``) a small built-in reader reads
the root attributes of ordinary files (compact attribute storage); a file it cannot read (dense
attribute storage of a config over 64 KiB, shared messages, …) is searched byte-wise for configs
and reported as not inspected (``HDF5-NOT-INSPECTED``, high).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.formats._hdf5static import NotText, Unsupported, root_attributes
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
    if (ctx.member or "").endswith(".weights.h5"):
        return  # a .keras archive's weights: Keras reads datasets from it, never a config
    if importlib.util.find_spec("h5py") is None:
        yield from _without_h5py(blob, ctx)
        return
    try:
        values = _root_configs(blob)
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


# Run in a child process: libhdf5 is C, and hostile files crash it (a few byte flips in a real
# Keras file are enough for a segmentation fault), so the scanner only ever sees its answer.
_PROBE = r"""
import io, json, sys
try:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[5]), int(sys.argv[5])))
except (ImportError, ValueError, OSError):
    pass
path, offset, size, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
try:
    import h5py
except ImportError:
    json.dump({"missing": True}, sys.stdout)
    raise SystemExit(0)
out = []
try:
    if path == "-":
        src = io.BytesIO(sys.stdin.buffer.read())
    elif offset == 0 and size < 0:
        src = path
    else:
        with open(path, "rb") as fh:
            fh.seek(offset)
            src = io.BytesIO(fh.read(size))
    with h5py.File(src, "r", locking=False) as f:
        for name in ("model_config", "training_config"):
            if name not in f.attrs:
                continue
            n = f.attrs.get_id(name).get_storage_size()
            if n > limit:
                out.append([name, {"error": "holds %d bytes" % n}])
                continue
            v = f.attrs[name]
            if isinstance(v, bytes):
                try:
                    out.append([name, {"text": v.decode("utf-8")}])
                except UnicodeDecodeError:
                    out.append([name, {"kind": "bytes that are not UTF-8"}])
            elif isinstance(v, str):
                out.append([name, {"text": v}])
            else:
                out.append([name, {"kind": type(v).__name__}])
    json.dump({"attrs": out}, sys.stdout)
except Exception as exc:
    json.dump({"error": "%s: %s" % (type(exc).__name__, str(exc)[:200])}, sys.stdout)
"""
_TIMEOUT = 120  # seconds
_MEMORY = 4 << 30  # address space of the child


def _root_configs(blob: Blob) -> list[tuple[str, object]]:
    data: bytes | None = None
    if blob.path is not None:
        where = [str(blob.path), "0", "-1"]
    elif blob._path is not None:  # a window of a file on disk
        where = [str(blob._path), str(blob.offset), str(blob.size)]
    else:
        where, data = ["-", "0", "-1"], blob.read()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", HDF5_PLUGIN_PATH="")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, *where, str(_MAX_CONFIG), str(_MEMORY)],
            input=data,
            capture_output=True,
            timeout=_TIMEOUT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _Unreadable(f"reading its attributes took more than {_TIMEOUT} s") from None
    except OSError as exc:
        raise _Unreadable(f"could not start the HDF5 reader ({exc})") from None
    if proc.returncode < 0:
        raise _Unreadable(f"the HDF5 library crashed on it (signal {-proc.returncode})")
    try:
        answer = json.loads(proc.stdout)
    except ValueError:
        raise _Unreadable(f"the HDF5 reader failed (exit status {proc.returncode})") from None
    if not isinstance(answer, dict) or "error" in answer:
        raise _Unreadable(str(answer.get("error") if isinstance(answer, dict) else answer))
    if answer.get("missing"):
        raise _Unreadable("h5py cannot be imported by the HDF5 reader")
    out: list[tuple[str, object]] = []
    for name, value in answer.get("attrs", []):
        if "error" in value:
            raise _Unreadable(f"attribute {name} {value['error']}")
        out.append((name, value["text"] if "text" in value else NotText(value["kind"])))
    return out


def _judge(name: str, value: object, ctx: ScanContext) -> Iterator[Finding]:
    # keras: `if hasattr(model_config, "decode"): model_config = model_config.decode("utf-8")`
    # then json.loads; anything else makes load_model fail, yet is no config the scanner read.
    if isinstance(value, bytes):
        with contextlib.suppress(UnicodeDecodeError):
            value = value.decode("utf-8")
    if not isinstance(value, str):
        kind = value.kind if isinstance(value, NotText) else type(value).__name__
        yield _unreadable(ctx, name, f"is {kind}, not a JSON string")
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
    try:
        with blob.view() as buf:
            values = root_attributes(buf, CONFIG_ATTRIBUTES, _MAX_CONFIG)
    except Unsupported as exc:
        reason = str(exc)
    else:
        for name, value in values:
            yield from _judge(name, value, ctx)
        return
    yield from _byte_scan(blob, ctx)
    yield ctx.finding(
        "HDF5-NOT-INSPECTED",
        Severity.HIGH,
        f"h5py is not installed and the built-in reader cannot read this file ({reason})",
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
