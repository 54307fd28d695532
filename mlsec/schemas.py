"""The JSON result envelope: every ``--format json`` document starts with
``"schema": "mlsec/<kind>/v1"``, spelt here once (docs/library.md, CHANGELOG for changes).

A document's shape only grows within a version; a removal or a change of meaning is a new version.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

__all__ = ["Schema", "envelope"]


class Schema(StrEnum):
    """The kinds of JSON document mlsec writes (a ``str``: serialises as its value)."""

    INSPECT = "mlsec/inspect/v1"
    SCAN = "mlsec/scan/v1"
    SIGN = "mlsec/sign/v1"
    VERIFY = "mlsec/verify/v1"
    KEYGEN = "mlsec/keygen/v1"
    PUSH = "mlsec/push/v1"
    PULL = "mlsec/pull/v1"
    EVIDENCE = "mlsec/evidence/v1"
    ADMIT = "mlsec/admit/v1"
    ATTEST = "mlsec/attest/v1"
    VERIFY_ATTESTATION = "mlsec/verify-attestation/v1"


def envelope(schema: Schema, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` as a document of kind ``schema``: the ``schema`` key first, then the body's keys
    (a ``schema`` key in the body is replaced)."""
    return {"schema": schema.value, **{k: v for k, v in body.items() if k != "schema"}}
