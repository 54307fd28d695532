"""Wires the command modules into one typer app and maps errors to exit codes (DESIGN.md).

Start-up is part of the interface (a pre-commit hook or CI step runs ``mlsec`` once per file):
nothing is imported before it is needed. ``mlsec --version`` answers before typer is imported;
a run of one command imports and builds only the command module that owns it (typer converts
every registered command to click on each run); ``--help``, a bare ``mlsec`` and unknown words
get the whole app.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlsec import __version__

if TYPE_CHECKING:
    import typer

# The module of mlsec.cli that registers each command, in the order ``--help`` lists them. A test
# checks it against what the modules register, so the two cannot drift apart.
_COMMANDS: dict[str, str] = {
    "inspect": "inspect",
    "scan": "scan",
    "sbom": "sbom",
    "keygen": "sign",
    "sign": "sign",
    "verify": "sign",
    "attest": "attest",
    "encrypt": "crypt",
    "decrypt": "crypt",
    "age-keygen": "crypt",
    "push": "registry",
    "pull": "registry",
    "admit": "admit",
    "fleet": "fleet",
    "demo": "demo",
}
_MODULES: tuple[str, ...] = tuple(dict.fromkeys(_COMMANDS.values()))
# Root options that take no value; with --config FILE they are all the root options there are.
_ROOT_FLAGS = frozenset({"--version", "--debug", "--quiet", "-q"})

_apps: dict[str | None, typer.Typer] = {}  # by module name; None: the whole app


def _new_app() -> typer.Typer:
    import typer

    app = typer.Typer(
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
    app.callback()(_root_callback())
    return app


def _root_callback() -> Any:
    import typer

    from mlsec.cli.common import State

    def _version(value: bool) -> None:
        if value:
            print(f"mlsec {__version__}")
            raise typer.Exit(0)

    def _root(
        version: bool = typer.Option(
            False,
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
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

    return _root


def _build(module: str | None) -> typer.Typer:
    """The app holding ``module``'s commands (None: every module's), built once per process."""
    app = _apps.get(module)
    if app is None:
        app = _new_app()
        for name in _MODULES if module is None else (module,):
            # __import__, not importlib.import_module: the import statement's own path, which
            # ``python -X importtime`` reports.
            getattr(__import__("mlsec.cli", fromlist=[name]), name).register(app)
        _apps[module] = app
    return app


def __getattr__(name: str) -> typer.Typer:
    # ``app``, the whole typer app, for tests and embedders; built on first use.
    if name == "app":
        return _build(None)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    module = _COMMANDS.get(_command_name(args) or "")
    return _build(module)


def _only_version(args: Sequence[str]) -> bool:
    """Whether click would do nothing but print the version: ``--version`` among root options
    only (no command, no help, nothing click would reject first)."""
    it = iter(args)
    seen = False
    for a in it:
        if a == "--config":
            if next(it, None) is None:
                return False  # click: "--config requires an argument"
        elif a == "--version":
            seen = True
        elif a not in _ROOT_FLAGS and not a.startswith("--config="):
            return False
    return seen


def _invoke(args: list[str]) -> object:
    import click
    import typer.main

    from mlsec.cli.config import config_arg, default_map, find_config

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
        defaults = default_map(found, list(_COMMANDS), name, group.commands[name])
    if _gc_paused:
        _resume_gc()
    return group.main(args=args, prog_name="mlsec", standalone_mode=False, default_map=defaults)


# Start-up allocates tens of thousands of objects (modules, classes, typer's click commands) that
# live as long as the process: collecting among them is wasted work. The console script pauses
# the collector until the command is built, then freezes those objects out of later collections
# (gc.freeze) and resumes. Only there: run() in a long-lived process (tests, embedders) must not
# freeze its caller's objects.
_gc_paused = False


def _resume_gc() -> None:
    import gc

    global _gc_paused
    _gc_paused = False
    gc.freeze()
    gc.enable()


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` and return the exit code (never raises, except with --debug)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if _only_version(args):  # what click would print, without importing it
        print(f"mlsec {__version__}")
        return 0
    import click

    from mlsec.cli.common import Interrupts, State
    from mlsec.errors import ExitCode, MlsecError

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
    import gc

    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True
    try:
        code = run()
    finally:
        if _gc_paused:  # the run ended before its command was built
            _gc_paused = False
            gc.enable()
    sys.exit(code)
