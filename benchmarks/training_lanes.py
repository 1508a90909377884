"""Why the retrain flow trains the intent model and Whisper side by side, one core each.

Prints one JSON line per figure:

* ``lane_alone``: one intent epoch (all of BANKING77 train, ``intent_accuracy.py --epochs 1``) and
  Whisper LoRA (``--turns`` customer turns, ``--epochs``) each alone, on 2 and on 1 torch threads;
* ``lane_side_by_side``: both at once, the intent model in its own process on 1 thread and Whisper
  here on 1 and on 2 threads (2 oversubscribes the 2 cores);
* ``asr_lora_thread_invariance``: the largest difference between the LoRA weights trained on 1 and
  on 2 threads (0: bit-identical, so a one-core lane keeps the ASR results);
* ``asr_bf16``: Whisper training with and without bf16 autocast (``asr.bf16``).

    .venv/bin/python benchmarks/training_lanes.py --project-dir /tmp/prof2/project
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import asr_project, emit  # benchmarks/common.py

INTENT_EPOCH = [sys.executable, str(Path(__file__).with_name("intent_accuracy.py")), "--seeds", "0", "--epochs", "1",
                "--set", "lexical_weight=0"]


def _intent(threads: int) -> subprocess.Popen[str]:
    return subprocess.Popen([*INTENT_EPOCH, "--threads", str(threads)], stdout=subprocess.PIPE, text=True)


def _intent_seconds(process: subprocess.Popen[str]) -> float:
    out, _ = process.communicate()
    seed_line = next(line for line in out.splitlines() if '"seed"' in line)
    return float(json.loads(seed_line)["train_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", required=True, help="a project the retrain flow ran in (ASR enabled)")
    parser.add_argument("--turns", type=int, default=80)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    settings, run = asr_project(args.project_dir)

    import torch

    from governance.session import open_store
    from training.asr.convert import load_base_whisper
    from training.asr.data import load_utterance
    from training.asr.train import Utterance, train_whisper_lora
    from training.datasets import open_version

    store = open_store(settings, "ml-engineer", "training")
    data = open_version(store, "asr-train", run.data.params["dataset.asr-train"]).load()
    turns = [Utterance(load_utterance(data["audio"][i]), data["text"][i]) for i in range(min(args.turns, len(data)))]

    def whisper(threads: int, bf16: bool = False) -> tuple[float, Any]:
        torch.set_num_threads(threads)
        model, processor = load_base_whisper(settings.asr.base_model, settings.root / "cache")
        config = settings.asr.model_copy(update={"epochs": args.epochs, "bf16": bf16})
        started = time.perf_counter()
        trained = train_whisper_lora(model, processor.tokenizer, turns, config)
        weights = torch.cat([p.detach().flatten() for n, p in trained.named_parameters() if "lora" in n])
        return round(time.perf_counter() - started, 1), weights

    common = {"turns": len(turns), "epochs": args.epochs}
    weights = {}
    for threads in (2, 1):
        emit(figure="lane_alone", lane="intent (1 epoch)", torch_threads=threads,
             seconds=_intent_seconds(_intent(threads)))
        seconds, weights[threads] = whisper(threads)
        emit(figure="lane_alone", lane="whisper", torch_threads=threads, seconds=seconds, **common)
    emit(figure="asr_lora_thread_invariance", max_abs_difference=float((weights[1] - weights[2]).abs().max()),
         max_abs_weight=float(weights[2].abs().max()))
    for threads in (1, 2):
        intent = _intent(1)
        seconds, _ = whisper(threads)
        emit(figure="lane_side_by_side", intent_threads=1, intent_seconds=_intent_seconds(intent),
             whisper_threads=threads, whisper_seconds=seconds, **common)
    for bf16 in (False, True):
        seconds, _ = whisper(2, bf16)
        emit(figure="asr_bf16", bf16=bf16, torch_threads=2, seconds=seconds, **common)


if __name__ == "__main__":
    main()
