"""``mlsec scan``: static analysis of model files for code that runs at load time."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mlsec.cli.common import (
    IgnoreFileOpt,
    emit_json,
    emit_text,
    load_ignore,
    render_text,
    stdout_console,
)
from mlsec.errors import UsageError

if TYPE_CHECKING:
    from mlsec.artifact import Artifact
    from mlsec.scan.model import ScanReport


class ScanFormat(StrEnum):
    """--format values."""

    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"


class FailOn(StrEnum):
    """--fail-on values (the severities that can fail a scan)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Engine(StrEnum):
    """--engine values."""

    MLSEC = "mlsec"
    MODELSCAN = "modelscan"
    ALL = "all"


def register(app: typer.Typer) -> None:
    """Add ``mlsec scan`` to the app."""
    app.command("scan")(scan_cmd)


def scan_cmd(
    paths: Annotated[
        list[Path], typer.Argument(metavar="PATH...", help="Model files or directories.")
    ],
    fmt: Annotated[
        ScanFormat,
        typer.Option("--format", "-f", metavar="table|json|sarif", help="Output format."),
    ] = ScanFormat.TABLE,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write the result here.")
    ] = None,
    fail_on: Annotated[
        FailOn,
        typer.Option(
            "--fail-on",
            metavar="critical|high|medium|low",
            help="Exit 1 when a finding is at or above this severity.",
        ),
    ] = FailOn.MEDIUM,
    allow_global: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-global",
            metavar="MODULE.NAME",
            help="Also trust this pickle global (exact module.name); repeatable.",
        ),
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            metavar="mlsec|modelscan|all",
            help="Scan engine; modelscan needs the optional modelscan package.",
        ),
    ] = Engine.MLSEC,
    ignorefile: IgnoreFileOpt = None,
) -> int:
    """Scan model files statically for code that runs when they are loaded.

    Exit 0 when no finding reaches --fail-on, 1 when one does, 2 when the scan could not run.
    """
    from mlsec.artifact import open_artifact
    from mlsec.scan import ScanOptions, Severity, scan

    allowed = frozenset(allow_global or ())
    from mlsec.scan.model import is_global_name

    for name in allowed:
        if not is_global_name(name):
            raise UsageError(f"--allow-global {name!r}: expected an exact module.name")
    from mlsec.cli.common import local_target

    arts = [open_artifact(local_target(p)) for p in paths]
    options = ScanOptions(allow_globals=allowed)
    engines = {Engine.MLSEC: ("mlsec",), Engine.MODELSCAN: ("modelscan",)}.get(
        engine, ("mlsec", "modelscan")
    )
    report = scan(arts, options, engines=engines)
    report = _apply_ignore(report, arts, ignorefile)
    if fmt is ScanFormat.JSON:
        emit_json(report.to_dict(), output)
    elif fmt is ScanFormat.SARIF:
        import json

        from mlsec.scan.sarif import to_sarif

        doc = to_sarif(report, uris=_uris(arts))
        emit_text(json.dumps(doc, indent=2) + "\n", output)
    else:
        _table(report, output)
    return 1 if report.failed(Severity(fail_on.value)) else 0


def _apply_ignore(report: ScanReport, arts: list[Artifact], explicit: Path | None) -> ScanReport:
    ignore = load_ignore(explicit)
    if ignore is None:
        return report
    digests: dict[str, str] = {}
    if ignore.needs_digests:
        several = len(arts) > 1
        for art in arts:
            for f in art.with_digests().files:
                label = (
                    (f"{art.root}/{f.path}" if art.is_dir else str(art.root)) if several else f.path
                )
                digests[label] = f.sha256 or ""
    return report.with_ignore(ignore, digests)


def _uris(arts: list[Artifact]) -> list[str]:
    """Each scanned file's path relative to the current directory (the scan root), POSIX style."""
    cwd = Path.cwd().resolve()
    out = []
    for art in arts:
        base = art.root if art.is_dir else art.root.parent
        for f in art.files:
            full = (base / f.path).resolve()
            try:
                out.append(full.relative_to(cwd).as_posix())
            except ValueError:
                out.append(full.as_posix())
    return out


_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def _table(report: ScanReport, output: Path | None) -> None:
    counts = report.counts()
    summary = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n) or "no findings"
    if report.suppressed:
        summary += f" ({len(report.suppressed)} suppressed by the ignore file)"
    n = len(report.files)
    title = f"mlsec scan: {n} file{'' if n == 1 else 's'}, {summary}"
    if not report.findings:  # a clean scan is one line, not an empty table
        emit_text(title + "\n", output)
        return
    from rich.table import Table

    table = Table(title=title)
    for col in ("file", "member", "severity", "rule", "symbol", "message"):
        table.add_column(col, overflow="fold", no_wrap=col in ("severity", "rule"))
    for f in sorted(report.findings, key=lambda f: (-f.severity.rank, f.file, f.member or "")):
        sev = f.severity.value
        table.add_row(
            f.file,
            f.member or "",
            f"[{_STYLE[sev]}]{sev}[/]",
            f.rule,
            f.symbol or "",
            f.message,
        )
    if output is not None:
        emit_text(render_text(table), output)
    else:
        console = stdout_console()
        if not console.is_terminal:
            console.width = 160  # logs and pipes: keep rule ids and symbols on one line
        console.print(table)
