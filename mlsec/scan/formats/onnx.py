"""ONNX models, walked as protobuf without the onnx library.

What matters in an ONNX file is what a runtime will load beside it: operators from domains no
standard runtime implements (the user must install and trust a custom-op shared library), and
external-data ``location`` entries, which a runtime opens relative to the model directory — an
absolute path or a ``..`` reads (or, with some tools, writes) files elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlsec._protobuf import fields, text
from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.model import Finding, Severity

__all__ = ["STANDARD_DOMAINS", "analyze_onnx", "external_data_findings", "location_escape"]

STANDARD_DOMAINS = frozenset(
    {
        "",
        "ai.onnx",
        "ai.onnx.ml",
        "ai.onnx.training",
        "ai.onnx.preview.training",
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
        "com.ms.internal.nhwc",
    }
)
# onnxruntime-training's PythonOp calls a Python autograd function by name; onnxruntime-extensions'
# PyOp (domain ai.onnx.contrib) calls a Python function registered by the loading process.
_PYTHON_OPS = frozenset({"PythonOp", "PythonOpGrad", "PyOp"})
_MAX_NESTING = 64


@dataclass
class _Model:
    nodes: dict[tuple[str, str], int] = field(default_factory=dict)  # (domain, op) -> count
    functions: set[tuple[str, str]] = field(default_factory=set)
    # One entry per tensor that has external_data: (tensor name, [(key, value), ...]).
    external: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)


class _Walker:
    def __init__(self, buf: memoryview | bytes) -> None:
        self.buf = buf
        self.model = _Model()

    def walk_model(self) -> None:
        for f, w, a, b in fields(self.buf):
            if w != 2:
                continue
            if f == 7:
                self.graph(a, b, 0)
            elif f == 25:
                self.function(a, b)
            elif f == 20:  # TrainingInfoProto: initialization=1, algorithm=2 (graphs)
                for f2, w2, a2, b2 in fields(self.buf, a, b):
                    if w2 == 2 and f2 in (1, 2):
                        self.graph(a2, b2, 1)

    def graph(self, a: int, b: int, depth: int) -> None:
        if depth > _MAX_NESTING:
            raise ValueError("subgraphs nested too deeply")
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 1:
                self.node(x, y, depth)
            elif f == 5:
                self.tensor(x, y)
            elif f == 15:  # SparseTensorProto: values=1, indices=2
                for f2, w2, x2, y2 in fields(self.buf, x, y):
                    if w2 == 2 and f2 in (1, 2):
                        self.tensor(x2, y2)

    def node(self, a: int, b: int, depth: int) -> None:
        op = domain = ""
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 4:
                op = text(self.buf, x, y)
            elif f == 7:
                domain = text(self.buf, x, y)
            elif f == 5:
                self.attribute(x, y, depth)
        key = (domain, op)
        self.model.nodes[key] = self.model.nodes.get(key, 0) + 1

    def attribute(self, a: int, b: int, depth: int) -> None:
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f in (5, 10):
                self.tensor(x, y)
            elif f in (6, 11):
                self.graph(x, y, depth + 1)
            elif f in (22, 23):
                for f2, w2, x2, y2 in fields(self.buf, x, y):
                    if w2 == 2 and f2 in (1, 2):
                        self.tensor(x2, y2)

    def tensor(self, a: int, b: int) -> None:
        """TensorProto: name=8, external_data=13 (StringStringEntryProto key=1, value=2). Every
        entry is kept, in order, duplicates included: loaders disagree on which one wins."""
        name = ""
        entries: list[tuple[str, str]] = []
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 8:
                name = text(self.buf, x, y)
            elif f == 13:
                key = value = ""
                for f2, w2, x2, y2 in fields(self.buf, x, y):
                    if w2 == 2 and f2 == 1:
                        key = text(self.buf, x2, y2)
                    elif w2 == 2 and f2 == 2:
                        value = text(self.buf, x2, y2)
                entries.append((key, value))
        if entries:
            self.model.external.append((name, entries))

    def function(self, a: int, b: int) -> None:
        name = domain = ""
        for f, w, x, y in fields(self.buf, a, b):
            if w != 2:
                continue
            if f == 1:
                name = text(self.buf, x, y)
            elif f == 10:
                domain = text(self.buf, x, y)
            elif f == 7:
                self.node(x, y, 1)
        self.model.functions.add((domain, name))


def analyze_onnx(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Walk the model graph (and subgraphs, functions, training graphs) for custom operator
    domains, Python operators and external data that reaches outside the model directory."""
    with blob.view() as buf:
        walker = _Walker(buf)
        walker.walk_model()
        model = walker.model
    yield from _operators(model, ctx)
    # External data resolves against the directory of the model file; inside an archive there is
    # no such directory yet, and only the names can be judged.
    base = blob.path.parent if blob.path is not None and ctx.member is None else None
    disk_cache: _DiskCache = {}
    for tensor, entries in model.external:
        yield from external_data_findings(tensor, entries, ctx, base, disk_cache)


