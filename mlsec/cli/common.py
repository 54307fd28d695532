"""What every command shares: output streams, formats, atomic output files, progress, errors."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, overload

import typer

from mlsec.errors import MlsecError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgress

    from mlsec.hub import HubSource
    from mlsec.ignore import IgnoreFile
    from mlsec.progress import Progress
    from mlsec.secrets import Passphrase


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


# Options more than one command takes, spelt once.
FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", metavar="table|json", help="Output format.")
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write the result here.")
]
IgnoreOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore",
        metavar="PATTERN",
        help="Path (relative to the artifact) or glob to leave out; repeatable.",
    ),
]
PublicKeyOpt = Annotated[
    Path | None, typer.Option("--key", "-k", metavar="PUB", help="Trusted public key (PEM).")
]
ChainOpt = Annotated[
    list[Path] | None,
    typer.Option("--certificate-chain", metavar="PEM", help="Trusted CA certs (repeatable)."),
]
IdentityOpt = Annotated[
    str | None, typer.Option("--identity", metavar="ID", help="Keyless: expected identity.")
]
IssuerOpt = Annotated[
    str | None, typer.Option("--issuer", metavar="URL", help="Keyless: expected OIDC issuer.")
]


class State:
    """Global options, set by the app callback."""

    debug: bool = False
    quiet: bool = False
    # hf:// targets of the running command: (local directory, where it came from)
    sources: tuple[tuple[str, HubSource], ...] = ()


def stdout_console() -> Console:
    from rich.console import Console

    # Off a terminal (pipes, CI logs) rich would squeeze tables into 80 columns; give them room.
    width = None if sys.stdout.isatty() else 200
    return Console(file=sys.stdout, highlight=False, soft_wrap=False, width=width)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False)


def render_text(renderable: object, width: int = 200) -> str:
    """Render a rich object (a table) to plain text, for ``--output`` files."""
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    Console(file=buf, width=width, no_color=True).print(renderable)
    return buf.getvalue()


def emit_json(doc: dict[str, Any], output: Path | None = None) -> None:
    """Write a JSON document to ``output`` (see :func:`mlsec.ioutil.open_output`), or stdout."""
    if State.sources:
        doc = _relabel(doc)
        found = [s.to_dict() for _, s in State.sources]
        extra = {"source": found[0]} if len(found) == 1 else {"sources": found}
        doc = {**doc, **extra}
        if isinstance(doc.get("evidence"), dict):  # admit: the evidence a person reads, too
            doc["evidence"] = {**doc["evidence"], **extra}
    import json

    text = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    emit_text(text, output)


def emit_text(text: str, output: Path | None = None) -> None:
    for root, source in State.sources:
        text = text.replace(root, source.target)
    if output is not None:
        from mlsec.ioutil import write_output

        try:
            write_output(output, text.encode())
        except OSError as exc:
            raise MlsecError(f"{output}: cannot write: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


@overload
def local_target(target: Path) -> Path: ...
@overload
def local_target(target: str) -> str: ...
def local_target(target: str | Path) -> str | Path:
    """The local path of a command's PATH argument. ``hf://ORG/NAME[@REVISION]`` is downloaded
    and verified (:func:`mlsec.hub.download`) into a temporary directory that is removed when the
    command ends, also on SIGINT/SIGTERM; outputs then name ``hf://ORG/NAME@<commit>`` instead of
    that directory, and JSON documents carry a ``source`` object."""
    if not os.fspath(target).startswith("hf:/"):  # mlsec.hub.is_hub_target, without importing it
        return target
    import click

    from mlsec.hub import download

    ctx = click.get_current_context()
    previous = State.sources

    def forget() -> None:
        State.sources = previous

    ctx.call_on_close(forget)
    model = ctx.with_resource(download(target))
    State.sources = (*State.sources, (str(model.path), model.source))
    return model.path if isinstance(target, Path) else str(model.path)


def _relabel(value: Any) -> Any:
    if isinstance(value, str):
        for root, source in State.sources:
            if value == root or value.startswith(root + "/"):
                return source.target + value[len(root) :]
        return value
    if isinstance(value, dict):
        return {k: _relabel(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_relabel(v) for v in value]
    return value


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so that every ``finally`` and ``except
    BaseException`` cleanup runs exactly as for Ctrl-C (SIGINT)."""


_INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupts:
    """SIGINT, SIGTERM and SIGHUP (what CI runners and Kubernetes send) as exceptions, so temp
    files, ``.part`` files and staging directories are removed as on any error."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @contextlib.contextmanager
    def clean_up(self) -> Iterator[None]:
        """Within the block SIGINT raises :class:`KeyboardInterrupt`, SIGTERM and SIGHUP raise
        :class:`Terminated`. After the first one the others are ignored until the block ends, so
        the cleanup is not cut short. A signal the parent set to be ignored (``nohup``,
        background jobs) stays ignored."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.getsignal(s) for s in _INTERRUPTS}

        def handler(signum: int, frame: object) -> None:
            for s, old in previous.items():
                if old is not signal.SIG_IGN:
                    signal.signal(s, signal.SIG_IGN)
            self.signum = signum
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise Terminated(signum)

        for s, old in previous.items():
            if old is not signal.SIG_IGN:
                signal.signal(s, handler)
        try:
            yield
        finally:
            for s, old in previous.items():
                signal.signal(s, old if old is not None else signal.SIG_DFL)

    def report(self) -> int:
        """Say which signal ended the run; its exit code: 128 + the signal number (130 SIGINT,
        143 SIGTERM, 129 SIGHUP), as a shell reports a process the signal killed."""
        assert self.signum is not None
        if self.signum == signal.SIGINT:
            print("mlsec: interrupted", file=sys.stderr)
        else:
            print(f"mlsec: terminated by {signal.Signals(self.signum).name}", file=sys.stderr)
        return 128 + self.signum


