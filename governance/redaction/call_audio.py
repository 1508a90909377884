"""Redact the audio of calls: raw zone audio -> PII masked -> verified -> redacted zone.

Runs after text redaction (it needs the entity spans) and after the redacted documents are
written (the store keeps redacted audio beside its document, so erasure and retention find
both). The raw audio is read through the store (checked and audited) and never changed. A
call whose masked audio still lets the ASR recover PII is quarantined (stage
``audio-redaction``; the reason names the call, turns and entity types, never a value) and gets
no redacted audio; so is a call whose audio cannot be decoded.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from core.audio import Decoded, decode_audio
from core.compute import LazyShards, ShardMap, chunks, content_key, in_process, shard_size
from core.settings import AudioRedactionConfig
from governance.redaction.audio import (
    HearingCheck,
    RedactedAudio,
    WordTimings,
    context_words,
    pii_values,
    redact_call_audio,
    turn_bounds,
    turn_clip,
    turns_to_mask,
    verify_turns,
    word_timings,
)
from governance.store import GovernedStore, RawIndexEntry

if TYPE_CHECKING:
    from core.asr import AsrEngine, Word
    from governance.redaction.audio import TurnRedactions
    from governance.redaction.redactor import Redaction

STAGE = "audio-redaction"
# Calls whose PII turns are timed and verified in one ASR batch: enough turns to fill batches of
# 8, few enough that the decoded audio of the batch stays small (minutes of audio per call).
CALLS_PER_BATCH = 32


@dataclass
class AudioRedactionReport:
    calls: list[str] = field(default_factory=list)  # redacted audio written
    quarantined: list[tuple[str, list[str]]] = field(default_factory=list)  # (call, entity types / reason)
    per_call: dict[str, dict[str, Any]] = field(default_factory=dict)  # CallAudioReport.as_dict() per call
    asr_s: float = 0.0  # word timings (transcription)
    mask_s: float = 0.0  # alignment, intervals, mask, decode/encode
    verify_s: float = 0.0  # re-transcription of the masked turns

    @property
    def intervals(self) -> int:
        return sum(c["intervals"] for c in self.per_call.values())

    @property
    def seconds_masked(self) -> float:
        return round(sum(c["seconds_masked"] for c in self.per_call.values()), 3)


def group_turn_redactions(keyed: Mapping[tuple[int, str], Redaction]) -> dict[int, list[Redaction]]:
    """``{(turn, "text"|"transcript"): Redaction}`` (as ``redact_calls`` keeps them) -> per turn."""
    out: dict[int, list[Redaction]] = {}
    for (index, _kind), redaction in sorted(keyed.items()):
        out.setdefault(index, []).append(redaction)
    return out


@dataclass
class _CallAudio:
    """One call of a shard on its way through timing, masking and verification."""

    call_id: str
    turns: list[dict[str, Any]]
    redactions: Mapping[int, TurnRedactions]
    blank: set[int]
    suffix: str
    decoded: Decoded
    result: RedactedAudio | None = None


@dataclass(frozen=True)
class AudioCall:
    """What a worker needs to mask one call: its raw audio, turns, PII spans and turns to blank whole."""

    call_id: str
    audio: bytes
    turns: list[dict[str, Any]]
    redactions: Mapping[int, TurnRedactions]
    blank: frozenset[int]
    suffix: str


@dataclass(frozen=True)
class AudioShard:
    """A few calls and how to mask them: everything a worker needs, no store."""

    calls: list[AudioCall]
    config: AudioRedactionConfig
    timings: WordTimings
    asr_model: str | None
    asr_cores: int


@dataclass
class CallAudioOutcome:
    """One call's masked audio, or why it has none: ``heard`` (PII still recognised: quarantined with the
    masked audio), ``undecodable`` (its audio cannot be read or written back)."""

    call_id: str
    status: Literal["masked", "heard", "undecodable"]
    suffix: str = ""
    data: bytes = b""
    report: dict[str, Any] = field(default_factory=dict)
    heard: dict[int, list[str]] = field(default_factory=dict)
    error: str = ""


@dataclass
class AudioShardResult:
    calls: list[CallAudioOutcome]
    asr_s: float = 0.0
    mask_s: float = 0.0
    verify_s: float = 0.0


def raw_version(index: Mapping[str, RawIndexEntry], call_id: str) -> tuple[str | None, str | None]:
    """Which version of a raw call a shard works on: its document's and its audio's digests at ingest."""
    entry = index.get(call_id)
    return (entry.source_digest, entry.audio_sha256) if entry else (None, None)


def redact_audio_of_calls(
    store: GovernedStore,
    redactions_by_call: Mapping[str, Mapping[int, TurnRedactions]],
    config: AudioRedactionConfig,
    asr: AsrEngine | None = None,
    *,
    blank_turns: Mapping[str, Iterable[int]] | None = None,
    timings: WordTimings = "align",
    calls_per_batch: int = CALLS_PER_BATCH,
    shards: ShardMap = in_process,
) -> AudioRedactionReport:
    """Mask, verify and store the audio of each call in ``redactions_by_call`` (call -> turn -> redaction(s)).

    Every listed call gets redacted audio, those without PII too (their audio is written
    re-encoded, unchanged), so the redacted zone has audio for every redacted call.
    ``blank_turns`` (call -> turn indices) are silenced whole: turns the leak check quarantined
    hold PII with no span to mask. ``timings``: how word times are found (see
    :func:`governance.redaction.audio.word_timings`). Calls go in shards of at most
    ``calls_per_batch`` (:func:`mask_audio_shard`, on ``shards``' workers) so that the ASR times, and
    later hears, the PII turns of many calls in one batch; the raw audio is read and the results
    written here, through ``store`` (acting for purpose ``redaction``). ``asr``: the engine to use in
    this process (the single-process path only); otherwise each worker loads ``config.asr_model``.
    """
    report = AudioRedactionReport()
    if not config.enabled or not redactions_by_call:
        return report
    blanks = {call_id: frozenset(turns) for call_id, turns in (blank_turns or {}).items()}
    ids = sorted(redactions_by_call)
    index = store.raw_entries(ids)
    pieces = chunks(ids, shard_size(len(ids), shards.workers, most=calls_per_batch))
    settings = config.model_dump(mode="json")
    keys = [content_key("redact-audio", timings, settings,
                        [(c, raw_version(index, c), sorted(blanks.get(c, ()))) for c in piece])
            for piece in pieces]  # fmt: skip
    template = AudioShard([], config, timings, config.asr_model, shards.cores_per_worker)

    def audio_shard(piece: Sequence[str]) -> AudioShard:
        return replace(template, calls=[
            AudioCall(raw.document["call_id"], raw.audio, raw.document["turns"],
                      redactions_by_call[raw.document["call_id"]], blanks.get(raw.document["call_id"], frozenset()),
                      Path(raw.document["audio"]).suffix)
            for raw in store.read_raw(piece)  # read when the shard is taken: a run holds the shards in flight
        ])  # fmt: skip

    inputs = LazyShards(pieces, audio_shard)
    work = partial(mask_audio_shard, engine=asr) if asr is not None else mask_audio_shard
    for result in shards(work, inputs, keys):
        report.asr_s += result.asr_s
        report.mask_s += result.mask_s
        report.verify_s += result.verify_s
        for call in result.calls:
            if call.status == "undecodable":
                _undecodable(store, call.call_id, call.error, report)
            elif call.status == "heard":
                _quarantine(store, call.call_id, call.heard, call.report, call.data, call.suffix)
                report.quarantined.append(
                    (call.call_id, sorted({k for found in call.heard.values() for k in found})))
            else:
                store.write_redacted_audio(call.call_id, call.data, call.suffix)
                report.calls.append(call.call_id)
                report.per_call[call.call_id] = call.report
    return report


def mask_audio_shard(shard: AudioShard, engine: AsrEngine | None = None) -> AudioShardResult:
    """Decode, time, mask and verify a shard's calls: pure, so any worker process can do it.

    ``engine``: the ASR to use; None loads ``shard.asr_model`` once per process and keeps it."""
    asr = engine or _asr_engine(shard.asr_model, shard.asr_cores)
    result = AudioShardResult([])
    calls: list[_CallAudio] = []
    for call in shard.calls:
        try:
            decoded = decode_audio(call.audio)
        except RuntimeError as error:  # soundfile.LibsndfileError: audio libsndfile cannot read
            result.calls.append(CallAudioOutcome(call.call_id, "undecodable", error=type(error).__name__))
            continue
        calls.append(_CallAudio(call.call_id, call.turns, call.redactions, set(call.blank), call.suffix, decoded))
    undecodable = _mask_calls(calls, shard.config, asr, shard.timings, result)
    heard = _verify(asr, calls, result) if shard.config.verify else {}
    for masked in calls:
        if masked.result is None:
            result.calls.append(CallAudioOutcome(masked.call_id, "undecodable", error=undecodable[masked.call_id]))
        elif heard.get(masked.call_id):
            result.calls.append(CallAudioOutcome(masked.call_id, "heard", masked.suffix, masked.result.data,
                                                 masked.result.report.as_dict(), heard[masked.call_id]))
        else:
            result.calls.append(CallAudioOutcome(masked.call_id, "masked", masked.suffix, masked.result.data,
                                                 masked.result.report.as_dict()))
    return result


@lru_cache(maxsize=2)
def _asr_engine(model: str | None, cores: int) -> AsrEngine:
    """One engine per process and model: loading Whisper takes seconds. Many turns in batches: a one-thread
    CTranslate2 worker per core (its default of 4 threads oversubscribes a 2-core machine)."""
    from core.asr import AsrEngine

    return AsrEngine.for_throughput(model, min(4, cores))


def _undecodable(store: GovernedStore, call_id: str, error: str, report: AudioRedactionReport) -> None:
    reason = f"audio of call {call_id} could not be decoded or written back for redaction ({error})"
    store.quarantine(STAGE, f"{call_id}.audio", reason, call_id=call_id)
    report.quarantined.append((call_id, ["UNDECODABLE_AUDIO"]))


def _mask_calls(
    calls: list[_CallAudio],
    config: AudioRedactionConfig,
    asr: AsrEngine,
    timings: WordTimings,
    result: AudioShardResult,
) -> dict[str, str]:
    """Word times of every PII turn of the shard in one ASR pass, then each call masked; the calls whose
    masked audio cannot be written back, with the error's name."""
    started = time.perf_counter()
    wanted = [(call, i) for call in calls for i in turns_to_mask(call.redactions) if i not in call.blank]
    timed = word_timings(asr, [turn_clip(call.decoded, call.turns[i]) for call, i in wanted], timings)
    words: dict[str, dict[int, list[Word]]] = {}
    for (call, index), found in zip(wanted, timed, strict=True):
        words.setdefault(call.call_id, {})[index] = found
    result.asr_s += time.perf_counter() - started
    started = time.perf_counter()
    failed: dict[str, str] = {}
    for call in calls:
        try:
            call.result = redact_call_audio(
                call.decoded, call.turns, call.redactions, words=words.get(call.call_id, {}), blank_turns=call.blank,
                mode=config.mode, pad_s=config.pad_s, tone_hz=config.tone_hz, tone_level=config.tone_level,
            )  # fmt: skip
        except RuntimeError as error:  # the masked audio cannot be written back in the file's format
            failed[call.call_id] = type(error).__name__
    result.mask_s += time.perf_counter() - started
    return failed


def _verify(asr: AsrEngine, calls: list[_CallAudio], result: AudioShardResult) -> dict[str, dict[int, list[str]]]:
    """call -> turn -> entity types the ASR still hears in the masked turn; all masked turns in one batch."""
    started = time.perf_counter()
    checks: list[tuple[str, int, HearingCheck]] = []
    for call in calls:
        if call.result is None:
            continue
        decoded, frames = call.result.decoded, call.result.decoded.samples.shape[0]
        for turn in call.result.report.turns:
            values = pii_values(call.redactions.get(turn.index, ()))
            if not values:
                continue
            a, b = turn_bounds(call.turns[turn.index], decoded.sample_rate, frames)
            offset = a / decoded.sample_rate
            local = [(s - offset, e - offset) for s, e in turn.intervals]
            check = HearingCheck(decoded.samples[a:b], decoded.sample_rate, values, local,
                                 context_words(call.redactions[turn.index]))
            checks.append((call.call_id, turn.index, check))
    heard: dict[str, dict[int, list[str]]] = {}
    for (call_id, index, _), kinds in zip(checks, verify_turns(asr, [c for _, _, c in checks]), strict=True):
        if kinds:
            heard.setdefault(call_id, {})[index] = kinds
    result.verify_s += time.perf_counter() - started
    return heard


def _quarantine(
    store: GovernedStore,
    call_id: str,
    heard: dict[int, list[str]],
    call_report: dict[str, Any],
    masked: bytes,
    suffix: str,
) -> None:
    """Keep the masked audio (encrypted, for QA) with a reason naming turns and types only."""
    where = "; ".join(f"turn {index}: {', '.join(kinds)}" for index, kinds in sorted(heard.items()))
    store.quarantine(
        STAGE,
        f"{call_id}.audio",
        f"PII still recognisable in the masked audio of call {call_id} ({where})",
        call_id=call_id,
        payload={"turns": {str(i): k for i, k in sorted(heard.items())}, "masking": call_report},
        files={f"masked-audio{suffix}": masked},
    )
