"""A real OCI registry for the tests: Debian's ``docker-registry`` (distribution 2.8).

:func:`start_registry` writes a config (loopback only, filesystem storage in a temp dir, optional
htpasswd basic auth), starts ``docker-registry serve CONFIG`` on a free port, and waits until
``GET /v2/`` answers. :meth:`Registry.stop` ends that one process. ``scripts/test`` installs the
``docker-registry`` and ``apache2-utils`` packages.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


@dataclass
class Registry:
    """A running registry: ``host`` is ``127.0.0.1:PORT``; blobs live under ``storage``."""

    host: str
    storage: Path
    proc: subprocess.Popen[bytes]
    log: Path
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def blob_path(self, digest: str) -> Path:
        """Where the registry's filesystem driver keeps the blob ``sha256:<hex>``."""
        hexpart = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def start_registry(
    workdir: Path,
    *,
    username: str | None = None,
    password: str | None = None,
    token_auth: str | None = None,
    address: str = "127.0.0.1",
    tls: tuple[Path, Path] | None = None,
) -> Registry:
    """Start ``docker-registry`` in ``workdir``: basic auth when a username is given, token
    (Bearer) auth when ``token_auth`` is the YAML of an ``auth: {token: ...}`` section, HTTPS
    when ``tls`` is a (certificate, key) pair of PEM files."""
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    auth = f"auth: {{token: {token_auth}}}\n" if token_auth else ""
    if username is not None:
        htpasswd = workdir / "htpasswd"
        subprocess.run(
            ["htpasswd", "-Bbc", str(htpasswd), username, password or ""],
            check=True,
            capture_output=True,
        )
        auth = f"auth: {{htpasswd: {{realm: mlsec-test, path: {htpasswd}}}}}\n"
    last_error = ""
    for _ in range(5):  # another process may take the port between probe and bind
        port = _free_port(address)
        config = workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: {address}:{port}"
            + (f", tls: {{certificate: {tls[0]}, key: {tls[1]}}}" if tls else "")
            + "}\n"
            + auth
        )
        log = workdir / "registry.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [BINARY, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
            )
        reg = Registry(f"{address}:{port}", storage, proc, log, username, password)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                conn = (
                    http.client.HTTPSConnection(
                        address, port, timeout=2, context=ssl._create_unverified_context()
                    )
                    if tls
                    else http.client.HTTPConnection(address, port, timeout=2)
                )
                conn.request("GET", "/v2/")
                status = conn.getresponse().status
                conn.close()
                if status in (200, 401):
                    return reg
            except OSError:
                time.sleep(0.05)
        reg.stop()
        last_error = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"docker-registry did not start: {last_error}")


class TokenServer:
    """A minimal Docker token service (the Bearer ``realm``) for docker-registry's token auth.

    It checks Basic credentials, then issues an ES256 JWT for exactly the scope asked for,
    signed by a self-signed certificate that the registry trusts (``rootcertbundle``); the
    certificate travels in the ``x5c`` header. ``requests`` records every scope asked for.
    """

    def __init__(self, workdir: Path, username: str, password: str) -> None:
        import datetime
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.username, self.password = username, password
        self.service, self.issuer = "mlsec-test-registry", "mlsec-test-token-issuer"
        self.requests: list[tuple[str | None, str]] = []  # (scope, outcome)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlsec test token signer")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = workdir / "token-signer.pem"
        workdir.mkdir(parents=True, exist_ok=True)
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._cert_der = cert.public_bytes(serialization.Encoding.DER)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def registry_config(self) -> str:
        return (
            f"{{realm: {self.realm}, service: {self.service}, issuer: {self.issuer}, "
            f"rootcertbundle: {self.cert_path}}}"
        )

    def _handle(self, req: object) -> None:
        import base64
        import json
        from http.server import BaseHTTPRequestHandler
        from urllib.parse import parse_qs, urlsplit

        assert isinstance(req, BaseHTTPRequestHandler)
        query = parse_qs(urlsplit(req.path).query)
        scope = query.get("scope", [None])[0]
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if req.headers.get("Authorization") != expected:
            self.requests.append((scope, "refused"))
            req.send_response(401)
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        self.requests.append((scope, "granted"))
        body = json.dumps({"token": self._token(scope), "expires_in": 300}).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def _token(self, scope: str | None) -> str:
        import base64
        import json
        import os
        import time as _time

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        access = []
        if scope:
            kind, name, actions = scope.split(":", 2)
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(_time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self._cert_der).decode()]}
        claims = {
            "iss": self.issuer,
            "sub": self.username,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": os.urandom(8).hex(),
            "access": access,
        }
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def make_tls_files(workdir: Path, ip: str) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for ``ip`` signed by it: (ca.pem, cert.pem, key.pem)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    workdir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlsec test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (workdir / "ca.pem", workdir / "cert.pem", workdir / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths
