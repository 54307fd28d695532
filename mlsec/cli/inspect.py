"""``mlsec inspect``: the artifact as mlsec sees it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlsec.cli.common import (
    FormatOpt,
    IgnoreOpt,
    LazyProgress,
    OutputFormat,
    OutputOpt,
    emit_json,
    emit_text,
    format_size,
    plural,
    render_text,
    stdout_console,
)
from mlsec.schemas import Schema, envelope

SCHEMA = Schema.INSPECT


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_cmd)


def inspect_cmd(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Model file or directory.")],
    fmt: FormatOpt = OutputFormat.TABLE,
    output: OutputOpt = None,
    ignore: IgnoreOpt = None,
    no_ignore_git: Annotated[
        bool,
        typer.Option("--no-ignore-git", help="Include .git, .gitattributes, .github, .gitignore."),
    ] = False,
    allow_symlinks: Annotated[
        bool,
        typer.Option("--allow-symlinks", help="Follow symlinks that stay inside the artifact."),
    ] = False,
) -> int:
    """List every file of an artifact with its detected format, size and SHA-256."""
    from mlsec.artifact import open_artifact
    from mlsec.cli.common import local_target

    art = open_artifact(
        local_target(path),
        ignore=ignore or (),
        ignore_git=not no_ignore_git,
        allow_symlinks=allow_symlinks,
        digests=True,
        progress=LazyProgress(),
    )
    if fmt is OutputFormat.JSON:
        emit_json(envelope(SCHEMA, {"artifact": art.to_dict()}), output)
        return 0
    from rich.table import Table

    from mlsec.cli.text import cell, escape

    title = f"{escape(art.root)} ({plural(len(art.files), 'file')}, {format_size(art.total_size)})"
    table = Table(title=cell(title))
    table.add_column("path")
    table.add_column("format")
    table.add_column("size", justify="right")
    table.add_column("sha256", no_wrap=True)
    for f in art.files:
        table.add_row(cell(f.path), f.format.value, format_size(f.size), f.sha256 or "")
    for ig in art.ignored:
        table.add_row(cell(ig.path), cell("[ignored]"), "", cell(ig.reason))
    if output is not None:
        emit_text(render_text(table), output)
    else:
        stdout_console().print(table)
    return 0
