# ruff: noqa: F811 - the registry fixtures are imported from tests/unit/registry/conftest.py
"""Registry transport users can deploy: HTTP(S)_PROXY / NO_PROXY, and retries of 429 and 5xx with
bounded backoff that honours Retry-After. Against the real docker-registry, behind a local
forward proxy and a front that fails on purpose (tests/net_fronts.py)."""

from __future__ import annotations

import email.utils
from pathlib import Path

import pytest

from mlsec.errors import RegistryError
from mlsec.registry import pull, push
from mlsec.registry.client import proxy_for, retry_wait
from tests.net_fronts import AlwaysFailing, FlakyFront, ForwardProxy
from tests.registry_server import Registry
from tests.unit.registry.conftest import make_model, registry, tree  # noqa: F401


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)
    return monkeypatch


@pytest.fixture
def proxy():
    p = ForwardProxy()
    yield p
    p.stop()


def test_retry_wait_rules() -> None:
    assert [retry_wait(None, n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert retry_wait(None, 10) == 30.0  # capped
    assert retry_wait("3", 0) == 3.0
    assert retry_wait("100000", 0) == 30.0
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert retry_wait(date, 0, now=1_000_000) == pytest.approx(10.0)
    assert retry_wait(email.utils.formatdate(0, usegmt=True), 0, now=1_000_000) == 0.0
    assert retry_wait("soon", 1) == 1.0  # unreadable: the backoff


def test_proxy_for_reads_the_environment(clean_proxy_env) -> None:
    assert proxy_for("https", "ghcr.io") is None
    clean_proxy_env.setenv("HTTPS_PROXY", "http://proxy:3128")
    clean_proxy_env.setenv("http_proxy", "http://plain:8080")
    assert proxy_for("https", "ghcr.io") == "http://proxy:3128"
    assert proxy_for("http", "127.0.0.1:5000") == "http://plain:8080"
    clean_proxy_env.setenv("NO_PROXY", "internal.example,.corp,127.0.0.1")
    assert proxy_for("https", "reg.internal.example") is None
    assert proxy_for("https", "models.corp:443") is None
    assert proxy_for("http", "127.0.0.1:5000") is None
    assert proxy_for("https", "ghcr.io") == "http://proxy:3128"
    clean_proxy_env.setenv("NO_PROXY", "*")
    assert proxy_for("https", "ghcr.io") is None


def test_push_and_pull_go_through_http_proxy(
    registry: Registry, proxy: ForwardProxy, clean_proxy_env, tmp_path: Path
) -> None:
    clean_proxy_env.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://bob:s%3Acret@"))
    model = make_model(tmp_path / "m")
    ref = f"{registry.host}/proxied/model:v1"
    res = push(model, ref)
    out = pull(ref, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(model) and out.digest == res.digest
    assert proxy.first_lines, "nothing went through the proxy"
    assert all(f" http://{registry.host}/v2/" in line for line in proxy.first_lines)
    # bob:s:cret, percent-decoded, as Basic credentials
    assert set(proxy.proxy_auth) == {"Basic Ym9iOnM6Y3JldA=="}


def test_no_proxy_bypasses_the_proxy(
    registry: Registry, proxy: ForwardProxy, clean_proxy_env, tmp_path: Path
) -> None:
    clean_proxy_env.setenv("HTTP_PROXY", proxy.url)
    clean_proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
    push(make_model(tmp_path / "m"), f"{registry.host}/proxied/direct:v1")
    assert proxy.first_lines == []


def test_https_registry_through_connect_tunnel(
    tmp_path: Path, proxy: ForwardProxy, clean_proxy_env
) -> None:
    from tests.registry_server import make_tls_files, start_registry

    ca, cert, key = make_tls_files(tmp_path / "tls", "127.0.0.2")
    reg = start_registry(tmp_path / "reg", address="127.0.0.2", tls=(cert, key))
    try:
        clean_proxy_env.setenv("SSL_CERT_FILE", str(ca))
        clean_proxy_env.setenv("HTTPS_PROXY", proxy.url)
        model = make_model(tmp_path / "m")
        ref = f"{reg.host}/tunnel/model:v1"
        push(model, ref)
        pull(ref, tmp_path / "out")
        assert tree(tmp_path / "out") == tree(model)
        assert proxy.first_lines and all(
            line.startswith(f"CONNECT {reg.host} ") for line in proxy.first_lines
        )
    finally:
        reg.stop()


def test_unsupported_proxy_is_one_clear_error(clean_proxy_env, registry, tmp_path) -> None:
    clean_proxy_env.setenv("HTTP_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(RegistryError, match="only http://HOST"):
        push(make_model(tmp_path / "m"), f"{registry.host}/x/y:v1")


def test_transient_failures_are_retried(registry: Registry, clean_proxy_env, tmp_path) -> None:
    answers = [(503, {}), (429, {"Retry-After": "1"}), (502, {"Retry-After": "0"})]
    front = FlakyFront(registry.host, answers)
    try:
        model = make_model(tmp_path / "m")
        ref = f"{front.host}/flaky/model:v1"
        res = push(model, ref)
        assert front.failed == 3 and front.passed >= 1
        out = pull(ref, tmp_path / "out")
        assert tree(tmp_path / "out") == tree(model) and out.digest == res.digest
    finally:
        front.stop()


def test_retries_are_bounded(registry: Registry, clean_proxy_env, tmp_path: Path) -> None:
    front = AlwaysFailing(registry.host, 503)
    try:
        with pytest.raises(RegistryError, match="503"):
            push(make_model(tmp_path / "m"), f"{front.host}/down/model:v1")
        assert front.failed == 5  # the first try and 4 retries, then it gives up
    finally:
        front.stop()


def test_client_errors_are_not_retried(registry: Registry, clean_proxy_env, tmp_path) -> None:
    front = FlakyFront(registry.host, [(400, {})])
    try:
        with pytest.raises(RegistryError):
            push(make_model(tmp_path / "m"), f"{front.host}/bad/model:v1")
        assert front.failed == 1 and front.passed == 0
    finally:
        front.stop()
