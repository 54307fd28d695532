"""Python dependencies a model declares: pip requirements files, parsed without running pip.

``read_requirements`` understands the requirements-file syntax pip documents: comments, blank
lines, ``\\`` continuations, per-requirement options such as ``--hash=…`` (kept out of the
specifier), ``-r``/``--requirement`` includes (relative to the including file), and global
options (``-c``, ``--index-url``, ``-f``, …), which are skipped because they do not declare a
dependency. Editable and URL requirements keep their name when one can be read (``#egg=name``,
``name @ url``) and have no version. Environment markers are kept as text, never evaluated: a
model's dependencies are those of whoever runs it, not of the machine building the SBOM.
Nothing is fetched: a remote include is an error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from mlsec.errors import SbomError

__all__ = ["REQUIREMENTS_FILE", "Dependency", "discover", "read_requirements"]

REQUIREMENTS_FILE = "requirements.txt"

# Bounded work on hostile input: a model directory's requirements are untrusted.
_MAX_FILE_BYTES = 4 * 1024 * 1024
_MAX_FILES = 64

# pip's own rule: a comment starts the line or follows whitespace (so "#egg=" in a URL is kept).
_COMMENT = re.compile(r"(^|\s+)#.*$")
_EGG = re.compile(r"#egg=([A-Za-z0-9][A-Za-z0-9._-]*)")
_INCLUDE = re.compile(r"^(?:-r|--requirement)(?:\s*=\s*|\s+|(?=[^\s=]))(?P<file>\S.*)$")
_EDITABLE = re.compile(r"^(?:-e|--editable)(?:\s*=\s*|\s+|(?=[^\s=]))(?P<target>\S.*)$")


@dataclass(frozen=True, slots=True)
class Dependency:
    """One declared Python dependency.

    ``name`` is PEP 503 normalised; ``version`` is set only for an exact ``==`` pin (no wildcard);
    ``specifier`` is the version specifier as packaging prints it (``"<3,>=2"``, ``""``);
    ``source`` says where it was declared (``"requirements.txt:3"``).
    """

    name: str
    version: str | None
    specifier: str
    extras: tuple[str, ...]
    marker: str | None
    source: str

    @property
    def purl(self) -> str | None:
        """``pkg:pypi/<name>@<version>`` when pinned, else ``pkg:pypi/<name>``."""
        if self.version is None:
            return f"pkg:pypi/{self.name}"
        return f"pkg:pypi/{self.name}@{quote(self.version, safe='')}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field and the purl."""
        return {
            "name": self.name,
            "version": self.version,
            "specifier": self.specifier,
            "extras": list(self.extras),
            "marker": self.marker,
            "source": self.source,
            "purl": self.purl,
        }


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) for each logical line: continuations joined, comments cut."""
    out: list[tuple[int, str]] = []
    parts: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.endswith("\\") and not _COMMENT.match(line):
            if not parts:
                start = number
            parts.append(line[:-1])
            continue
        if parts:
            # a comment line ends a continuation, as in pip
            parts.append(" " + line if _COMMENT.match(line) else line)
            out.append((start, "".join(parts)))
            parts = []
        else:
            out.append((number, line))
    if parts:
        out.append((start, "".join(parts)))
    return [(n, _COMMENT.sub("", line).strip()) for n, line in out]


def _split_options(line: str) -> str:
    """The requirement part of a line: pip cuts per-requirement options (``--hash=…``) at the
    first whitespace-separated token that starts with ``-``."""
    tokens = line.split()
    for i, token in enumerate(tokens):
        if token.startswith("-"):
            return " ".join(tokens[:i])
    return " ".join(tokens)


def _pin(req: Requirement) -> str | None:
    specs = list(req.specifier)
    if len(specs) == 1 and specs[0].operator == "==" and not specs[0].version.endswith(".*"):
        return specs[0].version
    return None


def _from_requirement(req: Requirement, source: str) -> Dependency:
    return Dependency(
        name=canonicalize_name(req.name),
        version=None if req.url else _pin(req),
        specifier=str(req.specifier),
        extras=tuple(sorted(req.extras)),
        marker=str(req.marker) if req.marker is not None else None,
        source=source,
    )


def _from_url(target: str, source: str) -> Dependency | None:
    """An editable or plain URL/path requirement: its name from ``#egg=``, when there is one."""
    egg = _EGG.search(target)
    if egg is None:
        return None
    return Dependency(canonicalize_name(egg.group(1)), None, "", (), None, source)


