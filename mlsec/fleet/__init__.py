"""Judge a whole fleet of models — a registry, an OCI layout, a directory of models — under one
policy, incrementally: a verdict store keyed by content means an unchanged blob is never scanned
again and a policy change is evaluated over stored evidence.

>>> from mlsec.fleet import run_fleet
>>> result = run_fleet(["localhost:5000"], "policy.yaml", store="verdicts.db")  # doctest: +SKIP
>>> [(o.reference, o.decision) for o in result.outcomes]  # doctest: +SKIP
"""

from mlsec.fleet.api import SCHEMA, FleetResult, RunStats, run_fleet
from mlsec.fleet.engines import Engine
from mlsec.fleet.judge import Outcome, Trust
from mlsec.fleet.sources import Target, TargetKind, expand_sources
from mlsec.fleet.store import StoreError, VerdictStore

__all__ = [
    "SCHEMA",
    "Engine",
    "FleetResult",
    "Outcome",
    "RunStats",
    "StoreError",
    "Target",
    "TargetKind",
    "Trust",
    "VerdictStore",
    "expand_sources",
    "run_fleet",
]
