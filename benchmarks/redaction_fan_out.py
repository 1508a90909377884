"""The redaction stage on Dask workers against today's single-process path (issue 20 bar: 2 single-thread workers
>= 1.7x one, and no slower than the single-process path; the same outputs).

The demo corpus's training calls (``make corpus``: ``--calls data/calls``), and with ``--golden data/golden`` its
golden calls too (the retrain's redaction stage covers both: text and audio with alignment and verification),
are ingested once into a governed store; each mode then redacts a fresh copy of that store through
``governance.redaction.calls.redact_pending``:

- ``in-process``: today's path (:data:`core.compute.in_process`; CTranslate2 with one single-thread worker per
  core, Presidio on one core);
- ``dask-1`` and ``dask-2``: a local Dask cluster (flows/fan_out.py) of one or two single-thread worker
  processes, started before the clock (``cluster_s`` says what the start cost), each worker loading spaCy,
  Presidio and Whisper on its first shard (inside the clock: a run pays it).

One JSON line per mode and repeat (wall seconds, CPU seconds of this process and its children; for the Dask
modes, from Dask's task stream, when the first shard started computing, how far apart the workers finished, and
each worker's seconds of shard work), then the medians, the speed-ups and whether every mode wrote the same
redacted documents, audio and quarantine.

    make corpus && PYTHONPATH=. .venv/bin/python benchmarks/redaction_fan_out.py [--calls data/calls] [--repeats 3]
    PYTHONPATH=. .venv/bin/python benchmarks/redaction_fan_out.py --golden data/golden   # the retrain's whole stage
    PYTHONPATH=. .venv/bin/python benchmarks/redaction_fan_out.py --limit 24 --repeats 1   # a quick check
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
from contextlib import nullcontext
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.common import emit, scratch  # noqa: E402

MODES = ("in-process", "dask-1", "dask-2")


def _ingest(sources: dict[str, Path], limit: int | None, folder: Path) -> Path:
    """A governed store (zones, keys, audit) holding the corpus's raw calls (split -> call store folder); returns
    its folder. ``limit``: the first N calls of each split."""
    from governance.audit import Actor, AuditLog
    from governance.crypto import Keyring
    from governance.ingest import ingest
    from governance.store import GovernedStore

    store = GovernedStore(folder / "store" / "zones", AuditLog(f"sqlite:///{folder / 'store' / 'audit.db'}"),
                          Actor(role="pipeline", purpose="ingest", user="benchmark"),
                          keyring=Keyring(folder / "store" / "keys"))
    for split, calls in sources.items():
        source = calls
        if limit:
            source = folder / split
            source.mkdir(parents=True)
            for document in sorted(calls.glob("*.json"))[:limit]:
                shutil.copy(document, source)
                data = json.loads(document.read_text())
                audio = calls / data["audio"]
                (source / data["audio"]).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(audio, source / data["audio"])
        report = ingest(store, str(source), split)
        print(f"ingested {len(report.ingested)} {split} calls", file=sys.stderr)
    return folder / "store"


def _open(folder: Path) -> Any:
    from governance.audit import Actor, AuditLog
    from governance.crypto import Keyring
    from governance.store import GovernedStore

    actor = Actor(role="pipeline", purpose="redaction", user="benchmark")
    return GovernedStore(folder / "zones", AuditLog(f"sqlite:///{folder / 'audit.db'}"), actor,
                         keyring=Keyring(folder / "keys"))


def _fingerprint(store: Any) -> str:
    """One digest of everything redaction wrote: documents, audio, quarantine reasons."""
    reader = store.as_purpose("training")
    digest = hashlib.sha256()
    for document in sorted(reader.read_redacted(), key=lambda d: d["call_id"]):
        digest.update(json.dumps(document, sort_keys=True).encode())
        try:
            digest.update(reader.read_redacted_audio(document["call_id"]))
        except FileNotFoundError:
            digest.update(b"-")
    for item in sorted(json.dumps([i["stage"], i["item"], i["call_id"], i["reason"]], sort_keys=True)
                       for i in store.quarantined()):  # not when: quarantined_at differs run to run
        digest.update(item.encode())
    return digest.hexdigest()[:16]


def _run(mode: str, template: Path, work: Path) -> dict[str, Any]:
    from core.compute import in_process
    from core.runtime import cpu_seconds
    from core.settings import ComputeConfig, load_settings
    from flows.fan_out import DaskShards
    from governance.redaction.calls import redact_pending

    folder = work / mode
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(template, folder)
    store = _open(folder)
    config = load_settings().redaction
    shards: Any = in_process
    cluster_s = 0.0
    if mode != "in-process":
        shards = DaskShards(ComputeConfig(workers=int(mode.split("-")[1])))
        started = time.perf_counter()
        list(shards(len, [[0]], ["warm-up"]))  # the cluster up, before the clock; models load inside it
        cluster_s = time.perf_counter() - started
    from distributed import get_task_stream

    stream: Any = get_task_stream(shards._runner.client) if isinstance(shards, DaskShards) else nullcontext()
    try:
        with stream as tasks:
            cpu, started, clock = cpu_seconds(), time.perf_counter(), time.time()
            report = redact_pending(store, config, shards=shards)
            wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    finally:
        if isinstance(shards, DaskShards):
            shards.close()
    return {"mode": mode, "seconds": round(wall, 2), "cpu_seconds_here": round(cpu, 2),
            "cluster_s": round(cluster_s, 2), "calls": len(report.calls), "audio_calls": len(report.audio.calls),
            "fingerprint": _fingerprint(store), **(_task_stream(tasks.data, clock) if tasks is not None else {})}


def _task_stream(tasks: list[dict[str, Any]], started: float) -> dict[str, Any]:
    """Where a Dask run's time goes besides the shards' work, from Dask's task stream: when the first shard
    started computing (seconds into the stage), how far apart the workers finished their last shard, and each
    worker's seconds of shard work."""
    computes = [(span["start"], span["stop"], task["worker"])
                for task in tasks for span in task["startstops"] if span["action"] == "compute"]
    if not computes:
        return {}
    ends: dict[str, float] = {}
    busy: dict[str, float] = {}
    for start, stop, worker in computes:
        ends[worker] = max(ends.get(worker, 0.0), stop)
        busy[worker] = busy.get(worker, 0.0) + stop - start
    return {"first_shard_s": round(min(start for start, _, _ in computes) - started, 2),
            "last_shard_spread_s": round(max(ends.values()) - min(ends.values()), 2),
            "worker_busy_s": sorted(round(seconds, 2) for seconds in busy.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=Path, default=REPO / "data" / "calls", help="a call store folder")
    parser.add_argument("--golden", type=Path, help="the golden call store folder too (data/golden): the whole stage")
    parser.add_argument("--limit", type=int, help="only the first N calls of each split (a quick check)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    args = parser.parse_args()
    sources = {"train": args.calls} | ({"golden": args.golden} if args.golden else {})
    for folder in sources.values():
        if not folder.is_dir():
            raise SystemExit(f"{folder} is missing: run `make corpus` (or give --calls / --golden)")
    from core.runtime import prepare

    with scratch("voiceloop-redaction-fan-out-") as work:
        prepare(work / "project", threads=os.cpu_count())
        template = _ingest({split: folder.resolve() for split, folder in sources.items()}, args.limit,
                           work / "template")
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in args.modes}
        for repeat in range(args.repeats):
            for mode in args.modes:  # interleaved: load on the machine hits every mode alike
                result = _run(mode, template, work / "runs")
                runs[mode].append(result)
                emit(benchmark="redaction_fan_out", figure="run", repeat=repeat, cores=os.cpu_count(), **result)
        medians = {mode: statistics.median(r["seconds"] for r in results) for mode, results in runs.items()}
        fingerprints = {r["fingerprint"] for results in runs.values() for r in results}
        emit(benchmark="redaction_fan_out", figure="summary", calls=runs[args.modes[0]][0]["calls"],
             median_seconds=medians, same_outputs=len(fingerprints) == 1,
             dask2_over_dask1=round(medians["dask-1"] / medians["dask-2"], 2) if {"dask-1", "dask-2"} <= medians.keys()
             else None,
             dask2_over_in_process=round(medians["in-process"] / medians["dask-2"], 2)
             if {"in-process", "dask-2"} <= medians.keys() else None)


if __name__ == "__main__":
    main()
