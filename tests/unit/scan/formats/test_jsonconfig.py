"""Keras model JSON and Hugging Face chat templates (tokenizer_config.json, chat_template.jinja)."""

from __future__ import annotations

import json
from pathlib import Path

from mlsec.artifact import open_artifact
from mlsec.scan import scan
from tests.unit.scan.formats.helpers import Member, build_zip, rules, scan_bytes
from tests.unit.scan.formats.test_gguf import LLAMA3_TEMPLATE
from tests.unit.scan.formats.test_keras import DENSE, _lambda_v3, _sequential


def _write(tmp_path: Path, files: dict[str, str]):  # type: ignore[no-untyped-def]
    d = tmp_path / "model"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(text)
    return scan(open_artifact(d))


def test_hugging_face_repo_is_clean(tmp_path: Path) -> None:
    report = _write(
        tmp_path,
        {
            "config.json": json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 64}),
            "tokenizer_config.json": json.dumps({"chat_template": LLAMA3_TEMPLATE}),
            "chat_template.jinja": LLAMA3_TEMPLATE,
            "README.md": "# model\nuse __init__ wisely\n",
        },
    )
    assert report.findings == ()


def test_keras_model_json_with_lambda(tmp_path: Path) -> None:
    report = _write(tmp_path, {"model.json": json.dumps(_sequential(DENSE, _lambda_v3()))})
    assert rules(report) == {"KERAS-LAMBDA"}


def test_tokenizer_chat_template_ssti(tmp_path: Path) -> None:
    evil = LLAMA3_TEMPLATE + "{{ cycler.__init__.__globals__.os.popen('touch pwned') }}"
    report = _write(
        tmp_path,
        {
            "tokenizer_config.json": json.dumps(
                {"chat_template": [{"name": "default", "template": evil}]}
            ),
            "chat_template.jinja": evil,
        },
    )
    assert [(f.rule, f.severity) for f in report.findings] == [
        ("CHAT-TEMPLATE-SSTI", "critical")
    ] * 2


def test_keras_config_inside_a_plain_zip(tmp_path: Path) -> None:
    cfg = json.dumps(_sequential(_lambda_v3()))
    data = build_zip([Member("config.json", cfg.encode()), Member("metadata.json", b"{}")])
    assert "KERAS-LAMBDA" in rules(scan_bytes(tmp_path, data, "model.zip"))


def test_escaped_keys_do_not_dodge_the_check(tmp_path: Path) -> None:
    text = json.dumps(_sequential(_lambda_v3()))
    text = text.replace('"class_name"', '"\\u0063lass_name"').replace('"module"', '"\\u006dodule"')
    assert '"class_name"' not in text and '"module"' not in text
    report = _write(tmp_path, {"model.json": text})
    assert "KERAS-LAMBDA" in rules(report)
