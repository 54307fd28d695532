"""The OCI distribution API as a store, over ``http.client`` (standard library only).

What it does that matters:

* **Streams.** Uploads go from the file to the socket with ``sendfile`` (no blob in memory):
  one monolithic ``PUT`` for blobs up to ``monolithic_max``, else ``PATCH`` chunks of
  ``chunk_size`` with ``Content-Range`` then a closing ``PUT ?digest=``. Downloads are read in
  1 MiB pieces by the caller, which hashes them.
* **Skips what exists** (``HEAD`` on the blob) and reuses one keep-alive connection.
* **Authenticates once.** ``GET /v2/`` learns the challenge; Basic credentials are then sent with
  every request (and checked up front, so a wrong password fails before any upload), or a Bearer
  token is fetched from the realm for ``repository:<repo>:pull[,push]`` and refreshed when a
  request is refused with a new scope. Nothing is sent twice in the normal case.
* **Credentials go only to the registry's origin** (and, for Bearer, to its token realm, which
  must be HTTPS unless it is on the loopback). A redirect to another host (blob storage) is
  followed without them.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from mlsec.errors import RegistryError
from mlsec.jsonsafe import loads
from mlsec.progress import Progress
from mlsec.registry.auth import Challenge, Credentials, parse_challenge
from mlsec.registry.oci import (
    INDEX_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    MAX_MANIFEST_SIZE,
    Descriptor,
    Index,
    digest_bytes,
)
from mlsec.registry.store import BlobSource, NotFoundError

__all__ = ["DEFAULT_CHUNK_SIZE", "DEFAULT_CONCURRENCY", "DEFAULT_MONOLITHIC_MAX", "RegistryStore"]

DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024
DEFAULT_MONOLITHIC_MAX = 64 * 1024 * 1024
# Blobs moved at once (one connection each): a registry hashes and writes each upload on its own
# core; 4 uploads in parallel took a 1 GiB model from 4.3 s to 2.2 s on 2 cores here.
DEFAULT_CONCURRENCY = 4
_BLOCK = 1024 * 1024
_SENDFILE_SLICE = 8 * 1024 * 1024
_ACCEPT = f"{MANIFEST_MEDIA_TYPE}, {INDEX_MEDIA_TYPE}"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}

Origin = tuple[str, str]

# Answers worth another try: rate limited, or the registry (or a proxy in front) is failing for a
# moment. A few tries with doubling waits, or what Retry-After asks within a cap (docs/registry.md).
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRIES = 4
_BACKOFF = 0.5
_MAX_WAIT = 30.0


def retry_wait(header: str | None, retry: int, *, now: float | None = None) -> float:
    """Seconds to wait before try ``retry + 1``: ``Retry-After`` (seconds or an HTTP date) when the
    server sends it, else ``0.5 * 2**retry``; never more than 30 s."""
    wait: float = _BACKOFF * float(2**retry)
    if header:
        value = header.strip()
        if value.isdigit():
            wait = float(value)
        else:
            with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
                when: float = email.utils.parsedate_to_datetime(value).timestamp()
                wait = max(0.0, when - (time.time() if now is None else now))
    return min(wait, _MAX_WAIT)


def _split_host(netloc: str) -> str:
    host = netloc.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def proxy_for(scheme: str, netloc: str) -> str | None:
    """The proxy URL for ``scheme://netloc`` from ``HTTPS_PROXY`` / ``HTTP_PROXY`` (either case),
    or None when there is none or ``NO_PROXY`` lists the host (``*``, names, domain suffixes)."""
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme)
    if not url:
        return None
    bypass = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009 - not in typeshed
    if bypass(_split_host(netloc), proxies):
        return None
    return url


class _Proxy:
    """A parsed ``http://[user:pass@]host[:port]`` proxy."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        try:
            port = parts.port or 80
        except ValueError:
            port = -1
        if parts.scheme != "http" or not parts.hostname or port <= 0:
            shown = f"{parts.scheme}://{parts.hostname or ''}" + (f":{port}" if port > 0 else "")
            raise RegistryError(
                f"proxy {shown}: only http://HOST[:PORT] proxies are supported",
                hint="HTTPS traffic still goes through it encrypted (CONNECT)",
            )
        self.host, self.port = parts.hostname, port
        self.headers: dict[str, str] = {}
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode(
                "ascii"
            )


