"""Simulated calls and Whisper's hearing of many clips on Dask workers against the single-process path (issue 20,
part 1: `voiceloop simulate-calls`, the gate's golden-set transcription, the monitor's champion scoring).

- ``simulate``: ``build_calls`` of ``--calls`` training calls in this process (two render threads, the recogniser
  here) and on a local cluster of two single-thread worker processes (flows/fan_out.py, one call per task);
- ``hear``: every customer turn of those calls (with ``--copies`` of them, so the set is about golden-sized)
  heard by the bundled Whisper as the gate hears the golden set: in this process (``AsrEngine.for_throughput``:
  one single-thread CTranslate2 worker per core) and on the two Dask workers (``core.asr_shards``).

The cluster starts before the clock (``cluster_s``) and is driven as an existing scheduler (``compute.dask_address``:
the only case voiceloop sends this work to workers); each worker loads Whisper inside the clock (a run pays that). One
JSON line per mode and repeat (wall seconds), then the medians, the ratios and whether both paths gave the same
files and texts.

    PYTHONPATH=. .venv/bin/python benchmarks/per_call_fan_out.py [--calls 12] [--copies 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.common import emit, scratch  # noqa: E402

NOW = datetime(2026, 11, 20, tzinfo=UTC)
BATCH = 8  # asr.batch_transcribe's default


def _files(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _clips(folder: Path, copies: int) -> list[Any]:
    """Every customer turn of the call store at ``folder``, 16 kHz, ``copies`` times over."""
    from core.audio import decode_16k

    clips = []
    for document in sorted(folder.glob("*.json")):
        call = json.loads(document.read_text())
        samples = decode_16k(str(folder / call["audio"]))
        clips += [samples[int(t["start_s"] * 16000):int(t["end_s"] * 16000)]
                  for t in call["turns"] if t["speaker"] == "customer"]
    return clips * copies


def _timed(work: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = work(*args, **kwargs)
    return result, round(time.perf_counter() - started, 2)


def _hear_here(clips: list[Any]) -> list[Any]:
    """The single-process path, model loading included (each Dask worker loads its own inside the clock too)."""
    from core.asr import AsrEngine

    return AsrEngine.for_throughput().transcribe_scored_batch(clips, BATCH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--copies", type=int, default=4, help="the turns this many times over for the hearing")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from core.asr_shards import transcribe_shards
    from core.runtime import prepare
    from core.settings import ComputeConfig
    from flows.fan_out import DaskShards
    from voiceloop.simulate.calls import build_calls

    with scratch("voiceloop-per-call-fan-out-") as work:
        prepare(work / "project", threads=os.cpu_count())
        runs: dict[str, list[float]] = {m: [] for m in ("simulate-here", "simulate-dask", "hear-here", "hear-dask")}
        fingerprints: dict[str, set[str]] = {"simulate": set(), "hear": set()}
        for repeat in range(args.repeats):
            here = work / f"here-{repeat}"
            _, seconds = _timed(build_calls, here, args.calls, seed=7, now=NOW)
            runs["simulate-here"].append(seconds)
            fingerprints["simulate"].add(_files(here))
            clips = _clips(here, args.copies)
            heard, seconds = _timed(_hear_here, clips)
            runs["hear-here"].append(seconds)
            fingerprints["hear"].add(hashlib.sha256(repr(heard).encode()).hexdigest()[:16])
            cluster = DaskShards(ComputeConfig(workers=2))
            _, cluster_s = _timed(list, cluster(len, [[0]], ["warm-up"]))
            # the local cluster's workers as an existing scheduler's: the Whisper-bound paths go to workers only then
            shards = DaskShards(ComputeConfig(dask_address=cluster._runner.client.scheduler.address))
            try:
                there = work / f"dask-{repeat}"
                _, seconds = _timed(build_calls, there, args.calls, seed=7, now=NOW, shards=shards)
                runs["simulate-dask"].append(seconds)
                fingerprints["simulate"].add(_files(there))
                heard, seconds = _timed(transcribe_shards, shards, None, clips, BATCH, 10.0)
                runs["hear-dask"].append(seconds)
                fingerprints["hear"].add(hashlib.sha256(repr(heard).encode()).hexdigest()[:16])
            finally:
                shards.close()
                cluster.close()
            for mode, values in runs.items():
                emit(benchmark="per_call_fan_out", figure="run", repeat=repeat, mode=mode, seconds=values[-1],
                     cores=os.cpu_count(), calls=args.calls, clips=len(clips), cluster_s=cluster_s)
            shutil.rmtree(here)
            shutil.rmtree(there)
        medians = {mode: statistics.median(values) for mode, values in runs.items()}
        emit(benchmark="per_call_fan_out", figure="summary", median_seconds=medians,
             simulate_dask_over_here=round(medians["simulate-here"] / medians["simulate-dask"], 2),
             hear_dask_over_here=round(medians["hear-here"] / medians["hear-dask"], 2),
             same_files=len(fingerprints["simulate"]) == 1, same_texts=len(fingerprints["hear"]) == 1)


if __name__ == "__main__":
    main()