def _looks_like_url_or_path(text: str) -> bool:
    return "://" in text or text.startswith((".", "/", "~")) or text.startswith("file:")


class _Reader:
    def __init__(self, top: Path, root: Path | None) -> None:
        self.base = top.parent
        self.root = root.resolve() if root is not None else None
        self.seen: set[Path] = set()
        self.deps: dict[tuple[str, str | None], Dependency] = {}

    def display(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.base)).as_posix()

    def read(self, path: Path, where: str) -> None:
        """Read ``path``; ``where`` names it in messages (the caller's spelling or file:line)."""
        try:
            real = path.resolve(strict=True)
        except OSError as exc:
            raise SbomError(f"{where}: cannot read requirements: {exc.strerror or exc}") from None
        if real in self.seen:  # an include loop, or a file included twice: read once
            return
        if self.root is not None and not real.is_relative_to(self.root):
            raise SbomError(f"{where}: requirements file lies outside {self.root.name}/")
        if len(self.seen) >= _MAX_FILES:
            raise SbomError(f"{where}: more than {_MAX_FILES} included requirements files")
        self.seen.add(real)
        try:
            with open(real, "rb") as f:  # capped by bytes read, whatever stat says
                data = f.read(_MAX_FILE_BYTES + 1)
            if len(data) > _MAX_FILE_BYTES:
                raise SbomError(f"{where}: requirements file larger than {_MAX_FILE_BYTES} bytes")
            text = data.decode("utf-8-sig")
        except OSError as exc:
            raise SbomError(f"{where}: cannot read requirements: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise SbomError(f"{where}: requirements file is not UTF-8 text") from None
        name = self.display(path)
        for number, line in _logical_lines(text):
            if line:
                self.line(path, f"{name}:{number}", line)

    def line(self, path: Path, source: str, line: str) -> None:
        if line.startswith("-"):
            include = _INCLUDE.match(line)
            if include is not None:
                target = include.group("file").split()[0]
                if "://" in target:
                    raise SbomError(f"{source}: remote requirements file not followed: {target}")
                self.read(path.parent / target, f"{source}: {target}")
                return
            editable = _EDITABLE.match(line)
            if editable is not None:
                self.add(_from_url(editable.group("target"), source))
            return  # -c, -i, --index-url, -f, --pre, …: not dependencies
        text = _split_options(line)
        try:
            req = Requirement(text)
        except InvalidRequirement:
            if _looks_like_url_or_path(text):
                self.add(_from_url(text, source))
                return
            shown = text if len(text) <= 80 else text[:77] + "..."
            raise SbomError(f"{source}: not a requirement: {shown!r}") from None
        self.add(_from_requirement(req, source))

    def add(self, dep: Dependency | None) -> None:
        if dep is not None:
            self.deps.setdefault((dep.name, dep.marker), dep)


def read_requirements(
    path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
) -> tuple[Dependency, ...]:
    """Parse a pip requirements file and the files it includes, in file order.

    A package declared twice under the same marker is kept once (the first declaration wins);
    the same package under different markers is kept for each. ``source`` names the file relative
    to ``path``'s directory and the first line of the (possibly continued) requirement. When
    ``root`` is given, the file and every include must lie inside it. Raises ``SbomError`` for a
    missing or unreadable file and for a line that is not a requirement::

        >>> read_requirements("requirements.txt")[0].purl   # doctest: +SKIP
        'pkg:pypi/torch@2.3.1'
    """
    top = Path(path)
    reader = _Reader(top, Path(root) if root is not None else None)
    reader.read(top, str(top))
    return tuple(reader.deps.values())


def discover(root: str | os.PathLike[str]) -> tuple[Dependency, ...]:
    """The Python dependencies a model directory declares itself: its top-level
    ``requirements.txt`` (Hugging Face repositories with custom code ship one), with its includes
    confined to the directory. A file model, or a directory without one, declares none."""
    base = Path(root)
    candidate = base / REQUIREMENTS_FILE
    if not base.is_dir() or not (candidate.is_file() or candidate.is_symlink()):
        return ()
    return read_requirements(candidate, root=base)
