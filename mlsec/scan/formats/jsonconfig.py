"""Configuration files that loaders execute from: Keras model JSON (``model.to_json()``, loaded by
``model_from_json``), Hugging Face chat templates (``tokenizer_config.json``'s
``chat_template``, ``chat_template.jinja``, any config key naming a template), which are rendered
with Jinja2 (see :mod:`mlsec.scan.formats.chattemplate`), and Hydra ``_target_`` callables (see
:mod:`mlsec.scan.formats.hydra`).

Only files that look like one of these are inspected; other JSON and text yield nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.formats.chattemplate import is_jinja, template_findings
from mlsec.scan.formats.hydra import TARGET_KEYS, short_path, target_findings, too_deep_finding
from mlsec.scan.formats.keras import config_findings
from mlsec.scan.model import Finding

__all__ = ["analyze_json", "analyze_text"]

_MAX_JSON = 64 * 1024 * 1024
_MAX_TEMPLATE = 4 * 1024 * 1024
_MAX_NODES = 1_000_000
_TARGETS = tuple(f'"{k}"'.encode() for k in TARGET_KEYS)
# Any of these in the bytes means a full parse (\u: keys may be spelled with escapes).
_KEYS = (
    b'"class_name"', b'"module"', b'emplate"', b"\\u", b'"auto_map"', b'"custom_pipelines"',
    *_TARGETS,
)  # fmt: skip


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
    if _is_template_file(ctx):  # a large template that starts with "{%" sniffs as JSON
        yield from _template_file(blob, ctx)
        return
    if not any(k in raw for k in _KEYS):
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
    if "auto_map" in doc or "custom_pipelines" in doc:
        from mlsec.scan.formats.remotecode import config_findings as remote_code_findings

        yield from remote_code_findings(doc, ctx)
    if b"mplat" in raw or b"MPLAT" in raw or _ESCAPED_MPLAT.search(raw):
        yield from _templates(doc, ctx)


# "template" with one of m, p, l, a, t spelled as a \u escape (tokenizer.json files are full of
# other escapes and need no template walk)
_ESCAPED_MPLAT = re.compile(rb"\\u00(?:6[dD]|70|6[cC]|61|74|4[dD]|50|4[cC]|41|54)")


def _templates(doc: Any, ctx: ScanContext) -> Iterator[Finding]:
    """Jinja templates anywhere in a config: ``chat_template`` (a string, or a list of
    ``{name, template}``) is rendered as Jinja2, so it is checked strictly; any other string under
    a key naming a template is checked when it holds Jinja syntax."""
    stack: list[tuple[Any, str, bool]] = [(doc, "", False)]
    nodes = 0
    while stack and nodes < _MAX_NODES:
        node, path, chat = stack.pop()
        nodes += 1
        if isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, dict | list):
                    stack.append((v, f"{path}[{i}]", chat))
                elif chat and isinstance(v, str):
                    yield from template_findings(short_path(f"{path}[{i}]"), v, ctx, rule=_RULE)
            continue
        for k, v in node.items():
            # cheap test first: tokenizer.json holds hundreds of thousands of keys
            named = isinstance(k, str) and ("mplat" in k or "MPLAT" in k)
            if isinstance(v, dict | list):
                stack.append((v, f"{path}.{k}" if path else str(k), chat or k == "chat_template"))
            elif named and isinstance(v, str):
                strict = chat or k == "chat_template"
                if strict or is_jinja(v):
                    where = short_path(f"{path}.{k}" if path else str(k))
                    yield from template_findings(where, v, ctx, rule=_RULE, strict=strict)


def analyze_text(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """A Jinja chat template saved on its own (``chat_template.jinja``, ``*.j2``, ``*.template``),
    or a SavedModel in protobuf text format (``saved_model.pbtxt``)."""
    name = (ctx.member or ctx.file).lower()
    if name.endswith(".pbtxt"):
        from mlsec.scan.formats.savedmodel import analyze_pbtxt

        yield from analyze_pbtxt(blob, ctx)
        return
    if _is_template_file(ctx):
        yield from _template_file(blob, ctx)


_JINJA_SUFFIXES = (".jinja", ".jinja2", ".j2")
_TEMPLATE_SUFFIXES = (*_JINJA_SUFFIXES, ".template", ".tmpl", ".tpl")


def _is_template_file(ctx: ScanContext) -> bool:
    return (ctx.member or ctx.file).lower().endswith(_TEMPLATE_SUFFIXES)


def _template_file(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    name = (ctx.member or ctx.file).rsplit("/", 1)[-1]
    strict = name.lower().endswith(_JINJA_SUFFIXES)  # other suffixes: maybe not Jinja at all
    if blob.size > _MAX_TEMPLATE:
        yield from template_findings(name, " " * (_MAX_TEMPLATE + 1), ctx, rule=_RULE)
        return
    text = blob.read().decode("utf-8", "replace")
    if strict or is_jinja(text):
        yield from template_findings(name, text, ctx, rule=_RULE, strict=strict)


_RULE = "CHAT-TEMPLATE-SSTI"
