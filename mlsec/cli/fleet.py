"""``mlsec fleet``: judge every model of a registry, layout or directory under one policy."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from mlsec.cli.common import (
    ChainOpt,
    FormatOpt,
    IdentityOpt,
    IssuerOpt,
    OutputFormat,
    PublicKeyOpt,
    emit_json,
    emit_text,
    render_text,
)
from mlsec.cli.registry import PasswordStdinOpt, PlainHttpOpt, UsernameOpt

HELP_POLICY = "Policy file (YAML/JSON) or preset: default, strict, permissive."
HELP_SOURCE = (
    "HOST[:PORT] (every repository and tag), HOST/PREFIX/, HOST/REPO:TAG, oci:DIR (every tag),"
    " a directory of model directories, or @FILE (one per line)."
)


class EngineChoice(StrEnum):
    LOCAL = "local"
    RAY = "ray"


class _ModelProgress:
    """Models done / total on stderr, only on a terminal (not in CI, not with --quiet)."""

    def __init__(self) -> None:
        self._bar: Any = None

    def start(self, description: str, total: int) -> None:
        from mlsec.cli.common import stderr_console, wants_progress

        if not wants_progress(1, 1):
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=stderr_console(),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(description, total=total)

    def advance(self, amount: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, amount)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def register(app: typer.Typer) -> None:
    app.command("fleet")(fleet_cmd)


def fleet_cmd(
    sources: Annotated[list[str], typer.Argument(metavar="SOURCE...", help=HELP_SOURCE)],
    policy: Annotated[str, typer.Option("--policy", "-p", metavar="POLICY", help=HELP_POLICY)] = (
        "default"
    ),
    store: Annotated[
        Path | None,
        typer.Option(
            "--store", metavar="DB", help="Verdict store (SQLite): reused and updated by each run."
        ),
    ] = None,
    engine: Annotated[
        EngineChoice,
        typer.Option("--engine", metavar="local|ray", help="Where the workers run."),
    ] = EngineChoice.LOCAL,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address", metavar="ADDR", help="Ray cluster (HOST:PORT, ray://…, auto)."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-j", metavar="N", min=1, help="Local worker processes."),
    ] = None,
    key: PublicKeyOpt = None,
    certificate_chain: ChainOpt = None,
    identity: IdentityOpt = None,
    issuer: IssuerOpt = None,
    plain_http: PlainHttpOpt = False,
    username: UsernameOpt = None,
    password_stdin: PasswordStdinOpt = False,
    fmt: FormatOpt = OutputFormat.TABLE,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write the report here."),
    ] = None,
) -> int:
    """Judge every model the sources name under one policy: one decision per model (allow, deny
    with every reason, or error: could not be judged). With --store, blobs already judged by the
    same rules are not read again and a policy change is evaluated over stored evidence.
    Exit 0 all allowed, 1 any denied, 2 any could not be judged.
    """
    from mlsec.cli.registry import _credentials
    from mlsec.fleet import Trust, run_fleet

    trust = Trust(
        key=str(key) if key else None,
        certificate_chain=tuple(str(p) for p in certificate_chain or ()),
        identity=identity,
        issuer=issuer,
    )
    result = run_fleet(
        sources,
        policy,
        store=store,
        engine=engine.value,
        ray_address=ray_address,
        workers=workers,
        trust=trust,
        plain_http=plain_http,
        credentials=_credentials(username, password_stdin),
        progress=_ModelProgress() if fmt is OutputFormat.TABLE and output is None else None,
    )
    if fmt is OutputFormat.JSON:
        emit_json(result.to_dict(), output)
        return result.exit_code
    from rich.table import Table

    from mlsec.cli.text import cell

    s = result.stats
    title = (
        f"{s.models} model(s) under policy {result.policy.name!r}: {s.allowed} allowed,"
        f" {s.denied} denied, {s.errors} error(s)"
    )
    table = Table(title=cell(title))
    table.add_column("model")
    table.add_column("decision")
    table.add_column("digest")
    table.add_column("reasons")
    for o in result.outcomes:
        digest = o.digest[:19] if o.digest else "-"
        reasons = "; ".join(o.reasons) if o.reasons else "-"
        table.add_row(cell(o.reference), o.decision.upper(), digest, cell(reasons))
    footer = (
        f"{s.blobs_read} blob(s), {s.bytes_read} B read; {s.verdicts_reused} verdict(s) reused,"
        f" {s.files_scanned} file(s) scanned, {s.findings_reused} report(s) reused;"
        f" {s.seconds:.1f} s ({result.engine})"
    )
    emit_text(render_text(table) + footer + "\n", output)
    return result.exit_code
