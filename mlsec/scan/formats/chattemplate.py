"""Jinja2 chat templates (``tokenizer_config.json`` ``chat_template``, GGUF
``tokenizer.chat_template``, ``*.jinja`` files, templates carried by other configs).

Serving stacks render these with Jinja2, some without its sandbox (CVE-2024-34359: llama-cpp-python
rendered GGUF templates with a plain ``jinja2.Environment``). A template escapes to Python through
attribute walks: ``cycler.__init__.__globals__.os.popen(...)``, ``''.__class__.__mro__[1]
.__subclasses__()``, ``self._TemplateReference__context``, ``|attr('__globals__')``, or the same
names assembled from pieces (``'__gl' ~ 'obals__'``, escapes such as ``'\\x5f'``).

The template is parsed with Jinja2's own parser (never rendered: no code runs) with the extensions
transformers enables, and its syntax tree walked without recursion. String expressions built from
constants are folded, so a dunder spelled in pieces is seen whole. A template that Jinja2 cannot
parse, or nests deeper than the parser survives, is a finding (fail closed).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from typing import Any

from mlsec.scan.base import ScanContext
from mlsec.scan.model import Finding, Severity

__all__ = ["is_jinja", "template_escapes", "template_findings"]

_MAX_TEMPLATE = 4 * 1024 * 1024
_MAX_NODES = 500_000

# Objects whose attributes lead to Python internals (Jinja / Flask globals used in SSTI chains).
_GADGET_NAMES = frozenset(
    {
        "cycler", "joiner", "namespace", "lipsum", "self", "config", "request", "url_for",
        "get_flashed_messages", "session", "g", "range", "dict", "loop",
    }
)  # fmt: skip
# Names that are modules or interpreter internals, never a chat template's variables.
_DANGEROUS_NAMES = frozenset(
    {
        "os", "subprocess", "sys", "builtins", "__builtins__", "importlib", "posix", "nt",
        "socket", "ctypes", "pty", "__import__", "eval", "exec", "getattr", "globals",
    }
)  # fmt: skip
# Globals of Jinja and of web frameworks that no chat template needs, used as entry points to
# Python objects in SSTI chains (``lipsum.__globals__``, ``self._TemplateReference__context``,
# Flask's ``request``/``url_for``/``get_flashed_messages``).
_HOST_GLOBALS = frozenset({"lipsum", "self", "request", "url_for", "get_flashed_messages"})
# Attribute names that only a sandbox escape reaches for.
_DANGEROUS_ATTRS = frozenset(
    {
        "mro", "subclasses", "popen", "system", "spawn", "execv", "execve", "execl", "fork",
        "getoutput", "check_output", "check_call", "import_module", "func_globals", "f_globals",
        "f_locals", "f_builtins", "f_back", "gi_frame", "gi_code", "cr_frame", "ag_frame",
        "tb_frame", "tb_next", "co_code", "os", "subprocess", "builtins", "sys", "modules",
    }
)  # fmt: skip
_LOADING_TAGS = ("Include", "Import", "FromImport", "Extends")
_DUNDER = re.compile(r"__\w+__")
# Filters and tests that read attributes by a name given as an argument.
_ATTRIBUTE_FILTERS = frozenset(
    {"map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique", "min", "max"}
)
# A str.format replacement field that walks attributes or items ("{0.__class__}", "{0[_x]}").
_FORMAT_WALK = re.compile(r"\{[^{}]*[.\[]_")
_FOLD_BUDGET = 200_000
_MAX_FOLD_DEPTH = 64


def is_jinja(text: str) -> bool:
    """Whether ``text`` holds Jinja2 syntax at all."""
    return "{{" in text or "{%" in text or "{#" in text


def _environment() -> Any:
    import jinja2
    import jinja2.ext
    from jinja2 import nodes

    class _Generation(jinja2.ext.Extension):
        # transformers' {% generation %} … {% endgeneration %} block (AssistantTracker)
        tags = {"generation"}  # noqa: RUF012 - jinja2's Extension API

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    return jinja2.Environment(  # noqa: S701 - parsed only, never rendered
        extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", _Generation]
    )


def template_escapes(template: str) -> tuple[list[str], str | None]:
    """What in a Jinja2 template reaches Python internals (empty for benign templates), and why
    it could not be analysed (None when it could). Never renders the template."""
    try:
        import jinja2
    except ImportError:
        return [], "jinja2 is not installed, so the template was not parsed"
    try:
        tree = _environment().parse(template)
    except RecursionError:
        return [], "nested deeper than Jinja2's parser can follow"
    except jinja2.TemplateSyntaxError as exc:
        return [], f"Jinja2 cannot parse it (line {exc.lineno}: {exc.message})"
    except (ValueError, MemoryError) as exc:
        return [], f"Jinja2 cannot parse it ({exc.__class__.__name__})"
    return _walk(tree), None


def _walk(tree: Any) -> list[str]:
    from jinja2 import nodes

    hits: dict[str, None] = {}
    budget = [_FOLD_BUDGET]
    everything: list[Any] = []
    queue: deque[Any] = deque([tree])
    while queue:  # breadth first, no recursion (Node.find_all recurses)
        node = queue.popleft()
        everything.append(node)
        if len(everything) > _MAX_NODES:
            hits["a template too large to inspect"] = None
            break
        queue.extend(node.iter_child_nodes())
    # names the template binds itself ({% set sys = … %}, loop targets, macro arguments) are its
    # own variables, not the Python modules they are named after
    bound = {
        n.name for n in everything if isinstance(n, nodes.Name) and n.ctx in ("store", "param")
    }
    for node in everything:
        if isinstance(node, nodes.Getattr):
            _attr(node.attr, hits, node.node)
            if (
                node.attr in ("format", "format_map")
                and isinstance(node.node, nodes.Const)
                and isinstance(node.node.value, str)
                and _FORMAT_WALK.search(node.node.value)
            ):
                hits["str.format walking attributes"] = None
        elif isinstance(node, nodes.Getitem):
            key = _fold(node.arg, budget)
            if isinstance(key, str):
                _attr(key, hits, node.node)
        elif isinstance(node, nodes.Filter) and node.name == "attr":
            key = _fold(node.args[0], budget) if node.args else None
            if not isinstance(key, str) or key.startswith("_") or key in _DANGEROUS_ATTRS:
                hits[f"the attr filter ({key!r})"] = None
        elif isinstance(node, nodes.Filter | nodes.Test) and node.name in _ATTRIBUTE_FILTERS:
            for arg in (*node.args, *(kw.value for kw in node.kwargs)):
                value = _fold(arg, budget)
                if isinstance(value, str) and any(
                    part.startswith("_") or part in _DANGEROUS_ATTRS for part in value.split(".")
                ):
                    hits[f"the {node.name} filter reading {value[:40]!r}"] = None
        elif isinstance(node, nodes.Name) and node.name in _DANGEROUS_NAMES - bound:
            hits[f"the Python name {node.name!r}"] = None
        elif isinstance(node, nodes.Name) and node.name in _HOST_GLOBALS - bound:
            hits[f"the {node.name!r} global (a handle on the renderer's Python objects)"] = None
        elif isinstance(node, nodes.Name) and node.name.startswith("_"):
            hits[f"the private name {node.name!r}"] = None
        elif type(node).__name__ in _LOADING_TAGS:
            hits[f"{{% {type(node).__name__.lower()} %}} (loads other templates)"] = None
        if isinstance(node, nodes.Concat | nodes.Add | nodes.Mul | nodes.Filter):
            folded = _fold(node, budget)
            if isinstance(folded, str) and _DUNDER.search(folded):
                hits[f"a dunder name built from pieces ({folded[:40]!r})"] = None
        elif (
            isinstance(node, nodes.Const)
            and isinstance(node.value, str)
            and _DUNDER.fullmatch(node.value)
        ):
            hits[f"the dunder string {node.value!r}"] = None
    return list(hits)


def _attr(name: str, hits: dict[str, None], obj: Any) -> None:
    from jinja2 import nodes

    if _DUNDER.fullmatch(name):
        hits[f"the dunder attribute {name!r}"] = None
    elif name.startswith("_"):
        hits[f"the private attribute {name!r}"] = None  # the sandbox refuses these too
    elif name in _DANGEROUS_ATTRS:
        hits[f"the attribute {name!r}"] = None
    if isinstance(obj, nodes.Name) and obj.name in _GADGET_NAMES and name.startswith("_"):
        hits[f"the Jinja global {obj.name!r} as a way into Python"] = None


_FOLD_FILTERS = frozenset({"lower", "upper", "trim", "string", "join", "reverse", "format"})


def _fold(node: Any, budget: list[int], depth: int = 0) -> object:
    """The constant value of an expression built from constants (strings, numbers, lists of
    them, a few string filters), else None. ``budget`` bounds the work over a whole template."""
    from jinja2 import nodes

    budget[0] -= 1
    if budget[0] <= 0 or depth > _MAX_FOLD_DEPTH:
        return None
    d = depth + 1
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.Concat):
        parts = [_fold(n, budget, d) for n in node.nodes]
        return "".join(str(p) for p in parts) if all(p is not None for p in parts) else None
    if isinstance(node, nodes.Add | nodes.Mul):
        left, right = _fold(node.left, budget, d), _fold(node.right, budget, d)
        if isinstance(node, nodes.Add) and isinstance(left, str) and isinstance(right, str):
            return left + right if len(left) + len(right) < 4096 else None
        if isinstance(node, nodes.Mul) and isinstance(left, str) and isinstance(right, int):
            return left * max(0, min(right, 64))
        return None
    if isinstance(node, nodes.List | nodes.Tuple):
        items = [_fold(n, budget, d) for n in node.items]
        return items if all(i is not None for i in items) else None
    if isinstance(node, nodes.Filter) and node.name in _FOLD_FILTERS and node.node is not None:
        value = _fold(node.node, budget, d)
        args = [_fold(a, budget, d) for a in node.args]
        return _apply(node.name, value, args)
    return None


_WIDE_FORMAT = re.compile(r"%[^a-zA-Z%]*\d{4,}")


def _apply(name: str, value: object, args: list[object]) -> object:
    try:
        if name == "join" and isinstance(value, list):
            sep = args[0] if args and isinstance(args[0], str) else ""
            return sep.join(str(v) for v in value)
        if not isinstance(value, str) or len(value) > 4096:
            return None
        if name == "format":
            if _WIDE_FORMAT.search(value) or any(a is None for a in args):
                return None
            return value % tuple(args)
        if name == "reverse":
            return value[::-1]
        if name == "lower":
            return value.lower()
        if name == "upper":
            return value.upper()
        if name == "trim":
            return value.strip()
        return value
    except (TypeError, ValueError, OverflowError, MemoryError):
        return None


def template_findings(
    key: str, template: str, ctx: ScanContext, *, rule: str, strict: bool = True
) -> Iterator[Finding]:
    """Findings for the template ``template`` found at ``key``. ``strict``: the value is known
    to be rendered as Jinja2 (a chat template), so one that cannot be parsed is a finding; for a
    string that merely looks like a template in some config, only escapes are reported."""
    if len(template) > _MAX_TEMPLATE:
        yield ctx.finding(
            f"{rule.removesuffix('-SSTI')}-TOO-LARGE",
            Severity.HIGH,
            f"{key}: a template of {len(template)} characters was not inspected",
            why="What the scanner does not read may hide a sandbox escape.",
            symbol=key,
        )
        return
    hits, failure = template_escapes(template)
    if failure is not None:
        if strict:
            yield ctx.finding(
                f"{rule.removesuffix('-SSTI')}-UNPARSEABLE",
                Severity.HIGH,
                f"{key}: {failure}",
                why="A template the scanner cannot read may hide a sandbox escape; other "
                "template engines may still render it.",
                symbol=key,
            )
        return
    if hits:
        yield ctx.finding(
            rule,
            Severity.CRITICAL,
            f"{key} uses {', '.join(hits)}: a Jinja2 sandbox escape",
            why="Chat templates are rendered with Jinja2 when the model is used; walks to "
            "Python internals run code where the sandbox is missing or bypassed "
            "(CVE-2024-34359).",
            symbol=key,
        )
