"""``run_fleet``: judge every model the sources name, incrementally, with one engine.

The driver expands the sources, resolves each reference's manifest digest (one small request),
and decides from stored evidence whatever the store already holds for that digest under the same
evidence key: no blob is read, and a policy change is evaluated over the stored evidence. The
rest is judged by workers (:func:`mlsec.fleet.judge.judge`) on the chosen engine; their outcomes
come back to the driver, which alone writes the store.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mlsec import __version__
from mlsec.errors import MlsecError, UsageError
from mlsec.fleet.engines import Engine, run_engine
from mlsec.fleet.judge import (
    Outcome,
    Trust,
    WorkSpec,
    decision_outcome,
    error_outcome,
    evidence_key,
    scan_key,
)
from mlsec.fleet.sources import Target, TargetKind, expand_sources
from mlsec.fleet.store import VerdictStore
from mlsec.policy.model import Policy, load_policy
from mlsec.progress import NullProgress, Progress
from mlsec.registry.auth import Credentials

__all__ = ["SCHEMA", "FleetResult", "RunStats", "run_fleet"]

SCHEMA = "mlsec/fleet/v1"


@dataclass(frozen=True, slots=True)
class RunStats:
    """What a run cost: models judged, blobs and bytes read, what the store saved."""

    models: int
    allowed: int
    denied: int
    errors: int
    blobs_read: int
    bytes_read: int
    verdicts_reused: int
    files_scanned: int
    findings_reused: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "allowed": self.allowed,
            "denied": self.denied,
            "errors": self.errors,
            "blobs_read": self.blobs_read,
            "bytes_read": self.bytes_read,
            "verdicts_reused": self.verdicts_reused,
            "files_scanned": self.files_scanned,
            "findings_reused": self.findings_reused,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class FleetResult:
    """Every model's outcome, in source order, and the run's statistics."""

    policy: Policy
    engine: str
    outcomes: tuple[Outcome, ...]
    stats: RunStats
    store: str | None

    @property
    def exit_code(self) -> int:
        """0 all allowed, 1 any denied (and none in error), 2 any could not be judged."""
        if any(o.decision == "error" for o in self.outcomes):
            return 2
        return 1 if any(o.decision == "deny" for o in self.outcomes) else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "mlsec": __version__,
            "policy": self.policy.name,
            "engine": self.engine,
            "store": self.store,
            "models": [o.to_dict() for o in self.outcomes],
            "stats": self.stats.to_dict(),
        }


def run_fleet(
    sources: Sequence[str],
    policy: Policy | str | os.PathLike[str],
    *,
    store: str | os.PathLike[str] | None = None,
    engine: Engine | str = Engine.LOCAL,
    ray_address: str | None = None,
    workers: int | None = None,
    trust: Trust | None = None,
    plain_http: bool = False,
    credentials: Credentials | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    progress: Progress | None = None,
) -> FleetResult:
    """Judge every model ``sources`` name under ``policy``; see the module docstring.

    >>> result = run_fleet(["localhost:5000"], "policy.yaml", store="verdicts.db")  # doctest: +SKIP
    >>> result.exit_code, result.stats.verdicts_reused  # doctest: +SKIP
    """
    start = time.perf_counter()
    trust = trust or Trust()
    if not sources:
        raise UsageError("no source given")
    engine = Engine(engine)
    if not isinstance(policy, Policy):
        policy = load_policy(policy)
    if (
        trust.given
        and sum([bool(trust.key), bool(trust.certificate_chain), bool(trust.identity)]) != 1
    ):
        raise UsageError(
            "give exactly one of --key, --certificate-chain, or --identity with --issuer"
        )
    ev_key = evidence_key(policy, trust)  # reads the trust files once: a bad path fails here
    targets = expand_sources(list(sources), plain_http=plain_http, credentials=credentials)
    if not targets:
        raise UsageError("the sources name no model")
    vs = VerdictStore(store) if store is not None else None
    progress = progress or NullProgress()
    progress.start("models", len(targets))
    try:
        done: dict[int, Outcome] = {}
        pinned = _resolve(targets, plain_http, credentials)
        pending: list[tuple[int, Target, str | None]] = []
        for i, t in enumerate(targets):
            digest, failure = pinned.get(i, (None, None))
            if failure is not None:
                done[i] = error_outcome(t.name, failure)
                continue
            stored = vs.evidence(digest, ev_key) if vs is not None and digest else None
            if stored is not None and digest is not None:
                done[i] = _from_evidence(t.name, digest, stored, policy)
                continue
            pending.append((i, t, digest))
        for i in done:
            progress.advance(1)
            if on_done is not None:
                on_done(done[i])
        spec = WorkSpec(
            policy,
            trust,
            plain_http,
            credentials,
            os.fspath(os.path.abspath(store)) if store is not None else None,
        )
        skey = scan_key(policy)
        for i, outcome in run_engine(
            engine, pending, spec, ray_address=ray_address, workers=workers
        ):
            done[i] = outcome
            if vs is not None:
                _record(vs, outcome, policy, ev_key, skey)
            progress.advance(1)
            if on_done is not None:
                on_done(outcome)
        if vs is not None:
            reused = [done[i] for i in done if done[i].reused]
            vs.record(verdicts=[_verdict(o, policy) for o in reused])
    finally:
        progress.finish()
        if vs is not None:
            vs.close()
    outcomes = tuple(done[i] for i in range(len(targets)))
    stats = RunStats(
        models=len(outcomes),
        allowed=sum(o.decision == "allow" for o in outcomes),
        denied=sum(o.decision == "deny" for o in outcomes),
        errors=sum(o.decision == "error" for o in outcomes),
        blobs_read=sum(o.blobs_read for o in outcomes),
        bytes_read=sum(o.bytes_read for o in outcomes),
        verdicts_reused=sum(o.reused for o in outcomes),
        files_scanned=sum(o.files_scanned for o in outcomes),
        findings_reused=sum(o.findings_reused for o in outcomes),
        seconds=time.perf_counter() - start,
    )
    return FleetResult(
        policy, engine.value, outcomes, stats, os.fspath(store) if store is not None else None
    )


def _verdict(o: Outcome, policy: Policy) -> tuple[str, str, str | None, str, list[str]]:
    return (o.reference, policy.name, o.digest, o.decision, list(o.reasons))


def _record(vs: VerdictStore, o: Outcome, policy: Policy, ev_key: str, skey: str) -> None:
    # An error is never stored as evidence: the next run tries again.
    evidence = []
    if o.decision != "error" and o.evidence is not None and o.digest:
        evidence.append((o.digest, ev_key, o.evidence))
    vs.record(
        files=[(h, p, skey, r) for h, p, r in o.new_reports],
        evidence=evidence,
        verdicts=[_verdict(o, policy)],
    )


def _from_evidence(name: str, digest: str, evidence: dict[str, Any], policy: Policy) -> Outcome:
    from mlsec.policy.evaluate import evaluate

    try:
        source = evidence.get("source")
        if isinstance(source, dict):
            source["reference"] = name
        decision = evaluate(policy, evidence)
    except (MlsecError, KeyError, TypeError, ValueError) as exc:
        return error_outcome(name, f"stored evidence cannot be evaluated: {exc}", digest)
    return decision_outcome(
        name, decision.allowed, [c.message for c in decision.denials], digest, reused=True
    )


def _resolve(
    targets: list[Target], plain_http: bool, credentials: Credentials | None
) -> dict[int, tuple[str | None, str | None]]:
    """The manifest digest of every reference target (index -> (digest, failure))."""
    from mlsec.registry import open_store, parse_reference
    from mlsec.registry._base import fetch_manifest

    def one(t: Target) -> tuple[str | None, str | None]:
        try:
            ref = parse_reference(t.name)
            st = open_store(ref, plain_http=plain_http, credentials=credentials)
            try:
                _, _, digest = fetch_manifest(st, ref.reference, t.name)
            finally:
                st.close()
            return digest, None
        except MlsecError as exc:
            return None, exc.message
        except Exception as exc:  # fail closed
            return None, f"{type(exc).__name__}: {exc}"

    refs = [(i, t) for i, t in enumerate(targets) if t.kind is TargetKind.REFERENCE]
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(lambda it: one(it[1]), refs))
    return {i: r for (i, _), r in zip(refs, found, strict=True)}
