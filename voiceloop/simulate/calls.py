"""Build a call store of simulated contact-center calls: ``<call_id>.json`` + ``audio/<call_id>.wav``.

Each call is planned from the seed (``plan``), rendered to audio in worker processes (``render``),
then every turn is run through the real ASR model as the bot heard it (after the channel): the
turn's ``text`` is what the recogniser made of it, the label's ``transcript`` what was said. The
documents satisfy ``governance.contract`` so the pipeline ingests them like production calls.

Writes are per call and atomic (audio first, then the JSON), so an interrupted build leaves only
complete calls behind, and builds with different seeds or splits can share one store. The pieces
that are not about train/golden material (the recogniser, ordered parallel rendering, the document
skeleton, atomic writes) serve the production stream too (``stream``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import soundfile as sf

from core.asr import BUNDLED_MODEL, AsrEngine, Heard
from core.audio import resample
from core.compute import ShardMap, in_process
from core.corpus import sample_dir as resolve_sample_dir
from core.synthesis import check_voices
from voiceloop.simulate.plan import BOT_VOICE, CallPlan, plan_calls
from voiceloop.simulate.render import Rendered, render_call

SOURCE = "voiceloop-simulator"
Job = TypeVar("Job")
Result = TypeVar("Result")


@dataclass
class SimulationReport:
    """What a build wrote."""

    out: Path
    split: str
    seed: int
    calls: int = 0
    customer_turns: int = 0
    intent_turns: int = 0  # customer turns labelled with an intent
    pii_turns: int = 0  # customer turns whose true transcript holds PII
    audio_seconds: float = 0.0
    voices: list[str] = field(default_factory=list)
    channels: dict[str, int] = field(default_factory=dict)
    turns_per_intent: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    call_ids: list[str] = field(default_factory=list)

    @property
    def intents_covered(self) -> int:
        return len(self.turns_per_intent)

    @property
    def min_per_intent(self) -> int:
        return min(self.turns_per_intent.values(), default=0)


class Recogniser:
    """The ASR engine plus a cache keyed by the exact samples (identical audio, identical result).

    ``batched``: a call's turns decoded together in short windows (``AsrEngine.transcribe_scored_batch``,
    about three times faster; texts within a word or two of the sequential path). The train and golden
    builds keep the sequential path, which their byte-identical output depends on.
    """

    def __init__(self, model: str | None, batched: bool = False) -> None:
        self.engine = AsrEngine.for_throughput(model) if batched else AsrEngine(model)
        self.batched = batched
        self.cache: dict[bytes, Heard] = {}

    def __call__(self, segments: list[np.ndarray]) -> list[Heard]:
        keys = [hashlib.blake2b(s.tobytes(), digest_size=16).digest() for s in segments]
        todo = {k: s for k, s in zip(keys, segments, strict=True) if k not in self.cache}
        if todo:
            segments_todo = list(todo.values())
            heard = (self.engine.transcribe_scored_batch(segments_todo) if self.batched
                     else self.engine.transcribe_scored(segments_todo))
            self.cache.update(zip(todo, heard, strict=True))
        return [self.cache[k] for k in keys]


def turn_segments(audio_path: Path, rendered: Rendered) -> list[np.ndarray]:
    """Each turn's samples of the written file, at 16 kHz: what the bot heard, turn by turn."""
    audio, rate = sf.read(audio_path, dtype="float32", always_2d=False)
    return [resample(audio[a:b], rate) for a, b in rendered.bounds]


def turn_entries(plan: CallPlan, rendered: Rendered, texts: list[str]) -> list[dict[str, Any]]:
    """The contract's ``turns``: speaker, where the turn sits in the audio, and the recognised text."""
    rate = rendered.sample_rate
    return [
        {"speaker": t.speaker, "start_s": round(a / rate, 3), "end_s": round(b / rate, 3), "text": text}
        for t, (a, b), text in zip(plan.turns, rendered.bounds, texts, strict=True)
    ]


def call_meta(plan: CallPlan, rendered: Rendered, source: str, asr_name: str, **details: Any) -> dict[str, Any]:
    """``meta``: the channel and voice, where the call came from, the audio; ``details`` before the ASR model."""
    meta: dict[str, Any] = {"voice": plan.voice, "channel": plan.channel, "snr_db": plan.snr_db}
    if plan.split is not None:
        meta["split"] = plan.split
    meta |= {"source": source, "sample_rate": rendered.sample_rate, "duration_s": round(rendered.duration_s, 3)}
    return meta | details | {"asr_model": asr_name}


def call_document(
    plan: CallPlan, turns: list[dict[str, Any]], meta: dict[str, Any], **parts: Any
) -> dict[str, Any]:
    """One call's JSON in the store's key order; ``parts`` (labels, outcome, handoff) go between turns and meta."""
    return {
        "call_id": plan.call_id,
        "started_at": plan.started_at,
        "caller_id": plan.caller_id,
        "consent": {"training": plan.consent},
        "audio": f"audio/{plan.call_id}.wav",
        "turns": turns,
        **parts,
        "meta": meta,
    }


