"""How much of the LoRA update to merge (``asr.lora.merge_scale``): gain on the calls vs real clean speech.

Takes the adapter of a project's retrain-asr run, merges it into the base model scaled by each
value of ``--scales`` (WiSE-FT: 0 is the base model, 1 the fine-tuned one), exports it as serving
does (CTranslate2 int8, the run's window) and prints one JSON line per scale: golden WER overall
and per channel, whole-digit-string accuracy on the held-out FSDD speaker, and word errors on the
clean real recordings (the gate's ``clean_speech`` criterion). The adapter is trained once; only
the merge changes, so the curve costs one evaluation per scale.

    .venv/bin/python benchmarks/asr_merge_scale.py --project-dir /tmp/asrbench/project --limit 400
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import asr_golden, asr_project, emit  # noqa: E402  (benchmarks/common.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", required=True)
    parser.add_argument("--run-id", default=None, help="a retrain-asr run of the project (default: the newest)")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0, 0.5, 0.6, 0.7, 0.8, 1.0])
    parser.add_argument("--digits", type=int, default=100, help="held-out FSDD digit strings")
    parser.add_argument("--float32", action="store_true",
                        help="also score each merge converted without quantization (what int8 costs)")
    parser.add_argument("--limit", type=int, default=None,
                        help="score every k-th golden turn so that about this many remain (all slices kept)")
    args = parser.parse_args()
    settings, run = asr_project(args.project_dir, run_id=args.run_id)

    import mlflow
    from peft import PeftModel

    from training.asr.convert import load_base_whisper
    from training.asr.export import export_ctranslate2
    from training.asr.finetune import ADAPTER_ARTIFACT
    from training.asr.train import save_merged

    work = settings.root / "work" / "merge-scale"
    adapter = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=ADAPTER_ARTIFACT,
                                                  dst_path=str(work))
    golden = asr_golden(settings, run, args.limit, args.digits)
    window = float(run.data.params["asr.window_s"])
    for scale in args.scales:
        model, processor = load_base_whisper(settings.asr.base_model, settings.root / "cache")
        merged = save_merged(PeftModel.from_pretrained(model, adapter), processor, work / f"merged-{scale}", scale)
        exported = export_ctranslate2(merged, Path(work / f"int8-{scale}"), "int8", window)
        scores = golden.transcribe(exported, window, 8).scores(golden)
        channels = {row["slice"]: round(row["wer"], 4) for row in scores["slices"]
                    if row["slice"] == "all" or row["slice"].startswith("channel=")}
        emit(figure="asr_merge_scale", scale=scale, run_id=run.info.run_id, golden_turns=len(golden.audios),
             wer=channels, digit_accuracy=round(scores["digit_accuracy"], 4),
             clean_speech_errors=scores["clean_speech_errors"], clean_speech_words=scores["clean_speech_words"])
        if args.float32:
            unquantized = export_ctranslate2(merged, Path(work / f"float32-{scale}"), "float32", window)
            reference = golden.transcribe(unquantized, window, 8, compute_type="float32").scores(golden)
            emit(figure="asr_export_int8_vs_float32", scale=scale, golden_turns=len(golden.audios),
                 float32_wer=round(reference["wer"], 4), int8_wer=round(scores["wer"], 4))


if __name__ == "__main__":
    main()
