"""The command reference (``docs/commands.md``), generated from each command's ``--help``.

``python -m mlsec.cli.reference > docs/commands.md`` rewrites it; a test checks that the file in
the repository is what this prints, so the reference cannot drift from the code.
"""

from __future__ import annotations

import contextlib
import io
import os

WIDTH = "100"

HEADER = """# Command reference

Generated from `mlsec COMMAND --help` by `python -m mlsec.cli.reference > docs/commands.md`
(a test checks it is current). Exit codes: 0 passed, 1 check failed, 2 could not do the job.
Every option can also come from a config file or `MLSEC_<COMMAND>_<OPTION>`
([config.md](config.md)).
"""


def _help(args: list[str]) -> str:
    from mlsec.cli.app import run

    out = io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        with contextlib.redirect_stdout(out):
            run([*args, "--help"])
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return out.getvalue().rstrip() + "\n"


def commands() -> list[str]:
    """The command names in the order ``mlsec --help`` lists them."""
    from mlsec.cli.app import app

    return [c.name or "" for c in app.registered_commands if not c.hidden]


def render() -> str:
    parts = [HEADER, "## mlsec\n", "```text\n" + _help([]) + "```\n"]
    for name in commands():
        parts.append(f"## mlsec {name}\n")
        parts.append("```text\n" + _help([name]) + "```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
