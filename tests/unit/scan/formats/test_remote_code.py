"""Hugging Face remote code: auto_map / custom_pipelines references and the Python files they
name, analysed with ast (never imported)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlsec.artifact import open_artifact
from mlsec.scan import ScanReport, scan

CONFIG = {
    "architectures": ["XForCausalLM"],
    "model_type": "x",
    "auto_map": {
        "AutoConfig": "configuration_x.XConfig",
        "AutoModelForCausalLM": "modeling_x.XForCausalLM",
    },
}
TOKENIZER_CONFIG = {
    "tokenizer_class": "XTokenizer",
    "auto_map": {"AutoTokenizer": ["tokenization_x.XTokenizer", None]},
}
# what remote-code model files really look like at import time
MODELING = '''\
"""PyTorch X model."""
import math
import os
import importlib.util
from typing import Optional

import torch
from torch import nn
from transformers.modeling_utils import PreTrainedModel
from transformers.utils import logging

from .configuration_x import XConfig

logger = logging.get_logger(__name__)
_FLASH = importlib.util.find_spec("flash_attn") is not None
_DEBUG = os.environ.get("X_DEBUG", "0") == "1"
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "x")

try:
    from flash_attn import flash_attn_func
except ImportError:
    flash_attn_func = None


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class XPreTrainedModel(PreTrainedModel):
    config_class = XConfig
    base_model_prefix = "model"

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=0.02)


class XForCausalLM(XPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def download_extra(self, url):
        import subprocess  # runs only when called, not at import
        subprocess.run(["true"])


if __name__ == "__main__":
    os.system("echo testing")
'''
CONFIGURATION = """\
from transformers import PretrainedConfig


class XConfig(PretrainedConfig):
    model_type = "x"

    def __init__(self, hidden_size=64, vocab_size=100, **kwargs):
        self.hidden_size = hidden_size
        self.vocab_size = vocab_size
        super().__init__(**kwargs)
"""


def _repo(tmp_path: Path, files: dict[str, str | dict]) -> ScanReport:  # type: ignore[type-arg]
    d = tmp_path / "repo"
    d.mkdir(exist_ok=True)
    for name, content in files.items():
        (d / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return scan(open_artifact(d))


def _found(report: ScanReport) -> set[tuple[str, str, str]]:
    # only this analyzer's rules: whether text also sniffs as a pickle is the sniffer's business
    return {(f.file, f.rule, f.severity.value) for f in report.findings if f.rule.startswith("HF-")}


def test_shipped_remote_code_is_medium(tmp_path: Path) -> None:
    report = _repo(
        tmp_path,
        {
            "config.json": CONFIG,
            "tokenizer_config.json": TOKENIZER_CONFIG,
            "modeling_x.py": MODELING,
            "configuration_x.py": CONFIGURATION,
            "train.py": "import subprocess\n\ndef main():\n    subprocess.run(['ls'])\n",
        },
    )
    assert _found(report) == {
        ("config.json", "HF-REMOTE-CODE", "medium"),
        ("tokenizer_config.json", "HF-REMOTE-CODE", "medium"),
        ("modeling_x.py", "HF-REMOTE-CODE", "medium"),
        ("configuration_x.py", "HF-REMOTE-CODE", "medium"),
    }


def test_code_from_another_repository_is_high(tmp_path: Path) -> None:
    config = dict(CONFIG, auto_map={"AutoModel": "evil-org/helpers--modeling_y.YModel"})
    tok = {"auto_map": {"AutoTokenizer": ["other/repo--tokenization_z.Z", None]}}
    pipes = {"custom_pipelines": {"text-classification": {"impl": "org/p--pipe.P", "pt": []}}}
    report = _repo(
        tmp_path, {"config.json": config, "tokenizer_config.json": tok, "processor.json": pipes}
    )
    assert _found(report) == {
        ("config.json", "HF-REMOTE-CODE-EXTERNAL", "high"),
        ("tokenizer_config.json", "HF-REMOTE-CODE-EXTERNAL", "high"),
        ("processor.json", "HF-REMOTE-CODE-EXTERNAL", "high"),
    }


@pytest.mark.parametrize(
    ("snippet", "symbol"),
    [
        ("import os\nos.system('touch /tmp/pwned')\n", "os.system"),
        ("import subprocess as sp\nsp.Popen(['touch', 'x'])\n", "subprocess.Popen"),
        ("from os import popen as p\nX = p('id').read()\n", "os.popen"),
        ("exec('print(1)')\n", "exec"),
        ("__import__('os').system('id')\n", "os.system"),
        (
            "import urllib.request\nurllib.request.urlopen('http://x.invalid')\n",
            "urllib.request.urlopen",
        ),
        (
            "import socket\ns = socket.create_connection(('x.invalid', 80))\n",
            "socket.create_connection",
        ),
        ("import ctypes\nctypes.CDLL('libevil.so')\n", "ctypes.CDLL"),
        (
            "import requests\n\nclass A:\n    data = requests.get('http://x.invalid')\n",
            "requests.get",
        ),
        (
            "import os\n\ndef deco(f):\n    os.system('id')\n    return f\n\n@deco\ndef g():\n"
            "    pass\n",
            "os.system",
        ),
        ("import os\n\ndef f(x=os.system('id')):\n    pass\n", "os.system"),
        (
            "import subprocess\n\ndef _setup():\n    subprocess.call('id', shell=True)\n\n"
            "try:\n    _setup()\nexcept Exception:\n    pass\n",
            "subprocess.call",
        ),
        ("import os\nif True:\n    getattr(os, 'system')('id')\n", "getattr"),
    ],
)
def test_import_time_danger_is_critical(tmp_path: Path, snippet: str, symbol: str) -> None:
    report = _repo(tmp_path, {"modeling_x.py": MODELING + "\n" + snippet})
    crit = [f for f in report.findings if f.rule == "HF-REMOTE-CODE-IMPORT-TIME"]
    assert crit and {f.severity.value for f in crit} == {"critical"}
    assert symbol in {f.symbol for f in crit}


def test_import_time_danger_in_a_helper_module_is_high(tmp_path: Path) -> None:
    report = _repo(tmp_path, {"utils_x.py": "import os\nos.system('id')\n"})
    assert _found(report) == {("utils_x.py", "HF-REMOTE-CODE-IMPORT-TIME", "high")}


def test_names_that_only_look_like_modules(tmp_path: Path) -> None:
    src = "code = 'x'\ncode.replace('a', 'b')\nsocket = None\nimport os\nos.path.join('a')\n"
    report = _repo(tmp_path, {"modeling_x.py": src})
    assert _found(report) == {("modeling_x.py", "HF-REMOTE-CODE", "medium")}


def test_unparseable_remote_code_fails_closed(tmp_path: Path) -> None:
    report = _repo(tmp_path, {"modeling_x.py": "def broken(:\n", "notes.py": "not python ("})
    assert _found(report) == {("modeling_x.py", "HF-REMOTE-CODE-UNPARSEABLE", "high")}