def _operators(model: _Model, ctx: ScanContext) -> Iterator[Finding]:
    custom: dict[str, set[str]] = {}
    for (domain, op), _count in sorted(model.nodes.items()):
        if (domain, op) in model.functions:
            continue  # a function defined in the model itself
        if op in _PYTHON_OPS:
            yield ctx.finding(
                "ONNX-PYTHON-OP",
                Severity.HIGH,
                f"operator {domain or 'ai.onnx'}.{op} runs a Python function",
                why="onnxruntime-training's PythonOp imports and calls Python code when the "
                "graph runs.",
                symbol=f"{domain}.{op}",
            )
        elif domain not in STANDARD_DOMAINS:
            custom.setdefault(domain, set()).add(op)
    for domain, ops in sorted(custom.items()):
        yield ctx.finding(
            "ONNX-CUSTOM-OP",
            Severity.MEDIUM,
            f"custom operator domain {domain!r} ({', '.join(sorted(ops)[:10])}) needs a custom "
            "op library",
            why="A custom-op shared library is native code the user must install and trust.",
            symbol=domain,
        )


# The keys of an external-data entry (onnx/external_data_helper.py). onnx <= 1.20 set every key as
# an attribute of an internal object (CVE-2026-34445); onnx >= 1.21 ignores others.
_EXTERNAL_KEYS = frozenset({"location", "offset", "length", "checksum", "basepath"})
# onnxruntime's tag for "the offset is an address in this process" (tensorprotoutils.h): a file
# that uses it makes the runtime (and OpenVINO's ONNX frontend) read arbitrary memory.
_ORT_MEM_ADDR = "*/_ORT_MEM_ADDR_/*"
# Windows device names: opened as devices in any directory.
_WIN_DEVICES = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$", "clock$"}
    | {f"{p}{i}" for p in ("com", "lpt") for i in (*range(10), "¹", "²", "³")}
)
_ESCAPE_WHY = (
    "Runtimes open external data relative to the model directory; a location that leaves it "
    "reads another file (or process memory) into the model, and tools that save the model "
    "write there."
)


def location_escape(location: str) -> str | None:
    """Why an external-data ``location`` can resolve outside the model directory on some
    platform or loader, or None if it cannot (judged on the name alone)."""
    if location == _ORT_MEM_ADDR or location.startswith("*/_ORT_MEM_ADDR_"):
        return "is onnxruntime's in-memory address tag (the offset becomes a pointer)"
    if not location:
        return "is empty (the model directory itself)"
    if "\x00" in location:
        return "contains a NUL byte (C++ loaders stop the path there)"
    if location.startswith(("\\\\", "//")):
        return "is a UNC or network path"
    if location.startswith(("/", "\\")):
        return "is an absolute path"
    if len(location) > 1 and location[1] == ":" and location[0].isalpha():
        return "names a Windows drive"
    if ":" in location:
        return "contains ':' (a Windows drive or NTFS alternate data stream)"
    if location.startswith("#"):
        return "starts with '#', which onnx's checker exempts from its containment checks"
    if location.startswith("~"):
        return "starts with '~' (a home directory for tools that expand it)"
    parts = location.replace("\\", "/").split("/")
    # Windows drops trailing dots and spaces from each component: ".. " and "..." act as "..".
    if any(".." in p and not p.strip(". ") for p in parts):
        return "climbs out of the model directory with '..'"
    for part in parts:
        # Only a bare device name: "aux.0.weight" is a real tensor file name (torch exports name
        # files after tensors), and Windows 11 no longer maps names with an extension to devices.
        if part.rstrip(" .").lower() in _WIN_DEVICES:
            return f"names the Windows device {part!r}"
    return None


def _on_disk(location: str, base: Path) -> tuple[str, Severity, str] | None:
    """What the file system says about a location whose name is inside ``base``: a symlink (at
    any component) that resolves outside it, a non-regular file, extra hard links."""
    target = base / location
    try:
        real_base = base.resolve(strict=True)
        real = target.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        return ("ONNX-EXTERNAL-DATA-PATH", Severity.HIGH, f"cannot be resolved ({exc})")
    if not real.is_relative_to(real_base):
        return (
            "ONNX-EXTERNAL-DATA-PATH",
            Severity.HIGH,
            f"goes through a symlink that resolves outside the model directory ({real})",
        )
    try:
        st = target.stat()
    except FileNotFoundError:
        return None  # the model will not load; nothing is read from elsewhere
    except OSError as exc:
        return ("ONNX-EXTERNAL-DATA-PATH", Severity.HIGH, f"cannot be inspected ({exc})")
    import stat as stat_mod

    if not stat_mod.S_ISREG(st.st_mode):
        return ("ONNX-EXTERNAL-DATA-PATH", Severity.HIGH, "is not a regular file")
    if st.st_nlink > 1:
        return (
            "ONNX-EXTERNAL-DATA-PATH",
            Severity.MEDIUM,
            f"has {st.st_nlink} hard links (onnx refuses these: one may be a file elsewhere)",
        )
    return None


