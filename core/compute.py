"""Shards of per-call work and the one interface that runs them, here or on worker processes.

The heavy per-call steps (redaction, golden-set transcription, the monitor's champion scoring, the
simulator's rendering) are written as pure functions over a shard of calls: data in, data out, no
store. The caller reads its inputs through the governed store, hands the shards to a
:data:`ShardMap`, and writes each shard's result back itself, so every access stays checked and
audited in one process. :func:`in_process` runs the shards one after another; flows/fan_out.py
runs them as Prefect tasks on a Dask cluster. Both hand results back in shard order, so the two
paths give the same outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar, overload

S = TypeVar("S")
R = TypeVar("R")


class ShardMap(Protocol):
    """Run ``work`` on every shard and yield the results in shard order, each as soon as it (and every
    shard before it) is done. ``keys`` name the shards by content (:func:`content_key`). ``shards`` may
    be a lazy sequence that reads its inputs when a shard is taken.

    ``workers``: shards that run at once; ``cores_per_worker``: the threads each may use; ``elsewhere``: whether
    the workers are cores beyond this machine's (an existing cluster). Work whose single-process path already
    keeps every core of this machine busy (Whisper with one CTranslate2 worker per core) goes to workers only
    then: on this machine's own cores, one process does it faster (benchmarks/README.md#per-call-fan-out)."""

    @property
    def workers(self) -> int: ...

    @property
    def cores_per_worker(self) -> int: ...

    @property
    def elsewhere(self) -> bool: ...

    def __call__(self, work: Callable[[S], R], shards: Sequence[S], keys: Sequence[str]) -> Iterator[R]: ...


class InProcess:
    """The single-process path: each shard here, one after another, with every core to itself."""

    workers = 1
    elsewhere = False

    @property
    def cores_per_worker(self) -> int:
        return os.cpu_count() or 1

    def __call__(self, work: Callable[[S], R], shards: Sequence[S], keys: Sequence[str]) -> Iterator[R]:
        del keys  # nothing to find again: a shard's result is written before the next one starts
        for shard in shards:
            yield work(shard)


in_process = InProcess()


class LazyShards(Sequence[S]):
    """Shards made when taken: ``load`` reads a piece's inputs then (through the governed store: checked and
    audited at that moment), so a run holds the shards in flight, not every call's data at once."""

    def __init__(self, pieces: Sequence[Sequence[str]], load: Callable[[Sequence[str]], S]) -> None:
        self.pieces, self.load = pieces, load

    def __len__(self) -> int:
        return len(self.pieces)

    @overload
    def __getitem__(self, i: int) -> S: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[S]: ...

    def __getitem__(self, i: int | slice) -> S | Sequence[S]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return self.load(self.pieces[i])


def chunks(items: Sequence[S], size: int) -> list[Sequence[S]]:
    """``items`` in consecutive pieces of at most ``size``."""
    if size < 1:
        raise ValueError(f"shard size must be at least 1, not {size}")
    return [items[i : i + size] for i in range(0, len(items), size)]


def shard_size(items: int, workers: int, most: int, least: int = 1) -> int:
    """Pieces small enough that every worker gets about two (the last shard is not a long tail), at most
    ``most`` (one batch of the model) and at least ``least`` (the per-shard overhead stays small)."""
    if items <= 0:
        return least
    wanted = -(-items // max(1, 2 * workers))
    return max(least, min(most, wanted))


def content_key(kind: str, *parts: Any) -> str:
    """A shard's name from what determines its result (call digests, settings, model version): the
    same inputs give the same key on any machine, so a re-run recognises work it has done."""
    text = json.dumps([kind, *parts], sort_keys=True, default=str, separators=(",", ":"))
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
