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

from governance.redaction.audio import (
    CallAudioReport,
    Decoded,
    WordTimings,
    context_words,
    decode_audio,
    pii_values,
    redact_call_audio,
    turn_bounds,
    turn_word_timings,
    turns_to_mask,
    verify_audio_redaction,
)
from governance.store import GovernedStore
from voiceloop.config import AudioRedactionConfig

if TYPE_CHECKING:
    from governance.redaction.audio import TurnRedactions
    from governance.redaction.redactor import Redaction
    from serving.asr import AsrEngine

STAGE = "audio-redaction"


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


def redact_audio_of_calls(
    store: GovernedStore,
    redactions_by_call: Mapping[str, Mapping[int, TurnRedactions]],
    config: AudioRedactionConfig,
    asr: AsrEngine,
    *,
    blank_turns: Mapping[str, Iterable[int]] | None = None,
    timings: WordTimings = "transcribe",
) -> AudioRedactionReport:
    """Mask, verify and store the audio of each call in ``redactions_by_call`` (call -> turn -> redaction(s)).

    Every listed call gets redacted audio, those without PII too (their audio is written
    re-encoded, unchanged), so the redacted zone has audio for every redacted call.
    ``blank_turns`` (call -> turn indices) are silenced whole: turns the leak check quarantined
    hold PII with no span to mask. ``timings``: how word times are found (``"align"``
    force-aligns each turn's text, about half the ASR time; see :func:`turn_word_timings`).
    ``store`` must act for purpose ``redaction``.
    """
    report = AudioRedactionReport()
    if not config.enabled or not redactions_by_call:
        return report
    blanks = {call_id: set(turns) for call_id, turns in (blank_turns or {}).items()}
    for raw in store.read_raw(sorted(redactions_by_call)):
        call_id = raw.document["call_id"]
        redactions = redactions_by_call[call_id]
        turns = raw.document["turns"]
        blank = blanks.get(call_id, set())
        suffix = Path(raw.document["audio"]).suffix
        try:
            started = time.perf_counter()
            decoded = decode_audio(raw.audio)
            todo = [i for i in turns_to_mask(redactions) if i not in blank]  # blanked turns need no word times
            words = turn_word_timings(asr, decoded, turns, todo, timings)
            report.asr_s += time.perf_counter() - started
            started = time.perf_counter()
            result = redact_call_audio(
                decoded, turns, redactions, words=words, blank_turns=blank, mode=config.mode,
                pad_s=config.pad_s, tone_hz=config.tone_hz, tone_level=config.tone_level,
            )  # fmt: skip
            report.mask_s += time.perf_counter() - started
        except RuntimeError as error:  # soundfile.LibsndfileError: audio libsndfile cannot read
            reason = f"audio of call {call_id} could not be decoded for redaction ({type(error).__name__})"
            store.quarantine(STAGE, f"{call_id}.audio", reason, call_id=call_id)
            report.quarantined.append((call_id, ["UNDECODABLE_AUDIO"]))
            continue
        leaks = _verify(asr, result.decoded, turns, redactions, result.report) if config.verify else {}
        report.verify_s += sum(seconds for _, seconds in leaks.values())
        heard = {index: kinds for index, (kinds, _) in leaks.items() if kinds}
        if heard:
            _quarantine(store, call_id, heard, result.report, result.data, suffix)
            report.quarantined.append((call_id, sorted({k for kinds in heard.values() for k in kinds})))
            continue
        store.write_redacted_audio(call_id, result.data, suffix)
        report.calls.append(call_id)
        report.per_call[call_id] = result.report.as_dict()
    return report


def _verify(
    asr: AsrEngine,
    decoded: Decoded,
    turns: list[dict[str, Any]],
    redactions: Mapping[int, TurnRedactions],
    masking: CallAudioReport,
) -> dict[int, tuple[list[str], float]]:
    """turn -> (entity types the ASR still hears in the masked turn, seconds it took); blanked turns skipped."""
    out: dict[int, tuple[list[str], float]] = {}
    frames = decoded.samples.shape[0]
    for turn in masking.turns:
        values = pii_values(redactions.get(turn.index, ()))
        if not values:
            continue
        started = time.perf_counter()
        a, b = turn_bounds(turns[turn.index], decoded.sample_rate, frames)
        offset = a / decoded.sample_rate
        local = [(s - offset, e - offset) for s, e in turn.intervals]
        context = context_words(redactions[turn.index])
        kinds = verify_audio_redaction(asr, decoded.samples[a:b], decoded.sample_rate, values, local, context)
        out[turn.index] = (kinds, time.perf_counter() - started)
    return out


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
