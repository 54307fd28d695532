"""Configuration files that loaders execute from: Keras model JSON (``model.to_json()``, loaded by
``model_from_json``), Hugging Face chat templates (``tokenizer_config.json``'s
``chat_template``, ``chat_template.jinja``), which are rendered with Jinja2, and Hydra
``_target_`` callables (see :mod:`mlsec.scan.formats.hydra`).

Only files that look like one of these are inspected; other JSON and text yield nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.formats.gguf import template_escapes
from mlsec.scan.formats.hydra import TARGET_KEYS, target_findings, too_deep_finding
from mlsec.scan.formats.keras import config_findings
from mlsec.scan.model import Finding, Severity

__all__ = ["analyze_json", "analyze_text"]

_MAX_JSON = 64 * 1024 * 1024
_MAX_TEMPLATE = 4 * 1024 * 1024
_TARGETS = tuple(f'"{k}"'.encode() for k in TARGET_KEYS)


def _looks_like_keras(doc: dict[str, Any]) -> bool:
    module = doc.get("module")
    return (isinstance(doc.get("class_name"), str) and "config" in doc) or (
        isinstance(module, str) and module.startswith("keras")
    )


def analyze_json(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """Keras model configs and chat templates held in a JSON file."""
    if blob.size > _MAX_JSON:
        return
    raw = blob.read()
    keys = (b'"class_name"', b'"module"', b'"chat_template"', b"\\u", *_TARGETS)
    if not any(k in raw for k in keys):
        # A cheap exit for the large JSON files of a model repo (tokenizer.json, indexes). Keys
        # spelled with \u escapes decode to the same names, so any escape means a full parse.
        return
    try:
        doc = json.loads(raw)
    except RecursionError:
        # json's decoder recurses once per level: past the interpreter's limit nothing below
        # was seen, and it may hold a _target_ or a Lambda (fail closed).
        yield too_deep_finding(ctx, "")
        return
    except ValueError:
        return  # JSON sniffing looks at a prefix only; a non-JSON text file is not a finding
    if not isinstance(doc, dict):
        return
    name = ctx.member or ctx.file
    if _looks_like_keras(doc):
        yield from config_findings(doc, ctx, name)
    if b"\\u" in raw or any(k in raw for k in _TARGETS):
        yield from target_findings(doc, ctx)
    templates = doc.get("chat_template")
    if isinstance(templates, str):
        yield from _template("chat_template", templates, ctx)
    elif isinstance(templates, list):
        for t in templates:
            if isinstance(t, dict) and isinstance(t.get("template"), str):
                yield from _template(f"chat_template[{t.get('name')}]", t["template"], ctx)


def analyze_text(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """A Jinja chat template saved on its own (``chat_template.jinja``), or a SavedModel in
    protobuf text format (``saved_model.pbtxt``)."""
    name = (ctx.member or ctx.file).lower()
    if name.endswith(".pbtxt"):
        from mlsec.scan.formats.savedmodel import analyze_pbtxt

        yield from analyze_pbtxt(blob, ctx)
        return
    if not name.endswith(".jinja") or blob.size > _MAX_TEMPLATE:
        return
    yield from _template(name.rsplit("/", 1)[-1], blob.read().decode("utf-8", "replace"), ctx)


def _template(key: str, template: str, ctx: ScanContext) -> Iterator[Finding]:
    hits = template_escapes(template)
    if hits:
        yield ctx.finding(
            "CHAT-TEMPLATE-SSTI",
            Severity.HIGH,
            f"{key} uses {', '.join(hits)}: a Jinja2 sandbox escape attempt",
            why="Chat templates are rendered with Jinja2 by every serving stack; transformers "
            "sandboxes them, others have not (CVE-2024-34359).",
            symbol=key,
        )
