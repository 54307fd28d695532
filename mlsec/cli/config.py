"""Per-command defaults from a config file (``mlsec.toml`` or ``[tool.mlsec]``), see docs/config.md.

Precedence is flag > environment (``MLSEC_<COMMAND>_<OPTION>``, the long option's name) > file >
built-in default. Both become click's ``default_map`` for the command that runs; the file's table
names and that command's keys are checked, so a typo is an error that names the file and the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from mlsec.errors import ConfigError, MlsecError
from mlsec.ioutil import read_capped

ENV_FILE = "MLSEC_CONFIG"
FILE_NAME = "mlsec.toml"
_MAX_BYTES = 1 << 20


def config_arg(args: Sequence[str]) -> str | None:
    """The value of a root ``--config`` given before the command name, if any."""
    it = iter(args)
    for a in it:
        if a == "--config":
            return next(it, "")
        if a.startswith("--config="):
            return a.split("=", 1)[1]
        if not a.startswith("-"):
            return None
    return None


def find_config(explicit: str | None) -> tuple[Path, bool] | None:
    """The config file to use and whether it is ``pyproject.toml``; None when there is none.

    ``--config`` wins over ``MLSEC_CONFIG``; an explicit file must exist. Otherwise ``mlsec.toml``
    in the current directory, else ``pyproject.toml`` there when it has a ``[tool.mlsec]`` table.
    """
    given = explicit if explicit is not None else os.environ.get(ENV_FILE) or None
    if given is not None:
        p = Path(given)
        if not p.is_file():
            raise ConfigError(f"config file {given!r} does not exist or is not a regular file")
        return p, p.name == "pyproject.toml"
    local = Path(FILE_NAME)
    if local.is_file():
        return local, False
    pyproject = Path("pyproject.toml")
    if pyproject.is_file():
        try:
            # A cheap test first: most projects' pyproject.toml has no mlsec table at all.
            if b"[tool.mlsec" in read_capped(pyproject, _MAX_BYTES, what="pyproject.toml"):
                return pyproject, True
        except MlsecError:
            return None
    return None


def _load(path: Path, pyproject: bool) -> dict[str, Any]:
    import tomllib

    raw = read_capped(path, _MAX_BYTES, what="config file", error=ConfigError)
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses into arrays and inline tables
        raise ConfigError(f"{path}: nested too deep to be a config file") from None
    if pyproject:
        tool = doc.get("tool", {})
        table = tool.get("mlsec", {}) if isinstance(tool, dict) else {}
        return table if isinstance(table, dict) else {}
    return doc


def _options(command: click.Command) -> dict[str, click.Option]:
    """The command's options by every spelling a file may use: the long flag (``fail-on``), with
    underscores (``fail_on``), and the parameter's own name."""
    out: dict[str, click.Option] = {}
    for p in command.params:
        if not isinstance(p, click.Option) or not p.name or p.name == "help" or p.hidden:
            continue
        names = {p.name}
        names.update(o[2:] for o in p.opts if o.startswith("--"))
        for n in names:
            out[n] = p
            out[n.replace("-", "_")] = p
    return out


def _env_name(command: str, option: str) -> str:
    return f"MLSEC_{command}_{option}".upper().replace("-", "_")


def _from_env(name: str, command: click.Command) -> dict[str, Any]:
    """``MLSEC_<COMMAND>_<OPTION>`` values, by parameter name; a list option splits on spaces."""
    out: dict[str, Any] = {}
    for opt in {id(o): o for o in _options(command).values()}.values():
        assert opt.name is not None
        for long in [o[2:] for o in opt.opts if o.startswith("--")]:
            value = os.environ.get(_env_name(name, long))
            if value is not None:
                out[opt.name] = value.split() if opt.multiple else value
    return out


def default_map(
    found: tuple[Path, bool] | None, commands: Sequence[str], name: str, command: click.Command
) -> dict[str, dict[str, Any]]:
    """Defaults for the command ``name`` about to run: its table of the config file (every table
    name checked against ``commands``, every key of its own table against its options) with the
    environment's ``MLSEC_<COMMAND>_<OPTION>`` values over it."""
    entries: dict[str, Any] = {}
    if found is not None:
        path, pyproject = found
        doc = _load(path, pyproject)
        where = f"{path}" + (" [tool.mlsec]" if pyproject else "")
        for table in doc:
            if table not in commands:
                known = ", ".join(sorted(commands))
                raise ConfigError(f"{where}: unknown command table [{table}] (known: {known})")
        table = doc.get(name, {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: [{name}] must be a table of options")
        options = _options(command)
        for key, value in table.items():
            opt = options.get(key)
            if opt is None:
                raise ConfigError(f"{where}: unknown key {key!r} in [{name}]")
            if opt.multiple and not isinstance(value, list):
                value = [value]
            if isinstance(value, (dict, list)) and not opt.multiple:
                raise ConfigError(f"{where}: [{name}] {key} must be a single value")
            assert opt.name is not None
            entries[opt.name] = value
    entries.update(_from_env(name, command))
    return {name: entries} if entries else {}
