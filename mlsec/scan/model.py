"""Result types of the scanner: severities, findings and reports. Immutable and JSON-ready."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mlsec.schemas import Schema

if TYPE_CHECKING:
    from mlsec.ignore import IgnoreFile, Suppression

__all__ = ["FileReport", "Finding", "ScanReport", "Severity", "is_global_name"]

SCHEMA = Schema.SCAN


class Severity(StrEnum):
    """How bad a finding is (DESIGN.md): critical = known code execution; high = dangerous
    capability, or something that could not be parsed and so could hide one; medium = an import
    outside the allowlist (needs trust in that code); low; info."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank


_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in one file (or in one member of an archive inside it).

    ``rule`` is a stable identifier (``PICKLE-DANGEROUS-CALL``, ``ZIP-BOMB``, …). ``member`` is
    the path inside a container, nested containers joined with ``!`` (``a.zip!b.tar!data.pkl``).
    ``symbol`` is the global (``module.name``) or operator involved; ``offset`` a byte offset in
    the member's stream when known. ``message`` is one line; ``why`` says why it matters.
    """

    rule: str
    severity: Severity
    file: str
    message: str
    why: str = ""
    member: str | None = None
    format: str | None = None
    symbol: str | None = None
    offset: int | None = None
    engine: str = "mlsec"

    @property
    def location(self) -> str:
        return f"{self.file}!{self.member}" if self.member else self.file

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "file": self.file,
            "member": self.member,
            "format": self.format,
            "symbol": self.symbol,
            "offset": self.offset,
            "message": self.message,
            "why": self.why,
            "engine": self.engine,
        }


@dataclass(frozen=True, slots=True)
class FileReport:
    """What the scanner did with one artifact file: its format, the globals it saw, findings."""

    path: str
    format: str
    size: int
    findings: tuple[Finding, ...] = ()
    globals: tuple[str, ...] = ()
    members_scanned: int = 0
    # findings an ignore-file entry accepted: not counted, still reported (with the entry)
    suppressed: tuple[tuple[Finding, Suppression], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "format": self.format,
            "size": self.size,
            "globals": list(self.globals),
            "members_scanned": self.members_scanned,
            "findings": [f.to_dict() for f in self.findings],
        }
        if self.suppressed:
            out["suppressed"] = [
                {**f.to_dict(), "suppression": s.to_dict()} for f, s in self.suppressed
            ]
        return out


@dataclass(frozen=True)
class ScanReport:
    """The result of scanning one or more artifacts."""

    targets: tuple[str, ...]
    files: tuple[FileReport, ...]
    duration_s: float = 0.0
    engines: tuple[str, ...] = ("mlsec",)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for fr in self.files for f in fr.findings)

    @property
    def max_severity(self) -> Severity | None:
        found = self.findings
        return max((f.severity for f in found), key=lambda s: s.rank) if found else None

    def failed(self, fail_on: Severity) -> bool:
        """True when any finding is at or above ``fail_on`` (the CLI's exit code 1)."""
        return any(f.severity.at_least(fail_on) for f in self.findings)

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Severity}
        for f in self.findings:
            out[f.severity.value] += 1
        return out

    @property
    def suppressed(self) -> tuple[tuple[Finding, Suppression], ...]:
        return tuple(s for fr in self.files for s in fr.suppressed)

    def with_ignore(self, ignore: IgnoreFile, sha256: dict[str, str] | None = None) -> ScanReport:
        """This report with the findings ``ignore`` accepts moved aside as suppressed.
        ``sha256`` maps a report path to its file's digest (for entries that match by digest)."""
        from dataclasses import replace

        files = []
        for fr in self.files:
            kept: list[Finding] = []
            moved = list(fr.suppressed)
            digest = (sha256 or {}).get(fr.path)
            for f in fr.findings:
                s = ignore.suppression_for(f.rule, f.symbol, f.location, digest)
                if s is None:
                    kept.append(f)
                else:
                    moved.append((f, s))
            files.append(replace(fr, findings=tuple(kept), suppressed=tuple(moved)))
        extra = dict(self.extra, ignore=ignore.summary())
        return replace(self, files=tuple(files), extra=extra)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "targets": list(self.targets),
            "engines": list(self.engines),
            "duration_s": round(self.duration_s, 4),
            "summary": {"files": len(self.files), "findings": self.counts()},
            "files": [f.to_dict() for f in self.files],
        }
        if "ignore" in self.extra:
            out["summary"]["suppressed"] = len(self.suppressed)
            out["ignore"] = self.extra["ignore"]
        return out


def is_global_name(name: str) -> bool:
    """True for an exact ``module.name`` a user may allow (``--allow-global``, a policy's
    ``scan.allow_globals``): dotted identifiers, at least a module and a name, nothing else."""
    parts = name.split(".")
    return len(parts) >= 2 and all(p.isidentifier() for p in parts)
