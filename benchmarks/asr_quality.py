"""ASR quality bars: the retrained Whisper vs the base tiny.en, on what the issue names.

Reads a project in which the retrain flow has run (e.g. ``benchmarks/pipeline.py --project-dir``)
and prints one JSON line per figure:

* golden WER per channel (and every slice) for the base model as served before (30 s windows,
  sequential), the base model on 10 s windows, and the challenger (10 s windows, int8);
* total word errors on the clean real-speech fixtures (LibriVox + vosk digits);
* whole-digit-string accuracy on the held-out real FSDD speaker (all of their takes);
* the fine-tuning time and utterance count of the run (from MLflow).

    .venv/bin/python benchmarks/asr_quality.py --project-dir /tmp/voiceloop-bench
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from common import asr_golden, asr_project, emit  # noqa: E402  (benchmarks/common.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", required=True)
    parser.add_argument("--digits", type=int, default=100, help="held-out FSDD digit strings")
    parser.add_argument("--limit", type=int, default=None,
                        help="score every k-th golden turn so that about this many remain (all slices kept)")
    args = parser.parse_args()
    settings, run = asr_project(args.project_dir)

    import mlflow

    from core.asr import AsrEngine
    from training.asr.finetune import MODEL_ARTIFACT, AsrEvaluation

    model_dir = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=MODEL_ARTIFACT,
                                                         dst_path=str(settings.root / "work" / "bench")))
    emit(figure="asr_finetune_seconds", seconds=round(run.data.metrics["train_seconds"], 1),
          train_utterances=int(run.data.params["asr.train_utterances"]), epochs=int(run.data.params["asr.epochs"]),
          encoder_layers=int(run.data.params["asr.lora.encoder_layers"]), cpu_count=os.cpu_count())

    golden = asr_golden(settings, run, args.limit, args.digits)
    models: dict[str, tuple[str | None, float | None]] = {
        "base_30s_sequential": (None, None), "base_10s": (None, 10.0), "challenger": (str(model_dir),
                                                                                    settings.asr.window_s)}
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, (path, window) in models.items():
        if window is None:  # as served before: one at a time, 30 s windows
            engine = AsrEngine(path, window_s=None)
            evaluation = AsrEvaluation.of(golden, engine.transcribe_arrays(golden.everything()))
        else:
            evaluation = golden.transcribe(path, window, 8)
        scores = evaluation.scores(golden)
        tables[name] = scores["slices"]
        for row in tables[name]:
            emit(figure="asr_golden_wer", model=name, slice=row["slice"], n=row["n"], wer=round(row["wer"], 4))
        emit(figure="asr_digit_accuracy", model=name, n=len(golden.digit_references),
             accuracy=round(scores["digit_accuracy"], 4))
        emit(figure="asr_fixture_word_errors", model=name, errors=scores["clean_speech_errors"],
             words=scores["clean_speech_words"],
             wer=round(scores["clean_speech_errors"] / max(scores["clean_speech_words"], 1), 4))
    base = {r["slice"]: r["wer"] for r in tables["base_30s_sequential"]}
    for row in tables["challenger"]:
        if row["slice"].startswith("channel=") or row["slice"] == "all":
            emit(figure="asr_relative_wer_reduction", slice=row["slice"],
                  reduction=round(1 - row["wer"] / base[row["slice"]], 4))


if __name__ == "__main__":
    main()
