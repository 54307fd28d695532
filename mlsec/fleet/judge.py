"""Judging one model: what a worker runs (in a process of this machine or a Ray task).

A worker pulls the model straight from its registry (never through the driver), scans only the
files whose report is not in the verdict store (opened read-only when it is reachable), evaluates
the policy, and returns an :class:`Outcome`: the decision, the evidence and the new file reports.
The driver writes the store. Every failure is an ``error`` outcome carrying its reason.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlsec import __version__
from mlsec.errors import MlsecError
from mlsec.fleet.sources import Target, TargetKind
from mlsec.policy.model import Policy
from mlsec.registry.auth import Credentials

if TYPE_CHECKING:
    from mlsec.artifact import Artifact
    from mlsec.fleet.store import VerdictStore
    from mlsec.scan import FileReport, ScanOptions, ScanReport
    from mlsec.signing.verify import Verifier

__all__ = ["Outcome", "Trust", "WorkSpec", "evidence_key", "judge", "scan_key"]


@dataclass(frozen=True, slots=True)
class Trust:
    """Trust material for signatures, as in ``mlsec admit`` (at most one kind)."""

    key: str | None = None
    certificate_chain: tuple[str, ...] = ()
    identity: str | None = None
    issuer: str | None = None

    @property
    def given(self) -> bool:
        return bool(self.key or self.certificate_chain or self.identity or self.issuer)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this trust: file contents by sha256, identities as given."""

        def digest(p: str) -> str:
            return hashlib.sha256(Path(p).read_bytes()).hexdigest()

        return {
            "key": digest(self.key) if self.key else None,
            "chain": [digest(p) for p in self.certificate_chain],
            "identity": self.identity,
            "issuer": self.issuer,
        }

    def verifier(self, policy: Policy) -> Verifier | None:
        """The verifier for this material (the one rule: :class:`TrustMaterial`), else the
        policy's own trust when it requires a signature."""
        from mlsec.policy.api import policy_verifier
        from mlsec.signing.trust import TrustMaterial

        if not self.given:
            return policy_verifier(policy) if policy.signature_required else None
        return TrustMaterial(
            key=Path(self.key) if self.key else None,
            certificate_chain=tuple(Path(p) for p in self.certificate_chain),
            identity=self.identity,
            issuer=self.issuer,
        ).verifier()


def scan_key(policy: Policy) -> str:
    """What a stored file report depends on: mlsec's version and the scan options."""
    from mlsec.scan import Limits

    doc = {"mlsec": __version__, "allow": sorted(policy.allow_globals), "limits": repr(Limits())}
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def evidence_key(policy: Policy, trust: Trust) -> str:
    """What stored evidence depends on: the scan key, the trust material, and the policy settings
    that change what is gathered (a required signature, the policy's own trust material)."""
    doc = {
        "scan": scan_key(policy),
        "trust": trust.fingerprint() if trust.given else None,
        "signature_required": policy.signature_required,
        "policy_trust": None
        if trust.given
        else [
            str(policy.signature_key),
            [str(p) for p in policy.signature_certificate_chain],
            policy.signature_identity,
            policy.signature_issuer,
        ],
    }
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class WorkSpec:
    """Everything a worker needs, picklable (sent to processes and Ray tasks)."""

    policy: Policy
    trust: Trust = Trust()
    plain_http: bool = False
    credentials: Credentials | None = None
    store_path: str | None = None  # opened read-only for file reports when reachable


@dataclass(frozen=True, slots=True)
class Outcome:
    """The judgement of one model. ``decision`` is ``allow``, ``deny`` or ``error``."""

    reference: str
    decision: str
    reasons: tuple[str, ...]
    digest: str | None = None
    reused: bool = False  # decided from stored evidence, no blob read
    blobs_read: int = 0
    bytes_read: int = 0
    files_scanned: int = 0
    findings_reused: int = 0
    evidence: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    new_reports: tuple[tuple[str, str, dict[str, Any]], ...] = field(
        default=(), compare=False, repr=False
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "reused": self.reused,
        }


def error_outcome(reference: str, reason: str, digest: str | None = None) -> Outcome:
    return Outcome(reference, "error", (reason,), digest=digest)


def decision_outcome(
    reference: str, allowed: bool, denials: list[str], digest: str | None, **kw: Any
) -> Outcome:
    return Outcome(reference, "allow" if allowed else "deny", tuple(denials), digest=digest, **kw)


