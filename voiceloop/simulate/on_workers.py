"""Simulated calls rendered and heard on worker processes (flows/fan_out.py): the files the in-process build writes.

One call is one shard: a worker synthesises it (espeak-ng, sox), passes it through its channel into a
scratch file, hears each turn with the sequential recogniser the in-process build uses, and sends the
audio's bytes and the texts back. The builder writes them into the call store itself, audio first, so
workers need no access to the store's folder, only the sample data (found as the builder finds it).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from core.compute import ShardMap, content_key
from core.corpus import sample_dir as resolve_sample_dir
from voiceloop.simulate.plan import CallPlan
from voiceloop.simulate.render import Rendered, render_call

if TYPE_CHECKING:
    from voiceloop.simulate.calls import Recogniser


@dataclass(frozen=True)
class CallShard:
    plan: CallPlan
    sample_dir: Path | None  # None: the sample data as each worker finds it (core/corpus.py)
    asr_model: str | None


@dataclass(frozen=True)
class HeardCall:
    rendered: Rendered
    audio: bytes  # the WAV the call store gets
    texts: list[str]  # what the recogniser made of each turn


def heard_calls(shards: ShardMap, plans: Sequence[CallPlan], sample_dir: Path | None,
                asr_model: str | None) -> Iterator[HeardCall]:
    """Each plan rendered and heard on ``shards``' workers, in plan order."""
    keys = [content_key("simulate-call", dataclasses.asdict(plan), asr_model) for plan in plans]
    return shards(render_and_hear, [CallShard(plan, sample_dir, asr_model) for plan in plans], keys)


def render_and_hear(shard: CallShard) -> HeardCall:
    """One call, on whichever worker runs it."""
    from voiceloop.simulate.calls import turn_segments

    with tempfile.TemporaryDirectory(prefix="voiceloop-call-") as scratch:
        path = Path(scratch) / f"{shard.plan.call_id}.wav"
        rendered = render_call(shard.plan, path, resolve_sample_dir(shard.sample_dir))
        heard = _recogniser(shard.asr_model)(turn_segments(path, rendered))
        return HeardCall(rendered, path.read_bytes(), [h.text for h in heard])


@lru_cache(maxsize=1)
def _recogniser(model: str | None) -> Recogniser:
    """One recogniser per worker process: loading Whisper takes seconds."""
    from voiceloop.simulate.calls import Recogniser

    return Recogniser(model)
