"""References: where a model lives, parsed once.

Three spellings:

* ``HOST[:PORT]/REPO[:TAG|@sha256:HEX]`` — a registry speaking the OCI distribution API. The first
  component is a host when it contains ``.`` or ``:`` or is ``localhost`` (Docker's rule). HTTPS,
  except plain HTTP for ``localhost``, ``127.0.0.1`` and ``[::1]`` (or when the caller says so).
* ``oci:PATH[:TAG|@sha256:HEX]`` — an OCI image-layout directory (as ``skopeo``'s ``oci:`` and
  ``oras --oci-layout``). The tag is what follows the last ``:`` when it contains no ``/``.
* ``NAME[:TAG|@sha256:HEX]`` (no host) — the default local store: the layout directory
  ``$MLSEC_HOME/oci/NAME`` (``MLSEC_HOME`` defaults to ``$XDG_DATA_HOME/mlsec``, else
  ``~/.local/share/mlsec``). Unlike Docker, a bare name never means Docker Hub.

The tag defaults to ``latest``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mlsec.errors import RegistryError
from mlsec.registry.oci import check_digest

__all__ = ["DEFAULT_TAG", "RefKind", "Reference", "default_store_root", "parse_reference"]

DEFAULT_TAG = "latest"
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_REPO_RE = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
_HOST_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_LOOPBACK = {"localhost", "127.0.0.1", "[::1]"}


class RefKind(StrEnum):
    REGISTRY = "registry"
    LAYOUT = "layout"


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed reference. ``host`` is set for a registry, ``layout`` for a layout directory."""

    kind: RefKind
    repository: str
    tag: str | None
    digest: str | None
    host: str | None = None
    layout: Path | None = None

    @property
    def reference(self) -> str:
        """What names the manifest in its repository: the digest when given, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def is_loopback(self) -> bool:
        """True for ``localhost``, ``127.0.0.1`` and ``[::1]`` (any port)."""
        if self.host is None:
            return False
        host = self.host.rsplit(":", 1)[0] if not self.host.endswith("]") else self.host
        return host in _LOOPBACK

    def with_digest(self, digest: str) -> Reference:
        """The same repository, addressed by ``digest``."""
        return Reference(self.kind, self.repository, None, digest, self.host, self.layout)

    def __str__(self) -> str:
        if self.kind is RefKind.LAYOUT:
            base = f"oci:{self.layout}"
        else:
            base = f"{self.host}/{self.repository}"
        if self.digest:
            return f"{base}@{self.digest}"
        return f"{base}:{self.tag or DEFAULT_TAG}"


def default_store_root() -> Path:
    """Where bare ``NAME[:TAG]`` references live: ``$MLSEC_HOME/oci``."""
    home = os.environ.get("MLSEC_HOME")
    if home:
        return Path(home) / "oci"
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "mlsec" / "oci"


def _split_tag_digest(text: str, ref: str) -> tuple[str, str | None, str | None]:
    digest: str | None = None
    if "@" in text:
        text, digest = text.rsplit("@", 1)
        check_digest(digest, f"{ref}: digest")
    tag: str | None = None
    last = text.rfind(":")
    if last > text.rfind("/"):
        text, tag = text[:last], text[last + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise RegistryError(f"{ref}: invalid tag {tag!r}")
    return text, tag, digest


def parse_reference(ref: str) -> Reference:
    """Parse a reference (see the module docstring); :class:`RegistryError` if invalid.

    >>> parse_reference("localhost:5000/models/bert:v1").host
    'localhost:5000'
    >>> parse_reference("oci:/srv/models:v1").layout
    PosixPath('/srv/models')
    """
    if not ref or any(c.isspace() for c in ref):
        raise RegistryError(f"{ref!r}: empty reference or contains whitespace")
    if ref.startswith("oci:"):
        path, tag, digest = _split_tag_digest(ref[4:], ref)
        if not path:
            raise RegistryError(f"{ref}: missing layout path after 'oci:'")
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return Reference(RefKind.LAYOUT, Path(path).name, tag, digest, layout=Path(path))
    name, tag, digest = _split_tag_digest(ref, ref)
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        if not _HOST_RE.fullmatch(first):
            raise RegistryError(f"{ref}: invalid registry host {first!r}")
        if not _REPO_RE.fullmatch(rest):
            raise RegistryError(
                f"{ref}: invalid repository name {rest!r}",
                hint="lowercase letters, digits and . _ - separators, components joined by /",
            )
        return Reference(RefKind.REGISTRY, rest, tag, digest, host=first)
    if not _REPO_RE.fullmatch(name):
        raise RegistryError(
            f"{ref}: invalid name {name!r}",
            hint="use HOST/REPO[:TAG] for a registry, oci:PATH[:TAG] for a layout directory",
        )
    return Reference(RefKind.LAYOUT, name, tag, digest, layout=default_store_root() / name)