def _number(value: str) -> int | None:
    """An offset or length as every loader reads it the same way: ASCII digits, nothing else
    (Python's int() also takes signs, spaces, '_' and non-ASCII digits; C++ loaders do not)."""
    if value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    return None


_DiskCache = dict[str, tuple[tuple[str, Severity, str] | None, int]]


def external_data_findings(
    tensor: str,
    entries: list[tuple[str, str]],
    ctx: ScanContext,
    base: Path | None,
    disk_cache: _DiskCache | None = None,
) -> Iterator[Finding]:
    """Judge one tensor's external-data entries (``base``: the model's directory on disk, if
    any; ``disk_cache`` shares file-system checks between tensors of one model)."""
    seen: dict[str, str] = {}
    for key, value in entries:
        if key in seen and key in ("location", "offset", "length", "basepath"):
            yield ctx.finding(
                "ONNX-EXTERNAL-DATA-KEY",
                Severity.HIGH,
                f"tensor {tensor!r} gives external-data {key!r} twice "
                f"({seen[key][:60]!r}, {value[:60]!r})",
                why="Loaders disagree on whether the first or the last entry wins: the scanner "
                "and the runtime would read different files.",
                symbol=tensor,
            )
        if key not in _EXTERNAL_KEYS:
            yield ctx.finding(
                "ONNX-EXTERNAL-DATA-KEY",
                Severity.HIGH,
                f"tensor {tensor!r} has an unknown external-data key {key[:60]!r}",
                why="onnx <= 1.20 set every external-data key as an attribute of an internal "
                "object (CVE-2026-34445): unknown keys overwrite its state.",
                symbol=tensor,
            )
        elif key == "basepath" and value:
            yield ctx.finding(
                "ONNX-EXTERNAL-DATA-PATH",
                Severity.HIGH,
                f"tensor {tensor!r} sets external-data basepath {value[:80]!r}",
                why="basepath replaces the directory a location resolves against for tools that "
                "honour it; onnx strips it when saving, so a shipped model has no reason to "
                "carry one.",
                symbol=tensor,
            )
        elif key in ("offset", "length") and _number(value) is None:
            yield ctx.finding(
                "ONNX-EXTERNAL-DATA-KEY",
                Severity.MEDIUM,
                f"tensor {tensor!r} has external-data {key} {value[:40]!r}, not a plain "
                "non-negative integer",
                why="Loaders trust these numbers to seek and allocate, and parse them differently.",
                symbol=tensor,
            )
        seen.setdefault(key, value)
    locations = [v for k, v in entries if k == "location"]
    if not locations:
        yield ctx.finding(
            "ONNX-EXTERNAL-DATA-PATH",
            Severity.HIGH,
            f"tensor {tensor!r} has external data without a location",
            why="What a loader reads then depends on its defaults: the scanner cannot tell.",
            symbol=tensor,
        )
    for location in locations:
        reason = location_escape(location)
        if reason is not None:
            yield ctx.finding(
                "ONNX-EXTERNAL-DATA-PATH",
                Severity.HIGH,
                f"tensor {tensor!r} takes its data from {location[:120]!r}, which {reason}",
                why=_ESCAPE_WHY,
                symbol=tensor,
            )
            continue
        if base is None:
            continue
        cache = {} if disk_cache is None else disk_cache
        if location not in cache:
            cache[location] = (_on_disk(location, base), _size(base / location))
        disk, size = cache[location]
        if disk is not None:
            rule, severity, what = disk
            yield ctx.finding(
                rule,
                severity,
                f"tensor {tensor!r} takes its data from {location[:120]!r}, which {what}",
                why=_ESCAPE_WHY,
                symbol=tensor,
            )
            continue
        yield from _bounds(tensor, location, entries, ctx, size)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _bounds(
    tensor: str, location: str, entries: list[tuple[str, str]], ctx: ScanContext, size: int
) -> Iterator[Finding]:
    if size < 0:
        return
    values = dict(reversed(entries))  # the first entry of each key
    offset = _number(values.get("offset", "0")) or 0
    length = _number(values["length"]) if "length" in values else None
    end = offset + (length or 0)
    if offset > size or end > size:
        yield ctx.finding(
            "ONNX-EXTERNAL-DATA-BOUNDS",
            Severity.MEDIUM,
            f"tensor {tensor!r} reads bytes {offset}..{end} of {location[:120]!r}, which has "
            f"{size}",
            why="Loaders that trust offset and length read past the end of the file (older "
            "onnx, memory-mapping runtimes): at best the model fails, at worst it reads memory.",
            symbol=tensor,
        )
