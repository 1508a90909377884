"""Per-call shards on Dask worker processes through Prefect (prefect-dask), so a run uses every core.

``compute.fan_out`` on (the default): a local Dask cluster of single-thread worker processes, one
per core (``compute.workers``), started on the first shard and stopped with the step using it; or an existing
scheduler at ``compute.dask_address``. Off: :func:`core.compute.in_process`. Each shard is a Prefect
task run named by its content key, its result never persisted (results hold call data: they go
back to the run, which writes them through the governed store). Results come back in shard order,
at most two shards per worker in flight, so memory stays bounded however many calls a run has.

Workers inherit this process's environment (offline settings, tool homes), with every thread pool
pinned to one thread, and report their task runs to this run's Prefect API; without that, each
worker would start an ephemeral Prefect server of its own.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE

from core.compute import ShardMap, in_process
from core.runtime import quiet_libraries, thread_pools
from core.settings import ComputeConfig

S = TypeVar("S")
R = TypeVar("R")

# Workers: one thread per pool, and no INFO log line per shard (task run states still reach the Prefect API).
_WORKER_ENV = {**thread_pools(1), "PREFECT_LOGGING_LEVEL": "WARNING"}


def call_shard(work: Callable[[Any], Any], shard: Any) -> Any:
    """One shard of per-call work, on whichever worker Dask picks."""
    quiet_libraries()
    return work(shard)


# The task wraps a module-level function under its own name, so workers import it by reference (decorated in
# place, the module's name would give the task, not the function).
run_shard = task(name="shard", cache_policy=NO_CACHE, persist_result=False)(call_shard)


def local_workers(config: ComputeConfig, threads: int | None = None) -> int:
    """Worker processes of a local cluster: ``compute.workers``, else one per core (``threads`` if set)."""
    return config.workers or threads or os.cpu_count() or 1


# A shard carries its calls' data in the task graph, not scattered to one worker beforehand: when a worker dies, Dask
# runs its shard again elsewhere from the graph, where data scattered to the dead worker would be lost with it. An
# audio shard of 32 calls holds about 30 MB, so Dask's warning on graphs over 10 MB would fire on every one.
SHARD_GRAPH_WARNING = "256MB"
POLL_S = 10.0  # how often a wait for a shard checks that the cluster still has workers
WORKERLESS_S = 120.0  # no worker this long: the run stops (a local worker that died is restarted within seconds)


class ShardWorkersLost(RuntimeError):
    """The Dask cluster has no workers left to run the shards on."""


class DaskShards:
    """A :class:`core.compute.ShardMap` on Dask; the cluster starts on the first shard, not before."""

    cores_per_worker = 1

    def __init__(self, config: ComputeConfig, threads: int | None = None) -> None:
        self.config = config
        self.workers = local_workers(config, threads)
        self.elsewhere = bool(config.dask_address)  # a cluster of other machines' cores, or this one's
        self._runner: Any = None
        self._api_url = ""
        self._starting = threading.Lock()  # two lanes of a run may take their first shard at once: one cluster

    def __call__(self, work: Callable[[S], R], shards: Sequence[S], keys: Sequence[str]) -> Iterator[R]:
        if len(shards) != len(keys):
            raise ValueError(f"{len(shards)} shards but {len(keys)} keys")
        pending: deque[Any] = deque()
        queued = iter(zip(shards, keys, strict=True))
        window = 2 * self.workers
        for shard, key in queued:
            pending.append(self._submit(work, shard, key))
            if len(pending) >= window:
                break
        while pending:
            result = self._result(pending.popleft())
            for shard, key in queued:
                pending.append(self._submit(work, shard, key))
                break
            yield result

    def _result(self, future: Any) -> Any:
        """A shard's result, waiting as long as the cluster has workers: one that lost them all (killed, out of
        memory) for ``WORKERLESS_S`` stops the run with what to do instead of waiting for ever."""
        workerless_since: float | None = None
        while True:
            try:
                return future.result(timeout=POLL_S)
            except TimeoutError:
                if self._runner.client.scheduler_info().get("workers"):
                    workerless_since = None
                    continue
                now = time.monotonic()
                workerless_since = workerless_since or now
                if now - workerless_since >= WORKERLESS_S:
                    where = self.config.dask_address or "the local cluster"
                    raise ShardWorkersLost(
                        f"{where} has had no Dask workers for {WORKERLESS_S:.0f} s (killed, or out of memory: "
                        "see the workers' logs); run again: the calls already written are not redone") from None

    def _submit(self, work: Callable[[Any], Any], shard: Any, key: str) -> Any:
        from prefect import tags
        from prefect.context import EngineContext, TaskRunContext
        from prefect.settings import PREFECT_API_URL, temporary_settings

        runner = self._started()
        # A shard carries the caller's Prefect context to its worker, pickled. With the API's address in it, the
        # worker reports there. Without the enclosing task's and flow's contexts: the task's holds its parameters
        # (the governed store, its keys), which must never leave this process, and a flow's function pickles by
        # value with every global it names. The shard's task run is tagged with the flow run instead.
        engine = EngineContext.get()
        flow_run = getattr(engine, "flow_run", None)
        outer_flow = EngineContext.__var__.set(None)  # type: ignore[arg-type]
        outer_task = TaskRunContext.__var__.set(None)  # type: ignore[arg-type]
        try:
            with temporary_settings({PREFECT_API_URL: self._api_url}), \
                    tags(*([f"flow-run:{flow_run.id}"] if flow_run else [])):
                return _submit_unhashed(runner, run_shard.with_options(task_run_name=key),
                                        {"work": work, "shard": shard})
        finally:
            TaskRunContext.__var__.reset(outer_task)
            EngineContext.__var__.reset(outer_flow)

    def _started(self) -> Any:
        with self._starting:
            if self._runner is None:
                self._runner = self._start()
            return self._runner

    def _start(self) -> Any:
        import dask
        from prefect_dask import DaskTaskRunner

        dask.config.set({"distributed.admin.large-graph-warning-threshold": SHARD_GRAPH_WARNING,
                         # Dask's nannies set MALLOC_TRIM_THRESHOLD_ (65536) in local workers, which turns off glibc's
                         # adaptive mmap threshold: every large numpy or CTranslate2 buffer is then mapped and
                         # unmapped afresh. None leaves glibc's default; redaction of the demo's calls on one worker
                         # took 62.5 s with it and 44.3 s without (benchmarks/README.md#redaction-fan-out).
                         "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})

        self._api_url = _prefect_api_url()
        logging.getLogger("distributed").setLevel(logging.ERROR)  # the scheduler runs here: its INFO lines are noise
        if self.config.dask_address:
            runner = DaskTaskRunner(address=self.config.dask_address)
        else:
            runner = DaskTaskRunner(cluster_kwargs={
                "n_workers": self.workers, "threads_per_worker": 1, "processes": True,
                "host": "127.0.0.1", "dashboard_address": "127.0.0.1:0", "silence_logs": logging.ERROR,
            })  # fmt: skip
        runner.__enter__()
        saved = dict(os.environ)
        os.environ.update({**_WORKER_ENV, "PREFECT_API_URL": self._api_url})  # what the spawned workers inherit
        try:
            runner.client  # noqa: B018  (starts the cluster, or connects to the scheduler, now)
        except BaseException:
            runner.__exit__(None, None, None)
            raise
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return runner

    def worker_pids(self) -> set[int]:
        """The process ids of the cluster's workers (none before the first shard)."""
        if self._runner is None:
            return set()
        return set(self._runner.client.run(os.getpid).values())

    def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            runner.__exit__(None, None, None)


