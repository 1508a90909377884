"""Which layers get LoRA: telephone WER and seconds per epoch for each scope, through training/asr/.

Trains one challenger per scope on the same customer turns of a project the flow ran in (digit
corpus left out, so the comparison is about the calls), merges it whole (merge scale 1: the
question is what each scope can learn), exports it as serving does and scores the same golden
turns. Prints one JSON line per scope. Each scope is a real ``retrain-asr`` MLflow run in the
project (tagged ``voiceloop.benchmark``), so a re-run with the same settings reuses it.

    .venv/bin/python benchmarks/asr_lora_scope.py --project-dir /tmp/asrbench/project --max-turns 150
"""

from __future__ import annotations

import argparse
import os

from common import asr_golden, asr_project, emit  # benchmarks/common.py

SIX = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
SCOPES: dict[str, tuple[int, list[str]]] = {
    "decoder only, q/v": (0, ["q_proj", "v_proj"]),
    "decoder + top 2 encoder layers, q/v": (2, ["q_proj", "v_proj"]),
    "decoder + all 4 encoder layers, q/v": (4, ["q_proj", "v_proj"]),
    "decoder + top 2 encoder layers, all six (default)": (2, SIX),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", required=True)
    parser.add_argument("--max-turns", type=int, default=150, help="customer turns to train on (newest)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--limit", type=int, default=300, help="golden turns to score (every k-th, all slices)")
    parser.add_argument("--scopes", nargs="+", default=list(SCOPES), choices=list(SCOPES))
    args = parser.parse_args()
    settings, run = asr_project(args.project_dir, newest=False)  # the flow's own run: its dataset versions

    import mlflow

    from governance.session import open_store
    from training.asr.finetune import finetune_asr
    from training.datasets import open_version

    store = open_store(settings, "ml-engineer", "training")
    train = [open_version(store, "asr-train", run.data.params["dataset.asr-train"])]
    golden_version = open_version(store, "asr-golden", run.data.params["dataset.asr-golden"])
    golden = asr_golden(settings, run, args.limit, digits=40)
    for name in args.scopes:
        layers, modules = SCOPES[name]
        lora = settings.asr.lora.model_copy(update={"encoder_layers": layers, "target_modules": modules,
                                                    "merge_scale": 1.0})
        config = settings.asr.model_copy(update={"lora": lora, "epochs": args.epochs,
                                                 "max_train_turns": args.max_turns})
        out = finetune_asr(train, golden_version, config, settings.root / "work" / "lora-scope",
                           settings.root / "cache" / "asr", golden_audio=golden,
                           tags={"voiceloop.benchmark": "asr_lora_scope"})
        finished = mlflow.get_run(out.run_id)
        wer = {row["slice"]: round(row["wer"], 4) for row in out.scores["slices"]
               if row["slice"] == "all" or row["slice"].startswith("channel=")}
        emit(figure="asr_lora_scope", scope=name, encoder_layers=layers, target_modules=modules,
             epochs=args.epochs, train_utterances=int(finished.data.params["asr.train_utterances"]),
             seconds_per_epoch=round(finished.data.metrics["train_seconds"] / args.epochs, 1), wer=wer,
             digit_accuracy=out.scores["digit_accuracy"], clean_speech_errors=out.scores["clean_speech_errors"],
             golden_turns=len(golden.audios), reused=out.reused, load=os.getloadavg(), cpu_count=os.cpu_count())


if __name__ == "__main__":
    main()
