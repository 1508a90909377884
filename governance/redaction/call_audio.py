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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.audio import Decoded, decode_audio
from core.settings import AudioRedactionConfig
from governance.redaction.audio import (
    CallAudioReport,
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
from governance.store import GovernedStore

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
    """One call of a batch on its way through timing, masking and verification."""

    call_id: str
    turns: list[dict[str, Any]]
    redactions: Mapping[int, TurnRedactions]
    blank: set[int]
    suffix: str
    decoded: Decoded
    result: RedactedAudio | None = None


def redact_audio_of_calls(
    store: GovernedStore,
    redactions_by_call: Mapping[str, Mapping[int, TurnRedactions]],
    config: AudioRedactionConfig,
    asr: AsrEngine,
    *,
    blank_turns: Mapping[str, Iterable[int]] | None = None,
    timings: WordTimings = "align",
    calls_per_batch: int = CALLS_PER_BATCH,
) -> AudioRedactionReport:
    """Mask, verify and store the audio of each call in ``redactions_by_call`` (call -> turn -> redaction(s)).

    Every listed call gets redacted audio, those without PII too (their audio is written
    re-encoded, unchanged), so the redacted zone has audio for every redacted call.
    ``blank_turns`` (call -> turn indices) are silenced whole: turns the leak check quarantined
    hold PII with no span to mask. ``timings``: how word times are found (see
    :func:`governance.redaction.audio.word_timings`). Calls go ``calls_per_batch`` at a time so
    that the ASR times, and later hears, the PII turns of many calls in one batch.
    ``store`` must act for purpose ``redaction``.
    """
    report = AudioRedactionReport()
    if not config.enabled or not redactions_by_call:
        return report
    blanks = {call_id: set(turns) for call_id, turns in (blank_turns or {}).items()}
    ids = sorted(redactions_by_call)
    for first in range(0, len(ids), calls_per_batch):
        calls = _decoded_calls(store, ids[first : first + calls_per_batch], redactions_by_call, blanks, report)
        _mask_calls(store, calls, config, asr, timings, report)
        heard = _verify(asr, calls, report) if config.verify else {}
        for call in calls:
            if call.result is None:
                continue
            if heard.get(call.call_id):
                kinds = heard[call.call_id]
                _quarantine(store, call.call_id, kinds, call.result.report, call.result.data, call.suffix)
                report.quarantined.append((call.call_id, sorted({k for found in kinds.values() for k in found})))
                continue
            store.write_redacted_audio(call.call_id, call.result.data, call.suffix)
            report.calls.append(call.call_id)
            report.per_call[call.call_id] = call.result.report.as_dict()
    return report


def _undecodable(store: GovernedStore, call_id: str, error: Exception, report: AudioRedactionReport) -> None:
    reason = f"audio of call {call_id} could not be decoded or written back for redaction ({type(error).__name__})"
    store.quarantine(STAGE, f"{call_id}.audio", reason, call_id=call_id)
    report.quarantined.append((call_id, ["UNDECODABLE_AUDIO"]))


def _decoded_calls(
    store: GovernedStore,
    call_ids: list[str],
    redactions_by_call: Mapping[str, Mapping[int, TurnRedactions]],
    blanks: Mapping[str, set[int]],
    report: AudioRedactionReport,
) -> list[_CallAudio]:
    calls = []
    for raw in store.read_raw(call_ids):
        call_id = raw.document["call_id"]
        try:
            decoded = decode_audio(raw.audio)
        except RuntimeError as error:  # soundfile.LibsndfileError: audio libsndfile cannot read
            _undecodable(store, call_id, error, report)
            continue
        calls.append(_CallAudio(call_id, raw.document["turns"], redactions_by_call[call_id],
                                blanks.get(call_id, set()), Path(raw.document["audio"]).suffix, decoded))
    return calls


def _mask_calls(
    store: GovernedStore,
    calls: list[_CallAudio],
    config: AudioRedactionConfig,
    asr: AsrEngine,
    timings: WordTimings,
    report: AudioRedactionReport,
) -> None:
    """Word times of every PII turn of the batch in one ASR pass, then each call masked."""
    started = time.perf_counter()
    wanted = [(call, i) for call in calls for i in turns_to_mask(call.redactions) if i not in call.blank]
    timed = word_timings(asr, [turn_clip(call.decoded, call.turns[i]) for call, i in wanted], timings)
    words: dict[str, dict[int, list[Word]]] = {}
    for (call, index), found in zip(wanted, timed, strict=True):
        words.setdefault(call.call_id, {})[index] = found
    report.asr_s += time.perf_counter() - started
    started = time.perf_counter()
    for call in calls:
        try:
            call.result = redact_call_audio(
                call.decoded, call.turns, call.redactions, words=words.get(call.call_id, {}), blank_turns=call.blank,
                mode=config.mode, pad_s=config.pad_s, tone_hz=config.tone_hz, tone_level=config.tone_level,
            )  # fmt: skip
        except RuntimeError as error:  # the masked audio cannot be written back in the file's format
            _undecodable(store, call.call_id, error, report)
    report.mask_s += time.perf_counter() - started


def _verify(asr: AsrEngine, calls: list[_CallAudio], report: AudioRedactionReport) -> dict[str, dict[int, list[str]]]:
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
    report.verify_s += time.perf_counter() - started
    return heard


def _quarantine(
    store: GovernedStore,
    call_id: str,
    heard: dict[int, list[str]],
    call_report: CallAudioReport,
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
        payload={"turns": {str(i): k for i, k in sorted(heard.items())}, "masking": call_report.as_dict()},
        files={f"masked-audio{suffix}": masked},
    )
