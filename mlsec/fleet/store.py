"""The verdict store: what ``mlsec fleet`` already knows, in one SQLite file.

Three tables, all keyed by content:

* ``files``: the scan report of one file, by the file's sha256, its path in the model (analyzers
  dispatch on the name and findings carry it) and the *scan key* (mlsec version, limits, allowed
  globals). A blob with a stored report is never scanned again by the same rules.
* ``evidence``: the whole ``mlsec/evidence/v1`` document of one model, by its manifest (or tree)
  digest and the *evidence key* (the scan key plus the trust material and the policy settings that
  change what is gathered). A policy change is evaluated over it without reading a blob.
* ``verdicts``: the last decision for each reference under each policy (a history for people).

Concurrency: WAL journal, a busy timeout, and every write in one short transaction, so several
runs (or several drivers) can share a store; readers (workers) open it read-only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlsec.errors import MlsecError

__all__ = ["StoreError", "VerdictStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT NOT NULL, path TEXT NOT NULL, scan_key TEXT NOT NULL, report TEXT NOT NULL,
    stored REAL NOT NULL, PRIMARY KEY (sha256, path, scan_key));
CREATE TABLE IF NOT EXISTS evidence (
    digest TEXT NOT NULL, evidence_key TEXT NOT NULL, evidence TEXT NOT NULL,
    stored REAL NOT NULL, PRIMARY KEY (digest, evidence_key));
CREATE TABLE IF NOT EXISTS verdicts (
    reference TEXT NOT NULL, policy TEXT NOT NULL, digest TEXT, decision TEXT NOT NULL,
    reasons TEXT NOT NULL, judged REAL NOT NULL, PRIMARY KEY (reference, policy));
"""


class StoreError(MlsecError):
    """The verdict store cannot be opened or written."""


class VerdictStore:
    """A verdict store at ``path`` (created if missing; ``readonly`` never creates or writes).

    >>> with VerdictStore("verdicts.db") as st:  # doctest: +SKIP
    ...     st.evidence("sha256:ab…", key)
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        try:
            if readonly:
                uri = f"file:{self.path.resolve().as_posix()}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
            else:
                self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
            self._db.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the verdict store: {exc}") from None

    def __enter__(self) -> VerdictStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def _one(self, sql: str, args: tuple[str, ...]) -> Any:
        try:
            row = self._db.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read the verdict store: {exc}") from None
        return json.loads(row[0]) if row else None

    def file_report(self, sha256: str, path: str, scan_key: str) -> dict[str, Any] | None:
        """The stored scan report (``FileReport.to_dict``) of this file, or None."""
        found: dict[str, Any] | None = self._one(
            "SELECT report FROM files WHERE sha256=? AND path=? AND scan_key=?",
            (sha256, path, scan_key),
        )
        return found

    def evidence(self, digest: str, evidence_key: str) -> dict[str, Any] | None:
        """The stored evidence document of the model with this digest, or None."""
        found: dict[str, Any] | None = self._one(
            "SELECT evidence FROM evidence WHERE digest=? AND evidence_key=?",
            (digest, evidence_key),
        )
        return found

    def record(
        self,
        *,
        files: Iterable[tuple[str, str, str, dict[str, Any]]] = (),
        evidence: Iterable[tuple[str, str, dict[str, Any]]] = (),
        verdicts: Iterable[tuple[str, str, str | None, str, list[str]]] = (),
    ) -> None:
        """Write file reports ``(sha256, path, scan_key, report)``, evidence ``(digest,
        evidence_key, document)`` and verdicts ``(reference, policy, digest, decision, reasons)``
        in one transaction."""
        if self.readonly:
            raise StoreError(f"{self.path}: the verdict store is open read-only")
        now = time.time()
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                    [(h, p, k, json.dumps(r, sort_keys=True), now) for h, p, k, r in files],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO evidence VALUES (?, ?, ?, ?)",
                    [(d, k, json.dumps(e, sort_keys=True), now) for d, k, e in evidence],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?)",
                    [(r, p, d, v, json.dumps(w), now) for r, p, d, v, w in verdicts],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot write the verdict store: {exc}") from None

    def counts(self) -> dict[str, int]:
        """How many rows each table holds."""
        out = {}
        for table in ("files", "evidence", "verdicts"):
            out[table] = int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
        return out
