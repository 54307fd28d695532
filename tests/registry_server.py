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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(
    workdir: Path, *, username: str | None = None, password: str | None = None
) -> Registry:
    """Start ``docker-registry`` in ``workdir`` (basic auth when a username is given)."""
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    auth = ""
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
        port = _free_port()
        config = workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {storage}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: 127.0.0.1:{port}}}\n" + auth
        )
        log = workdir / "registry.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [BINARY, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
            )
        reg = Registry(f"127.0.0.1:{port}", storage, proc, log, username, password)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
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