def open_connection(
    scheme: str, netloc: str, timeout: float, context: ssl.SSLContext | None, blocksize: int
) -> tuple[http.client.HTTPConnection, dict[str, str] | None]:
    """A connection to ``scheme://netloc``, through the environment's proxy when one applies.

    HTTPS goes through a ``CONNECT`` tunnel (TLS end to end, the proxy sees only the host). Plain
    HTTP through a proxy sends absolute-form targets: the second value is then the headers every
    request must carry (proxy credentials), else None.
    """
    url = proxy_for(scheme, netloc)
    proxy = _Proxy(url) if url else None
    if scheme == "https":
        ctx = context or ssl.create_default_context()
        if proxy is None:
            return http.client.HTTPSConnection(
                netloc, timeout=timeout, context=ctx, blocksize=blocksize
            ), None
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            proxy.host, proxy.port, timeout=timeout, context=ctx, blocksize=blocksize
        )
        conn.set_tunnel(netloc, headers=proxy.headers)
        return conn, None
    if proxy is None:
        return http.client.HTTPConnection(netloc, timeout=timeout, blocksize=blocksize), None
    conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout, blocksize=blocksize)
    return conn, proxy.headers


class _FileBody:
    """``length`` bytes of a file from ``offset``, sent with ``sendfile`` (re-sendable)."""

    def __init__(self, path: Path, offset: int, length: int, progress: Progress) -> None:
        self.path, self.offset, self.length, self.progress = path, offset, length, progress

    def send(self, sock: socket.socket) -> None:
        with open(self.path, "rb") as f:
            done = 0
            while done < self.length:
                n = min(_SENDFILE_SLICE, self.length - done)
                sent = sock.sendfile(f, self.offset + done, n)
                if sent == 0:
                    raise RegistryError(
                        f"file shrank while pushing (expected {self.offset + self.length} bytes)"
                    )
                done += sent
                self.progress.advance(sent)


Body = bytes | _FileBody | None


