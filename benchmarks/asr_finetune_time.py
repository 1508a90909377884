"""ASR fine-tuning time alone (current ``asr`` defaults) on the datasets of a project the flow ran in.

Prints one JSON line: training seconds, the whole run's seconds (export and golden scoring
included), utterances, epochs, golden WER, telephone WER, digit accuracy and the load average.

    .venv/bin/python benchmarks/asr_finetune_time.py --project-dir /tmp/asrbench/project
"""

from __future__ import annotations

import argparse
import os
import time

from common import asr_project, emit  # benchmarks/common.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", required=True)
    args = parser.parse_args()
    settings, run = asr_project(args.project_dir, newest=False)  # the flow's own run: its dataset versions

    import mlflow

    from governance.session import open_store
    from training.asr.finetune import GoldenAudio, finetune_asr
    from training.datasets import open_version

    params = run.data.params
    store = open_store(settings, "ml-engineer", "training")
    train = [open_version(store, name, params[f"dataset.{name}"]) for name in ("asr-train", "asr-digits")]
    golden = open_version(store, "asr-golden", params["dataset.asr-golden"])
    start = time.perf_counter()
    out = finetune_asr(train, golden, settings.asr, settings.root / "work" / "timing", settings.root / "cache" / "asr",
                       golden_audio=GoldenAudio.load(golden, digit_eval=40))
    total = time.perf_counter() - start
    finished = mlflow.get_run(out.run_id)
    telephone = [s["wer"] for s in out.scores["slices"] if s["slice"] == "channel=telephone8k"]
    emit(figure="asr_finetune_seconds", train_seconds=round(finished.data.metrics["train_seconds"], 1),
         run_seconds=round(total, 1), epochs=settings.asr.epochs, reused=out.reused,
         train_utterances=int(finished.data.params["asr.train_utterances"]), golden_wer=round(out.scores["wer"], 4),
         telephone_wer=round(telephone[0], 4) if telephone else None, digit_accuracy=out.scores["digit_accuracy"],
         load=os.getloadavg(), cpu_count=os.cpu_count())


if __name__ == "__main__":
    main()
