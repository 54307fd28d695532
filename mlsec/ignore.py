"""The ignore file (``.mlsecignore.yaml``): accepted findings and vulnerabilities, each with a
reason and an optional expiry date, as trivy's ``.trivyignore.yaml``.

```yaml
findings:
  - rule: PICKLE-UNKNOWN-GLOBAL     # any of rule, symbol, path, sha256 (all given must match)
    symbol: mypkg.layers.Net
    path: "checkpoints/*.pkl"       # glob on the file's path (member paths: file!member)
    sha256: 3f…                     # the file's SHA-256
    reason: our own training code   # required
    expires: 2027-03-31             # optional: after this day the entry no longer applies
vulnerabilities:
  - id: PYSEC-2018-28               # or a CVE / GHSA alias
    reason: not reachable from the serving path
    expires: 2027-01-01
```

A suppressed finding stays in the results, marked with the entry that suppressed it, so an audit
can see it (JSON ``suppressed``, SARIF ``suppressions``). An expired entry suppresses nothing and is
reported. Any other problem (no reason, an unknown key, a bad date) is an :class:`IgnoreFileError`.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsec.errors import MlsecError

__all__ = [
    "DEFAULT_NAME",
    "IgnoreEntry",
    "IgnoreFile",
    "IgnoreFileError",
    "Suppression",
    "find_ignore_file",
]

DEFAULT_NAME = ".mlsecignore.yaml"
_MAX_BYTES = 4 * 1024 * 1024
_FINDING_KEYS = frozenset({"rule", "symbol", "path", "sha256", "reason", "expires"})
_VULN_KEYS = frozenset({"id", "reason", "expires"})


class IgnoreFileError(MlsecError):
    """The ignore file cannot be used as written (exit 2)."""


@dataclass(frozen=True, slots=True)
class IgnoreEntry:
    """One accepted finding (kind "finding") or vulnerability (kind "vulnerability")."""

    kind: str
    reason: str
    line: int
    rule: str | None = None
    symbol: str | None = None
    path: str | None = None
    sha256: str | None = None
    id: str | None = None
    expires: _dt.date | None = None

    def expired(self, today: _dt.date) -> bool:
        return self.expires is not None and today > self.expires

    def to_dict(self) -> dict[str, Any]:
        keys = ("rule", "symbol", "path", "sha256", "id")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        out["reason"] = self.reason
        if self.expires is not None:
            out["expires"] = self.expires.isoformat()
        out["line"] = self.line
        return out

    def matches_finding(
        self, rule: str, symbol: str | None, location: str, sha256: str | None
    ) -> bool:
        if self.kind != "finding":
            return False
        if self.rule is not None and self.rule != rule:
            return False
        if self.symbol is not None and self.symbol != symbol:
            return False
        if self.path is not None and not _path_matches(self.path, location):
            return False
        return self.sha256 is None or (sha256 is not None and self.sha256 == sha256.lower())

    def matches_vulnerability(self, ids: Iterable[str]) -> bool:
        return self.kind == "vulnerability" and self.id is not None and self.id in set(ids)


@dataclass(frozen=True, slots=True)
class Suppression:
    """Why a finding was not counted: the entry and the file it came from."""

    entry: IgnoreEntry
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, **self.entry.to_dict()}


def _path_matches(pattern: str, location: str) -> bool:
    file, _, _member = location.partition("!")
    return any(fnmatch.fnmatchcase(cand, pattern) for cand in (location, file))


@dataclass(frozen=True)
class IgnoreFile:
    """A parsed ignore file. ``today`` decides which entries have expired."""

    source: str
    entries: tuple[IgnoreEntry, ...]
    today: _dt.date

    @classmethod
    def load(cls, path: str | Path, *, today: _dt.date | None = None) -> IgnoreFile:
        """Read and validate ``path``; raise :class:`IgnoreFileError` with one line."""
        from mlsec.yamlsafe import load_mapping

        p = Path(path)
        try:
            with p.open("rb") as fh:
                data = fh.read(_MAX_BYTES + 1)
        except OSError as exc:
            raise IgnoreFileError(f"{p}: cannot read the ignore file: {exc.strerror}") from None
        if len(data) > _MAX_BYTES:
            raise IgnoreFileError(f"{p}: the ignore file is larger than {_MAX_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise IgnoreFileError(f"{p}: the ignore file is not UTF-8") from None
        doc = load_mapping(text, str(p), IgnoreFileError, what="ignore file")
        return cls.from_mapping(doc, str(p), text=text, today=today)

    @classmethod
    def from_mapping(
        cls,
        doc: Mapping[str, Any],
        source: str,
        *,
        text: str = "",
        today: _dt.date | None = None,
    ) -> IgnoreFile:
        unknown = sorted(set(doc) - {"findings", "vulnerabilities"})
        if unknown:
            raise IgnoreFileError(
                f"{source}: unknown key {unknown[0]!r} (expected findings, vulnerabilities)"
            )
        lines = _item_lines(text)
        entries: list[IgnoreEntry] = []
        n = 0
        for section, kind, allowed in (
            ("findings", "finding", _FINDING_KEYS),
            ("vulnerabilities", "vulnerability", _VULN_KEYS),
        ):
            items = doc.get(section) or []
            if not isinstance(items, list):
                raise IgnoreFileError(f"{source}: {section} must be a list of entries")
            for i, item in enumerate(items, 1):
                line = lines[n] if n < len(lines) else 0
                n += 1
                where = f"{source}:{line}" if line else f"{source}: {section}[{i}]"
                entries.append(_entry(item, kind, allowed, where, line))
        return cls(source, tuple(entries), today or _dt.date.today())

    @property
    def expired(self) -> tuple[IgnoreEntry, ...]:
        return tuple(e for e in self.entries if e.expired(self.today))

    @property
    def active(self) -> tuple[IgnoreEntry, ...]:
        return tuple(e for e in self.entries if not e.expired(self.today))

    def suppression_for(
        self, rule: str, symbol: str | None, location: str, sha256: str | None
    ) -> Suppression | None:
        for e in self.active:
            if e.matches_finding(rule, symbol, location, sha256):
                return Suppression(e, self.source)
        return None

    def suppression_for_vulnerability(self, ids: Iterable[str]) -> Suppression | None:
        ids = tuple(ids)
        for e in self.active:
            if e.matches_vulnerability(ids):
                return Suppression(e, self.source)
        return None

    @property
    def needs_digests(self) -> bool:
        return any(e.sha256 for e in self.active)

    def summary(self) -> dict[str, Any]:
        """The JSON ``ignore`` block: the file, its entry count and its expired entries."""
        return {
            "file": self.source,
            "entries": len(self.entries),
            "expired": [e.to_dict() for e in self.expired],
        }


def _item_lines(text: str) -> list[int]:
    """Line numbers of the ``- `` items of the two sections, in order (for messages)."""
    out: list[int] = []
    section = None
    for no, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if raw and not raw[0].isspace() and stripped.endswith(":"):
            section = stripped[:-1]
        elif section in ("findings", "vulnerabilities") and stripped.startswith("- "):
            indent = len(raw) - len(raw.lstrip())
            if indent <= 2:
                out.append(no)
    return out


def _entry(item: Any, kind: str, allowed: frozenset[str], where: str, line: int) -> IgnoreEntry:
    if not isinstance(item, Mapping):
        raise IgnoreFileError(f"{where}: an entry must be a mapping")
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise IgnoreFileError(
            f"{where}: unknown key {unknown[0]!r} (expected {', '.join(sorted(allowed))})"
        )
    reason = item.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise IgnoreFileError(f"{where}: every entry needs a reason")
    values: dict[str, str] = {}
    for key in sorted(allowed - {"reason", "expires"}):
        v = item.get(key)
        if v is None:
            continue
        if not isinstance(v, str) or not v.strip():
            raise IgnoreFileError(f"{where}: {key} must be a non-empty string")
        values[key] = v.strip()
    if kind == "finding" and not values:
        raise IgnoreFileError(f"{where}: give at least one of rule, symbol, path, sha256")
    if kind == "vulnerability" and "id" not in values:
        raise IgnoreFileError(f"{where}: a vulnerability entry needs an id")
    if "sha256" in values:
        sha = values["sha256"].lower().removeprefix("sha256:")
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise IgnoreFileError(f"{where}: sha256 must be 64 hex digits")
        values["sha256"] = sha
    expires = item.get("expires")
    date: _dt.date | None = None
    if isinstance(expires, _dt.datetime):
        date = expires.date()
    elif isinstance(expires, _dt.date):
        date = expires
    elif isinstance(expires, str):
        try:
            date = _dt.date.fromisoformat(expires.strip())
        except ValueError:
            raise IgnoreFileError(f"{where}: expires must be a date (YYYY-MM-DD)") from None
    elif expires is not None:
        raise IgnoreFileError(f"{where}: expires must be a date (YYYY-MM-DD)")
    return IgnoreEntry(kind=kind, reason=reason.strip(), line=line, expires=date, **values)


def find_ignore_file(explicit: str | Path | None, cwd: Path | None = None) -> Path | None:
    """``explicit`` when given, else ``.mlsecignore.yaml`` in the current directory if present."""
    if explicit is not None:
        return Path(explicit)
    candidate = (cwd or Path.cwd()) / DEFAULT_NAME
    return candidate if candidate.is_file() else None