def info(message: str) -> None:
    """A log line on stderr (suppressed by --quiet); control characters escaped (one line)."""
    if not State.quiet:
        from mlsec.cli.text import escape

        print(escape(message), file=sys.stderr)


def wants_progress(total_bytes: int = 0, threshold: int = 256 * 1024 * 1024) -> bool:
    """Progress bars only on a terminal, not in CI, not with --quiet, and only for large work."""
    if State.quiet or os.environ.get("CI") or not sys.stderr.isatty():
        return False
    return total_bytes >= threshold


class RichProgressAdapter:
    """Implements :class:`mlsec.progress.Progress` with a rich progress bar on stderr."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress: RichProgress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=stderr_console(),
            transient=True,
        )
        self._task: Any = None

    def start(self, description: str, total: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: int) -> None:
        self._progress.advance(self._task, amount)

    def finish(self) -> None:
        self._progress.stop()


def progress_for(total_bytes: int) -> Progress | None:
    return RichProgressAdapter() if wants_progress(total_bytes) else None


class LazyProgress:
    """A progress bar that decides whether to show itself once the total is known, so the
    library can walk and hash in one go (no separate pass to size the work first)."""

    def __init__(self) -> None:
        self._inner: RichProgressAdapter | None = None

    def start(self, description: str, total: int) -> None:
        if wants_progress(total):
            self._inner = RichProgressAdapter()
            self._inner.start(description, total)

    def advance(self, amount: int) -> None:
        if self._inner is not None:
            self._inner.advance(amount)

    def finish(self) -> None:
        if self._inner is not None:
            self._inner.finish()
            self._inner = None


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 file``, ``2 files`` (``many`` for irregular plurals: ``plural(n, "dependency",
    "dependencies")``)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def format_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


MAX_PASSPHRASE_FILE_BYTES = 64 * 1024


def read_passphrase(
    file: Path | None, *, confirm: bool, what: str, unencrypted_flag: str | None = None
) -> Passphrase:
    """A passphrase from ``--passphrase-file`` (first line), else ``MLSEC_PASSPHRASE``, else the
    terminal (asked twice when ``confirm``); never from argv. ``unencrypted_flag`` names the option
    that avoids needing one, for the hints."""
    from mlsec.errors import UsageError
    from mlsec.secrets import Passphrase

    if file is not None:
        from mlsec.ioutil import read_capped

        lines = read_capped(
            file, MAX_PASSPHRASE_FILE_BYTES, what="passphrase file", error=UsageError
        ).splitlines()
        if not lines or not lines[0]:
            raise UsageError(f"{file}: empty passphrase file")
        return Passphrase(lines[0])
    env = os.environ.get("MLSEC_PASSPHRASE")
    if env:
        return Passphrase(env.encode())
    if not sys.stdin.isatty():
        raise UsageError(
            f"{what}: a passphrase is needed and there is no terminal to ask for it",
            hint="set MLSEC_PASSPHRASE or pass --passphrase-file"
            + (f" (or {unencrypted_flag})" if unencrypted_flag else ""),
        )
    import getpass

    first = getpass.getpass(f"Passphrase for {what}: ")
    if not first:
        extra = f" (use {unencrypted_flag} to do without one)" if unencrypted_flag else ""
        raise UsageError(f"empty passphrase{extra}")
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise UsageError("passphrases do not match")
    return Passphrase(first.encode())


def load_ignore(explicit: Path | None) -> IgnoreFile | None:
    """The ignore file ``--ignorefile`` names, else ``.mlsecignore.yaml`` in the current
    directory, else None; each expired entry is reported on stderr (it no longer applies)."""
    from mlsec.ignore import IgnoreFile, find_ignore_file

    source = find_ignore_file(explicit)
    if source is None:
        return None
    ignore = IgnoreFile.load(source)
    for e in ignore.expired:
        what = e.rule or e.symbol or e.path or e.sha256 or e.id
        print(
            f"mlsec: warning: {ignore.source}:{e.line}: ignore entry for {what} "
            f"expired on {e.expires}; it no longer applies",
            file=sys.stderr,
        )
    return ignore


IgnoreFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--ignorefile",
        metavar="FILE",
        help="Accepted findings and vulnerabilities, each with a reason and an optional expiry "
        "(default: .mlsecignore.yaml in the current directory, when present).",
    ),
]
