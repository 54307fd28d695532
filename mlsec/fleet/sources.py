"""Sources: what ``mlsec fleet`` is asked to judge, expanded to one target per model.

* a directory whose subdirectories are models (each subdirectory is one model);
* ``oci:DIR``: an OCI image layout, every tag of its index.json (``oci:DIR:TAG`` is one model);
* ``HOST[:PORT]``: a registry, every repository of its catalog and every tag of each
  (``HOST/PREFIX/`` keeps the repositories under the prefix; ``HOST/REPO:TAG`` is one model);
* ``@FILE``: one reference or path per line (``#`` comments and blank lines skipped).

A source that cannot be expanded (a registry that does not answer, a missing file) is not an
exception: it becomes one target carrying the reason, judged ``error`` (fail closed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mlsec.errors import MlsecError, UsageError
from mlsec.registry.auth import Credentials

__all__ = ["MAX_TARGETS", "Target", "TargetKind", "expand_sources"]

MAX_TARGETS = 1_000_000
_MAX_LIST_FILE = 64 * 1024 * 1024


class TargetKind(StrEnum):
    PATH = "path"  # a model directory or file on this machine
    REFERENCE = "reference"  # a registry or OCI-layout reference
    BROKEN = "broken"  # a source that could not be expanded: ``error`` says why


@dataclass(frozen=True, slots=True)
class Target:
    """One model to judge: ``name`` is how it is reported (a path or a reference)."""

    name: str
    kind: TargetKind
    error: str | None = None


def expand_sources(
    sources: list[str],
    *,
    plain_http: bool = False,
    credentials: Credentials | None = None,
) -> list[Target]:
    """Every model the sources name, in order, duplicates dropped."""
    out: list[Target] = []
    seen: set[str] = set()
    for source in sources:
        try:
            found = _expand(source, plain_http, credentials, depth=0)
        except MlsecError as exc:
            found = [Target(source, TargetKind.BROKEN, exc.message)]
        except OSError as exc:
            found = [Target(source, TargetKind.BROKEN, f"{source}: {exc.strerror or exc}")]
        for t in found:
            if t.name not in seen:
                seen.add(t.name)
                out.append(t)
        if len(out) > MAX_TARGETS:
            raise UsageError(f"more than {MAX_TARGETS} models named")
    return out


def _expand(
    source: str, plain_http: bool, credentials: Credentials | None, depth: int
) -> list[Target]:
    if source.startswith("@"):
        if depth > 0:
            raise UsageError(f"{source}: an @FILE inside an @FILE")
        return _list_file(Path(source[1:]), plain_http, credentials)
    if source.startswith("oci:"):
        return _layout(source)
    if os.path.lexists(source):
        return _directory(Path(source))
    return _registry(source, plain_http, credentials)


def _list_file(path: Path, plain_http: bool, credentials: Credentials | None) -> list[Target]:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_LIST_FILE + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > _MAX_LIST_FILE:
        raise UsageError(f"{path}: list larger than 64 MiB")
    out: list[Target] = []
    for line in data.decode("utf-8", "replace").splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if os.path.lexists(entry):
            out.append(Target(entry, TargetKind.PATH))
        else:
            out.extend(_registry(entry, plain_http, credentials))
    return out


def _directory(root: Path) -> list[Target]:
    if not root.is_dir():
        return [Target(str(root), TargetKind.PATH)]
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise UsageError(f"{root}: no model subdirectories (a directory of models is expected)")
    return [Target(str(p), TargetKind.PATH) for p in subdirs]


def _layout(source: str) -> list[Target]:
    from mlsec.registry import LayoutStore, parse_reference

    ref = parse_reference(source)
    assert ref.layout is not None
    explicit = source[4:] != str(ref.layout)  # oci:DIR:TAG or oci:DIR@DIGEST: one model
    if explicit:
        return [Target(source, TargetKind.REFERENCE)]
    tags = LayoutStore(ref.layout).tags()
    if not tags:
        raise UsageError(f"{source}: the layout has no tagged model")
    return [Target(f"oci:{ref.layout}:{t}", TargetKind.REFERENCE) for t in tags]


def _registry(source: str, plain_http: bool, credentials: Credentials | None) -> list[Target]:
    from mlsec.registry import RegistryStore, parse_reference
    from mlsec.registry.auth import docker_config_credentials

    host, _, rest = source.partition("/")
    if not host or not ("." in host or ":" in host or host == "localhost"):
        raise UsageError(
            f"{source}: neither a path, oci:DIR, @FILE, nor a registry (HOST[:PORT][/PREFIX/])"
        )
    if rest and not rest.endswith("/"):
        parse_reference(source)  # a RegistryError if it is not a reference
        return [Target(source, TargetKind.REFERENCE)]
    loopback = host.split(":")[0] in ("localhost", "127.0.0.1", "[::1]")
    scheme = "http" if plain_http or loopback else "https"
    creds = credentials if credentials is not None else docker_config_credentials(host)
    cat = RegistryStore(f"{scheme}://{host}", "", creds)
    try:
        repos = [r for r in cat.catalog(MAX_TARGETS) if r.startswith(rest)]
    finally:
        cat.close()
    out: list[Target] = []
    for repo in sorted(repos):
        st = RegistryStore(f"{scheme}://{host}", repo, creds)
        try:
            tags = st.tags(MAX_TARGETS)
        except MlsecError as exc:  # this repository cannot be listed: it is not skipped
            out.append(Target(f"{host}/{repo}", TargetKind.BROKEN, exc.message))
            continue
        finally:
            st.close()
        # sha256-<hex> tags are referrers (signatures, SBOMs) in the tag-schema fallback.
        out.extend(
            Target(f"{host}/{repo}:{t}", TargetKind.REFERENCE)
            for t in sorted(tags)
            if not t.startswith("sha256-")
        )
    return out
