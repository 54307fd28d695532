"""Wires the command modules into one typer app and maps errors to exit codes (DESIGN.md)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click
import typer

from mlsec import __version__
from mlsec.cli import admit, crypt, demo, fleet, inspect, registry, sbom, scan, sign
from mlsec.cli.common import Interrupts, State
from mlsec.cli.config import config_arg, default_map, find_config
from mlsec.errors import ExitCode, MlsecError


def _new_app() -> typer.Typer:
    return typer.Typer(
        name="mlsec",
        help=(
            "Secure the supply chain of machine-learning models.\n\n"
            "Exit codes: 0 passed/succeeded, 1 check failed (findings, bad signature, policy "
            "denial), 2 could not do the job (usage error, missing file, wrong key, malformed "
            "input)."
        ),
        pretty_exceptions_enable=False,  # rich's locals panels can leak secrets
        add_completion=False,
        no_args_is_help=True,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


app = _new_app()


def _version(value: bool) -> None:
    if value:
        print(f"mlsec {__version__}")
        raise typer.Exit(0)


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for unexpected errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or log lines."),
    config: str | None = typer.Option(
        None,
        "--config",
        metavar="FILE",
        help="Per-command defaults (TOML; default ./mlsec.toml or [tool.mlsec] in "
        "./pyproject.toml; env MLSEC_CONFIG). Flags and MLSEC_<COMMAND>_<OPTION> override it.",
    ),
) -> None:
    State.debug = debug
    State.quiet = quiet


app.callback()(_root)
# typer converts every registered command to click on each run (about 30 ms for all of them), so
# a run of one command gets an app holding only its own module's commands. --help, a bare
# `mlsec` and unknown commands get the whole app.
_BY_COMMAND: dict[str, typer.Typer] = {}
for _module in (inspect, scan, sbom, sign, crypt, registry, admit, fleet, demo):
    _module.register(app)
    _own = _new_app()
    _own.callback()(_root)
    _module.register(_own)
    for _info in _own.registered_commands:
        _BY_COMMAND[_info.name or ""] = _own


def _command_name(args: Sequence[str]) -> str | None:
    # The root options are flags except --config FILE, so the first other word names the command.
    it = iter(args)
    for a in it:
        if a == "--config":
            next(it, None)
        elif not a.startswith("-"):
            return a
    return None


def _app_for(args: Sequence[str]) -> typer.Typer:
    return _BY_COMMAND.get(_command_name(args) or "", app)


def _invoke(args: list[str]) -> object:
    group = typer.main.get_command(_app_for(args))
    name = _command_name(args)
    defaults: dict[str, Any] | None = None
    helping = "--help" in args or "-h" in args
    if (
        isinstance(group, click.Group)
        and name is not None
        and name in group.commands
        and not helping
    ):
        found = find_config(config_arg(args))
        defaults = default_map(found, list(_BY_COMMAND), name, group.commands[name])
    return group.main(args=args, prog_name="mlsec", standalone_mode=False, default_map=defaults)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` and return the exit code (never raises, except with --debug)."""
    args = list(sys.argv[1:] if argv is None else argv)
    State.debug = "--debug" in args
    State.quiet = False
    caught = Interrupts()
    try:
        with caught.clean_up():
            rv = _invoke(args)
    except click.exceptions.UsageError as exc:
        exc.show()
        return ExitCode.ERROR
    except click.exceptions.Abort:
        print("mlsec: aborted", file=sys.stderr)
        return ExitCode.ERROR
    except click.exceptions.ClickException as exc:
        exc.show()
        return ExitCode.ERROR
    except MlsecError as exc:
        if State.debug:
            raise
        from mlsec.cli.text import escape  # a file name in a message stays one inert line

        print(f"mlsec: error: {escape(exc.message)}", file=sys.stderr)
        if exc.hint:
            print(f"mlsec: hint: {escape(exc.hint)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if caught.signum is None:
            print("mlsec: interrupted", file=sys.stderr)
            return 130
    except Exception as exc:  # the one place that turns bugs into a clean line
        if State.debug:
            raise
        print(
            f"mlsec: internal error: {type(exc).__name__}: {_escape(exc)}"
            " (rerun with --debug for details)",
            file=sys.stderr,
        )
        return ExitCode.ERROR
    if caught.signum is not None:  # typer turns any interrupt into exit code 130
        return caught.report()
    return rv if isinstance(rv, int) else ExitCode.OK


def _escape(text: object) -> str:
    from mlsec.cli.text import escape

    return escape(text)


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
