"""Fixtures for the SBOM tests: the offline OSV service (see ``osv_server.py``)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from tests.unit.sbom.osv_server import OsvServer, osv_server

# A package name this server answers with HTTP 500 (a service that errors on one package).
FAILING_PACKAGE = "mlsec-test-service-error"


@pytest.fixture(scope="session")
def osv() -> Iterator[OsvServer]:
    """The OSV-compatible server on 127.0.0.1, for the whole session.

    Proxies are bypassed for 127.0.0.1, so that a CI proxy setting cannot intercept pip-audit's
    requests (the subprocess inherits this environment)."""
    with pytest.MonkeyPatch.context() as mp:
        no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
        mp.setenv("NO_PROXY", no_proxy)
        mp.setenv("no_proxy", no_proxy)
        with osv_server(fail_packages={FAILING_PACKAGE}) as server:
            yield server


@pytest.fixture
def closed_url() -> str:
    """The URL of a 127.0.0.1 port nothing listens on (a service that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
