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

from common import asr_project, emit  # noqa: E402  (benchmarks/common.py)

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "sample" / "speech_fixtures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", required=True)
    parser.add_argument("--digits", type=int, default=100, help="held-out FSDD digit strings")
    parser.add_argument("--limit", type=int, default=None,
                        help="score every k-th golden turn so that about this many remain (all slices kept)")
    args = parser.parse_args()
    settings, run = asr_project(args.project_dir)

    import mlflow
    import soundfile as sf

    from governance.redaction.audio import to_asr_rate
    from governance.session import open_store
    from training.asr.digits import digit_eval_set
    from training.asr.finetune import MODEL_ARTIFACT, GoldenAudio
    from training.asr.metrics import digit_accuracy, slice_table, utterance_errors, wer
    from training.datasets import open_version

    model_dir = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=MODEL_ARTIFACT,
                                                         dst_path=str(settings.root / "work" / "bench")))
    emit(figure="asr_finetune_seconds", seconds=round(run.data.metrics["train_seconds"], 1),
          train_utterances=int(run.data.params["asr.train_utterances"]), epochs=int(run.data.params["asr.epochs"]),
          encoder_layers=int(run.data.params["asr.lora.encoder_layers"]), cpu_count=os.cpu_count())

    store = open_store(settings, "ml-engineer", "evaluation")
    golden = GoldenAudio.load(open_version(store, "asr-golden", run.data.params["dataset.asr-golden"]), digit_eval=0)
    if args.limit and args.limit < len(golden.audios):
        step = len(golden.audios) / args.limit
        keep = sorted({int(i * step) for i in range(args.limit)})
        golden.audios = [golden.audios[i] for i in keep]
        golden.references = [golden.references[i] for i in keep]
        golden.rows = [golden.rows[i] for i in keep]
    digits = digit_eval_set(args.digits)
    golden.digit_audios = [d.audio for d in digits]
    golden.digit_references = [d.text for d in digits]
    fixtures = sorted((FIXTURES / "librivox").glob("*.wav")) + [FIXTURES / "vosk_digits.wav"]
    fixture_audio = [to_asr_rate(*sf.read(str(p), dtype="float32")) for p in fixtures]
    fixture_refs = [p.with_suffix(".txt").read_text() for p in fixtures]

    from serving.asr import AsrEngine

    models: dict[str, tuple[str | None, float | None]] = {
        "base_30s_sequential": (None, None), "base_10s": (None, 10.0), "challenger": (str(model_dir),
                                                                                    settings.asr.window_s)}
    tables: dict[str, list[dict[str, Any]]] = {}
    for name, (path, window) in models.items():
        engine = AsrEngine(path, window_s=window)
        if window is None:
            texts = engine.transcribe_arrays([*golden.audios, *golden.digit_audios])
        else:
            texts = engine.transcribe_batch([*golden.audios, *golden.digit_audios])
        hyps, digit_hyps = texts[: len(golden.audios)], texts[len(golden.audios) :]
        tables[name] = slice_table(golden.rows, utterance_errors(golden.references, hyps))
        for row in tables[name]:
            emit(figure="asr_golden_wer", model=name, slice=row["slice"], n=row["n"], wer=round(row["wer"], 4))
        emit(figure="asr_digit_accuracy", model=name, n=len(digits),
              accuracy=round(digit_accuracy(golden.digit_references, digit_hyps), 4))
        fixture_hyps = (engine.transcribe_arrays(fixture_audio) if window is None
                        else engine.transcribe_batch(fixture_audio))
        errors = utterance_errors(fixture_refs, fixture_hyps)
        emit(figure="asr_fixture_word_errors", model=name, errors=sum(e.errors for e in errors),
              words=sum(e.ref_words for e in errors), wer=round(wer(errors), 4))
    base = {r["slice"]: r["wer"] for r in tables["base_30s_sequential"]}
    for row in tables["challenger"]:
        if row["slice"].startswith("channel=") or row["slice"] == "all":
            emit(figure="asr_relative_wer_reduction", slice=row["slice"],
                  reduction=round(1 - row["wer"] / base[row["slice"]], 4))


if __name__ == "__main__":
    main()