class RegistryStore:
    """One repository on a registry: ``RegistryStore("https://ghcr.io", "org/model", creds)``."""

    def __init__(
        self,
        base_url: str,
        repository: str,
        auth: Credentials | None = None,
        *,
        timeout: float = 60.0,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        monolithic_max: int = DEFAULT_MONOLITHIC_MAX,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"{base_url}: registry URL must be http(s)://HOST[:PORT]")
        self._origin: Origin = (parts.scheme, parts.netloc.lower())
        self.repository = repository
        self._creds = auth
        self._timeout = timeout
        self.chunk_size = max(1, chunk_size)
        self.monolithic_max = monolithic_max
        self.concurrency = max(1, concurrency)
        # One keep-alive connection per origin *per thread*: blobs move in parallel.
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[http.client.HTTPConnection] = []
        self._pinged = False
        self._challenge: Challenge | None = None
        self._auth_header: str | None = None
        self._token_actions: str = ""
        self._ssl: ssl.SSLContext | None = None
        # Origins reached through a plain-HTTP proxy: absolute-form targets plus these headers.
        self._absolute: dict[Origin, dict[str, str]] = {}
        self.retries = MAX_RETRIES
        # Counted for tests and benchmarks: every response, and those that were 401.
        self.responses = 0
        self.unauthorized = 0

    @property
    def name(self) -> str:
        return f"{self._origin[1]}/{self.repository}"

    def __repr__(self) -> str:
        return f"RegistryStore({self._origin[0]}://{self._origin[1]}, {self.repository!r})"

    # -- connections -------------------------------------------------------------------------

    @property
    def _conns(self) -> dict[Origin, http.client.HTTPConnection]:
        conns: dict[Origin, http.client.HTTPConnection] | None = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        return conns

    def _conn(self, origin: Origin) -> http.client.HTTPConnection:
        conn = self._conns.get(origin)
        if conn is None:
            scheme, netloc = origin
            if scheme == "https" and self._ssl is None:
                self._ssl = ssl.create_default_context()
            conn, via = open_connection(scheme, netloc, self._timeout, self._ssl, _BLOCK)
            self._conns[origin] = conn
            with self._lock:
                self._opened.append(conn)
                if via is not None:
                    self._absolute[origin] = via
        return conn

    def _drop(self, origin: Origin) -> None:
        conn = self._conns.pop(origin, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:  # every thread's; a closed HTTPConnection reconnects if used again
            conn.close()
        self._conns.clear()

    def _resolve(self, url: str) -> tuple[Origin, str]:
        if url.startswith("/"):
            return self._origin, url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"{self.name}: registry sent an unusable URL {url[:100]!r}")
        target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        return (parts.scheme, parts.netloc.lower()), target

    def _send(
        self, method: str, url: str, headers: dict[str, str], body: Body, *, auth: bool = True
    ) -> http.client.HTTPResponse:
        """Send one request: once more on a stale keep-alive connection, and up to
        ``self.retries`` more times with backoff when the answer is 429 or 5xx (not for ``PATCH``,
        whose upload offset the registry may already have moved)."""
        origin, target = self._resolve(url)
        hdrs = dict(headers)
        if auth and origin == self._origin and self._auth_header:
            hdrs["Authorization"] = self._auth_header
        length = 0 if body is None else len(body) if isinstance(body, bytes) else body.length
        if body is not None or method in ("PUT", "POST", "PATCH"):
            hdrs["Content-Length"] = str(length)
        stale_retried = False
        retry = 0
        while True:
            reused = origin in self._conns
            conn = self._conn(origin)
            try:
                resp = self._exchange(conn, origin, method, target, hdrs, body)
            except (OSError, http.client.HTTPException) as exc:
                self._drop(origin)
                if not stale_retried and reused and not isinstance(exc, TimeoutError):
                    stale_retried = True
                    continue
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                hint = None
                if isinstance(exc, ssl.SSLError) and origin[0] == "https":
                    hint = "if this registry speaks plain HTTP, pass --plain-http"
                raise RegistryError(
                    f"{origin[1]}: cannot reach registry: {reason or type(exc).__name__}",
                    hint=hint,
                ) from None
            if resp.status in RETRY_STATUS and method != "PATCH" and retry < self.retries:
                wait = retry_wait(resp.getheader("Retry-After"), retry)
                resp.read(65536)
                if not resp.isclosed():
                    self._drop(origin)
                time.sleep(wait)
                retry += 1
                continue
            return resp

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        origin: Origin,
        method: str,
        target: str,
        hdrs: dict[str, str],
        body: Body,
    ) -> http.client.HTTPResponse:
        via = self._absolute.get(origin)
        if via is not None:
            target = f"{origin[0]}://{origin[1]}{target}"
            hdrs = {**hdrs, **via}
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        if isinstance(body, bytes):
            if body:
                conn.send(body)
        elif body is not None:
            assert conn.sock is not None
            try:
                body.send(conn.sock)
            except RegistryError:
                self._drop(origin)  # half a request went out: the connection is spent
                raise
        resp = conn.getresponse()
        with self._lock:
            self.responses += 1
            self.unauthorized += resp.status == 401
        return resp

    # -- authentication ----------------------------------------------------------------------

    def _ping(self) -> None:
        resp = self._send("GET", "/v2/", {}, None, auth=False)
        body = resp.read(65536)
        if resp.status == 200:
            self._challenge = None
        elif resp.status == 401:
            header = resp.getheader("WWW-Authenticate") or ""
            self._challenge = parse_challenge(header)
        else:
            raise RegistryError(
                f"{self._origin[1]}: not an OCI registry (GET /v2/ answered HTTP {resp.status}"
                f"{': ' + _error_text(body) if body else ''})"
            )
        self._pinged = True

    def _authenticate(self, push: bool) -> None:
        if not self._pinged:
            self._ping()
        ch = self._challenge
        if ch is None:
            return
        if ch.scheme == "basic":
            if self._auth_header is not None:
                return
            if self._creds is None:
                raise _auth_required(self._origin[1])
            self._auth_header = self._creds.basic()
            resp = self._send("GET", "/v2/", {}, None)
            resp.read(65536)
            if resp.status == 401:
                self._auth_header = None
                raise RegistryError(
                    f"{self._origin[1]}: authentication refused for user {self._creds.username!r}"
                )
            if resp.status != 200:
                raise RegistryError(f"{self._origin[1]}: GET /v2/ answered HTTP {resp.status}")
        elif ch.scheme == "bearer":
            actions = "pull,push" if push else "pull"
            if self._token_actions in (actions, "pull,push"):
                return
            self._fetch_token(ch, f"repository:{self.repository}:{actions}")
            self._token_actions = actions
        else:
            raise RegistryError(f"{self._origin[1]}: unsupported auth scheme {ch.scheme!r}")

    def _fetch_token(self, ch: Challenge, scope: str) -> None:
        realm = ch.params.get("realm", "")
        parts = urlsplit(realm)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" and not (parts.scheme == "http" and host in _LOOPBACK):
            raise RegistryError(
                f"{self._origin[1]}: refusing token realm {realm[:100]!r} (must be https)"
            )
        query = [("scope", scope)]
        if "service" in ch.params:
            query.insert(0, ("service", ch.params["service"]))
        path = urlunsplit(
            ("", "", parts.path or "/", urlencode([*parse_qsl(parts.query), *query]), "")
        )
        headers = {"Accept": "application/json"}
        if self._creds is not None:
            headers["Authorization"] = self._creds.basic()
        conn, via = open_connection(parts.scheme, parts.netloc, self._timeout, None, 8192)
        if via is not None:
            path = f"{parts.scheme}://{parts.netloc}{path}"
            headers.update(via)
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            data = resp.read(1024 * 1024)
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(f"{parts.netloc}: cannot reach token service: {exc}") from None
        finally:
            conn.close()
        if resp.status in (401, 403):
            if self._creds is None:
                raise _auth_required(self._origin[1])
            raise RegistryError(
                f"{self._origin[1]}: authentication refused for user {self._creds.username!r}"
            )
        if resp.status != 200:
            raise RegistryError(f"{parts.netloc}: token service answered HTTP {resp.status}")
        try:
            doc = loads(data, "token", RegistryError)
            token = doc.get("token") or doc.get("access_token")
        except (RegistryError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{parts.netloc}: token service sent no token")
        self._auth_header = f"Bearer {token}"

    def _request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        body: Body = None,
        push: bool = False,
    ) -> http.client.HTTPResponse:
        self._authenticate(push)
        resp = self._send(method, url, headers or {}, body)
        if resp.status != 401:
            return resp
        resp.read(65536)
        ch = parse_challenge(resp.getheader("WWW-Authenticate") or "")
        if ch.scheme == "bearer" and "realm" in ch.params:
            # Expired token or a wider scope asked for: one new token, one retry.
            actions = "pull,push" if push else "pull"
            self._fetch_token(
                ch, ch.params.get("scope") or f"repository:{self.repository}:{actions}"
            )
            resp = self._send(method, url, headers or {}, body)
            if resp.status != 401:
                return resp
            resp.read(65536)
        if self._creds is None:
            raise _auth_required(self._origin[1])
        raise RegistryError(f"{self.name}: access denied for user {self._creds.username!r}")

    def _fail(self, resp: http.client.HTTPResponse, what: str) -> RegistryError:
        text = _error_text(resp.read(65536))
        cls = NotFoundError if resp.status == 404 else RegistryError
        return cls(f"{self.name}: {what}: HTTP {resp.status}{': ' + text if text else ''}")

    # -- blobs -------------------------------------------------------------------------------

    def _blob_url(self, digest: str) -> str:
        return f"/v2/{self.repository}/blobs/{digest}"

    def has_blob(self, digest: str) -> bool:
        resp = self._request("HEAD", self._blob_url(digest), push=True)
        resp.read()
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise self._fail(resp, f"HEAD blob {digest}")

    def push_blob(self, desc: Descriptor, source: BlobSource, progress: Progress) -> None:
        resp = self._request("POST", f"/v2/{self.repository}/blobs/uploads/", push=True)
        if resp.status != 202:
            raise self._fail(resp, "cannot start upload")
        resp.read()
        location = self._location(resp)
        headers = {"Content-Type": "application/octet-stream"}
        if isinstance(source, bytes):
            body: Body = source
        elif desc.size <= self.monolithic_max:
            body = _FileBody(source, 0, desc.size, progress)
        else:
            offset = 0
            while offset < desc.size:
                n = min(self.chunk_size, desc.size - offset)
                chunk_headers = {**headers, "Content-Range": f"{offset}-{offset + n - 1}"}
                resp = self._request(
                    "PATCH",
                    location,
                    headers=chunk_headers,
                    body=_FileBody(source, offset, n, progress),
                    push=True,
                )
                if resp.status != 202:
                    raise self._fail(resp, f"upload of {desc.digest} refused at byte {offset}")
                resp.read()
                location = self._location(resp)
                offset += n
            body = None
        resp = self._request(
            "PUT", _with_query(location, digest=desc.digest), headers=headers, body=body, push=True
        )
        if resp.status != 201:
            raise self._fail(resp, f"upload of {desc.digest} refused")
        resp.read()
        if isinstance(source, bytes):
            progress.advance(len(source))

    def _location(self, resp: http.client.HTTPResponse) -> str:
        location = resp.getheader("Location")
        if not location:
            raise RegistryError(f"{self.name}: upload answer has no Location")
        return location

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[BinaryIO]:
        # The request is made now, so that a missing blob fails here, not on entering.
        url = self._blob_url(desc.digest)
        resp = self._request("GET", url)
        for _ in range(5):
            if resp.status not in (301, 302, 303, 307, 308):
                break
            resp.read()
            url = resp.getheader("Location") or ""
            if not url:
                raise RegistryError(f"{self.name}: redirect without Location for {desc.digest}")
            # Credentials only ever go to the registry's own origin (see _send).
            resp = self._send("GET", url, {}, None)
        if resp.status != 200:
            raise self._fail(resp, f"blob {desc.digest}")
        return self._stream(resp, self._resolve(url)[0])

    @contextlib.contextmanager
    def _stream(self, resp: http.client.HTTPResponse, origin: Origin) -> Iterator[BinaryIO]:
        try:
            yield cast(BinaryIO, resp)
        finally:
            if not resp.isclosed():
                # Not read to the end (a failed check): the connection cannot be reused.
                self._drop(origin)

    # -- manifests ---------------------------------------------------------------------------

    def fetch_manifest(self, reference: str) -> tuple[bytes, str]:
        resp = self._request(
            "GET", f"/v2/{self.repository}/manifests/{reference}", headers={"Accept": _ACCEPT}
        )
        if resp.status == 404:
            resp.read(65536)
            what = "manifest" if reference.startswith("sha256:") else "tag"
            raise NotFoundError(f"{self.name}: unknown {what} {reference!r}")
        if resp.status != 200:
            raise self._fail(resp, f"manifest {reference}")
        length = resp.getheader("Content-Length")
        if length and length.isdigit() and int(length) > MAX_MANIFEST_SIZE:
            self._drop(self._origin)
            raise RegistryError(f"{self.name}: manifest {reference} larger than 4 MiB")
        data = resp.read(MAX_MANIFEST_SIZE + 1)
        if len(data) > MAX_MANIFEST_SIZE:
            self._drop(self._origin)
            raise RegistryError(f"{self.name}: manifest {reference} larger than 4 MiB")
        media_type = (resp.getheader("Content-Type") or MANIFEST_MEDIA_TYPE).split(";")[0].strip()
        # Fetched by tag, the registry still says which digest the tag points at: a manifest
        # corrupted on its disk is served as is, so check the bytes against that.
        claimed = resp.getheader("Docker-Content-Digest")
        actual = digest_bytes(data)
        if claimed and claimed.startswith("sha256:") and claimed != actual:
            raise RegistryError(
                f"{self.name}: manifest {reference}: digest mismatch: the registry says {claimed},"
                f" the content is {actual}"
            )
        return data, media_type

    def push_manifest(self, data: bytes, media_type: str, tag: str | None) -> None:
        reference = tag or digest_bytes(data)
        resp = self._request(
            "PUT",
            f"/v2/{self.repository}/manifests/{reference}",
            headers={"Content-Type": media_type},
            body=data,
            push=True,
        )
        if resp.status != 201:
            raise self._fail(resp, f"manifest {reference} refused")
        resp.read()

    def referrers(self, digest: str) -> list[Descriptor] | None:
        url: str | None = f"/v2/{self.repository}/referrers/{digest}"
        found: list[Descriptor] = []
        pages = 0
        while url and pages < 100:
            pages += 1
            resp = self._request("GET", url, headers={"Accept": INDEX_MEDIA_TYPE})
            data = resp.read(MAX_MANIFEST_SIZE + 1)
            if resp.status in (404, 405, 400) and pages == 1:
                return None  # no referrers API (docker-registry 2.8): use the tag fallback
            if resp.status != 200:
                raise RegistryError(f"{self.name}: referrers of {digest}: HTTP {resp.status}")
            found.extend(Index.parse(data, f"{self.name}: referrers of {digest}").manifests)
            url = _next_link(resp.getheader("Link"))
        return found

    # -- listing -----------------------------------------------------------------------------

    def _names(self, url: str, key: str, what: str, limit: int) -> list[str]:
        """Every name of a paginated listing (``Link: <...>; rel="next"``), at most ``limit``."""
        found: list[str] = []
        next_url: str | None = url
        pages = 0
        while next_url and len(found) < limit:
            pages += 1
            if pages > 10_000:
                raise RegistryError(f"{self.name}: {what}: more than 10000 pages")
            resp = self._request("GET", next_url, headers={"Accept": "application/json"})
            if resp.status != 200:
                raise self._fail(resp, what)
            data = resp.read(MAX_MANIFEST_SIZE + 1)
            if len(data) > MAX_MANIFEST_SIZE:
                raise RegistryError(f"{self.name}: {what}: page larger than 4 MiB")
            doc = loads(data, what, RegistryError)
            names = doc.get(key) if isinstance(doc, dict) else None
            if names is None:
                names = []
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise RegistryError(f"{self.name}: {what}: {key!r} is not a list of names")
            found.extend(names)
            next_url = _next_link(resp.getheader("Link"))
        return found[:limit]

    def catalog(self, limit: int = 1_000_000, *, page: int = 1000) -> list[str]:
        """Every repository of the registry (``GET /v2/_catalog``, ``page`` names a request)."""
        return self._names(f"/v2/_catalog?n={page}", "repositories", "catalog", limit)

    def tags(self, limit: int = 1_000_000, *, page: int = 1000) -> list[str]:
        """Every tag of this repository (``GET /v2/<repo>/tags/list``, paginated)."""
        url = f"/v2/{self.repository}/tags/list?n={page}"
        return self._names(url, "tags", f"tags of {self.repository}", limit)


def _auth_required(host: str) -> RegistryError:
    return RegistryError(
        f"{host}: authentication required",
        hint="pass --username with MLSEC_REGISTRY_PASSWORD or --password-stdin, or docker login",
    )


def _error_text(body: bytes) -> str:
    """The first ``errors[].code: message`` of a distribution-spec error body, else its text."""
    try:
        doc = loads(body, "error", RegistryError)
        err = doc["errors"][0]
        return f"{err.get('code', '')}: {err.get('message', '')}".strip(": ")[:200]
    except (RegistryError, KeyError, IndexError, TypeError, AttributeError):
        return body.decode("utf-8", "replace").strip().splitlines()[0][:200] if body.strip() else ""


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _next_link(header: str | None) -> str | None:
    if not header or 'rel="next"' not in header:
        return None
    start, end = header.find("<"), header.find(">")
    return header[start + 1 : end] if 0 <= start < end else None
