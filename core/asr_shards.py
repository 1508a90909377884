"""Many utterances transcribed in shards of whole batches, on any :data:`core.compute.ShardMap`.

The golden-set transcription of the gate and the monitor's champion scoring hand their clips to the
run's Dask workers (flows/fan_out.py) when those are a cluster elsewhere (:func:`on_workers`). A shard
holds whole batches as :func:`core.asr.window_batches` forms them for all the clips, so every batch
is decoded as one engine in one process would decode it: the texts and confidences are the same.
Each worker loads the model once and keeps it. The model travels by name: the bundled model, or a
folder that the workers see at the same path (on a cluster of other machines, a shared file system).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from core.asr import BUNDLED_MODEL, NOTHING_HEARD, AsrEngine, Heard, ProgressCallback, window_batches
from core.compute import ShardMap, chunks, content_key, shard_size

# Batches per shard at most: a shard's audio travels in the task graph, and two batches of 8 five-second
# clips (5 MB) stay well under Dask's large-graph warning (10 MB); a batch takes seconds on one core.
BATCHES_PER_SHARD = 2


@dataclass(frozen=True)
class TranscriptionShard:
    """Clips of whole batches and how to hear them: everything a worker needs."""

    model: str | None  # a CTranslate2 Whisper folder or hub id; None: the bundled tiny.en
    window_s: float | None
    batch_size: int
    compute_type: str
    cores: int
    audios: list[np.ndarray]


def on_workers(shards: ShardMap, device: str) -> bool:
    """Whether clips go to ``shards``' workers: when they are cores beyond this machine's (``elsewhere``: on this
    machine one engine with a CTranslate2 worker per core hears them faster) and the model runs on the CPU (a GPU
    is fed whole batches by one engine)."""
    return shards.elsewhere and device == "cpu"


def engine_model(engine: AsrEngine) -> str | None:
    """How a worker names ``engine``'s model: None for the bundled one (each install has its own path)."""
    return None if engine.name == BUNDLED_MODEL else engine.model_path


def transcribe_shards(shards: ShardMap, model: str | None, audios: Sequence[np.ndarray], batch_size: int,
                      window_s: float | None, compute_type: str = "int8",
                      progress: ProgressCallback | None = None) -> list[Heard]:
    """What :meth:`AsrEngine.transcribe_scored_batch` hears in ``audios`` (CPU, in input order), on ``shards``."""
    arrays = [np.asarray(audio, dtype=np.float32).reshape(-1) for audio in audios]
    batches, longer = window_batches([a.size for a in arrays], batch_size, window_s)
    jobs = [chunk for chunk, _frames in batches] + [[index] for index in longer]
    pieces = chunks(jobs, shard_size(len(jobs), shards.workers, most=BATCHES_PER_SHARD)) if jobs else []
    indices = [[i for job in piece for i in job] for piece in pieces]
    inputs = [TranscriptionShard(model, window_s, batch_size, compute_type, shards.cores_per_worker,
                                 [arrays[i] for i in piece]) for piece in indices]
    keys = [content_key("transcribe", model or BUNDLED_MODEL, window_s, batch_size, compute_type,
                        [hashlib.sha256(arrays[i].tobytes()).hexdigest()[:16] for i in piece]) for piece in indices]
    out = [NOTHING_HEARD for _ in arrays]  # clips under 10 ms, as the engine says
    done, total = len(arrays) - sum(map(len, indices)), len(arrays)
    for piece, heard in zip(indices, shards(transcribe_shard, inputs, keys), strict=True):
        for index, result in zip(piece, heard, strict=True):
            out[index] = result
        done += len(piece)
        if progress is not None:
            progress(done, total)
    return out


def transcribe_shard(shard: TranscriptionShard) -> list[Heard]:
    """One shard, on whichever worker runs it: its batches form again as they were planned."""
    engine = _engine(shard.model, shard.window_s, shard.compute_type, shard.cores)
    return engine.transcribe_scored_batch(shard.audios, batch_size=shard.batch_size, window_s=shard.window_s)


@lru_cache(maxsize=2)
def _engine(model: str | None, window_s: float | None, compute_type: str, cores: int) -> AsrEngine:
    """One engine per worker process and model: loading Whisper takes seconds."""
    return AsrEngine(model, compute_type=compute_type, cpu_threads=cores, window_s=window_s)
