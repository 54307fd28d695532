"""Known vulnerabilities of pinned Python dependencies, through pip-audit.

pip-audit runs as a subprocess (``python -m pip_audit``; its Python API is private) on a
temporary requirements file of exact pins, with ``--no-deps --disable-pip``: nothing is resolved,
downloaded or installed. The audit fails closed: a service that cannot be reached, a package the
service errors on or skips, or output we cannot read raises ``SbomError``, never "no
vulnerabilities". pip-audit exits 1 both when it finds vulnerabilities and when it fails, so
success is told by its JSON report on stdout, not by its exit code.

pip-audit reports no severity. With the OSV service, each vulnerability's severity is read from
its OSV record (``GET /v1/vulns/<id>``, then its GHSA aliases): GitHub's
``database_specific.severity``, else a CVSS v3 base score (given, or computed from the vector;
CVSS v4 vectors are not scored). A severity that cannot be fetched is
left unknown (None); it does not fail the audit.
"""

from __future__ import annotations

import importlib.util
import math
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlsec.errors import SbomError, UsageError
from mlsec.jsonsafe import loads
from mlsec.sbom.deps import Dependency

__all__ = [
    "DEFAULT_OSV_URL",
    "AuditResult",
    "Service",
    "Vulnerability",
    "audit",
]

DEFAULT_OSV_URL = "https://api.osv.dev"
_GHSA_SEVERITY = {"CRITICAL": "critical", "HIGH": "high", "MODERATE": "medium", "LOW": "low"}
_MAX_RECORD_BYTES = 4 * 1024 * 1024


class Service(StrEnum):
    """The vulnerability service pip-audit asks."""

    OSV = "osv"
    PYPI = "pypi"


