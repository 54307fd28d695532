"""The optional second engine: ProtectAI's modelscan, run on the same paths, findings merged.

Imported only for ``--engine modelscan|all``; our engine never needs it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlsec.errors import MlsecError
from mlsec.scan.model import Finding, Severity

__all__ = ["ModelscanUnavailable", "run_modelscan"]

_SEVERITY = {
    "CRITICAL": Severity.CRITICAL,
    "HIGH": Severity.HIGH,
    "MEDIUM": Severity.MEDIUM,
    "LOW": Severity.LOW,
}


class ModelscanUnavailable(MlsecError):
    """modelscan is not installed."""


def run_modelscan(targets: Sequence[Path]) -> list[Finding]:
    """Run modelscan on each target and return its issues and errors as findings."""
    try:
        from modelscan.modelscan import ModelScan
    except ImportError:
        raise ModelscanUnavailable(
            "--engine modelscan needs the modelscan package, which is not installed",
            hint="pip install 'mlsec[modelscan]'",
        ) from None
    out: list[Finding] = []
    for target in targets:
        # modelscan logs to stdout; stdout carries our results only.
        with contextlib.redirect_stdout(sys.stderr):
            result: dict[str, Any] = ModelScan().scan(str(target))
        base = target.name if target.is_file() else ""
        for issue in result.get("issues", []):
            out.append(_issue(issue, base))
        for err in result.get("errors", []):
            out.append(_error(err, base))
    return out


def _where(source: object, base: str) -> tuple[str, str | None]:
    text = str(source or base)
    file, _, member = text.partition(":")
    return file or base, member or None


def _issue(issue: dict[str, Any], base: str) -> Finding:
    file, member = _where(issue.get("source"), base)
    module, operator = issue.get("module", ""), issue.get("operator", "")
    return Finding(
        rule="MODELSCAN-UNSAFE-OPERATOR",
        severity=_SEVERITY.get(str(issue.get("severity", "")).upper(), Severity.HIGH),
        file=file,
        member=member,
        message=str(issue.get("description", f"unsafe operator {module}.{operator}")),
        symbol=f"{module}.{operator}" if module else None,
        engine="modelscan",
    )


def _error(err: Any, base: str) -> Finding:
    info = err if isinstance(err, dict) else {"description": str(err)}
    file, member = _where(info.get("source"), base)
    return Finding(
        rule="MODELSCAN-ERROR",
        severity=Severity.INFO,
        file=file,
        member=member,
        message=f"modelscan could not scan it: {info.get('description', err)}",
        engine="modelscan",
    )
