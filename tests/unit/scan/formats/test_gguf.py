"""GGUF header sanity and chat-template sandbox escapes (files written byte by byte)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.unit.scan.formats.helpers import rules, scan_bytes

LLAMA3_TEMPLATE = (
    "{{- bos_token }}{%- set ns = namespace(found=false) -%}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + message['content'] | trim }}"
    "{%- else %}{{- raise_exception('bad role') if loop.index0 > 100 else '' }}"
    "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


def _s(text: str | bytes) -> bytes:
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def gguf(
    kvs: list[tuple[str, int, bytes]],
    tensors: list[tuple[str, list[int], int]] = (),  # type: ignore[assignment]
    *,
    version: int = 3,
    n_kv: int | None = None,
    n_tensors: int | None = None,
) -> bytes:
    out = b"GGUF" + struct.pack(
        "<IQQ",
        version,
        len(tensors) if n_tensors is None else n_tensors,
        len(kvs) if n_kv is None else n_kv,
    )
    for key, vtype, raw in kvs:
        out += _s(key) + struct.pack("<I", vtype) + raw
    offset = 0
    for name, dims, ttype in tensors:
        out += (
            _s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        )
        out += struct.pack("<IQ", ttype, offset)
        offset += 32
    out += b"\0" * (-len(out) % 32) + b"\0" * offset
    return out


def _base_kvs(template: str = LLAMA3_TEMPLATE) -> list[tuple[str, int, bytes]]:
    tokens = struct.pack("<IQ", 8, 3) + _s("<s>") + _s("</s>") + _s("hi")
    return [
        ("general.architecture", 8, _s("llama")),
        ("general.alignment", 4, struct.pack("<I", 32)),
        ("llama.context_length", 4, struct.pack("<I", 4096)),
        ("tokenizer.ggml.tokens", 9, tokens),
        ("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 3) + b"\0" * 12),
        ("tokenizer.chat_template", 8, _s(template)),
    ]


def test_benign_file(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, gguf(_base_kvs(), [("tok.weight", [4, 2], 0)]), "m.gguf")
    assert report.files[0].format == "gguf"
    assert report.findings == ()


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('touch x') }}",
        "{{ lipsum.__globals__['os'].popen('touch pwned').read() }}",
        "{{ cycler.__init__.__globals__.os.popen('touch pwned') }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__.os.system('touch pwned') }}",
        "{{ ()|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
        "{% for x in ().__class__.__base__.__subclasses__() %}{% endfor %}",
    ],
)
def test_cve_2024_34359_chat_template_ssti(tmp_path: Path, payload: str) -> None:
    report = scan_bytes(tmp_path, gguf(_base_kvs(LLAMA3_TEMPLATE + payload)), "m.gguf")
    [f] = report.findings
    assert (f.rule, f.severity) == ("GGUF-CHAT-TEMPLATE-SSTI", "critical")


def test_named_chat_template_is_checked(tmp_path: Path) -> None:
    kvs = [*_base_kvs(), ("tokenizer.chat_template.tool_use", 8, _s("{{ lipsum.__globals__ }}"))]
    assert "GGUF-CHAT-TEMPLATE-SSTI" in rules(scan_bytes(tmp_path, gguf(kvs), "m.gguf"))


@pytest.mark.parametrize(
    "data",
    [
        gguf(_base_kvs(), version=99),
        gguf(_base_kvs(), n_kv=10**12),
        gguf(_base_kvs(), n_tensors=10**15),
        gguf([("k", 8, struct.pack("<Q", 10**9) + b"abc")]),  # string longer than the file
        gguf([("k", 9, struct.pack("<IQ", 8, 10**12))]),  # array count beyond the file
        gguf([("k", 9, struct.pack("<IQ", 6, 10**12))]),
        gguf([("k", 77, b"")]),  # unknown value type
        gguf([], [("t", [1, 2, 3, 4, 5], 0)]),  # too many dims (llama.cpp overflow class)
        gguf([], [("t", [2**40, 2**40], 0)]),
        b"GGUF\x03\x00\x00\x00",
    ],
)
def test_malformed_headers_fail_closed(tmp_path: Path, data: bytes) -> None:
    report = scan_bytes(tmp_path, data, "m.gguf")
    assert report.files[0].format == "gguf"
    assert "PARSE-ERROR" in rules(report)


def test_duplicate_key(tmp_path: Path) -> None:
    kvs = [*_base_kvs(), ("tokenizer.chat_template", 8, _s("{{ 1 }}"))]
    assert "GGUF-DUPLICATE-KEY" in rules(scan_bytes(tmp_path, gguf(kvs), "m.gguf"))


def test_version1_u32_lengths(tmp_path: Path) -> None:
    key = b"tokenizer.chat_template"
    tpl = b"{{ cycler.__init__ }}"
    data = b"GGUF" + struct.pack("<III", 1, 0, 1) + struct.pack("<I", len(key)) + key
    data += struct.pack("<I", 8) + struct.pack("<I", len(tpl)) + tpl
    assert "GGUF-CHAT-TEMPLATE-SSTI" in rules(scan_bytes(tmp_path, data, "m.gguf"))


def test_tensor_offset_past_the_end(tmp_path: Path) -> None:
    data = gguf(_base_kvs(), [("a", [4], 0), ("b", [4], 0)])
    # the second tensor's (type, offset) pair: point it far outside the file
    broken = data.replace(struct.pack("<IQ", 0, 32), struct.pack("<IQ", 0, 1 << 40))
    assert broken != data
    assert "GGUF-TENSOR-OUT-OF-BOUNDS" in rules(scan_bytes(tmp_path, broken, "m.gguf"))


def test_bad_alignment(tmp_path: Path) -> None:
    kvs = [
        (k, t, v if k != "general.alignment" else struct.pack("<I", 24)) for k, t, v in _base_kvs()
    ]
    assert "PARSE-ERROR" in rules(scan_bytes(tmp_path, gguf(kvs), "m.gguf"))
