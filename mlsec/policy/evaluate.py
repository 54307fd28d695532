"""Evaluate a policy over an evidence document: allow or deny, with every reason.

Every rule the policy sets produces a :class:`Check` — passed or not, with a one-line message
that names what was found — so a denial is explained completely, and an allow shows what was
checked. A rule the policy leaves unset produces no check. The decision is *allow* only when
every check passed (fail closed: evidence that is missing where a rule needs it fails the rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlsec.policy.model import Policy
from mlsec.schemas import Schema

__all__ = ["SCHEMA", "SEVERITY_RANK", "Check", "Decision", "evaluate"]

SCHEMA = Schema.ADMIT
# Severity words of scan findings and of vulnerabilities, ordered.
SEVERITY_RANK = {"critical": 5, "high": 4, "medium": 3, "low": 2, "info": 1, "none": 0}


@dataclass(frozen=True, slots=True)
class Check:
    """One rule's outcome."""

    rule: str
    passed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "passed": self.passed, "message": self.message}


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer: ``allowed`` only if every check passed; ``evidence`` is what was evaluated."""

    allowed: bool
    checks: tuple[Check, ...]
    policy: Policy
    evidence: dict[str, Any]

    @property
    def denials(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "decision": "allow" if self.allowed else "deny",
            "allowed": self.allowed,
            "policy": self.policy.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
            "evidence": self.evidence,
        }


def evaluate(policy: Policy, evidence: dict[str, Any]) -> Decision:
    """Apply ``policy`` to ``evidence`` (a ``mlsec/evidence/v1`` document)."""
    checks: list[Check] = []
    for rule in (_scan, _signature, _sbom, _vulnerabilities, _formats, _licenses, _size, _rego):
        checks.extend(rule(policy, evidence))
    return Decision(all(c.passed for c in checks), tuple(checks), policy, evidence)


def _scan(policy: Policy, ev: dict[str, Any]) -> list[Check]:
    if policy.scan_fail_on == "never":
        return []
    threshold = SEVERITY_RANK[policy.scan_fail_on]
    bad = [f for f in ev["scan"]["findings"] if SEVERITY_RANK.get(f["severity"], 5) >= threshold]
    if not bad:
        worst = ev["scan"]["max_severity"] or "none"
        return [
            Check("scan", True, f"no finding at or above {policy.scan_fail_on} (worst: {worst})")
        ]
    shown = "; ".join(
        f"{f['severity']} {f['rule']} in {f['file']}"
        + (f" ({f['symbol']})" if f.get("symbol") else "")
        for f in bad[:5]
    )
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return [
        Check(
            "scan",
            False,
            f"{len(bad)} finding(s) at or above {policy.scan_fail_on}: {shown}{more}",
        )
    ]


def _signature(policy: Policy, ev: dict[str, Any]) -> list[Check]:
    sig = ev["signature"]
    if not sig["given"]:
        if policy.signature_required:
            return [Check("signature", False, "a signature is required and none was given")]
        return []
    if sig["verified"]:
        return [Check("signature", True, f"verified, signed by {sig['signer']}")]
    # A signature that was given and does not verify denies even when none is required.
    return [Check("signature", False, f"does not verify: {sig['error']}")]


def _sbom(policy: Policy, ev: dict[str, Any]) -> list[Check]:
    sbom = ev["sbom"]
    if sbom["source"] != "given" and not sbom["error"]:
        if policy.sbom_required:
            return [Check("sbom", False, "an SBOM is required and none was given")]
        return []
    if sbom["error"]:
        return [Check("sbom", False, f"unusable SBOM: {sbom['error']}")]
    if not sbom["matches_files"]:
        diffs = sbom["differences"]
        shown = "; ".join(f"{d['path']}: {d['status']}" for d in diffs[:5])
        more = f" and {len(diffs) - 5} more" if len(diffs) > 5 else ""
        return [Check("sbom", False, f"does not describe this model's files: {shown}{more}")]
    return [Check("sbom", True, "describes exactly this model's files")]


def _vulnerabilities(policy: Policy, ev: dict[str, Any]) -> list[Check]:
    sbom = ev["sbom"]
    checks: list[Check] = []
    if not sbom["audited"]:
        if policy.vulnerabilities_required:
            checks.append(
                Check(
                    "vulnerabilities",
                    False,
                    "vulnerability data is required: give an audited SBOM or use --audit",
                )
            )
        return checks
    unauditable = sbom.get("unauditable") or []
    if unauditable and policy.unauditable == "deny":
        shown = ", ".join(
            f"{u.get('name')}=={u.get('version')} ({u.get('reason')})" for u in unauditable[:3]
        ) + (f" and {len(unauditable) - 3} more" if len(unauditable) > 3 else "")
        checks.append(
            Check(
                "vulnerabilities",
                False,
                f"{len(unauditable)} dependenc{'y' if len(unauditable) == 1 else 'ies'} could not "
                f"be audited: {shown}",
            )
        )
    if policy.vulnerabilities_fail_on == "never" and policy.unknown_severity == "allow":
        return checks
    threshold = SEVERITY_RANK.get(policy.vulnerabilities_fail_on, 99)
    bad: list[str] = []
    ignored = accepted = 0
    for v in sbom["vulnerabilities"]:
        ids = {v["id"], *v.get("aliases", ())}
        if ids & policy.ignore_vulnerabilities:
            ignored += 1
            continue
        if v.get("suppressed"):
            accepted += 1
            continue
        sev = v.get("severity")
        if sev is None:
            if policy.unknown_severity == "deny":
                bad.append(f"{v['id']} ({v.get('package')}, severity unknown)")
        elif SEVERITY_RANK.get(sev, 0) >= threshold:
            bad.append(f"{v['id']} ({v.get('package')} {v.get('version')}, {sev})")
    note = f"; {ignored} accepted by the policy" if ignored else ""
    note += f"; {accepted} accepted by the ignore file" if accepted else ""
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        checks.append(Check("vulnerabilities", False, f"{len(bad)} known: {shown}{note}"))
    else:
        total = len(sbom["vulnerabilities"])
        level = policy.vulnerabilities_fail_on
        checks.append(
            Check("vulnerabilities", True, f"none at or above {level} ({total} known{note})")
        )
    return checks


def _formats(policy: Policy, ev: dict[str, Any]) -> list[Check]:
    if not policy.formats_allow and not policy.formats_deny:
        return []
    present = ev["artifact"]["formats"]
    files = ev["artifact"]["files"]
    denied = sorted(f for f in present if f in policy.formats_deny)
    if policy.formats_allow:
        denied += sorted(f for f in present if f not in policy.formats_allow and f not in denied)
    if not denied:
        return [Check("formats", True, "formats allowed: " + ", ".join(sorted(present)))]
    examples = [
        f"{fmt}: " + ", ".join([x["path"] for x in files if x["format"] == fmt][:3])
        for fmt in denied
    ]
    return [Check("formats", False, "format(s) not allowed: " + "; ".join(examples))]


def _licenses(policy: Policy, ev: dict[str, Any]) -> list[Check]:
    if not (policy.licenses_required or policy.licenses_allow or policy.licenses_deny):
        return []
    model = ev["model"]
    declared = [str(x) for x in model.get("licenses") or []]
    if model.get("error") and not declared:
        return [Check("licenses", False, f"cannot read the model card: {model['error']}")]
    if not declared:
        if policy.licenses_required or policy.licenses_allow:
            return [Check("licenses", False, "the model declares no licence")]
        return [Check("licenses", True, "no licence declared; none denied")]
    lower_allow = {x.lower() for x in policy.licenses_allow}
    lower_deny = {x.lower() for x in policy.licenses_deny}
    bad = [x for x in declared if x.lower() in lower_deny]
    if lower_allow:
        bad += [x for x in declared if x.lower() not in lower_allow and x not in bad]
    if bad:
        return [Check("licenses", False, "licence(s) not allowed: " + ", ".join(bad))]
    return [Check("licenses", True, "licence(s) allowed: " + ", ".join(declared))]


def _size(policy: Policy, ev: dict[str, Any]) -> list[Check]:
    if policy.max_bytes is None:
        return []
    total = ev["artifact"]["total_size"]
    ok = total <= policy.max_bytes
    verb = "within" if ok else "exceeds"
    return [Check("size", ok, f"{total} bytes {verb} the limit of {policy.max_bytes}")]


def _rego(policy: Policy, ev: dict[str, Any]) -> list[Check]:
    if not policy.rego_modules:
        return []
    from mlsec.policy.rego import deny_messages

    messages = deny_messages(policy.rego_modules, ev)
    if not messages:
        n = len(policy.rego_modules)
        return [Check("rego", True, f"no denial from {n} Rego module(s)")]
    return [Check("rego", False, m) for m in messages]
