"""ASR speed and accuracy on golden customer turns: sequential 30 s windows vs batched short windows.

Reads a call store (``<id>.json`` with ``audio``, ``turns`` and ``labels``, as the simulator's
golden set writes it), cuts each labelled customer turn out of the call audio by its
``start_s``/``end_s`` and transcribes the turns with :class:`core.asr.AsrEngine`:

- ``sequential_30s``: ``transcribe_arrays``, one turn at a time in Whisper's 30 s window (the
  path the simulator and audio redaction use);
- ``batch_10s``: ``transcribe_batch`` in 10 s windows (``--window-s``), ``--batch-size`` at a time;
- ``batch_30s``: ``transcribe_batch`` in 30 s windows (the same encoder input as sequential);
- ``batch_10s_words``: ``transcribe_words_batch`` (text + word times on the batched encoder
  output), and ``align_words_30s``: the per-turn forced alignment that would otherwise give the
  words (``align_words``; its time only);
- ``latency``: one turn alone, median over turns, for the sequential path and a batch of one.

Turns are processed in chunks of ``--chunk`` with every method run on each chunk in turn, so load
from other processes falls on all methods alike. Compute / audio (real-time factor, RTF) is the
summed wall time over summed turn duration. WER is the corpus WER (jiwer) after Whisper's
English normaliser (``EnglishTextNormalizer({})``) against the labels' transcripts. One JSON
line per figure:

    PYTHONPATH=. .venv/bin/python benchmarks/asr_speed.py --golden data/golden --limit 200
"""

from __future__ import annotations

import os

# Before ctranslate2 is imported: a spinning OpenMP wait policy is much slower on a loaded machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

import numpy as np  # noqa: E402
from common import emit  # noqa: E402  (benchmarks/common.py)

from core.audio import SAMPLE_RATE, decode_16k  # noqa: E402

T = TypeVar("T")


