"""GGUF (llama.cpp): header sanity and the chat template.

Two classes of attack: a header whose counts and lengths overflow a native parser (llama.cpp's
GGUF reader has had several heap overflows from unchecked string lengths, array counts and tensor
dimensions), and a ``tokenizer.chat_template`` that escapes the Jinja2 sandbox when rendered
(CVE-2024-34359, llama-cpp-python rendered it with a plain ``jinja2.Environment``), judged by
:mod:`mlsec.scan.formats.chattemplate`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.model import Finding, Severity

__all__ = ["analyze_gguf"]

_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
_MAX_DIMS = 4
_MAX_GGML_TYPE = 64
_MAX_STRING = 64 * 1024 * 1024


class _Reader:
    def __init__(self, buf: memoryview, version: int) -> None:
        self.buf = buf
        self.pos = 0
        self.n = len(buf)
        self.len_fmt = "<I" if version == 1 else "<Q"
        self.len_size = 4 if version == 1 else 8

    def take(self, n: int) -> int:
        if n < 0 or self.pos + n > self.n:
            raise ValueError(f"GGUF field at offset {self.pos} runs past the end of the file")
        start = self.pos
        self.pos += n
        return start

    def u32(self) -> int:
        return int(struct.unpack_from("<I", self.buf, self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack_from("<Q", self.buf, self.take(8))[0])

    def count(self) -> int:
        return int(struct.unpack_from(self.len_fmt, self.buf, self.take(self.len_size))[0])

    def string(self) -> str:
        n = self.count()
        if n > _MAX_STRING:
            raise ValueError(f"string of {n} bytes at offset {self.pos}")
        start = self.take(n)
        return bytes(self.buf[start : start + n]).decode("utf-8", "replace")

    def skip_string(self) -> None:
        self.take(self.count())

    def value(self, vtype: int, keep: bool) -> str | None:
        if vtype in _SCALARS:
            self.take(_SCALARS[vtype])
            return None
        if vtype == _STRING:
            if keep:
                return self.string()
            self.skip_string()
            return None
        if vtype == _ARRAY:
            etype, count = self.u32(), self.count()
            if etype in _SCALARS:
                self.take(count * _SCALARS[etype])
                return None
            if etype == _ARRAY:
                raise ValueError("nested GGUF arrays are not supported by llama.cpp")
            if etype != _STRING:
                raise ValueError(f"unknown GGUF array element type {etype}")
            if count * self.len_size > self.n - self.pos:
                raise ValueError(f"array of {count} strings cannot fit in the file")
            for _ in range(count):
                self.skip_string()
            return None
        raise ValueError(f"unknown GGUF value type {vtype}")


def analyze_gguf(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Validate the GGUF header, key-values and tensor infos; check chat templates."""
    with blob.view() as buf:
        found = list(_parse(buf, ctx))
    yield from found


def _parse(buf: memoryview, ctx: ScanContext) -> Iterator[Finding]:
    if len(buf) < 24 or bytes(buf[:4]) != b"GGUF":
        raise ValueError("truncated GGUF header")
    (version,) = struct.unpack_from("<I", buf, 4)
    if version not in (1, 2, 3):
        raise ValueError(f"unknown GGUF version {version}")
    r = _Reader(buf, version)
    r.pos = 8
    n_tensors, n_kv = r.count(), r.count()
    if n_kv * (r.len_size + 4 + 1) > r.n or n_tensors * (r.len_size + 4 + 4 + 8) > r.n:
        raise ValueError(f"{n_tensors} tensors / {n_kv} key-values cannot fit in the file")
    seen: set[str] = set()
    alignment = 32
    for _ in range(n_kv):
        key = r.string()
        vtype = r.u32()
        if key == "general.alignment" and vtype == 4:
            alignment = r.u32()
            if alignment == 0 or alignment & (alignment - 1):
                raise ValueError(f"general.alignment {alignment} is not a power of two")
            continue
        value = r.value(vtype, keep=key.startswith("tokenizer.chat_template"))
        if key in seen:
            yield ctx.finding(
                "GGUF-DUPLICATE-KEY",
                Severity.MEDIUM,
                f"key {key!r} appears more than once",
                why="Readers disagree on which value wins; a scanner may check the other one.",
                symbol=key,
            )
        seen.add(key)
        if value is not None:
            yield from _template(key, value, ctx)
    infos: list[tuple[str, int]] = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.u32()
        if n_dims > _MAX_DIMS:
            raise ValueError(f"tensor {name!r} has {n_dims} dimensions (llama.cpp allows 4)")
        dims = [r.u64() for _ in range(n_dims)]
        ttype = r.u32()
        infos.append((name, r.u64()))
        if ttype > _MAX_GGML_TYPE:
            raise ValueError(f"tensor {name!r} has unknown type {ttype}")
        elements = 1
        for d in dims:
            elements *= d
        if elements >= 1 << 62:
            raise ValueError(f"tensor {name!r} has an overflowing shape {dims}")
    data_start = -(-r.pos // alignment) * alignment
    for name, offset in infos:
        if offset % alignment or data_start + offset > r.n:
            yield ctx.finding(
                "GGUF-TENSOR-OUT-OF-BOUNDS",
                Severity.HIGH,
                f"tensor {name!r} has data offset {offset}, misaligned or past the end of the file",
                why="Native loaders that trust tensor offsets read out of bounds (llama.cpp GGUF "
                "parser CVEs).",
                symbol=name,
            )


def _template(key: str, template: str, ctx: ScanContext) -> Iterator[Finding]:
    from mlsec.scan.formats.chattemplate import template_findings

    yield from template_findings(key, template, ctx, rule="GGUF-CHAT-TEMPLATE-SSTI")
