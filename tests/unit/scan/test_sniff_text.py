"""Text is not pickle: the sniffer claims pickle only for a stream that parses to STOP the way
CPython's unpickler reads it. Text files of a model repository, written at test time, stay text
and scan clean; real protocol 0/1 pickles stay pickles; malicious protocol-0 text is caught."""

from __future__ import annotations

import argparse
import collections
import datetime
import io
import json
import pickle
import pickletools
from pathlib import Path

import pytest

from mlsec.artifact import open_artifact
from mlsec.formats import PICKLE_FIRST, Format, is_pickle_prefix, sniff, sniff_bytes
from mlsec.scan import scan
from tests.unit.scan.conftest import ScanBytes, rules_of

_APACHE = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/

   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION
"""

# What a Hugging Face model repository holds besides weights, as people write them.
TEXT_FILES: dict[str, str] = {
    "requirements.txt": "torch==2.1.0\ntransformers>=4.36\naccelerate\nsentencepiece\n",
    "requirements-dev.txt": "Pillow==10.0.0\nnumpy<2\nscipy\n",
    "requirements-gpu.txt": "triton==2.1.0; platform_system == 'Linux'\n",
    "constraints.txt": "(cuda) jax[cuda12]\n",
    "README.md": "---\nlicense: apache-2.0\ntags:\n- text-generation\n---\n# Model\n\nIt works.\n",
    "README-plain.md": "Mrs. Smith trained this model.\n",
    "vocab.txt": '[PAD]\n[unused0]\n[unused1]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n!\n"\n#\n',
    "vocab-words.txt": "the\nof\nand\nin\nto\nis\nwas\n",
    "vocab-bytes.txt": "".join(f"{c}\n" for c in "ItSNVFGLdlcgK(){}[]"),
    "merges.txt": "#version: 0.2\nĠ t\nĠ a\nh e\ni n\nr e\n",
    "merges-nohdr.txt": "t h\nth e\nĠ the\n",
    "config.yaml": "model:\n  name: llama\n  layers: 32\ntrainer:\n  lr: 3.0e-4\n",
    "hparams.yml": "lr: 0.1\nbatch_size: 32\n",
    "LICENSE": _APACHE,
    "LICENSE-MIT": "MIT License\n\nCopyright (c) 2024 Example Org\n",
    "COPYING": "Copyright (c) 2023 Meta Platforms, Inc. and affiliates. All rights reserved.\n",
    "NOTICE": 'Licensed under the Apache License, Version 2.0 (the "License");\n',
    ".gitattributes": "*.bin filter=lfs diff=lfs merge=lfs -text\n*.safetensors filter=lfs\n",
    "generation_config.txt": "Ko.\n",
    "labels.txt": "cat\ndog\nsystem\n",
    "classes.txt": "0\n1\n2\n",
    "Instructions.txt": "I1\nthen run\n",
    "special.txt": "S'quoted'\nwithout stop\n",
    "tags.txt": "(dp0\nand then prose\n",
}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("name", sorted(TEXT_FILES))
def test_repository_text_is_not_pickle(tmp_path: Path, scan_bytes: ScanBytes, name: str) -> None:
    text = TEXT_FILES[name]
    p = _write(tmp_path, name, text)
    assert sniff(p) is not Format.PICKLE
    report = scan_bytes(text.encode(), name)
    assert report.files[0].format != "pickle"
    assert not report.findings, report.findings


def test_tokenizer_json_and_config_are_json(tmp_path: Path, scan_bytes: ScanBytes) -> None:
    tok = {
        "version": "1.0",
        "truncation": None,
        "added_tokens": [{"id": 0, "content": "<unk>", "special": True}],
        "model": {"type": "BPE", "vocab": {"t": 0, "h": 1, "th": 2}, "merges": ["t h"]},
    }
    data = json.dumps(tok, indent=2).encode()
    assert sniff(_write(tmp_path, "tokenizer.json", data.decode())) is Format.JSON
    assert not scan_bytes(data, "tokenizer.json").findings


def test_sentencepiece_model_is_not_pickle(tmp_path: Path) -> None:
    spm = pytest.importorskip("sentencepiece")
    corpus = _write(tmp_path, "corpus.txt", "the quick brown fox jumps over the lazy dog\n" * 50)
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=30
    )
    assert sniff(tmp_path / "sp.model") is not Format.PICKLE
    assert sniff(tmp_path / "sp.vocab") is Format.TEXT
    for name in ("sp.model", "sp.vocab"):
        report = scan(open_artifact(tmp_path / name))
        assert not report.findings, report.findings


def _benign_objects() -> list[object]:
    return [
        {"a": 1, "b": [1, 2.0, "x", None, True], "c": (1, 2)},
        list(range(30_000)),  # longer than the sniffing prefix
        {f"key{i}": i for i in range(8_000)},
        collections.OrderedDict(weight=[0.5, 1.5]),
        argparse.Namespace(lr=0.1, arch="resnet"),
        datetime.date(2024, 1, 1),
        len,
        b"bytes",
        "text",
        3.25,
        {1, 2, 3},
    ]


@pytest.mark.parametrize("protocol", [0, 1])
def test_real_protocol_0_and_1_pickles_are_pickle(tmp_path: Path, protocol: int) -> None:
    for i, obj in enumerate(_benign_objects()):
        data = pickle.dumps(obj, protocol=protocol)
        p = tmp_path / f"o{i}.pkl"
        p.write_bytes(data)
        assert sniff(p) is Format.PICKLE, (obj, data[:40])


@pytest.mark.parametrize("protocol", [0, 1])
def test_legacy_torch_save_with_old_protocols_is_pickle(tmp_path: Path, protocol: int) -> None:
    torch = pytest.importorskip("torch")
    for i, obj in enumerate([{"w": torch.zeros(3)}, torch.nn.Linear(2, 2)]):
        p = tmp_path / f"m{i}.pt"
        torch.save(obj, p, pickle_protocol=protocol, _use_new_zipfile_serialization=False)
        assert sniff(p) is Format.PICKLE


MALICIOUS = [
    b"cos\nsystem\n(S'touch pwned'\ntR.",
    b"cposix\nsystem\n(S'touch pwned'\ntR.",
    b"(S'touch pwned'\nios\nsystem\n.",  # INST
    b"cos\nsystem\np0\n(g0\nS'touch pwned'\ntR.",
    b"cbuiltins\nexec\n(Vimport os; os.system('touch pwned')\ntR.",
]


@pytest.mark.parametrize("data", MALICIOUS)
def test_malicious_protocol_0_is_pickle_and_caught(scan_bytes: ScanBytes, data: bytes) -> None:
    assert sniff_bytes(data, name="requirements.txt") is Format.PICKLE
    report = scan_bytes(data, "requirements.txt")
    assert report.files[0].format == "pickle"
    assert any(f.severity.value == "critical" for f in report.findings), report.findings


@pytest.mark.parametrize("tail", [b"\n", b"{{ garbage", b"\xff\xfe"])
def test_text_that_imports_before_breaking_is_caught(scan_bytes: ScanBytes, tail: bytes) -> None:
    # Not a complete pickle, so not sniffed as one; pickle.load still runs the import and call
    # before it fails, and the pickle probe of text reports it.
    data = b"cos\nsystem\n(S'touch pwned'\ntR" + tail
    report = scan_bytes(data, "requirements.txt")
    assert "os.system" in {f.symbol for f in report.findings}, report.findings


def test_stack_discipline_decides() -> None:
    assert not is_pickle_prefix(b"t.")  # TUPLE without a MARK
    assert not is_pickle_prefix(b"(.")  # STOP with nothing above the MARK
    assert is_pickle_prefix(b"(I1\n.")  # CPython returns 1: an open MARK is allowed at STOP
    assert not is_pickle_prefix(b"g0\n.")  # GET of an undefined memo key
    assert not is_pickle_prefix(b"(I1\nd.")  # DICT of an odd number of items
    assert not is_pickle_prefix(b"config:\n  lr: 1\n.")  # GLOBAL of a name that cannot import
    assert is_pickle_prefix(b"N.")
    assert is_pickle_prefix(b"N(0.")  # POP of nothing above a MARK pops the MARK (CPython)
    assert not is_pickle_prefix(b"0N.")  # POP of an empty stack
    assert is_pickle_prefix(b"N.\x00\x00\x00")  # pickle.load stops at STOP: padding after it
    assert is_pickle_prefix(b"N.N.\x93\x01\xff")  # streams, then raw bytes (legacy torch)
    assert not is_pickle_prefix(b"N.ICE: prose after a full stop")
    assert not is_pickle_prefix(b"I1x\n.")  # INT of a line that is no number


def test_pickle_first_bytes_are_the_opcodes_an_empty_stack_allows() -> None:
    puts = {"PUT", "BINPUT", "LONG_BINPUT"}
    expected = {
        o.code.encode("latin-1")[0]
        for o in pickletools.opcodes
        if not o.stack_before and o.name not in puts and o.proto <= 1
    }
    assert expected == PICKLE_FIRST


def test_headerless_protocol_2_opcodes_are_left_to_the_probe(scan_bytes: ScanBytes) -> None:
    # SHORT_BINUNICODE / STACK_GLOBAL without PROTO: not what pickle.dump writes, but loadable.
    def s(text: str) -> bytes:
        return b"\x8c" + bytes([len(text)]) + text.encode()

    data = s("os") + s("system") + b"\x93" + s("true") + b"\x85R."
    assert sniff_bytes(data) is Format.UNKNOWN
    report = scan_bytes(data, "weights.bin")
    assert "PICKLE-DISGUISED" in rules_of(report)
    assert any(f.severity.value == "critical" for f in report.findings)


def test_cut_prefix_of_a_long_pickle_still_counts() -> None:
    data = pickle.dumps(list(range(100_000)), protocol=0)
    assert is_pickle_prefix(data[:65536])
    assert not is_pickle_prefix(io.BytesIO(b"I1\nI2\n").read())  # no STOP, few opcodes


_ORACLE = """
import io, json, pickle, sys
out = []
for h in json.load(sys.stdin):
    f = io.BytesIO(bytes.fromhex(h))
    try:
        pickle.Unpickler(f).load()
        out.append(f.tell())
    except Exception:
        out.append(-1)