def load_turns(golden: Path, limit: int | None) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Labelled customer turns (16 kHz float32), their reference transcripts and ids, in call order."""
    audios: list[np.ndarray] = []
    references: list[str] = []
    ids: list[str] = []
    for path in sorted(golden.glob("*.json")):
        call: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        labels = [label for label in call.get("labels", []) if label.get("transcript")]
        if not labels:
            continue
        samples = decode_16k(str(golden / call["audio"]))
        for label in labels:
            turn = call["turns"][label["turn"]]
            if turn.get("speaker") != "customer":
                continue
            piece = samples[int(turn["start_s"] * SAMPLE_RATE) : int(turn["end_s"] * SAMPLE_RATE)]
            audios.append(np.ascontiguousarray(piece, dtype=np.float32))
            references.append(label["transcript"])
            ids.append(f"{call['call_id']}#{label['turn']}")
            if limit is not None and len(audios) >= limit:
                return audios, references, ids
    return audios, references, ids


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    import jiwer
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    normalise = EnglishTextNormalizer({})
    pairs = [(normalise(r), normalise(h)) for r, h in zip(references, hypotheses, strict=True)]
    pairs = [(r, h) for r, h in pairs if r.strip()]
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def align_all(engine: Any, audios: list[np.ndarray], texts: list[str]) -> list[Any]:
    """Word times of known texts the way audio redaction gets them: ``align_words``, one turn at a time."""
    return [engine.align_words(audio, text) for audio, text in zip(audios, texts, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--golden", type=Path, required=True, help="call store folder (<id>.json + audio/)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many turns (default: all)")
    parser.add_argument("--model", default=None, help="tiny.en-bundled (default) or a CTranslate2 Whisper folder")
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 intra-op threads")
    parser.add_argument("--chunk", type=int, default=40, help="turns per round of all methods")
    parser.add_argument("--skip-align", action="store_true", help="leave out the align_words comparison")
    args = parser.parse_args()

    from core.asr import AsrEngine

    audios, references, _ids = load_turns(args.golden, args.limit)
    if not audios:
        raise SystemExit(f"no labelled customer turns in {args.golden}")
    durations = [a.size / SAMPLE_RATE for a in audios]
    audio_s = sum(durations)
    load_start = os.getloadavg()
    load_s, engine = timed(lambda: AsrEngine(args.model, cpu_threads=args.threads, window_s=args.window_s))
    engine.transcribe_batch(audios[:2])  # warm-up: first calls allocate

    methods = ["sequential_30s", "batch_10s", "batch_30s", "batch_10s_words"] + ([] if args.skip_align else
                                                                                 ["align_words_30s"])
    seconds = dict.fromkeys(methods, 0.0)
    texts: dict[str, list[str]] = {m: [] for m in methods if m != "align_words_30s"}
    latency_sequential: list[float] = []
    latency_single_batch: list[float] = []
    word_shift: list[float] = []  # per word: batched alignment vs align_words, larger of start / end shift
    word_lists_differ = 0
    for first in range(0, len(audios), args.chunk):
        chunk = audios[first : first + args.chunk]
        # sequential, one turn at a time (its per-turn times are the sequential latency)
        for audio in chunk:
            took, (text,) = timed(engine.transcribe_arrays, [audio])
            latency_sequential.append(took)
            seconds["sequential_30s"] += took
            texts["sequential_30s"].append(text)
        took, out = timed(engine.transcribe_batch, chunk, batch_size=args.batch_size, window_s=args.window_s)
        seconds["batch_10s"] += took
        texts["batch_10s"] += out
        took, out = timed(engine.transcribe_batch, chunk, batch_size=args.batch_size, window_s=30)
        seconds["batch_30s"] += took
        texts["batch_30s"] += out
        took, timed_words = timed(engine.transcribe_words_batch, chunk, batch_size=args.batch_size,
                                  window_s=args.window_s)
        seconds["batch_10s_words"] += took
        texts["batch_10s_words"] += [text for text, _words in timed_words]
        if not args.skip_align:
            took, aligned = timed(align_all, engine, chunk, [text for text, _words in timed_words])
            seconds["align_words_30s"] += took
            for (_text, words), reference_words in zip(timed_words, aligned, strict=True):
                if [w.text for w in words] == [w.text for w in reference_words]:
                    word_shift += [max(abs(a.start - b.start), abs(a.end - b.end))
                                   for a, b in zip(words, reference_words, strict=True)]
                else:
                    word_lists_differ += 1
        for audio in chunk:
            took, _ = timed(engine.transcribe_batch, [audio], window_s=args.window_s)
            latency_single_batch.append(took)
    load_end = os.getloadavg()

    common = {"utterances": len(audios), "audio_s": round(audio_s, 1), "model": engine.name,
              "threads": args.threads, "batch_size": args.batch_size}
    emit(figure="asr_setup", **common, model_load_s=round(load_s, 2),
         turn_s_median=round(statistics.median(durations), 2), turn_s_max=round(max(durations), 2),
         turns_over_window=sum(d > args.window_s - 0.5 for d in durations), window_s=args.window_s,
         loadavg_start=[round(x, 2) for x in load_start], loadavg_end=[round(x, 2) for x in load_end],
         cpus=os.cpu_count())
    base = seconds["sequential_30s"]
    for method in methods:
        figure: dict[str, Any] = {"method": method, "compute_s": round(seconds[method], 2),
                                  "rtf": round(seconds[method] / audio_s, 4),
                                  "speedup_vs_sequential": round(base / seconds[method], 2)}
        if method in texts:
            figure["wer"] = round(corpus_wer(references, texts[method]), 4)
            figure["same_text_as_sequential"] = round(float(np.mean(
                [a == b for a, b in zip(texts[method], texts["sequential_30s"], strict=True)])), 4)
        emit(figure="asr_speed", **common, **figure)
    if word_shift:
        emit(figure="asr_word_times", **common, words=len(word_shift), turns_word_lists_differ=word_lists_differ,
             shift_vs_align_words_median_s=round(statistics.median(word_shift), 3),
             shift_p90_s=round(float(np.percentile(word_shift, 90)), 3), shift_max_s=round(max(word_shift), 3))
    emit(figure="asr_latency", **common,
         sequential_30s_median_s=round(statistics.median(latency_sequential), 4),
         batch_of_one_median_s=round(statistics.median(latency_single_batch), 4),
         sequential_30s_rtf_median=round(statistics.median(t / d for t, d in zip(latency_sequential, durations,
                                                                                 strict=True)), 4),
         batch_of_one_rtf_median=round(statistics.median(t / d for t, d in zip(latency_single_batch, durations,
                                                                               strict=True)), 4),
         window_s=args.window_s)


if __name__ == "__main__":
    main()