def tree_digest(evidence: dict[str, Any]) -> str:
    """A digest of a local model's files (path and sha256 of each), its identity in the store."""
    lines = sorted(f"{f['path']}\0{f.get('sha256')}" for f in evidence["artifact"]["files"])
    return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _file_report(doc: dict[str, Any]) -> FileReport:
    from mlsec.scan import FileReport, Finding, Severity

    findings = tuple(
        Finding(
            rule=f["rule"],
            severity=Severity(f["severity"]),
            file=f["file"],
            message=f["message"],
            why=f.get("why", ""),
            member=f.get("member"),
            format=f.get("format"),
            symbol=f.get("symbol"),
            offset=f.get("offset"),
            engine=f.get("engine", "mlsec"),
        )
        for f in doc["findings"]
    )
    return FileReport(
        path=doc["path"],
        format=doc["format"],
        size=int(doc["size"]),
        findings=findings,
        globals=tuple(doc.get("globals", ())),
        members_scanned=int(doc.get("members_scanned", 0)),
    )


class _CachedScanner:
    """``mlsec.scan.scan`` file by file, taking a stored report for a file already scanned by the
    same rules (by sha256 and path) and keeping the new reports for the driver to store."""

    def __init__(self, store: VerdictStore | None, key: str) -> None:
        self.store = store
        self.key = key
        self.new: list[tuple[str, str, dict[str, Any]]] = []
        self.reused = 0

    def __call__(self, art: Artifact, options: ScanOptions) -> ScanReport:
        from mlsec.scan import ScanReport, scan_file

        start = time.perf_counter()
        reports = []
        for f in art.files:
            stored = None
            if self.store is not None and f.sha256:
                try:
                    stored = self.store.file_report(f.sha256, f.path, self.key)
                except MlsecError:
                    stored = None  # an unreadable store only costs a rescan
            if stored is not None and stored.get("path") == f.path:
                reports.append(_file_report(stored))
                self.reused += 1
                continue
            report = scan_file(f, options)
            reports.append(report)
            if f.sha256:
                self.new.append((f.sha256, f.path, report.to_dict()))
        return ScanReport(
            targets=(str(art.root),), files=tuple(reports), duration_s=time.perf_counter() - start
        )


def _open_store(path: str | None) -> VerdictStore | None:
    from mlsec.fleet.store import VerdictStore

    if not path or not Path(path).is_file():
        return None
    try:
        return VerdictStore(path, readonly=True)
    except MlsecError:
        return None


def judge(target: Target, spec: WorkSpec, pinned: str | None = None) -> Outcome:
    """Judge one model; never raises (a failure is an ``error`` outcome with its reason).

    ``pinned`` is the manifest digest the driver resolved: the worker judges exactly that
    manifest even if the tag moves meanwhile.
    """
    try:
        return _judge(target, spec, pinned)
    except MlsecError as exc:
        return error_outcome(target.name, exc.message, pinned)
    except Exception as exc:  # fail closed: an unexpected failure is never an allow
        return error_outcome(target.name, f"{type(exc).__name__}: {exc}", pinned)


def _judge(target: Target, spec: WorkSpec, pinned: str | None) -> Outcome:
    from mlsec.policy.api import admit, admit_reference

    if target.kind is TargetKind.BROKEN:
        return error_outcome(target.name, target.error or "cannot be expanded")
    store = _open_store(spec.store_path)
    scanner = _CachedScanner(store, scan_key(spec.policy))
    verifier = spec.trust.verifier(spec.policy)
    try:
        if target.kind is TargetKind.PATH:
            from mlsec.signing import default_signature_path

            sig = default_signature_path(target.name) if verifier is not None else None
            decision = admit(
                target.name,
                spec.policy,
                signature=sig if sig is not None and sig.is_file() else None,
                verifier=verifier if sig is not None and sig.is_file() else None,
                scanner=scanner,
            )
            digest = tree_digest(decision.evidence)
        else:
            from mlsec.registry import open_store, parse_reference

            ref = parse_reference(target.name)
            if pinned is not None:
                ref = ref.with_digest(pinned)
            reg = open_store(ref, plain_http=spec.plain_http, credentials=spec.credentials)
            try:
                decision = admit_reference(
                    str(ref), spec.policy, store=reg, verifier=verifier, scanner=scanner
                )
            finally:
                reg.close()
            digest = decision.evidence["source"]["digest"]
            decision.evidence["source"]["reference"] = target.name
    finally:
        if store is not None:
            store.close()
    art = decision.evidence["artifact"]
    return decision_outcome(
        target.name,
        decision.allowed,
        [c.message for c in decision.denials],
        digest,
        blobs_read=int(art.get("file_count", 0)),
        bytes_read=int(art.get("total_size", 0)),
        files_scanned=len(scanner.new),
        findings_reused=scanner.reused,
        evidence=decision.evidence,
        new_reports=tuple(scanner.new),
    )
