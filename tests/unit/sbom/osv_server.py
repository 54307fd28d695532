"""A tiny OSV-compatible vulnerability service on 127.0.0.1, for the audit tests.

The public OSV service (api.osv.dev) cannot be reached here or in CI, so this server stands in for
it: it serves REAL public OSV records (copied from the PyPA and GitHub advisory databases, with the
long ``versions`` enumerations and most ``references`` trimmed) through the two endpoints mlsec
and pip-audit use:

- ``POST /v1/query`` with ``{"package": {"name", "ecosystem"}, "version"}``: every record whose
  ``ECOSYSTEM`` range holds the version (what pip-audit's OSV service sends, one per package; it
  does not use ``/v1/querybatch``);
- ``GET /v1/vulns/<id>``: one record (what mlsec reads severities from).

Like osv.dev, a query answers ``{}`` when nothing matches, and both PYSEC and GHSA records for the
same advisory come back (pip-audit merges them through their aliases). Package names listed in
``fail_packages`` get an HTTP 500, to exercise a service that errors; with ``serve_records``
false, ``/v1/vulns/<id>`` answers 503, to exercise a severity that cannot be fetched.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

__all__ = [
    "GHSA_462W",
    "GHSA_X84V",
    "PYSEC_2018_28",
    "PYSEC_2019_217",
    "RECORDS",
    "OsvServer",
    "osv_server",
]

# https://github.com/pypa/advisory-database/blob/main/vulns/requests/PYSEC-2018-28.yaml
PYSEC_2018_28: dict[str, Any] = {
    "id": "PYSEC-2018-28",
    "details": (
        "The Requests package before 2.20.0 for Python sends an HTTP Authorization header to an "
        "http URI upon receiving a same-hostname https-to-http redirect, which makes it easier "
        "for remote attackers to discover credentials by sniffing the network."
    ),
    "aliases": ["CVE-2018-18074"],
    "modified": "2021-06-16T00:03:24.800813Z",
    "published": "2018-10-09T17:29:00Z",
    "affected": [
        {
            "package": {"name": "requests", "ecosystem": "PyPI", "purl": "pkg:pypi/requests"},
            "ranges": [
                {
                    "type": "GIT",
                    "repo": "https://github.com/requests/requests",
                    "events": [
                        {"introduced": "0"},
                        {"fixed": "c45d7c49ea75133e52ab22a8e9e13173938e36ff"},
                    ],
                },
                {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]},
            ],
        }
    ],
    "references": [
        {"type": "REPORT", "url": "https://github.com/requests/requests/issues/4716"},
        {
            "type": "FIX",
            "url": "https://github.com/requests/requests/commit/c45d7c49ea75133e52ab22a8e9e13173938e36ff",
        },
    ],
}

# https://github.com/github/advisory-database/blob/main/advisories/github-reviewed/2018/10/GHSA-x84v-xcm2-53pg/GHSA-x84v-xcm2-53pg.json
GHSA_X84V: dict[str, Any] = {
    "schema_version": "1.2.0",
    "id": "GHSA-x84v-xcm2-53pg",
    "modified": "2021-09-21T22:17:45Z",
    "published": "2018-10-29T19:06:46Z",
    "aliases": ["CVE-2018-18074"],
    "summary": "Moderate severity vulnerability that affects requests",
    "details": (
        "The Requests package through 2.19.1 before 2018-09-14 for Python sends an HTTP "
        "Authorization header to an http URI upon receiving a same-hostname https-to-http "
        "redirect, which makes it easier for remote attackers to discover credentials by "
        "sniffing the network."
    ),
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "requests"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}],
            "database_specific": {"last_known_affected_version_range": "<= 2.19.1"},
        }
    ],
    "references": [
        {"type": "ADVISORY", "url": "https://nvd.nist.gov/vuln/detail/CVE-2018-18074"},
        {"type": "ADVISORY", "url": "https://github.com/advisories/GHSA-x84v-xcm2-53pg"},
    ],
    "database_specific": {"cwe_ids": ["CWE-522"], "severity": "HIGH", "github_reviewed": True},
}

# https://github.com/pypa/advisory-database/blob/main/vulns/jinja2/PYSEC-2019-217.yaml
PYSEC_2019_217: dict[str, Any] = {
    "id": "PYSEC-2019-217",
    "details": "In Pallets Jinja before 2.10.1, str.format_map allows a sandbox escape.",
    "aliases": ["CVE-2019-10906"],
    "modified": "2021-11-22T04:57:52.862665Z",
    "published": "2019-04-07T00:29:00Z",
    "affected": [
        {
            "package": {"name": "jinja2", "ecosystem": "PyPI", "purl": "pkg:pypi/jinja2"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.10.1"}]}],
        }
    ],
    "references": [
        {"type": "ARTICLE", "url": "https://palletsprojects.com/blog/jinja-2-10-1-released"},
        {"type": "ADVISORY", "url": "https://access.redhat.com/errata/RHSA-2019:1152"},
    ],
}

# https://github.com/github/advisory-database/blob/main/advisories/github-reviewed/2019/04/GHSA-462w-v97r-4m45/GHSA-462w-v97r-4m45.json
GHSA_462W: dict[str, Any] = {
    "schema_version": "1.4.0",
    "id": "GHSA-462w-v97r-4m45",
    "modified": "2023-08-30T21:01:31Z",
    "published": "2019-04-10T14:30:24Z",
    "aliases": ["CVE-2019-10906"],
    "summary": "Jinja2 sandbox escape via string formatting",
    "details": (
        "In Pallets Jinja before 2.10.1, `str.format_map` allows a sandbox escape.\n\n"
        "The sandbox is used to restrict what code can be evaluated when rendering untrusted, "
        "user-provided templates. Due to the way string formatting works in Python, the "
        "`str.format_map` method could be used to escape the sandbox."
    ),
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:N"}],
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "Jinja2"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.10.1"}]}],
        }
    ],
    "references": [
        {"type": "ADVISORY", "url": "https://nvd.nist.gov/vuln/detail/CVE-2019-10906"},
        {"type": "ADVISORY", "url": "https://github.com/advisories/GHSA-462w-v97r-4m45"},
    ],
    "database_specific": {
        "cwe_ids": ["CWE-693"],
        "severity": "HIGH",
        "github_reviewed": True,
        "github_reviewed_at": "2020-06-16T20:57:35Z",
        "nvd_published_at": "2019-04-07T00:29:00Z",
    },
}

RECORDS: dict[str, dict[str, Any]] = {
    r["id"]: r for r in (PYSEC_2018_28, GHSA_X84V, PYSEC_2019_217, GHSA_462W)
}


def _affects(record: dict[str, Any], name: str, version: Version) -> bool:
    for affected in record.get("affected", []):
        pkg = affected["package"]
        if pkg["ecosystem"] != "PyPI" or canonicalize_name(pkg["name"]) != name:
            continue
        for rng in affected.get("ranges", []):
            if rng["type"] != "ECOSYSTEM":
                continue
            inside = False
            for event in rng["events"]:  # events are in order for these records
                if "introduced" in event:
                    start = event["introduced"]
                    inside = start == "0" or version >= Version(start)
                elif "fixed" in event and version >= Version(event["fixed"]):
                    inside = False
            if inside:
                return True
    return False


@dataclass
class OsvServer:
    """A running server: ``url`` is its base (``http://127.0.0.1:PORT``); ``requests`` logs each
    ``(method, path)`` it answered."""

    url: str
    fail_packages: set[str] = field(default_factory=set)
    serve_records: bool = True
    requests: list[tuple[str, str]] = field(default_factory=list)


def _handler(state: OsvServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path))
            prefix = "/v1/vulns/"
            record = RECORDS.get(self.path[len(prefix) :]) if self.path.startswith(prefix) else None
            if not state.serve_records:
                self._send(503, {"code": 14, "message": "Unavailable."})
            elif record is None:
                self._send(404, {"code": 5, "message": "Bug not found."})
            else:
                self._send(200, record)

        def do_POST(self) -> None:
            state.requests.append(("POST", self.path))
            length = int(self.headers.get("Content-Length") or 0)
            try:
                query = json.loads(self.rfile.read(length))
                name = canonicalize_name(query["package"]["name"])
                version = Version(query["version"])
            except (ValueError, KeyError, TypeError, InvalidVersion):
                self._send(400, {"code": 3, "message": "Invalid query."})
                return
            if self.path != "/v1/query":
                self._send(404, {"code": 5, "message": "Not found."})
            elif name in state.fail_packages:
                self._send(500, {"code": 13, "message": "Internal error."})
            else:
                vulns = [copy.deepcopy(r) for r in RECORDS.values() if _affects(r, name, version)]
                self._send(200, {"vulns": vulns} if vulns else {})

    return Handler


@contextmanager
def osv_server(fail_packages: set[str] | None = None) -> Iterator[OsvServer]:
    """Serve the records on a free port of 127.0.0.1 in a thread, for the ``with`` block."""
    state = OsvServer(url="", fail_packages=set(fail_packages or ()))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name="osv-server", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
