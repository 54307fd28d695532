"""Helpers shared by push/pull and referrers: opening the store a reference names, fetching a
manifest checked against its digest."""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Iterator

from mlsec.errors import RegistryError
from mlsec.registry.auth import Credentials, docker_config_credentials
from mlsec.registry.client import RegistryStore
from mlsec.registry.layout import LayoutStore
from mlsec.registry.oci import digest_bytes
from mlsec.registry.reference import Reference, RefKind, parse_reference
from mlsec.registry.store import Store

__all__ = ["open_store"]


def open_store(
    ref: Reference | str,
    *,
    plain_http: bool = False,
    credentials: Credentials | None = None,
    timeout: float = 60.0,
) -> Store:
    """The store a reference names: a :class:`LayoutStore` or a :class:`RegistryStore`.

    HTTPS unless the host is the loopback or ``plain_http`` is set. Without explicit
    ``credentials``, the Docker config's ``auths`` entry for the host is used when present.
    """
    if isinstance(ref, str):
        ref = parse_reference(ref)
    if ref.kind is RefKind.LAYOUT:
        assert ref.layout is not None
        return LayoutStore(ref.layout)
    assert ref.host is not None
    scheme = "http" if plain_http or ref.is_loopback else "https"
    creds = credentials if credentials is not None else docker_config_credentials(ref.host)
    return RegistryStore(f"{scheme}://{ref.host}", ref.repository, creds, timeout=timeout)


@contextlib.contextmanager
def store_for(ref: Reference, store: Store | None) -> Iterator[Store]:
    if store is not None:
        yield store
        return
    own = open_store(ref)
    try:
        yield own
    finally:
        own.close()


def now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def created_annotation() -> dict[str, str]:
    """``org.opencontainers.image.created`` only when ``SOURCE_DATE_EPOCH`` gives the time: a
    manifest is then a function of the model and the options, so pushing the same model twice
    (or to a new tag) gives the same digest and the referrers attached to it stay attached."""
    import os

    from mlsec.registry.oci import CREATED

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch or not epoch.strip().isdigit():
        return {}
    when = _dt.datetime.fromtimestamp(int(epoch), _dt.UTC)
    return {CREATED: when.isoformat().replace("+00:00", "Z")}


def fetch_manifest(st: Store, reference: str, what: str) -> tuple[bytes, str, str]:
    data, media_type = st.fetch_manifest(reference)
    digest = digest_bytes(data)
    if reference.startswith("sha256:") and digest != reference:
        raise RegistryError(f"{what}: manifest digest mismatch: expected {reference}, got {digest}")
    return data, media_type, digest
