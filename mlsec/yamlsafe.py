"""YAML for untrusted or hand-written documents (model-card front matter, policies).

PyYAML's safe loader, plus: anchors and aliases are refused (a "billion laughs" document cannot
blow up whoever walks the result), the top level must be a mapping, and every problem is one
:class:`~mlsec.errors.MlsecError` line naming the file and line.
"""

from __future__ import annotations

from typing import Any

from mlsec.errors import MlsecError

__all__ = ["load_mapping"]


def load_mapping(
    text: str, name: str, error: type[MlsecError], *, line_offset: int = 0, what: str = "YAML"
) -> dict[str, Any]:
    """Parse ``text`` (from the file ``name``) into a dict; raise ``error`` with a one-line message.

    ``line_offset`` is added to reported line numbers (front matter starts after a ``---`` line).
    An empty document is an empty mapping.
    """
    import yaml

    first = 1 + line_offset
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.AliasToken | yaml.AnchorToken):
                line = token.start_mark.line + first
                raise error(f"{name}:{line}: YAML anchors and aliases are not accepted")
        doc = yaml.load(text, Loader=yaml.SafeLoader)  # SafeLoader; aliases refused above
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + first}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{name}{where}: malformed {what}: {problem}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise error(f"{name}: the {what} is not a mapping")
    return doc
