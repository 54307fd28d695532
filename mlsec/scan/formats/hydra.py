"""Hydra / OmegaConf configs: ``_target_`` names a callable that ``hydra.utils.instantiate``
imports and calls with the rest of the mapping as arguments.

NeMo ``.nemo`` archives (a tar with ``model_config.yaml``) and many training repos restore models
this way, so a config is code: ``_target_: os.system`` with ``_args_: ["…"]`` runs a command when
the model is restored. Every ``_target_`` is judged with the pickle rules (the same deny list,
module aliases and dunder checks): a dangerous callable is **critical**; any other target is
**low** — it imports and calls that code, which is what the application asked for when it chose
to instantiate the config, but it is reported so a reviewer sees what will run.

YAML is read as PyYAML's safe event stream, which needs no recursion at any depth; aliases are not
expanded (no "billion laughs" walk: a shared mapping is judged once, where it is defined). A file
that is not valid YAML cannot be instantiated either: it yields nothing (the loader would refuse it
too). A document nested deeper than :data:`MAX_DEPTH` is reported (``CONFIG-TOO-DEEP``, high).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.model import Finding, Severity
from mlsec.scan.pickle.rules import judge_global

__all__ = ["MAX_DEPTH", "TARGET_KEYS", "analyze_yaml", "target_findings", "too_deep_finding"]

_MAX_CONFIG = 16 * 1024 * 1024
_MAX_NODES = 1_000_000
MAX_DEPTH = 200  # levels; real configs (NeMo, Keras functional models) stay far below
_WALK_DEPTH = 1_000  # the walk stops here (CONFIG-TOO-DEEP already reported)
TARGET_KEYS = ("_target_", "_call_")
# _target_ keys, Jinja templates carried by a config (chat_template, prompt_template, …), and
# any backslash (a double-quoted key may spell them with escapes)
_PREFILTER = (*(k.encode() for k in TARGET_KEYS), b"mplat", b"MPLAT", b"\\")


def analyze_yaml(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """``_target_`` callables in a YAML config."""
    if blob.size > _MAX_CONFIG:
        return
    raw = blob.read()
    # A double-quoted key may spell ``_target_`` with escapes ("\x5ftarget_"): any backslash
    # means a full walk.
    if not any(k in raw for k in _PREFILTER):
        return
    if _flow_depth(raw) > _WALK_DEPTH:
        # PyYAML's scanner keeps every open flow level as a possible simple key and rescans them
        # for each token: thousands of "[" cost it seconds to minutes. Not parsed; reported.
        yield too_deep_finding(ctx, "")
        return
    import yaml

    try:
        found = list(_yaml_targets(yaml.parse(raw, Loader=yaml.SafeLoader), ctx))
    except (yaml.YAMLError, ValueError):
        return  # OmegaConf refuses a file PyYAML cannot parse: nothing can be instantiated
    yield from found


_FLOW_TOKENS = re.compile(rb"[\[\]{}]|'[^'\n]*'|\"(?:[^\"\\\n]|\\.)*\"")


def _flow_depth(raw: bytes) -> int:
    """The deepest nesting of YAML flow collections (brackets outside quoted scalars), counted
    without parsing; brackets are rare in configs, so this is cheap."""
    if raw.count(b"[") + raw.count(b"{") <= _WALK_DEPTH:
        return 0
    depth = deepest = 0
    for m in _FLOW_TOKENS.finditer(raw):
        c = m.group()[:1]
        if c in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in b"]}":
            depth = max(0, depth - 1)
    return deepest


class _Frame:
    __slots__ = ("is_map", "key", "label", "want_key")

    def __init__(self, is_map: bool, label: str) -> None:
        self.is_map = is_map
        self.label = label  # the key or "[]" under which this collection sits
        self.want_key = True
        self.key: str | None = None


def _where(stack: list[_Frame], last: str | None) -> str:
    """The path of the slot ``last`` in the innermost frame, built only when reported (and from
    the innermost levels only: a path rebuilt per event would cost the depth squared)."""
    labels = [f.label for f in stack[1:][-40:]]
    if last is not None:
        labels.append(last)
    path = ""
    for label in labels:
        path += label if label.startswith("[") or not path else f".{label}"
    return ("…" if len(stack) > 41 else "") + path


def _yaml_targets(events: Iterator[Any], ctx: ScanContext) -> Iterator[Finding]:
    """Walk PyYAML's event stream (its parser is a state machine, not recursive) instead of
    composing the document: PyYAML's composer recurses once per level and raises RecursionError
    a few hundred levels down, which used to hide a deeply nested ``_target_``. Every depth is
    walked down to 1,000 levels; a depth beyond :data:`MAX_DEPTH` is reported (fail closed)."""
    import yaml

    stack: list[_Frame] = []
    anchors: dict[str, str] = {}
    too_deep = False

    def slot() -> tuple[_Frame | None, str | None, str]:
        """The frame whose slot the next node fills, that slot's key (in a mapping's value
        position) and its label."""
        if not stack:
            return None, None, ""
        top = stack[-1]
        if not top.is_map:
            return top, None, "[]"
        if top.want_key:
            return top, None, "?"
        return top, top.key, top.key if top.key is not None else "?"

    def filled() -> None:
        if stack and stack[-1].is_map:
            top = stack[-1]
            top.want_key = not top.want_key
            if top.want_key:
                top.key = None

    for nodes, ev in enumerate(events, 1):
        if nodes > _MAX_NODES:
            yield _too_large(ctx)
            return
        if isinstance(ev, yaml.ScalarEvent | yaml.AliasEvent):
            if isinstance(ev, yaml.ScalarEvent):
                text: str | None = ev.value
                if ev.anchor is not None and len(anchors) < _MAX_NODES:
                    anchors[ev.anchor] = ev.value
            else:
                text = anchors.get(ev.anchor or "")
            top, key, label = slot()
            if top is not None and top.is_map and top.want_key:
                top.key = text if text is not None else "?"
            elif key in TARGET_KEYS:
                yield from _judge(text if text is not None else {}, _where(stack, label), ctx)
            elif key is not None and ("mplat" in key or "MPLAT" in key) and text is not None:
                yield from _template(key, text, _where(stack, label), ctx)
            filled()
        elif isinstance(ev, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            top, key, label = slot()
            if key in TARGET_KEYS:
                yield from _judge({}, _where(stack, label), ctx)  # a collection is no callable
            if len(stack) >= MAX_DEPTH and not too_deep:
                too_deep = True
                yield too_deep_finding(ctx, _where(stack, label))
            if len(stack) >= _WALK_DEPTH:
                return  # PyYAML's scanner costs the depth per token: stop (reported above)
            stack.append(_Frame(isinstance(ev, yaml.MappingStartEvent), label))
        elif isinstance(ev, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            stack.pop()
            filled()


def _template(key: str, text: str, where: str, ctx: ScanContext) -> Iterator[Finding]:
    from mlsec.scan.formats.chattemplate import is_jinja, template_findings

    strict = key == "chat_template"
    if strict or is_jinja(text):
        yield from template_findings(where, text, ctx, rule="CHAT-TEMPLATE-SSTI", strict=strict)


def too_deep_finding(ctx: ScanContext, where: str) -> Finding:
    """CONFIG-TOO-DEEP: a document nested beyond what loaders and the scanner bound."""
    return ctx.finding(
        "CONFIG-TOO-DEEP",
        Severity.HIGH,
        f"{short_path(where) or 'document'}: nested deeper than {MAX_DEPTH} levels",
        why="No real config is nested this deep; deep nesting exhausts recursive parsers "
        "(scanners' included) and has hidden callables from them.",
    )


def short_path(path: str) -> str:
    """A config path fit for a one-line message (deep ones keep their tail)."""
    return path if len(path) <= 160 else "…" + path[-120:]


def _too_large(ctx: ScanContext) -> Finding:
    return ctx.finding(
        "CONFIG-TOO-LARGE",
        Severity.HIGH,
        f"more than {_MAX_NODES} config nodes: not fully inspected",
        why="A config this large cannot be reviewed; it could hide a callable target.",
    )


def target_findings(doc: Any, ctx: ScanContext) -> Iterator[Finding]:
    """Findings for every ``_target_`` in the parsed config ``doc`` (walked without recursion;
    a depth beyond :data:`MAX_DEPTH` is also reported)."""
    seen: set[int] = set()
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    nodes = 0
    too_deep = False
    while stack:
        node, path, depth = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        nodes += 1
        if nodes > _MAX_NODES:
            yield _too_large(ctx)
            return
        if depth > MAX_DEPTH and not too_deep:
            too_deep = True
            yield too_deep_finding(ctx, path)
        if isinstance(node, dict):
            for key in TARGET_KEYS:
                target = node.get(key)
                if target is not None:
                    yield from _judge(target, f"{path}.{key}" if path else key, ctx)
            for k, v in node.items():
                if isinstance(v, dict | list):
                    stack.append((v, f"{path}.{k}" if path else str(k), depth + 1))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, dict | list):
                    stack.append((v, f"{path}[{i}]", depth + 1))


def _judge(target: object, where: str, ctx: ScanContext) -> Iterator[Finding]:
    where = short_path(where)
    if not isinstance(target, str) or "." not in target.strip("."):
        if isinstance(target, str) and target.strip():  # a builtin such as 'eval'
            target = f"builtins.{target.strip()}"
        else:
            yield ctx.finding(
                "HYDRA-TARGET-MALFORMED",
                Severity.HIGH,
                f"{where}: _target_ is not a dotted name ({target!r})",
                why="A target mlsec cannot read is a callable it cannot judge (fail closed).",
                symbol=str(target)[:200],
            )
            return
    module, _, name = str(target).strip().rpartition(".")
    verdict = judge_global(module, name)
    if verdict.severity is Severity.CRITICAL or verdict.rule == "PICKLE-DANGEROUS-GLOBAL":
        yield ctx.finding(
            "HYDRA-DANGEROUS-TARGET",
            Severity.CRITICAL,
            f"{where}: instantiating this config calls {target}",
            why=verdict.reason
            + "; hydra.utils.instantiate imports and calls _target_ with the mapping's arguments.",
            symbol=str(target),
        )
        return
    yield ctx.finding(
        "HYDRA-TARGET",
        Severity.LOW,
        f"{where}: instantiating this config imports and calls {target}",
        why="hydra.utils.instantiate (NeMo restore_from, many training repos) runs _target_; "
        "trust in that code is needed.",
        symbol=str(target),
    )
