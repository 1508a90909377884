"""Audio redaction speed on a 5-minute call (issue quality bar: < 2 s beyond the transcription).

Builds one call of about ``--minutes`` minutes from espeak-ng turns (bot and caller alternating,
about half the caller turns with PII from the simulator's fake-PII factory), written as one WAV
(16 kHz) or, with ``--rate 8000``, through the simulator's telephone line as 8 kHz. The caller
turns' ASR texts are made with the bundled tiny.en and redacted with the real Redactor (set-up,
not measured: a real call arrives with its text). Then, one JSON line per figure:

- ``audio_redaction_asr``: the word timings of the turns with PII (run once per method:
  re-transcription with word timestamps, and forced alignment of the turn text);
- ``audio_redaction_beyond_asr``: ``redact_call_audio`` with those words, median of
  ``--repeats``: decode + alignment + intervals + mask + encode (what the bar is about), and
  the same split into its steps;
- ``audio_redaction_verify``: the verification re-transcription of the masked turns (whole and
  with the masks spliced out), and how many turns it still hears PII in.

    PYTHONPATH=. .venv/bin/python benchmarks/audio_redaction.py
    PYTHONPATH=. .venv/bin/python benchmarks/audio_redaction.py --rate 8000 --format FLAC --mode tone
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile as sf
from common import emit, scratch  # benchmarks/common.py

T = TypeVar("T")

BOT_LINES = (
    "thank you for calling, how can I help you today",
    "can I have your phone number please",
    "could you confirm your name for me",
    "let me look into that for you, one moment please",
    "is there anything else I can help you with",
    "I have updated your account",
)
CALLER_LINES = (
    "my card has not arrived yet",
    "I want to check the status of my transfer",
    "why was I charged a fee for this payment",
    "I think someone used my card without permission",
    "how long does a top up take to show",
)


def median_seconds(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result  # type: ignore[return-value]


def build_call(minutes: float, seed: int, work: Path) -> tuple[np.ndarray, list[dict[str, Any]], list[bool]]:
    """16 kHz samples, turns (start_s, end_s, script text) and which turns carry PII."""
    from core import synthesis
    from core.audio import SAMPLE_RATE
    from voiceloop.simulate.pii import PiiFactory

    rng, factory = random.Random(seed), PiiFactory(seed)
    pieces: list[np.ndarray] = []
    turns: list[dict[str, Any]] = []
    has_pii: list[bool] = []
    cursor = 0
    while cursor < minutes * 60 * SAMPLE_RATE:
        bot = len(turns) % 2 == 0
        pii = not bot and rng.random() < 0.6
        if bot:
            text, voice = rng.choice(BOT_LINES), "en-us"
        elif pii:
            said = factory.sentence(rng, items=rng.choice([1, 1, 2]), recorded_digits=False)
            text, voice = " ".join(s.text for s in said if s.text != "."), rng.choice(["en-us", "en-gb"])
        else:
            text, voice = rng.choice(CALLER_LINES), rng.choice(["en-us", "en-gb"])
        gap = np.zeros(int(rng.uniform(0.3, 0.8) * SAMPLE_RATE), dtype=np.float32)
        audio = synthesis.level(synthesis.tts(text, voice, rng.choice([150, 165]), 50, work))
        pieces += [gap, audio]
        start = cursor + gap.size
        cursor = start + audio.size
        turns.append({"speaker": "bot" if bot else "customer", "start_s": start / SAMPLE_RATE,
                      "end_s": cursor / SAMPLE_RATE, "text": text})  # fmt: skip
        has_pii.append(pii)
    pieces.append(np.zeros(SAMPLE_RATE // 2, dtype=np.float32))
    return np.concatenate(pieces), turns, has_pii


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=int, choices=[8000, 16000], default=16000)
    parser.add_argument("--format", choices=["WAV", "FLAC"], default="WAV")
    parser.add_argument("--mode", choices=["silence", "tone"], default="silence")
    parser.add_argument("--pad-s", type=float, default=0.15)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument(
        "--timings",
        choices=["transcribe", "align", "both"],
        default="both",
        help="word timings by re-transcription, by forced alignment of the turn text, or both",
    )
    args = parser.parse_args()

    from core import synthesis
    from core.asr import AsrEngine
    from core.audio import SAMPLE_RATE, TELEPHONE_RATE, decode_audio, encode_audio, to_16k
    from governance.redaction.audio import (
        align_words,
        context_words,
        mask,
        pii_intervals,
        pii_values,
        redact_call_audio,
        turn_bounds,
        turn_word_timings,
        turns_to_mask,
        verify_audio_redaction,
    )
    from governance.redaction.redactor import Redactor

    with scratch("voiceloop-bench-audio-") as work:
        start = time.perf_counter()
        samples, turns, has_pii = build_call(args.minutes, args.seed, work)
        rate = args.rate
        if rate == TELEPHONE_RATE:
            bounds = [(round(t["start_s"] * SAMPLE_RATE), round(t["end_s"] * SAMPLE_RATE)) for t in turns]
            samples = synthesis.telephone(samples, bounds, 30.0, args.seed, work)
        buffer = io.BytesIO()
        sf.write(buffer, samples, rate, format=args.format, subtype="PCM_16")
        data = buffer.getvalue()
        decoded = decode_audio(data)
        duration = decoded.samples.shape[0] / rate
        emit(figure="audio_redaction_call", seconds_of_audio=round(duration, 1), turns=len(turns),
             turns_with_pii=sum(has_pii), sample_rate=rate, format=args.format, bytes=len(data),
             build_seconds=round(time.perf_counter() - start, 1))  # fmt: skip

        asr = AsrEngine(cpu_threads=args.threads)
        redactor = Redactor()
        start = time.perf_counter()
        pii_turns = [i for i, p in enumerate(has_pii) if p]
        for index in pii_turns:  # what ingest would hold: the ASR text of the turn's samples
            a, b = turn_bounds(turns[index], rate, decoded.samples.shape[0])
            turns[index]["text"] = asr.transcribe_arrays([to_16k(decoded.samples[a:b], rate)])[0]
        redactions = dict(enumerate(redactor.redact_many([t["text"] for t in turns])))
        todo = turns_to_mask(redactions)
        entities = sum(len(r.entities) for r in redactions.values())
        setup_s = round(time.perf_counter() - start, 1)
        emit(figure="audio_redaction_setup", turn_text_asr_and_text_redaction_seconds=setup_s,
             turns_with_entities=len(todo), entities=entities)  # fmt: skip

        turn_audio_s = round(sum(turns[i]["end_s"] - turns[i]["start_s"] for i in todo), 1)
        methods = ["transcribe", "align"] if args.timings == "both" else [args.timings]
        for method in methods:  # the last one's words are used below
            start = time.perf_counter()
            words = turn_word_timings(asr, decoded, turns, todo, method)  # type: ignore[arg-type]
            emit(figure="audio_redaction_asr", method=method, seconds=round(time.perf_counter() - start, 2),
                 turns=len(todo), seconds_of_turn_audio=turn_audio_s)  # fmt: skip

        def redact() -> Any:
            return redact_call_audio(data, turns, redactions, words=words, mode=args.mode, pad_s=args.pad_s)

        redact()  # warm (imports, first allocation)
        total, result = median_seconds(redact, args.repeats)

        def intervals() -> list[tuple[float, float]]:
            out = []
            for index in todo:
                a, b = turn_bounds(turns[index], rate, decoded.samples.shape[0])
                text, length = turns[index]["text"], (b - a) / rate
                spans = align_words(text, words[index], length)
                local = pii_intervals(text, spans, redactions[index].entities, args.pad_s, length)
                out += [(a / rate + s, a / rate + e) for s, e in local]
            return out

        decode_s, _ = median_seconds(lambda: decode_audio(data), args.repeats)
        align_s, spans = median_seconds(intervals, args.repeats)
        mask_s, masked = median_seconds(lambda: mask(decoded.samples, rate, spans, mode=args.mode), args.repeats)
        encode_s, _ = median_seconds(lambda: encode_audio(masked, rate, decoded.format, decoded.subtype), args.repeats)
        emit(figure="audio_redaction_beyond_asr", seconds=round(total, 3), repeats=args.repeats,
             decode_s=round(decode_s, 4), align_and_intervals_s=round(align_s, 4), mask_s=round(mask_s, 4),
             encode_s=round(encode_s, 4), intervals=result.report.intervals,
             seconds_masked=result.report.seconds_masked, mode=args.mode, pad_s=args.pad_s,
             timings=methods[-1])  # fmt: skip

        if not args.no_verify:
            start = time.perf_counter()
            heard: list[tuple[int, list[str]]] = []
            frames = result.decoded.samples.shape[0]
            for turn in result.report.turns:
                a, b = turn_bounds(turns[turn.index], rate, frames)
                local = [(s - a / rate, e - a / rate) for s, e in turn.intervals]
                values = pii_values(redactions[turn.index])
                context = context_words(redactions[turn.index])
                kinds = verify_audio_redaction(asr, result.decoded.samples[a:b], rate, values, local, context)
                if kinds:
                    heard.append((turn.index, kinds))
            emit(figure="audio_redaction_verify", seconds=round(time.perf_counter() - start, 2),
                 turns=len(result.report.turns), turns_still_heard=len(heard),
                 types_still_heard=sorted({k for _, kinds in heard for k in kinds}))  # fmt: skip


if __name__ == "__main__":
    main()
