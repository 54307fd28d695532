"""YAML for untrusted or hand-written documents (model-card front matter, policies, ignore files).

PyYAML's safe loader, plus: the event stream is walked first (iteratively) and refused when it
nests deeper than :data:`MAX_DEPTH` — PyYAML's composer recurses once per level, so a document
nested 100,000 deep would otherwise cost a ``RecursionError`` after a minute of CPU; anchors,
aliases and merge keys are refused (a "billion laughs" document cannot blow up whoever walks the
result); a key given twice in one mapping is an error naming the key and its line (PyYAML keeps
the last one silently); the top level must be a mapping; every problem is one
:class:`~mlsec.errors.MlsecError` line naming the file and line.
"""

from __future__ import annotations

from typing import Any

from mlsec.errors import MlsecError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "load_mapping"]

MAX_DEPTH = 64
MAX_BYTES = 4 * 1024 * 1024


class _Refused(Exception):
    def __init__(self, line: int, message: str) -> None:
        self.line, self.message = line, message


def _loader_class() -> Any:
    import yaml

    class StrictLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no stubs here
        """SafeLoader that refuses duplicate and merge keys."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _value in node.value:
                    line = key_node.start_mark.line
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        raise _Refused(line, "YAML merge keys (<<) are not accepted")
                    key = self.construct_object(key_node, deep=True)
                    try:
                        fresh = key not in seen
                        seen.add(key)
                    except TypeError:
                        raise _Refused(line, "a mapping key is not a plain value") from None
                    if not fresh:
                        raise _Refused(line, f"duplicate key {key!r} in the {{what}}")
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def _check_events(text: str, max_depth: int) -> None:
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _Refused(line, "YAML anchors and aliases are not accepted")
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > max_depth:
                raise _Refused(line, f"the {{what}} is nested deeper than {max_depth} levels")
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1


def load_mapping(
    text: str,
    name: str,
    error: type[MlsecError],
    *,
    line_offset: int = 0,
    what: str = "YAML",
    max_depth: int = MAX_DEPTH,
    max_bytes: int = MAX_BYTES,
) -> dict[str, Any]:
    """Parse ``text`` (from the file ``name``) into a dict; raise ``error`` with a one-line message.

    ``line_offset`` is added to reported line numbers (front matter starts after a ``---`` line).
    An empty document is an empty mapping. More than one document is refused.
    """
    import yaml

    first = 1 + line_offset
    if len(text) > max_bytes:
        raise error(f"{name}: {what} larger than {max_bytes} bytes is not accepted")
    try:
        _check_events(text, max_depth)
        doc = yaml.load(text, Loader=_loader_class())  # noqa: S506 (a SafeLoader subclass)
    except _Refused as exc:
        raise error(f"{name}:{exc.line + first}: {exc.message.format(what=what)}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + first}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{name}{where}: malformed {what}: {problem}") from None
    except RecursionError:  # unreachable after the depth check; never an internal error
        raise error(f"{name}: {what} nested too deeply") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise error(f"{name}: the {what} is not a mapping")
    return doc
