"""SARIF 2.1.0 output for GitHub code scanning: one run, a rule per finding id with help text,
results with a level, a location relative to the scan root and stable ``partialFingerprints``."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from mlsec import __version__
from mlsec.scan.model import Finding, ScanReport, Severity

__all__ = ["RULES", "to_sarif"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_INFO_URI = "https://github.com/mlsec/mlsec#mlsec-scan"

# Rule id → (short description, help). Rules not listed (another analyzer's) get a generic entry.
RULES: dict[str, tuple[str, str]] = {
    "PICKLE-DANGEROUS-GLOBAL": (
        "Pickle imports a callable that can execute code or reach the OS",
        "Loading this pickle imports a callable known to run code, spawn processes, touch files "
        "or the network, or import arbitrary modules. Do not load it; re-export the weights as "
        "safetensors from a trusted source.",
    ),
    "PICKLE-DUNDER-ACCESS": (
        "Pickle reaches interpreter internals through attribute access",
        "Attribute chains such as __builtins__, __globals__ or __subclasses__ turn any allowed "
        "object into a path to eval/exec. This is a known scanner bypass technique.",
    ),
    "PICKLE-GLOBAL-MUTATION": (
        "Pickle modifies a module-level object while loading",
        "BUILD on a class or function sets its attributes (monkey-patching) so that later, "
        "innocent-looking calls run attacker code.",
    ),
    "PICKLE-UNKNOWN-GLOBAL": (
        "Pickle imports a global outside the allowlist",
        "Loading requires trusting the named module. If you trust it, allow it with "
        "--allow-global module.name.",
    ),
    "PICKLE-ATTRIBUTE-TRAVERSAL": (
        "Pickle walks attributes of a module to reach an object",
        "A dotted global name reaches objects the module imported; legitimate pickles rarely "
        "need it.",
    ),
    "PICKLE-DYNAMIC-GLOBAL": (
        "Pickle imports a global whose name is computed while loading",
        "STACK_GLOBAL with non-constant operands hides what is imported from static analysis.",
    ),
    "PICKLE-DYNAMIC-ATTRIBUTE": (
        "Pickle accesses an attribute whose name is computed while loading",
        "getattr/attrgetter with a computed name hides what is reached.",
    ),
    "PICKLE-INDIRECT-CALL": (
        "Pickle calls an object obtained from another call",
        "The called object is the result of getattr, a factory or similar: what runs is hidden.",
    ),
    "PICKLE-DUNDER-STATE": (
        "Pickle restores dunder attributes on an object",
        "Setting __class__ or similar through BUILD swaps an object's behaviour.",
    ),
    "PICKLE-EXTENSION-CODE": (
        "Pickle uses copyreg extension codes",
        "EXT opcodes name objects through a registry filled at run time; they cannot be checked "
        "statically.",
    ),
    "PICKLE-MALFORMED": (
        "Pickle stream cannot be parsed",
        "The loader runs every opcode before the point where it fails; a malformed stream may "
        "be crafted to stop scanners early. Findings before the break are reported.",
    ),
    "PICKLE-TRAILING-DATA": (
        "Bytes after the last pickle stream are not a pickle",
        "Nothing in them would run under pickle.load; noted because files rarely carry them.",
    ),
    "PICKLE-LOADER-CONFUSION": (
        "File decodes differently under joblib and pickle.load",
        "The raw array bytes joblib skips decode as dangerous opcodes under plain pickle.load.",
    ),
    "PICKLE-DISGUISED": (
        "File loads as a pickle although it does not look like one",
        "pickle.load needs no header; scanners that pick formats by header or name skip it.",
    ),
    "PICKLE-FRAME-MISMATCH": (
        "Pickle frames that loaders decode differently",
        "A line-based opcode after a FRAME, or a FRAME inside a frame: CPython's C and Python "
        "unpicklers, and file and bytes loaders, can read different opcodes from such a stream.",
    ),
    "PICKLE-LIMIT": (
        "Pickle exceeds the analysis limits",
        "The rest of the data was not analysed (opcode or stream limit).",
    ),
    "PARSE-ERROR": (
        "File cannot be parsed as its detected format",
        "What the scanner cannot parse may hide a payload; loaders are often more lenient.",
    ),
    "NUMPY-BAD-HEADER": (
        "NumPy .npy header is malformed",
        "The header could not be parsed; a lenient loader may still read the file.",
    ),
    "NUMPY-TRAILING-DATA": (
        "NumPy .npy file has data after the array",
        "Bytes after the array are ignored by numpy.load but can carry a payload for other "
        "readers.",
    ),
    "CONTAINER-DEPTH": (
        "Containers nested too deeply",
        "Deep nesting exhausts scanners and can hide a payload.",
    ),
}

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub sorts security alerts by this CVSS-like score.
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.8",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.0",
    Severity.LOW: "2.0",
    Severity.INFO: "0.0",
}


def _rule(rule_id: str, severity: Severity) -> dict[str, Any]:
    short, help_text = RULES.get(rule_id, (rule_id.replace("-", " ").capitalize(), rule_id))
    return {
        "id": rule_id,
        "name": "".join(p.capitalize() for p in rule_id.split("-")),
        "shortDescription": {"text": short},
        "fullDescription": {"text": help_text},
        "help": {"text": help_text, "markdown": f"**{short}**\n\n{help_text}"},
        "helpUri": _INFO_URI,
        "defaultConfiguration": {"level": _LEVEL[severity]},
        "properties": {
            "tags": ["security", "supply-chain", "machine-learning"],
            "security-severity": _SECURITY_SEVERITY[severity],
        },
    }


def _fingerprint(f: Finding, uri: str) -> str:
    key = "\x00".join((f.rule, uri, f.member or "", f.symbol or "", f.engine))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def to_sarif(report: ScanReport, *, uris: Sequence[str] | None = None) -> dict[str, Any]:
    """The report as a SARIF 2.1.0 log. ``uris`` gives each file's URI relative to the scan root,
    in the order of ``report.files`` (default: the report's own paths)."""
    rules: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    results: list[dict[str, Any]] = []
    for i, fr in enumerate(report.files):
        uri = uris[i] if uris is not None and i < len(uris) else fr.path
        accepted = {id(f): s for f, s in fr.suppressed}
        for f in (*fr.findings, *(f for f, _ in fr.suppressed)):
            if f.rule not in rules:
                rules[f.rule] = _rule(f.rule, f.severity)
                order.append(f.rule)
            where = f" (in {f.member})" if f.member else ""
            result: dict[str, Any] = {
                "ruleId": f.rule,
                "ruleIndex": order.index(f.rule),
                "level": _LEVEL[f.severity],
                "message": {"text": f"{f.message}{where}"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": uri, "uriBaseId": "%SRCROOT%"},
                            "region": {"startLine": 1},
                        },
                        "logicalLocations": [{"name": f.member, "kind": "member"}]
                        if f.member
                        else [],
                    }
                ],
                "partialFingerprints": {"mlsecFinding/v1": _fingerprint(f, uri)},
                "properties": {
                    "severity": f.severity.value,
                    "engine": f.engine,
                    **({"symbol": f.symbol} if f.symbol else {}),
                    **({"offset": f.offset} if f.offset is not None else {}),
                },
            }
            if not f.member:
                del result["locations"][0]["logicalLocations"]
            if id(f) in accepted:  # shown to an audit as suppressed, not as an open alert
                s = accepted[id(f)]
                result["suppressions"] = [
                    {"kind": "external", "status": "accepted", "justification": s.entry.reason}
                ]
            results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mlsec",
                        "version": __version__,
                        "informationUri": _INFO_URI,
                        "rules": [rules[r] for r in order],
                    }
                },
                "automationDetails": {"id": "mlsec/scan/"},
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
