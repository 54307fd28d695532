"""A local stand-in for the Hugging Face Hub: the Hub cannot be reached from the test machines.

It answers, on 127.0.0.1, the endpoints ``huggingface_hub`` 2.x calls for ``HfApi.model_info``,
``HfApi.list_repo_tree``, ``HfApi.get_paths_info``, ``hf_hub_download`` and
``snapshot_download`` (read in its ``hf_api.py``, ``file_download.py`` and
``_snapshot_download.py``), with the headers it reads:

- ``GET /api/models/{org}/{name}[/revision/{rev}]`` → ``{"id", "sha", "siblings"}``
- ``GET /api/models/{org}/{name}/tree/{rev}[/{path}]?recursive=…`` → file and directory entries
  with ``oid`` (git blob id), ``size`` and, for LFS files, ``lfs: {oid: sha256, size,
  pointerSize}``
- ``POST /api/models/{org}/{name}/paths-info/{rev}`` → the same entries for the ``paths`` asked
- ``HEAD|GET /{org}/{name}/resolve/{rev}/{path}``: a regular file answers 200 with ``ETag`` (its
  blob id), ``X-Repo-Commit`` and ``Content-Length``; an LFS file answers 302 to a "CDN" on
  another origin (``localhost`` instead of ``127.0.0.1``, so the token is not forwarded, as on the
  Hub) with ``X-Linked-Etag`` (its SHA-256), ``X-Linked-Size`` and ``X-Repo-Commit``
- ``GET /lfs/{sha256}`` on that other origin: the bytes.

Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) as the
Hub's do. ``tamper`` serves other bytes (of the same length) for a path than the Hub states.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".bin", ".pkl", ".pt", ".pth", ".safetensors", ".onnx", ".h5", ".joblib")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\n"
        f"oid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n"
    ).encode()


@dataclass
class FakeHub:
    """Repositories: ``commits[repo_id][commit] = {path: bytes}``; ``refs[repo_id][branch] =
    commit``. Requests are recorded in ``log`` as ``"METHOD path"``."""

    commits: dict[str, dict[str, dict[str, bytes]]] = field(default_factory=dict)
    refs: dict[str, dict[str, str]] = field(default_factory=dict)
    tamper: dict[tuple[str, str], bytes] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    # (path, started, release): a GET of that file sets ``started`` and waits for ``release``
    stall: tuple[str, threading.Event, threading.Event] | None = None
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit ``files`` to ``branch`` of ``repo_id``; returns the commit id."""
        commit = hashlib.sha1(
            repo_id.encode()
            + json.dumps(sorted((p, git_blob_id(d)) for p, d in files.items())).encode()
            + branch.encode()
        ).hexdigest()
        self.commits.setdefault(repo_id, {})[commit] = dict(files)
        self.refs.setdefault(repo_id, {})[branch] = commit
        return commit

    def add_dir(self, repo_id: str, root: Path, branch: str = "main") -> str:
        files = {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }
        return self.add(repo_id, files, branch)

    # -- the server ------------------------------------------------------------------------

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, head=True)

            def do_GET(self) -> None:
                hub._handle(self, head=False)

            def do_POST(self) -> None:
                hub._handle(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _resolve(self, repo_id: str, rev: str) -> str | None:
        if rev in self.commits.get(repo_id, {}):
            return rev
        return self.refs.get(repo_id, {}).get(rev)

    def _entry(self, path: str, data: bytes) -> dict[str, Any]:
        if path.endswith(LFS_SUFFIXES):
            pointer = lfs_pointer(data)
            return {
                "type": "file",
                "path": path,
                "size": len(data),
                "oid": git_blob_id(pointer),
                "lfs": {
                    "oid": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": len(pointer),
                },
            }
        return {"type": "file", "path": path, "size": len(data), "oid": git_blob_id(data)}

    def _tree(self, files: dict[str, bytes], under: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = under.rstrip("/") + "/" if under else ""
        out: list[dict[str, Any]] = []
        dirs: set[str] = set()
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            parts = rest.split("/")
            for i in range(1, len(parts)):
                d = prefix + "/".join(parts[:i])
                if d not in dirs and (recursive or i == 1):
                    dirs.add(d)
                    out.append({"type": "directory", "path": d, "oid": "0" * 40, "size": 0})
            if recursive or len(parts) == 1:
                out.append(self._entry(path, files[path]))
        return out

    def _handle(self, req: BaseHTTPRequestHandler, *, head: bool) -> None:
        url = urlsplit(req.path)
        path = unquote(url.path)
        self.log.append(f"{req.command} {path}")
        parts = path.strip("/").split("/")
        body: bytes = b""
        if req.command == "POST":
            length = int(req.headers.get("Content-Length") or 0)
            body = req.rfile.read(length)
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self._api(req, parts[2] + "/" + parts[3], parts[4:], url.query, body)
        if parts[0] == "lfs" and len(parts) == 2:
            for repo_id, commits in self.commits.items():
                for files in commits.values():
                    for p, data in files.items():
                        if hashlib.sha256(data).hexdigest() == parts[1]:
                            data = self.tamper.get((repo_id, p), data)
                            self._maybe_stall(p, head)
                            return _send(req, 200, data, head=head)
            return _send(req, 404, b"", head=head)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id, rev, file = parts[0] + "/" + parts[1], parts[3], "/".join(parts[4:])
            if repo_id not in self.commits:
                return _send(req, 404, b"", {"X-Error-Code": "RepoNotFound"}, head=head)
            commit = self._resolve(repo_id, rev)
            if commit is None:
                return _send(req, 404, b"", {"X-Error-Code": "RevisionNotFound"}, head=head)
            files = self.commits[repo_id][commit]
            if file not in files:
                headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}
                return _send(req, 404, b"", headers, head=head)
            data = files[file]
            entry = self._entry(file, data)
            if "lfs" in entry:
                sha = entry["lfs"]["oid"]
                headers = {
                    "Location": f"http://localhost:{self.port}/lfs/{sha}",
                    "X-Repo-Commit": commit,
                    "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": str(len(data)),
                    "ETag": f'"{entry["oid"]}"',
                }
                return _send(req, 302, b"", headers, head=head)
            headers = {"X-Repo-Commit": commit, "ETag": f'"{entry["oid"]}"'}
            self._maybe_stall(file, head)
            return _send(req, 200, self.tamper.get((repo_id, file), data), headers, head=head)
        return _send(req, 404, b"", head=head)

    def _maybe_stall(self, path: str, head: bool) -> None:
        if self.stall is not None and not head and self.stall[0] == path:
            _, started, release = self.stall
            started.set()
            release.wait(120)

    def _api(
        self,
        req: BaseHTTPRequestHandler,
        repo_id: str,
        rest: list[str],
        query: str,
        body: bytes,
    ) -> None:
        if repo_id not in self.commits:
            return _json(req, 404, {"error": "Repository not found"}, "RepoNotFound")
        what = rest[0] if rest else "revision"
        rev = rest[1] if len(rest) > 1 else "main"
        commit = self._resolve(repo_id, rev)
        if commit is None:
            return _json(req, 404, {"error": f"Invalid rev id: {rev}"}, "RevisionNotFound")
        files = self.commits[repo_id][commit]
        if what == "revision":
            doc = {
                "id": repo_id,
                "sha": commit,
                "private": False,
                "siblings": [{"rfilename": p} for p in sorted(files)],
            }
            return _json(req, 200, doc)
        if what == "tree":
            recursive = parse_qs(query).get("recursive", ["false"])[0].lower() == "true"
            return _json(req, 200, self._tree(files, "/".join(rest[2:]), recursive))
        if what == "paths-info":
            asked = parse_qs(body.decode()).get("paths", [])
            return _json(req, 200, [self._entry(p, files[p]) for p in asked if p in files])
        return _json(req, 404, {"error": "not found"})


def _json(
    req: BaseHTTPRequestHandler, status: int, doc: Any, error_code: str | None = None
) -> None:
    headers = {"Content-Type": "application/json"}
    if error_code:
        headers["X-Error-Code"] = error_code
        headers["X-Error-Message"] = str(doc.get("error", ""))
    _send(req, status, json.dumps(doc).encode(), headers, head=False)


def _send(
    req: BaseHTTPRequestHandler,
    status: int,
    data: bytes,
    headers: dict[str, str] | None = None,
    *,
    head: bool,
) -> None:
    req.send_response(status)
    for k, v in (headers or {}).items():
        req.send_header(k, v)
    req.send_header("Content-Length", str(len(data)))
    req.end_headers()
    if not head:
        req.wfile.write(data)
