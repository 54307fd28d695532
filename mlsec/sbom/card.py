"""Model-card extraction: what a model says about itself, read without executing anything.

Sources, in a model directory (Hugging Face layout):

* ``README.md`` — the model card. Its YAML front matter (between ``---`` lines) gives the licence,
  datasets, task (``pipeline_tag``), library, base models, languages, tags and ``model-index``
  metrics; its Markdown body gives the description (the first paragraph) and the intended uses and
  limitations (the bullet points or paragraphs of sections with those words in their titles).
* ``config.json`` — the architecture (``architectures[0]``), its family (``model_type``) and the
  ``transformers_version`` it was saved with.

The YAML is parsed with PyYAML's safe loader after refusing anchors and aliases (a "billion laughs"
card cannot blow up), and the card is read only up to :data:`MAX_CARD_BYTES`. A malformed card is
an :class:`~mlsec.errors.SbomError` naming the file and line: an SBOM that silently drops the
licence would be worse than none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsec.errors import SbomError
from mlsec.jsonsafe import loads
from mlsec.yamlsafe import load_mapping

__all__ = ["MAX_CARD_BYTES", "Metric", "ModelCard", "read_model_card"]

MAX_CARD_BYTES = 1024 * 1024
_FRONT_MATTER = re.compile(
    r"\A(?:\ufeff)?---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S
)
_OPENING = re.compile(r"\A(?:\ufeff)?---[ \t]*\r?\n")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_USE_WORDS = ("intended use", "uses", "use case", "how to use")
_LIMIT_WORDS = ("limitation", "bias", "risk", "out-of-scope", "out of scope")


@dataclass(frozen=True, slots=True)
class Metric:
    """One reported evaluation result (``model-index`` in the card)."""

    type: str
    value: str
    dataset: str | None = None
    task: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value, "dataset": self.dataset, "task": self.task}


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What the model's own files say about it. Every field is optional: cards are often thin."""

    name: str | None = None
    description: str | None = None
    licenses: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    task: str | None = None
    library: str | None = None
    base_models: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    architecture: str | None = None
    architecture_family: str | None = None
    transformers_version: str | None = None
    metrics: tuple[Metric, ...] = ()
    use_cases: tuple[str, ...] = ()
    limitations: tuple[str, ...] = ()
    sources: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if name == "metrics":
                value = [m.to_dict() for m in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


def read_model_card(root: Path) -> ModelCard:
    """Read ``README.md`` and ``config.json`` of the model directory ``root`` (a single model file
    has no card: an empty :class:`ModelCard` comes back).

    >>> read_model_card(Path("/nonexistent")).licenses
    ()
    """
    if not root.is_dir():
        return ModelCard()
    fields: dict[str, Any] = {}
    sources: list[str] = []
    readme = _find(root, "README.md")
    if readme is not None:
        text = _read_text(readme)
        fields.update(_parse_card(text, readme.name))
        sources.append(readme.name)
    config = _find(root, "config.json")
    if config is not None:
        fields.update(_parse_config(_read_text(config), config.name))
        sources.append(config.name)
    return ModelCard(**fields, sources=tuple(sources))


def _find(root: Path, name: str) -> Path | None:
    """``root/name`` if it is a regular file inside the root (a symlink out of it is not read)."""
    path = root / name
    if path.is_symlink() or not path.is_file():
        return None
    return path


def _read_text(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CARD_BYTES + 1)
    except OSError as exc:
        raise SbomError(f"{path.name}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_CARD_BYTES:
        data = data[:MAX_CARD_BYTES]  # a card this long is read as far as the limit
    return data.decode("utf-8", errors="replace")


def _parse_card(text: str, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    body = text
    m = _FRONT_MATTER.match(text)
    if m:
        meta = load_mapping(m.group(1), name, SbomError, line_offset=1, what="YAML front matter")
        body = text[m.end() :]
    elif _OPENING.match(text):
        # Without its closing line the card's licence and datasets would silently vanish.
        raise SbomError(f"{name}:1: YAML front matter is never closed (no '---' line after it)")
    _check_fields(meta, name)
    out: dict[str, Any] = {}
    out["licenses"] = _strings(meta.get("license")) + _strings(meta.get("license_name"))
    out["datasets"] = _strings(meta.get("datasets"))
    out["task"] = _string(meta.get("pipeline_tag"))
    out["library"] = _string(meta.get("library_name"))
    out["base_models"] = _strings(meta.get("base_model"))
    out["languages"] = _strings(meta.get("language"))
    out["tags"] = _strings(meta.get("tags"))
    out["metrics"] = tuple(_metrics(meta.get("model-index")))
    title, description, sections = _markdown(body)
    index_name = _index_name(meta.get("model-index"))
    out["name"] = _string(meta.get("model_name")) or index_name or title
    out["description"] = description
    out["use_cases"] = _section_items(sections, _USE_WORDS)
    out["limitations"] = _section_items(sections, _LIMIT_WORDS)
    return out


_LIST_FIELDS = ("license", "license_name", "datasets", "base_model")
_SCALAR_FIELDS = ("pipeline_tag", "library_name")


def _check_fields(meta: dict[str, Any], name: str) -> None:
    """The fields the SBOM reads must have the shape the Hub documents: a value of another shape
    (``datasets`` as a mapping) is an error, not a field that silently disappears."""

    def scalar(v: object) -> bool:
        return v is None or (isinstance(v, str | int | float) and not isinstance(v, bool))

    for key in _LIST_FIELDS:
        value = meta.get(key)
        items = value if isinstance(value, list) else [value]
        if not all(scalar(v) for v in items):
            raise SbomError(
                f"{name}: front matter {key!r} must be a string or a list of strings,"
                f" got {type(value).__name__}"
            )
    for key in _SCALAR_FIELDS:
        if not scalar(meta.get(key)):
            raise SbomError(f"{name}: front matter {key!r} must be a string")


def _string(value: object) -> str | None:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def _strings(value: object) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        text = _string(item)
        if text is not None and text not in out:
            out.append(text)
    return tuple(out)


def _index_name(index: object) -> str | None:
    if isinstance(index, list) and index and isinstance(index[0], dict):
        return _string(index[0].get("name"))
    return None


def _metrics(index: object) -> list[Metric]:
    out: list[Metric] = []
    if not isinstance(index, list):
        return out
    for entry in index:
        results = entry.get("results") if isinstance(entry, dict) else None
        for result in results if isinstance(results, list) else []:
            if not isinstance(result, dict):
                continue
            task = result.get("task")
            dataset = result.get("dataset")
            task_name = _string(task.get("type")) if isinstance(task, dict) else None
            ds_name = None
            if isinstance(dataset, dict):
                ds_name = _string(dataset.get("name")) or _string(dataset.get("type"))
            metrics = result.get("metrics")
            for metric in metrics if isinstance(metrics, list) else []:
                if not isinstance(metric, dict):
                    continue
                mtype = _string(metric.get("type")) or _string(metric.get("name"))
                value = _string(metric.get("value"))
                if mtype and value:
                    out.append(Metric(mtype, value, ds_name, task_name))
    return out


def _markdown(body: str) -> tuple[str | None, str | None, list[tuple[str, list[str]]]]:
    """The first heading, the first paragraph, and ``(heading, lines)`` per section."""
    title: str | None = None
    description: str | None = None
    sections: list[tuple[str, list[str]]] = []
    para: list[str] = []
    in_code = False
    for raw in body.splitlines():
        line = raw.rstrip()
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        heading = _HEADING.match(line)
        if heading:
            if title is None and not sections:
                title = heading.group(2) or None
            sections.append((heading.group(2).lower(), []))
            if description is None and para:
                description = " ".join(para)
            para = []
            continue
        if sections:
            sections[-1][1].append(line)
        if description is None:
            if line.strip() and not line.lstrip().startswith(("<", "!", "|")):
                para.append(line.strip())
            elif para:
                description = " ".join(para)
    if description is None and para:
        description = " ".join(para)
    return title, description, sections


def _section_items(
    sections: list[tuple[str, list[str]]], words: tuple[str, ...]
) -> tuple[str, ...]:
    """Bullet points (or else paragraphs) of the sections whose heading has one of ``words``."""
    out: list[str] = []
    for heading, lines in sections:
        if not any(w in heading for w in words):
            continue
        bullets = [ln.strip()[2:].strip() for ln in lines if ln.strip()[:2] in ("- ", "* ", "+ ")]
        if bullets:
            out.extend(b for b in bullets if b)
            continue
        para: list[str] = []
        for ln in [*lines, ""]:
            if ln.strip():
                para.append(ln.strip())
            elif para:
                out.append(" ".join(para))
                para = []
    return tuple(dict.fromkeys(out))


def _parse_config(text: str, name: str) -> dict[str, Any]:
    config = loads(text, name, SbomError, allow_nan=True)
    if not isinstance(config, dict):
        return {}
    out: dict[str, Any] = {}
    archs = config.get("architectures")
    if isinstance(archs, list) and archs:
        out["architecture"] = _string(archs[0])
    out["architecture_family"] = _string(config.get("model_type"))
    out["transformers_version"] = _string(config.get("transformers_version"))
    return {k: v for k, v in out.items() if v is not None}