print(json.dumps(out))
"""

# Import-free protocol 0/1 opcodes (nothing in them can call anything), with valid arguments.
_PIECES = [b"(", b"N", b"I1\n", b"I01\n", b"K\x05", b"M\x01\x02", b"J\x00\x00\x00\x01", b"L5L\n"]
_PIECES += [b"F1.5\n", b"S'a'\n", b"Vb\n", b"U\x01c", b"X\x01\x00\x00\x00d", b"]", b")", b"}"]
_PIECES += [b"a", b"e", b"l", b"t", b"d", b"s", b"u", b"0", b"1", b"2", b"p0\n", b"g0\n", b"q\x01"]
_PIECES += [b"h\x01", b".", b"."]
_PIECES += [b"\x85", b"\x86", b"\x87", b"\x88", b"\x8c\x01e", b"\x94", b"\x8f", b"\x90", b"\x91"]


def test_stack_discipline_matches_cpython_on_random_streams() -> None:
    """Differential: CPython (in a throwaway subprocess) loads a random import-free stream up to
    its STOP exactly when the sniffer's check says it reaches STOP there."""
    import json
    import random
    import subprocess
    import sys

    from mlsec.formats import _pickle_stream

    rng = random.Random(11)
    streams = [b"".join(rng.choices(_PIECES, k=rng.randint(1, 12))) for _ in range(6000)]
    proc = subprocess.run(
        [sys.executable, "-c", _ORACLE],
        input=json.dumps([s.hex() for s in streams]),
        capture_output=True,
        text=True,
        check=True,
    )
    for data, end in zip(streams, json.loads(proc.stdout), strict=True):
        verdict, ours = _pickle_stream(data, 0)
        if end >= 0:
            assert (verdict, ours) == ("stop", end), data
        else:
            assert verdict != "stop", data