def _submit_unhashed(runner: Any, shard_task: Any, parameters: dict[str, Any]) -> Any:
    """``runner.submit`` without Dask hashing the parameters to name the task (``pure=False``: a fresh key).

    ``DaskTaskRunner.submit`` leaves Dask's default (``pure=True``), which tokenizes every argument in this
    process: a shard's audio, byte by byte, on a core the workers need (about 8 s of this process's CPU on the
    demo's 565 calls: benchmarks/README.md#redaction-fan-out). The hash bought nothing: the arguments hold a new
    task run id each time, so no two keys were ever equal. A shard's content key names its task run; calls
    already done are found in the store."""
    from prefect_dask.task_runners import PrefectDaskFuture

    future = runner.client.submit(shard_task, parameters=parameters, return_type="state", pure=False)
    return PrefectDaskFuture(wrapped_future=future, task_run_id=future.task_run_id)


def _prefect_api_url() -> str:
    """This process's Prefect API: the configured one, or the ephemeral server (started if it is not yet)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    configured = get_current_settings().api.url
    if configured:
        return str(configured)
    with get_client(sync_client=True) as client:  # starts the ephemeral server when none runs yet
        client.api_healthcheck()
    from prefect.server.api.server import SubprocessASGIServer

    return SubprocessASGIServer().api_url


@contextmanager
def fan_out(config: ComputeConfig, threads: int | None = None) -> Iterator[ShardMap]:
    """The shard map a run uses: Dask workers (``compute.fan_out``), or this process; closed at the end."""
    if not config.fan_out:
        yield in_process
        return
    shards = DaskShards(config, threads)
    try:
        yield shards
    finally:
        shards.close()
