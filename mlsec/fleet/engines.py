"""Engines: where the workers of ``mlsec fleet`` run.

* ``local``: processes on this machine (:class:`concurrent.futures.ProcessPoolExecutor`);
* ``ray``: tasks on a Ray cluster (``pip install 'mlsec[ray]'``), one model per task; a task
  whose worker dies is retried by Ray (``max_retries``), and one that still fails is an
  ``error`` outcome, never a silent skip.

Workers return only :class:`~mlsec.fleet.judge.Outcome` objects; the driver writes the store.
Outcomes are yielded as they complete (memory on the driver: the outcomes, not the models).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import Any

from mlsec.errors import UsageError
from mlsec.fleet.judge import Outcome, WorkSpec, error_outcome, judge
from mlsec.fleet.sources import Target

__all__ = ["LOCAL_RETRIES", "RAY_RETRIES", "Engine", "run_engine"]

RAY_RETRIES = 3
LOCAL_RETRIES = 1  # a dead worker process breaks the whole pool: its models get a new one
Work = Sequence[tuple[int, Target, str | None]]


class Engine(StrEnum):
    LOCAL = "local"
    RAY = "ray"


def run_engine(
    engine: Engine,
    work: Work,
    spec: WorkSpec,
    *,
    ray_address: str | None = None,
    workers: int | None = None,
) -> Iterator[tuple[int, Outcome]]:
    """Judge every ``(index, target, pinned digest)`` of ``work``; yield ``(index, outcome)``."""
    if not work:
        return iter(())
    match engine:
        case Engine.LOCAL:
            return _local(work, spec, workers)
        case Engine.RAY:
            return _ray(work, spec, ray_address, workers)


def _local(work: Work, spec: WorkSpec, workers: int | None) -> Iterator[tuple[int, Outcome]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    n = max(1, min(workers or os.cpu_count() or 1, len(work)))
    if n == 1:  # no pool for one model or one worker: the same function, in this process
        for i, t, pinned in work:
            yield i, judge(t, spec, pinned)
        return
    # spawn, not fork: the driver has threads (connection pools) that fork would copy mid-state.
    ctx = multiprocessing.get_context("spawn")
    todo = list(work)
    for attempt in range(LOCAL_RETRIES + 1):
        lost: list[tuple[tuple[int, Target, str | None], BaseException]] = []
        with ProcessPoolExecutor(max_workers=min(n, len(todo)), mp_context=ctx) as pool:
            futures = {}
            for item in todo:
                try:
                    futures[pool.submit(judge, item[1], spec, item[2])] = item
                except Exception as exc:  # a worker died while the rest was being queued
                    # (BrokenProcessPool, or OSError from the pool's closed pipes)
                    lost.append((item, exc))
            for fut in as_completed(futures):
                try:
                    outcome = fut.result()
                except Exception as exc:  # a worker process died: the pool is broken
                    lost.append((futures[fut], exc))
                    continue
                yield futures[fut][0], outcome
            if lost:
                _end_survivors(pool)
        if not lost:
            return
        if attempt == LOCAL_RETRIES:
            for (i, t, pinned), err in lost:
                reason = f"worker lost {attempt + 1} times: {type(err).__name__}: {err}"
                yield i, error_outcome(t.name, reason, pinned)
            return
        todo = [item for item, _ in lost]  # judged again in a new pool, never skipped


def _end_survivors(pool: Any) -> None:
    """End the pool's remaining workers. A worker killed while it held the call queue's lock
    leaves the others blocked on it forever, and Python 3.11's broken-pool cleanup joins them
    (it does not terminate them): without this, shutting the pool down would hang."""
    procs: dict[int, Any] = getattr(pool, "_processes", None) or {}
    for proc in list(procs.values()):
        if proc.is_alive():
            proc.terminate()


def _ray(
    work: Work, spec: WorkSpec, address: str | None, workers: int | None
) -> Iterator[tuple[int, Outcome]]:
    try:
        import ray
    except ImportError:
        raise UsageError(
            "--engine ray needs Ray: pip install 'mlsec[ray]'", hint="or use --engine local"
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = workers or os.cpu_count() or 1
        try:
            ray.init(**kwargs)
        except Exception as exc:
            raise UsageError(
                f"cannot connect to Ray at {address or 'a new local cluster'}: {exc}"
            ) from None
    try:
        remote = ray.remote(num_cpus=1, max_retries=RAY_RETRIES, retry_exceptions=False)(judge)
        spec_ref = ray.put(spec)
        refs: dict[Any, tuple[int, Target, str | None]] = {}
        for i, t, pinned in work:
            refs[remote.remote(t, spec_ref, pinned)] = (i, t, pinned)  # type: ignore[call-arg]
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            for r in ready:
                i, t, pinned = refs.pop(r)
                try:
                    yield i, ray.get(r)
                except Exception as exc:  # retries exhausted (worker or node lost)
                    reason = f"Ray task failed after {RAY_RETRIES} retries: {type(exc).__name__}"
                    yield i, error_outcome(t.name, reason, pinned)
    finally:
        if started_here:
            ray.shutdown()
