"""How to spend 2 cores on Whisper: threads per worker, workers, batch size; and training threads.

Prints one JSON line per setting (median seconds of ``--repeats`` runs):

* transcribing golden turns of a project in 10 s windows with one worker of 2 threads, two
  workers of 1 thread (``AsrEngine.for_throughput``), and batch sizes 8 / 16 / 32;
* LoRA training (the default scope, one epoch) on ``--train`` customer turns with 2 torch threads
  and with 1: whether two trainings side by side on one thread each could beat one after the other.

    .venv/bin/python benchmarks/asr_threads.py --project-dir /tmp/asrbench/project
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from common import asr_golden, asr_project, emit  # benchmarks/common.py


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", required=True)
    parser.add_argument("--limit", type=int, default=300, help="golden turns to transcribe")
    parser.add_argument("--train", type=int, default=48, help="customer turns to train on")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    settings, run = asr_project(args.project_dir, newest=False)

    import torch

    from core.asr import AsrEngine
    from governance.session import open_store
    from training.asr.convert import load_base_whisper
    from training.asr.data import load_utterance
    from training.asr.train import Utterance, train_whisper_lora
    from training.datasets import open_version

    golden = asr_golden(settings, run, args.limit, digits=0)
    audio_s = sum(a.size for a in golden.audios) / 16_000
    engines = {"1 worker x 2 threads": AsrEngine(cpu_threads=2),
               "2 workers x 1 thread": AsrEngine.for_throughput(cores=2)}
    for name, engine in engines.items():
        for batch in (8, 16, 32):
            seconds = _median_seconds(lambda e=engine, b=batch: e.transcribe_batch(golden.audios, batch_size=b),
                                      args.repeats)
            emit(figure="asr_transcribe_threads", engine=name, batch_size=batch, turns=len(golden.audios),
                 seconds=seconds, compute_per_audio=round(seconds / audio_s, 4), load=os.getloadavg())

    store = open_store(settings, "ml-engineer", "training")
    data = open_version(store, "asr-train", run.data.params["dataset.asr-train"]).load()
    turns = [Utterance(load_utterance(data["audio"][i]), data["text"][i]) for i in range(min(args.train, len(data)))]
    config = settings.asr.model_copy(update={"epochs": 1})

    def train() -> None:
        model, processor = load_base_whisper(settings.asr.base_model, settings.root / "cache")
        train_whisper_lora(model, processor.tokenizer, turns, config)

    for threads in (2, 1):
        torch.set_num_threads(threads)
        emit(figure="asr_train_threads", torch_threads=threads, turns=len(turns), epochs=1,
             seconds=_median_seconds(train, args.repeats), load=os.getloadavg())


if __name__ == "__main__":
    main()
