"""Registry credentials: where they come from, and the two challenge schemes (Basic, Bearer).

Sources, first match wins: an explicit username with a password (``--username`` plus
``MLSEC_REGISTRY_PASSWORD`` or ``--password-stdin``), else the ``auths`` entry for the host in the
Docker config (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``): as Docker does,
``credHelpers[host]`` names a credential helper for that host, else ``credsStore`` one for every
host, else the inline ``auths`` entry is used. A helper is the program
``docker-credential-NAME``, run as ``docker-credential-NAME get`` with the host on stdin; it
answers ``{"Username", "Secret"}`` as JSON, or fails when it has nothing (then mlsec goes on
without credentials, or with the inline entry). Identity tokens (``Username: <token>``) are not
supported: a one-line error says so.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from mlsec.errors import RegistryError
from mlsec.jsonsafe import loads

__all__ = ["Challenge", "Credentials", "docker_config_credentials", "parse_challenge"]


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and password (or token). The password never appears in a repr."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<redacted>)"

    def basic(self) -> str:
        """The ``Authorization`` header value for Basic auth."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: scheme (lowercase) and its parameters."""

    scheme: str
    params: dict[str, str]


_PARAM_RE = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str) -> Challenge:
    """Parse ``Bearer realm="...",service="...",scope="..."`` (or ``Basic realm="..."``)."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for m in _PARAM_RE.finditer(rest):
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
    return Challenge(scheme.lower(), params)


_MAX_DOCKER_CONFIG = 4 * 1024 * 1024


def docker_config_credentials(host: str) -> Credentials | None:
    """Credentials for ``host`` from the Docker config: its credential helper, else ``auths``."""
    base = os.environ.get("DOCKER_CONFIG")
    path = Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
    try:
        with open(path, "rb") as f:
            doc = loads(
                f.read(_MAX_DOCKER_CONFIG + 1),
                str(path),
                RegistryError,
                max_bytes=_MAX_DOCKER_CONFIG,
            )
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RegistryError(f"{path}: unreadable Docker config: {exc}") from None
    if not isinstance(doc, dict):
        return None
    helpers = doc.get("credHelpers")
    helper = helpers.get(host) if isinstance(helpers, dict) else None
    if not isinstance(helper, str) or not helper:
        store = doc.get("credsStore")
        helper = store if isinstance(store, str) and store else None
    if helper is not None:
        found = _from_helper(helper, host, path)
        if found is not None:
            return found
    return _inline(doc.get("auths"), host, path)


def _inline(auths: object, host: str, path: Path) -> Credentials | None:
    if not isinstance(auths, dict):
        return None
    for key in (host, f"https://{host}", f"http://{host}", f"https://{host}/v2/"):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise RegistryError(f"{path}: malformed auth entry for {host}") from None
            return Credentials(user, password)
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return Credentials(entry["username"], entry["password"])
    return None


_HELPER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _from_helper(name: str, host: str, config: Path) -> Credentials | None:
    """Ask ``docker-credential-NAME`` for ``host``'s credentials (None when it has none)."""
    if not _HELPER_NAME.match(name):
        raise RegistryError(f"{config}: credential helper name {name!r} is not a program name")
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        raise RegistryError(
            f"credential helper docker-credential-{name} (named in {config}) is not on PATH",
            hint="install it, or pass --username with MLSEC_REGISTRY_PASSWORD",
        )
    try:
        proc = subprocess.run(  # the helper the user's Docker config names
            [program, "get"], input=host.encode(), capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RegistryError(f"credential helper docker-credential-{name} failed: {exc}") from None
    if proc.returncode != 0:
        return None  # "credentials not found": go on without them
    try:
        answer = loads(proc.stdout, "credential helper", RegistryError)
        user, secret = answer["Username"], answer["Secret"]
    except (RegistryError, KeyError, TypeError):
        raise RegistryError(
            f"credential helper docker-credential-{name}: unreadable answer for {host}"
        ) from None
    if not isinstance(user, str) or not isinstance(secret, str):
        raise RegistryError(f"credential helper docker-credential-{name}: malformed answer")
    if user == "<token>":
        raise RegistryError(
            f"credential helper docker-credential-{name} gave an identity token for {host}; "
            "mlsec does not support identity tokens",
            hint="pass --username with MLSEC_REGISTRY_PASSWORD or --password-stdin",
        )
    return Credentials(user, secret)