def _document(plan: CallPlan, rendered: Rendered, texts: list[str], asr_name: str) -> dict[str, Any]:
    labels: list[dict[str, Any]] = []
    for i, turn in enumerate(plan.turns):
        if turn.speaker != "customer":
            continue
        label: dict[str, Any] = {"turn": i, "transcript": turn.transcript, "intent": turn.intent}
        label["pii"] = [{"entity": s.entity, "start": s.start, "end": s.end} for s in turn.pii]
        if turn.source:
            label["source"] = turn.source
        labels.append(label)
    digits = any(s.digits for t in plan.turns for s in t.segments)
    meta = call_meta(plan, rendered, SOURCE, asr_name, speaking_rate_wpm=plan.rate_wpm, pitch=plan.pitch,
                     bot_voice=BOT_VOICE, digit_speaker=plan.digit_speaker if digits else None)
    return call_document(plan, turn_entries(plan, rendered, texts), meta, labels=labels, outcome=plan.outcome)


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` as the store's JSON (indent 1, UTF-8), atomically."""
    write_atomically(path, (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` at ``path`` whole or not at all: a killed build leaves no half-written file behind."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_bytes(data)
    os.replace(partial, path)


def in_order(work: Callable[[Job], Result], jobs: Iterable[Job], workers: int) -> Iterator[Result]:
    """``work`` on each job, ``workers`` at a time, results in job order, a few jobs ahead of the consumer.

    Threads, not processes: rendering is espeak-ng and sox subprocesses plus numpy, which all
    release the GIL, and threads work from any entry point (stdin, notebooks, forked servers)
    without re-importing ``__main__``.
    """
    if workers <= 1:
        yield from map(work, jobs)
        return
    ahead = 3 * workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="voiceloop-render") as pool:
        pending: deque[Future[Result]] = deque()
        try:
            for job in jobs:
                pending.append(pool.submit(work, job))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _rendered(plans: list[CallPlan], out: Path, folder: Path, workers: int) -> Iterator[Rendered]:
    """Render calls in order, ``workers`` at a time, a few calls ahead of the ASR."""
    return in_order(lambda plan: render_call(plan, out / "audio" / f"{plan.call_id}.wav", folder), plans, workers)


def _heard_here(plans: list[CallPlan], out: Path, folder: Path, workers: int,
                asr_model: str | None) -> Iterator[tuple[Rendered, list[str]]]:
    """Each call rendered into the store by ``workers`` threads and heard in this process, in plan order."""
    recognise = Recogniser(asr_model)
    for plan, rendered in zip(plans, _rendered(plans, out, folder, workers), strict=True):
        yield rendered, [h.text for h in recognise(turn_segments(out / "audio" / f"{plan.call_id}.wav", rendered))]


def _heard_on(shards: ShardMap, plans: list[CallPlan], out: Path, sample_dir: Path | None,
              asr_model: str | None) -> Iterator[tuple[Rendered, list[str]]]:
    """Each call rendered and heard on ``shards``' workers; its audio written into the store here."""
    from voiceloop.simulate.on_workers import heard_calls

    for plan, call in zip(plans, heard_calls(shards, plans, sample_dir, asr_model), strict=True):
        write_atomically(out / "audio" / f"{plan.call_id}.wav", call.audio)
        yield call.rendered, call.texts


def build_calls(
    out: Path,
    n: int,
    *,
    split: Literal["train", "golden"] = "train",
    seed: int = 0,
    per_intent: int = 0,
    consent_rate: float = 0.9,
    telephone_rate: float = 0.5,
    asr_model: str | None = None,
    sample_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 2,
    now: datetime | None = None,
    shards: ShardMap = in_process,
) -> SimulationReport:
    """Write ``n`` simulated calls (golden with ``per_intent``: until every intent has that many) to ``out``.

    ``asr_model``: None or "tiny.en-bundled" for the bundled Whisper tiny.en, else a faster-whisper
    model path or hub id. ``now`` anchors ``started_at`` (default: today 00:00 UTC), the only input
    besides the arguments that the output depends on. ``shards``: when its workers are a cluster elsewhere
    (flows/fan_out.py), they render and hear the calls (on_workers.py), with the same files; else ``workers``
    threads render them here beside the recogniser, which on this machine's cores is as fast.
    """
    started = time.monotonic()
    out = Path(out)
    folder = resolve_sample_dir(sample_dir)
    plans = plan_calls(
        n,
        split=split,
        seed=seed,
        per_intent=per_intent,
        consent_rate=consent_rate,
        telephone_rate=telephone_rate,
        sample_dir_path=folder,
        now=now,
    )
    check_voices({BOT_VOICE} | {plan.voice for plan in plans})
    (out / "audio").mkdir(parents=True, exist_ok=True)
    report = SimulationReport(out=out, split=split, seed=seed)
    if progress:
        progress(0, len(plans))
    asr_name = asr_model or BUNDLED_MODEL
    voices: set[str] = set()
    channels: Counter[str] = Counter()
    per_intent_count: Counter[str] = Counter()
    heard = (_heard_on(shards, plans, out, sample_dir, asr_model) if shards.elsewhere
             else _heard_here(plans, out, folder, workers, asr_model))
    for plan, (rendered, texts) in zip(plans, heard, strict=True):
        write_json(out / f"{plan.call_id}.json", _document(plan, rendered, texts, asr_name))
        report.calls += 1
        report.call_ids.append(plan.call_id)
        report.audio_seconds += rendered.duration_s
        voices.add(plan.voice)
        channels[plan.channel] += 1
        for turn in plan.turns:
            if turn.speaker == "customer":
                report.customer_turns += 1
                report.pii_turns += bool(turn.pii)
                if turn.intent:
                    report.intent_turns += 1
                    per_intent_count[turn.intent] += 1
        if progress:
            progress(report.calls, len(plans))
    report.voices = sorted(voices)
    report.channels = dict(channels)
    report.turns_per_intent = dict(sorted(per_intent_count.items()))
    report.audio_seconds = round(report.audio_seconds, 2)
    report.elapsed_s = round(time.monotonic() - started, 2)
    return report
