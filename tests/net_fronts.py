"""Two small TCP servers for the registry transport tests, in front of the real docker-registry.

:class:`ForwardProxy` is an HTTP forward proxy (what ``HTTPS_PROXY`` / ``HTTP_PROXY`` name):
``CONNECT host:port`` opens a tunnel; an absolute-form request (``GET http://host/v2/``) is piped
to that host as it is (Go's net/http, which docker-registry uses, accepts absolute-form targets).
It records each connection's first line and its Proxy-Authorization header.

:class:`FlakyFront` stands in for a registry that fails on purpose: each of its first connections
gets one canned error answer (503, 429 with Retry-After, …) and is closed; later connections are
piped to the registry. Both run in threads on 127.0.0.1; the tests that start them stop them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Sequence


def _pipe(a: socket.socket, b: socket.socket) -> None:
    def one_way(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    t = threading.Thread(target=one_way, args=(b, a), daemon=True)
    t.start()
    one_way(a, b)
    t.join(5)
    a.close()
    b.close()


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The request head (up to the blank line) and whatever body bytes came with it."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


class _Server:
    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop = True
        self._sock.close()


class ForwardProxy(_Server):
    def __init__(self) -> None:
        self.first_lines: list[str] = []
        self.proxy_auth: list[str | None] = []
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handle(self, conn: socket.socket) -> None:
        head, rest = _read_head(conn)
        lines = head.decode("latin-1").split("\r\n")
        first = lines[0]
        auth = next(
            (ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("proxy-auth")),
            None,
        )
        self.first_lines.append(first)
        self.proxy_auth.append(auth)
        method, target, _ = first.split(" ", 2)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host, int(port)))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
        else:
            hostport = target.split("://", 1)[1].split("/", 1)[0]
            host, _, port = hostport.rpartition(":")
            upstream = socket.create_connection((host, int(port or 80)))
            upstream.sendall(head + b"\r\n\r\n" + rest)
        _pipe(conn, upstream)


class FlakyFront(_Server):
    """Answers its first ``len(answers)`` connections with those canned answers, then pipes."""

    def __init__(self, upstream: str, answers: Sequence[tuple[int, dict[str, str]]]) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self._answers = list(answers)
        self._lock = threading.Lock()
        self.failed = 0
        self.passed = 0
        super().__init__()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _handle(self, conn: socket.socket) -> None:
        head, rest = _read_head(conn)
        with self._lock:
            answer = self._answers.pop(0) if self._answers else None
            if answer is None:
                self.passed += 1
            else:
                self.failed += 1
        if answer is None:
            upstream = socket.create_connection(self._upstream)
            upstream.sendall(head + b"\r\n\r\n" + rest)
            _pipe(conn, upstream)
            return
        length = 0
        for ln in head.decode("latin-1").split("\r\n")[1:]:
            if ln.lower().startswith("content-length:"):
                length = int(ln.split(":", 1)[1])
        got = len(rest)
        while got < length:  # take the whole body, so the client reads our answer, not a reset
            data = conn.recv(min(65536, length - got))
            if not data:
                break
            got += len(data)
        status, headers = answer
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        body = b'{"errors":[{"code":"UNAVAILABLE","message":"try again"}]}'
        conn.sendall(
            f"HTTP/1.1 {status} Flaky\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n".encode()
            + body
        )
        conn.close()


class AlwaysFailing(FlakyFront):
    def __init__(self, upstream: str, status: int = 503) -> None:
        super().__init__(upstream, [(status, {"Retry-After": "0"})] * 1000)
