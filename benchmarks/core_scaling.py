"""How much two busy processes get out of this machine's cores, against one: the ceiling for any fan-out here.

Issue 20's redaction bar (two single-thread Dask workers >= 1.7x one) assumes two cores give about twice one
core's work. This measures what they give for the kinds of work the redaction stage is made of, with no Dask,
Prefect or voiceloop orchestration in the way: each of 1 or 2 ``multiprocessing`` processes (spawned, every
thread pool pinned to one thread) loads what it needs, waits for the others at a barrier, then does the same
fixed amount of work; a mode's time is its slowest process's.

- ``python``: a pure-Python loop (the interpreter only, no memory traffic);
- ``matmul``: float32 512x512 matrix products (numpy on one BLAS thread);
- ``presidio``: the redactor (spaCy + Presidio) over HarperValleyBank's customer turns (the text phase);
- ``whisper``: the bundled tiny.en (CTranslate2, int8, one thread) hearing the LibriVox clips (the audio phase).

One JSON line per kind and repeat (seconds of one process, of two, and the throughput of two over one:
``2 x one / two``), then the medians.

    PYTHONPATH=. .venv/bin/python benchmarks/core_scaling.py [--repeats 3] [--kinds python matmul presidio whisper]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.common import emit  # noqa: E402

KINDS = ("python", "matmul", "presidio", "whisper")
SAMPLE = REPO / "data" / "sample"


def _python() -> Callable[[], object]:
    def work() -> int:
        total = 0
        for i in range(200_000_000):
            total += i
        return total

    return work


def _matmul() -> Callable[[], object]:
    import numpy as np

    start = np.random.default_rng(0).random((512, 512), dtype=np.float32)

    def work() -> float:
        product = start
        for _ in range(1200):
            product = (product @ start) / 512
        return float(product.sum())

    return work


def _presidio() -> Callable[[], object]:
    from governance.redaction.redactor import Redactor

    turns = [turn["text"] for line in (SAMPLE / "harpervalley" / "calls.jsonl").read_text().splitlines()
             for turn in json.loads(line)["turns"] if turn["role"] == "caller"][:600]
    redactor = Redactor()

    def work() -> int:
        return sum(len(redactor.redact_many(turns)) for _ in range(40))

    return work


def _whisper() -> Callable[[], object]:
    from core.asr import AsrEngine
    from core.audio import decode_16k

    clips = [decode_16k(str(p)) for p in sorted((SAMPLE / "speech_fixtures" / "librivox").glob("*.wav"))]
    engine = AsrEngine(cpu_threads=1)

    def work() -> list[str]:
        heard: list[str] = []
        for _ in range(24):
            heard += engine.transcribe_batch(clips)
        return heard

    return work


SETUP: dict[str, Callable[[], Callable[[], object]]] = {
    "python": _python, "matmul": _matmul, "presidio": _presidio, "whisper": _whisper}


def _child(kind: str, barrier: Any, results: Any) -> None:
    from core.runtime import quiet_libraries

    quiet_libraries()
    work = SETUP[kind]()
    work()  # warm: first-call allocations and lazy loads are not the work
    barrier.wait()
    started = time.perf_counter()
    work()
    results.put(time.perf_counter() - started)


def measure(kind: str, processes: int) -> float:
    """Seconds until the slowest of ``processes`` processes has done ``kind``'s work once."""
    context = mp.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    children = [context.Process(target=_child, args=(kind, barrier, results)) for _ in range(processes)]
    for child in children:
        child.start()
    seconds = [results.get(timeout=900) for _ in children]
    for child in children:
        child.join()
        if child.exitcode:
            raise SystemExit(f"a {kind} process failed (exit {child.exitcode})")
    return max(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    args = parser.parse_args()
    from core.runtime import thread_pools

    os.environ.update(thread_pools(1))  # what the spawned processes inherit, as Dask's single-thread workers do
    ratios: dict[str, list[float]] = {kind: [] for kind in args.kinds}
    for repeat in range(args.repeats):
        for kind in args.kinds:
            one, two = measure(kind, 1), measure(kind, 2)
            ratios[kind].append(round(2 * one / two, 2))
            emit(benchmark="core_scaling", figure="run", kind=kind, repeat=repeat, cores=os.cpu_count(),
                 one_process_s=round(one, 2), two_processes_s=round(two, 2), two_over_one=ratios[kind][-1])
    emit(benchmark="core_scaling", figure="summary", cores=os.cpu_count(),
         median_two_over_one={kind: statistics.median(values) for kind, values in ratios.items()})


if __name__ == "__main__":
    main()
