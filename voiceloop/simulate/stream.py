"""Write a production stream: the calls as a bot platform exports them, and beside them the truth to judge a monitor by.

``<out>/<call_id>.json`` + ``<out>/audio/<call_id>.wav`` satisfy the call store contract with no
``labels`` (production calls are unlabelled): per bot turn the bot's log (the intent it
understood, its confidence, the bundle, and the confidence of the simulator's own Whisper pass
over the customer turn it answered), per escalated call the platform's handoff packet, and
``meta.source`` ``voiceloop-simulator-production``. ``<truth>/<call_id>.json`` and
``<truth>/stream.json`` hold what really happened (``production.truth``); voiceloop never reads
them. Calls are rendered in worker threads and recognised in order; a call already rendered with
the same inputs (another scenario of the seed, an earlier run) comes from the render cache.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from core.asr import BUNDLED_MODEL, Heard
from core.corpus import sample_dir as resolve_sample_dir
from core.synthesis import check_voices
from voiceloop.simulate.calls import (
    Recogniser,
    call_document,
    call_meta,
    in_order,
    turn_entries,
    turn_segments,
    write_json,
)
from voiceloop.simulate.drift import DriftSpec
from voiceloop.simulate.plan import AGENT_VOICE, BOT_VOICE
from voiceloop.simulate.production import BUNDLE, ProductionCall, Stream, plan_stream, stream_truth, truth
from voiceloop.simulate.render import Rendered, render_call
from voiceloop.simulate.render_cache import RenderCache, default_cache

SOURCE = "voiceloop-simulator-production"


@dataclass
class StreamReport:
    """What a production run wrote, and how much of it had to be rendered."""

    out: Path
    truth: Path
    cache: Path
    calls: int = 0
    rendered: int = 0  # calls rendered and recognised in this run
    reused: int = 0  # calls taken from the render cache
    drifted: int = 0  # calls a drift touched
    callbacks: int = 0
    escalated: int = 0
    audio_seconds: float = 0.0
    elapsed_s: float = 0.0
    calls_per_day: dict[int, int] = field(default_factory=dict)
    call_ids: list[str] = field(default_factory=list)


def _bot_log(call: ProductionCall, heard: list[Heard], bundle: str) -> dict[int, dict[str, Any]]:
    """Per bot turn index: the bot's log, as the contract's ``bot`` field holds it."""
    logs: dict[int, dict[str, Any]] = {}
    for bot in call.dialogue.bot:
        log: dict[str, Any] = {"turn": bot.answers}
        if bot.intent is not None:
            log |= {"intent": bot.intent, "confidence": bot.confidence}
        asked = heard[bot.answers]
        confidence = {"avg_logprob": round(asked.avg_logprob, 4), "no_speech_prob": round(asked.no_speech_prob, 4)}
        logs[bot.turn] = log | {"bundle": bundle, "asr": confidence}
    return logs


def production_document(
    call: ProductionCall, rendered: Rendered, heard: list[Heard], asr_name: str, *, bundle: str, bot_log: bool
) -> dict[str, Any]:
    """The call as the platform exports it: turns with bot logs, the outcome, the handoff packet, no labels."""
    turns = turn_entries(call.plan, rendered, [h.text for h in heard])
    for index, log in (_bot_log(call, heard, bundle) if bot_log else {}).items():
        turns[index]["bot"] = log
    parts: dict[str, Any] = {"outcome": call.plan.outcome}
    if (handoff := call.dialogue.handoff) is not None:
        said = " ".join(heard[i].text for i in handoff.customer_turns).strip()
        packet = {
            "at_s": turns[handoff.agent_turn]["start_s"],
            "transcript": said,
            "intent": handoff.intent,
            "intent_confidence": handoff.confidence,
            "sentiment": handoff.sentiment,
            "verified": list(handoff.verified),
        }
        for missing in handoff.missing:
            packet |= {"intent": None, "intent_confidence": None} if missing == "intent" else {missing: None}
        parts["handoff"] = packet
    return call_document(call.plan, turns, call_meta(call.plan, rendered, SOURCE, asr_name), **parts)


def build_stream(
    out: Path,
    truth_dir: Path,
    *,
    days: int,
    calls_per_day: int,
    start: date,
    seed: int = 0,
    drifts: Sequence[DriftSpec] = (),
    bot_log: bool = True,
    cache: Path | None = None,
    bundle: str = BUNDLE,
    asr_model: str | None = None,
    sample_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 2,
) -> StreamReport:
    """Plan, render (or reuse) and write the stream; ``cache`` defaults to :func:`render_cache.default_cache`."""
    started = time.monotonic()
    out, truth_dir = Path(out), Path(truth_dir)
    folder = resolve_sample_dir(sample_dir)
    stream = plan_stream(days, calls_per_day, start, seed=seed, drifts=drifts, bundle=bundle, sample_dir_path=folder)
    check_voices({BOT_VOICE, AGENT_VOICE} | {call.plan.voice for call in stream.calls})
    asr_name = asr_model or BUNDLED_MODEL
    report = StreamReport(out=out, truth=truth_dir, cache=Path(cache) if cache else default_cache(out))
    renders = RenderCache(report.cache, f"{asr_name}|batched")  # the decoding is part of what the cache keys
    (out / "audio").mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    recognise: Recogniser | None = None  # loaded on the first call the cache lacks

    def audio(call: ProductionCall) -> tuple[Rendered, list[Heard] | None]:
        path = out / "audio" / f"{call.plan.call_id}.wav"
        cached = renders.fetch(call.plan, path)
        return cached if cached is not None else (render_call(call.plan, path, folder), None)

    if progress:
        progress(0, len(stream.calls))
    per_day: Counter[int] = Counter()
    for call, (rendered, heard) in zip(stream.calls, in_order(audio, stream.calls, workers), strict=True):
        if heard is None:
            recognise = recognise or Recogniser(asr_model, batched=True)
            path = out / "audio" / f"{call.plan.call_id}.wav"
            heard = recognise(turn_segments(path, rendered))
            renders.store(call.plan, path, rendered, heard)
            report.rendered += 1
        else:
            report.reused += 1
        document = production_document(call, rendered, heard, asr_name, bundle=bundle, bot_log=bot_log)
        write_json(out / f"{call.plan.call_id}.json", document)
        write_json(truth_dir / f"{call.plan.call_id}.json", truth(call, stream))
        report.calls += 1
        report.call_ids.append(call.plan.call_id)
        report.drifted += bool(call.drifts)
        report.callbacks += call.callback_of is not None
        report.escalated += call.plan.outcome == "escalated"
        report.audio_seconds += rendered.duration_s
        per_day[call.day] += 1
        if progress:
            progress(report.calls, len(stream.calls))
    write_json(truth_dir / "stream.json", stream_truth(stream, _arguments(stream, bot_log, asr_name)))
    report.calls_per_day = dict(sorted(per_day.items()))
    report.audio_seconds = round(report.audio_seconds, 2)
    report.elapsed_s = round(time.monotonic() - started, 2)
    return report


def _arguments(stream: Stream, bot_log: bool, asr_name: str) -> dict[str, Any]:
    """The arguments the output depends on (no paths: the same arguments anywhere give the same files)."""
    return {
        "days": stream.days,
        "calls_per_day": stream.calls_per_day,
        "start": stream.start.isoformat(),
        "seed": stream.seed,
        "drift": [str(spec) for spec in stream.drifts],
        "bot_log": bot_log,
        "bundle": stream.bundle,
        "asr_model": asr_name,
    }
