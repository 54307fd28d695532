"""Hydra / OmegaConf configs: ``_target_`` names a callable that ``hydra.utils.instantiate``
imports and calls with the rest of the mapping as arguments.

NeMo ``.nemo`` archives (a tar with ``model_config.yaml``) and many training repos restore models
this way, so a config is code: ``_target_: os.system`` with ``_args_: ["…"]`` runs a command when
the model is restored. Every ``_target_`` is judged with the pickle rules (the same deny list,
module aliases and dunder checks): a dangerous callable is **critical**; any other target is
**low** — it imports and calls that code, which is what the application asked for when it chose
to instantiate the config, but it is reported so a reviewer sees what will run.

YAML is parsed with PyYAML's safe loader; each mapping is visited once even when anchors share it
(no "billion laughs" walk). A file that is not valid YAML cannot be instantiated either: it yields
nothing (the loader would refuse it too).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlsec.scan.base import Blob, ScanContext
from mlsec.scan.model import Finding, Severity
from mlsec.scan.pickle.rules import judge_global

__all__ = ["TARGET_KEYS", "analyze_yaml", "target_findings"]

_MAX_CONFIG = 16 * 1024 * 1024
_MAX_NODES = 1_000_000
TARGET_KEYS = ("_target_", "_call_")


def analyze_yaml(blob: Blob, ctx: ScanContext) -> Iterator[Finding]:
    """``_target_`` callables in a YAML config."""
    if blob.size > _MAX_CONFIG:
        return
    raw = blob.read()
    if not any(k.encode() in raw for k in TARGET_KEYS):
        return
    import yaml

    try:
        doc = yaml.load(raw, Loader=yaml.SafeLoader)  # SafeLoader: no object construction
    except (yaml.YAMLError, RecursionError, ValueError):
        return
    yield from target_findings(doc, ctx)


def target_findings(doc: Any, ctx: ScanContext) -> Iterator[Finding]:
    """Findings for every ``_target_`` in the parsed config ``doc``."""
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(doc, "")]
    nodes = 0
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        nodes += 1
        if nodes > _MAX_NODES:
            yield ctx.finding(
                "CONFIG-TOO-LARGE",
                Severity.HIGH,
                f"more than {_MAX_NODES} config nodes: not fully inspected",
                why="A config this large cannot be reviewed; it could hide a callable target.",
            )
            return
        if isinstance(node, dict):
            for key in TARGET_KEYS:
                target = node.get(key)
                if target is not None:
                    yield from _judge(target, f"{path}.{key}" if path else key, ctx)
            for k, v in node.items():
                if isinstance(v, dict | list):
                    stack.append((v, f"{path}.{k}" if path else str(k)))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, dict | list):
                    stack.append((v, f"{path}[{i}]"))


def _judge(target: object, where: str, ctx: ScanContext) -> Iterator[Finding]:
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