@dataclass(frozen=True, slots=True)
class Vulnerability:
    """One known vulnerability of one pinned dependency.

    ``id`` is pip-audit's primary id (PYSEC first, then CVE, then others); ``aliases`` the other
    ids (CVE, GHSA), sorted; ``severity`` is one of critical/high/medium/low/none, or None when
    unknown; ``source`` is the service that reported it.
    """

    id: str
    aliases: tuple[str, ...]
    package: str
    version: str
    fix_versions: tuple[str, ...]
    description: str
    severity: str | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {
            "id": self.id,
            "aliases": list(self.aliases),
            "package": self.package,
            "version": self.version,
            "fix_versions": list(self.fix_versions),
            "description": self.description,
            "severity": self.severity,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class AuditResult:
    """What an audit found: ``audited`` are the pinned dependencies that were checked,
    ``unpinned`` those that could not be (no exact version), ``service`` the service asked."""

    vulnerabilities: tuple[Vulnerability, ...]
    audited: tuple[Dependency, ...]
    unpinned: tuple[Dependency, ...]
    service: str
    # Pinned dependencies no vulnerability service knows (a local ``+cpu`` build, a private
    # package the service skipped), each with the reason: not audited, and not "clean" either.
    unauditable: tuple[tuple[Dependency, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the service, the vulnerabilities, the audited, unpinned and
        unauditable deps."""
        return {
            "service": self.service,
            "vulnerabilities": [v.to_dict() for v in self.vulnerabilities],
            "audited": [d.to_dict() for d in self.audited],
            "unpinned": [d.to_dict() for d in self.unpinned],
            "unauditable": [{**d.to_dict(), "reason": r} for d, r in self.unauditable],
        }


def _base_url(osv_url: str | None) -> str:
    base = (osv_url or DEFAULT_OSV_URL).rstrip("/")
    return base.removesuffix("/v1/query").removesuffix("/v1")


def _rounds(pinned: Sequence[Dependency]) -> list[dict[str, Dependency]]:
    """Group pins so that no group names a package twice (pip-audit refuses duplicates): the same
    package pinned to two versions under different markers is audited in two runs."""
    rounds: list[dict[str, Dependency]] = []
    seen: set[tuple[str, str]] = set()
    for dep in pinned:
        assert dep.version is not None
        if (dep.name, dep.version) in seen:
            continue
        seen.add((dep.name, dep.version))
        for group in rounds:
            if dep.name not in group:
                group[dep.name] = dep
                break
        else:
            rounds.append({dep.name: dep})
    return rounds


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^\"')\]\n]+)")
_UNREACHABLE = ("ConnectionError", "ConnectTimeout", "ReadTimeout", "Could not connect")


def _failure(stderr: str, service: Service, base: str, group: dict[str, Dependency]) -> str:
    """One line saying why pip-audit failed, from its log lines or its traceback."""
    # Log lines and exception lines start in column 0; traceback source lines are indented.
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln[0].isspace()]
    where = f"OSV service at {base}" if service is Service.OSV else "PyPI vulnerability service"
    if any(marker in ln for ln in lines for marker in _UNREACHABLE):
        errno = _ERRNO.search(stderr)
        reason = errno.group(1).strip() if errno else ("timed out" if "Timeout" in stderr else "")
        return f"vulnerability audit failed: {where} unreachable" + (
            f": {reason}" if reason else ""
        )
    http = [ln for ln in lines if ln.startswith("requests.exceptions.HTTPError:")]
    if http:
        reason = http[0].split(":", 1)[1].split(" for url:", 1)[0].strip()
        return f"vulnerability audit failed: {where} answered {reason}"
    errors = [ln.split(":", 2)[-1].strip() for ln in lines if ln.startswith("ERROR:")]
    if errors:
        # --strict turns a skipped package into "ERROR:pip_audit._cli:<name>: <reason>"
        skipped = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*): (.+)$", errors[0])
        dep = group.get(canonicalize_name(skipped.group(1))) if skipped else None
        if skipped and dep is not None:
            return f"pip-audit skipped {dep.name}=={dep.version}: {skipped.group(2)}"
        return f"vulnerability audit failed: {errors[0]}"
    last = lines[-1] if lines else "no output"
    return f"vulnerability audit failed: pip-audit: {last[:200]}"


def _run(
    group: dict[str, Dependency], service: Service, osv_url: str | None, timeout: float
) -> list[dict[str, Any]]:
    """Run pip-audit on one group of pins; its JSON ``dependencies`` list."""
    request_timeout = max(1, round(timeout))
    # No --strict: a package a service cannot audit comes back with a skip_reason, which audit()
    # reports as unauditable (the policy decides); a failure to reach the service stays an error.
    argv = [sys.executable, "-m", "pip_audit", "--no-deps", "--disable-pip"]
    argv += ["--format", "json", "--desc", "on", "--aliases", "on", "--progress-spinner", "off"]
    argv += ["--timeout", str(request_timeout), "-s", service.value]
    if service is Service.OSV and osv_url is not None:
        argv += ["--osv-url", f"{_base_url(osv_url)}/v1/query"]
    with tempfile.TemporaryDirectory(prefix="mlsec-audit-") as tmp:
        reqs = Path(tmp) / "requirements.txt"
        # Bare pins: markers would be evaluated against this machine and silently drop lines.
        reqs.write_text("".join(f"{d.name}=={d.version}\n" for d in group.values()), "utf-8")
        try:
            proc = subprocess.run(
                [*argv, "-r", str(reqs)],
                capture_output=True,
                encoding="utf-8",
                errors="replace",
                timeout=request_timeout * (len(group) + 2) + 60,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SbomError(
                f"vulnerability audit failed: pip-audit did not finish within {exc.timeout:.0f} s"
            ) from None
        except OSError as exc:
            raise SbomError(f"vulnerability audit failed: cannot run pip-audit: {exc}") from None
    report: Any = None
    if proc.returncode in (0, 1):
        try:
            report = loads(proc.stdout, "pip-audit", SbomError, allow_nan=True)
        except SbomError:
            report = None
    if not isinstance(report, dict) or not isinstance(report.get("dependencies"), list):
        message = _failure(proc.stderr, service, _base_url(osv_url), group)
        hint = None
        if "unreachable" in message:
            hint = (
                "offline? serve an OSV mirror (the osv.dev API) and pass --osv-url URL, "
                "or audit where the service is reachable"
            )
        raise SbomError(message, hint=hint)
    deps: list[dict[str, Any]] = report["dependencies"]
    return deps


def _version_key(version: str) -> Version | str:
    try:
        return Version(version)
    except InvalidVersion:
        return version


# CVSS v3.x base metrics (FIRST, CVSS v3.1 specification, section 7.4).
_CVSS3_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_CVSS3_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}


def _roundup(value: float) -> float:
    """CVSS v3.1 Roundup: the smallest one-decimal number >= value, free of float noise."""
    scaled = round(value * 100_000)
    return scaled / 100_000 if scaled % 10_000 == 0 else (math.floor(scaled / 10_000) + 1) / 10


def _cvss3_base_score(vector: str) -> float | None:
    """The base score of a ``CVSS:3.0/…`` or ``CVSS:3.1/…`` vector; None if it is not one."""
    parts = vector.split("/")
    if parts[0] not in ("CVSS:3.0", "CVSS:3.1"):
        return None
    metrics = dict(p.split(":", 1) for p in parts[1:] if ":" in p)
    try:
        w = {k: table[metrics[k]] for k, table in _CVSS3_WEIGHTS.items()}
        scope = metrics["S"]
        pr = _CVSS3_PR[scope][metrics["PR"]]
    except KeyError:
        return None
    iss = 1 - (1 - w["C"]) * (1 - w["I"]) * (1 - w["A"])
    changed = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    impact = 6.42 * iss if scope == "U" else changed
    exploitability = 8.22 * w["AV"] * w["AC"] * pr * w["UI"]
    if impact <= 0:
        return 0.0
    total = impact + exploitability if scope == "U" else 1.08 * (impact + exploitability)
    return _roundup(min(total, 10.0))


def _bucket(score: float) -> str:
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else "none"


def _severity_of(record: dict[str, Any]) -> str | None:
    """A record's severity: GitHub's rating, else a CVSS v3 score or vector (v4 is not scored)."""
    specific = record.get("database_specific")
    if isinstance(specific, dict):
        mapped = _GHSA_SEVERITY.get(str(specific.get("severity", "")).upper())
        if mapped is not None:
            return mapped
    for entry in record.get("severity") or ():
        if not isinstance(entry, dict) or entry.get("type") != "CVSS_V3":
            continue
        text = str(entry.get("score", ""))
        try:
            score: float | None = float(text)
        except ValueError:
            score = _cvss3_base_score(text)
        if score is not None and 0 <= score <= 10:
            return _bucket(score)
    return None


def _fetch_record(base: str, vuln_id: str, timeout: float) -> dict[str, Any] | None:
    url = f"{base}/v1/vulns/{urllib.parse.quote(vuln_id, safe='')}"
    if not url.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (scheme checked)
            data = loads(resp.read(_MAX_RECORD_BYTES), url, SbomError, allow_nan=True)
    except (OSError, ValueError, SbomError):
        return None
    return data if isinstance(data, dict) else None


def _severity(base: str, ids: Sequence[str], timeout: float) -> str | None:
    """The first severity found in the records of ``ids`` (the id, then its GHSA aliases)."""
    for vuln_id in ids:
        record = _fetch_record(base, vuln_id, timeout)
        if record is not None and (severity := _severity_of(record)) is not None:
            return severity
    return None


def audit(
    deps: Sequence[Dependency],
    *,
    service: str = "osv",
    osv_url: str | None = None,
    timeout: float = 60,
) -> AuditResult:
    """Check the pinned dependencies among ``deps`` for known vulnerabilities with pip-audit.

    Dependencies without an exact ``==`` version cannot be audited and are returned in
    ``unpinned``. ``service`` is ``"osv"`` (default) or ``"pypi"``; ``osv_url`` is the base URL
    of an OSV-compatible service (default ``https://api.osv.dev``); ``timeout`` bounds each
    network request, in seconds. Needs pip-audit installed. Raises ``SbomError`` when the audit
    cannot be completed (fails closed) and ``UsageError`` for an unknown service::

        >>> audit(read_requirements("requirements.txt")).vulnerabilities   # doctest: +SKIP
        (Vulnerability(id='PYSEC-2018-28', aliases=('CVE-2018-18074', ...), ...),)
    """
    try:
        chosen = Service(service)
    except ValueError:
        choices = ", ".join(s.value for s in Service)
        raise UsageError(f"unknown vulnerability service {service!r}: use {choices}") from None
    if osv_url is not None and chosen is not Service.OSV:
        raise UsageError("an OSV URL needs the osv vulnerability service")
    unpinned = tuple(d for d in deps if d.version is None)
    unauditable: list[tuple[Dependency, str]] = []
    pinned_list: list[Dependency] = []
    for d in deps:
        if d.version is None:
            continue
        if "+" in d.version:  # PEP 440 local version: a build no public record describes
            unauditable.append(
                (d, f"local build {d.version}: vulnerability services publish no records for it")
            )
        else:
            pinned_list.append(d)
    pinned = tuple(pinned_list)
    if not pinned:
        return AuditResult((), (), unpinned, chosen.value, tuple(unauditable))
    if importlib.util.find_spec("pip_audit") is None:
        raise SbomError(
            "vulnerability audit needs pip-audit, which is not installed",
            hint="pip install 'pip-audit>=2.10,<3'",
        )

    found: list[tuple[Dependency, dict[str, Any]]] = []
    for group in _rounds(pinned):
        reported: dict[tuple[str, Version | str], dict[str, Any]] = {}
        skipped: dict[str, str] = {}
        for entry in _run(group, chosen, osv_url, timeout):
            name = canonicalize_name(str(entry.get("name", "")))
            if "skip_reason" in entry:  # never "clean": reported as unauditable, with the reason
                skipped[name] = str(entry["skip_reason"])[:300]
                continue
            reported[(name, _version_key(str(entry.get("version", ""))))] = entry
        for dep in group.values():
            assert dep.version is not None
            if dep.name in skipped:
                unauditable.append((dep, f"{chosen.value} could not audit it: {skipped[dep.name]}"))
                continue
            result = reported.get((dep.name, _version_key(dep.version)))
            if result is None:
                raise SbomError(
                    f"vulnerability audit failed: no result for {dep.name}=={dep.version}"
                )
            found.extend((dep, vuln) for vuln in result.get("vulns", []))

    base = _base_url(osv_url)

    def build(item: tuple[Dependency, dict[str, Any]]) -> Vulnerability:
        dep, vuln = item
        vuln_id = str(vuln["id"])
        aliases = tuple(sorted(str(a) for a in vuln.get("aliases", [])))
        severity = None
        if chosen is Service.OSV:
            ghsa = [a for a in aliases if a.startswith("GHSA-")]
            severity = _severity(base, [vuln_id, *ghsa], timeout)
        assert dep.version is not None
        return Vulnerability(
            id=vuln_id,
            aliases=aliases,
            package=dep.name,
            version=dep.version,
            fix_versions=tuple(str(v) for v in vuln.get("fix_versions", [])),
            description=str(vuln.get("description", "")),
            severity=severity,
            source=chosen.value,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        vulns = list(pool.map(build, found))
    vulns.sort(key=lambda v: (v.package, v.version, v.id))
    audited = tuple(d for d in pinned if all(d is not u for u, _ in unauditable))
    return AuditResult(tuple(vulns), audited, unpinned, chosen.value, tuple(unauditable))
