"""Audio redaction: the PII words of a call's audio replaced by silence or a tone.

Text redaction gives character spans of each turn's ASR text; the audio still says them. Per
turn that holds PII: time its words (:func:`word_timings` force-aligns the turn's text to its
audio, batched across turns and calls, or re-transcribes it with word timestamps), align those
words to the turn text's characters (:func:`align_words`), turn every word that overlaps an
entity into a padded time interval (:func:`pii_intervals`) and mask those intervals
(:func:`mask`). The file is written back in its own format and sample rate, so the redacted
audio lines up sample for sample with the raw audio and the turn timings.

:func:`verify_turns` is the independent check: transcribe the masked turns again (batched) and
look for the PII values (as digit strings and name words). It returns entity types only, never
values, so its result can go into logs, the audit trail and quarantine reasons.

Everything here is pure (arrays and bytes in, arrays and bytes out); the governed store, the
quarantine and the configuration are :mod:`governance.redaction.call_audio`'s business.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np

from core.audio import Decoded, decode_audio, encode_audio, to_16k
from governance.redaction.normalize import REPEAT, TEENS, TENS, UNITS

if TYPE_CHECKING:  # only types: importing this module loads neither Presidio nor Whisper
    from core.asr import AsrEngine, Word
    from governance.redaction.redactor import Entity, Redaction

    TurnRedactions: TypeAlias = Redaction | Sequence[Redaction]

Mode = Literal["silence", "tone"]
WordTimings = Literal["transcribe", "align"]
Interval = tuple[float, float]

# Word tokens of a turn text: letters/digits with inner apostrophes ("don't", "o'brien").
_TOKEN_RE = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_FADE_S = 0.01  # long enough to avoid a click (which tiny Whisper may hear as a "t" or a digit)


# -- alignment ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimedSpan:
    """One word of a text: ``text[start:end]``, heard from ``start_s`` to ``end_s``.

    ``aligned`` is False where the time was not matched one to one with an ASR word (a block
    of differing words, or a word the ASR did not produce): those times are widened
    conservatively, so masking them may take a neighbour word too, never less than the word.
    """

    start: int
    end: int
    start_s: float
    end_s: float
    aligned: bool


def _norm(word: str) -> str:
    """Case and punctuation do not count: "41.5," and "415" are the same word to the aligner."""
    return "".join(ch for ch in word.lower() if ch.isalnum())


def align_words(text: str, words: Sequence[Word], duration_s: float | None = None) -> list[TimedSpan]:
    """Give every word of ``text`` a time from the ASR ``words`` (matched on normalised words with difflib).

    The re-transcription may differ a little from ``text`` ("41, 5" vs "41.5,"), so: equal
    words take their ASR word's time; a block of differing words takes the whole time of the
    ASR block it replaces; words the ASR did not produce take the time from the start of the
    previous timed word to the end of the next one (from 0 / to ``duration_s`` at the edges).
    """
    tokens = list(_TOKEN_RE.finditer(text))
    heard = [(norm, w) for w in words if (norm := _norm(w.text))]
    if not tokens:
        return []
    end_of_audio = duration_s if duration_s is not None else max((w.end for _, w in heard), default=0.0)
    times: list[tuple[float, float, bool] | None] = [None] * len(tokens)
    matcher = SequenceMatcher(None, [_norm(t.group()) for t in tokens], [n for n, _ in heard], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                word = heard[j1 + k][1]
                times[i1 + k] = (word.start, word.end, True)
        elif tag == "replace":
            block = [w for _, w in heard[j1:j2]]
            start, end = min(w.start for w in block), max(w.end for w in block)
            for i in range(i1, i2):
                times[i] = (start, end, False)
    filled = _interpolate(times, end_of_audio)
    return [
        TimedSpan(tok.start(), tok.end(), start, max(end, start), aligned)
        for tok, (start, end, aligned) in zip(tokens, filled, strict=True)
    ]


def _interpolate(times: list[tuple[float, float, bool] | None], end_of_audio: float) -> list[tuple[float, float, bool]]:
    """Untimed words get [previous timed word's start, next timed word's end]: wide, never short."""
    out: list[tuple[float, float, bool]] = []
    for i, known in enumerate(times):
        if known is not None:
            out.append(known)
            continue
        before = next((times[k] for k in range(i - 1, -1, -1) if times[k] is not None), None)
        after = next((times[k] for k in range(i + 1, len(times)) if times[k] is not None), None)
        start = before[0] if before is not None else 0.0
        end = after[1] if after is not None else max(end_of_audio, start)
        out.append((start, end, False))
    return out


# -- intervals ---------------------------------------------------------------------------------
def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping intervals (touching ones joined); empty ones dropped."""
    merged: list[list[float]] = []
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


def pii_intervals(
    text: str,
    timings: Sequence[TimedSpan],
    entities: Sequence[Entity],
    pad_s: float,
    duration_s: float | None = None,
) -> list[Interval]:
    """Seconds to mask: every word overlapping an entity's characters, padded by ``pad_s``, merged, clipped.

    Whole words are masked even when an entity covers part of one (the audio of a word cannot
    be split by letters). An entity that overlaps no word (punctuation only) takes the span
    from the word before it to the word after it; with no words at all the whole audio goes.
    """
    if pad_s < 0:
        raise ValueError("pad_s must be >= 0")
    upper = duration_s if duration_s is not None else math.inf
    raw: list[Interval] = []
    for entity in entities:
        if not 0 <= entity.start < entity.end <= len(text):
            raise ValueError(f"entity span {entity.start}:{entity.end} is outside the text")
        hit = [s for s in timings if s.start < entity.end and entity.start < s.end]
        if not hit:
            before = [s for s in timings if s.end <= entity.start]
            after = [s for s in timings if s.start >= entity.end]
            raw.append((before[-1].start_s if before else 0.0, after[0].end_s if after else upper))
            continue
        raw.append((min(s.start_s for s in hit), max(s.end_s for s in hit)))
    padded = ((max(0.0, s - pad_s), min(upper, e + pad_s)) for s, e in raw)
    return merge_intervals(padded)


# -- the signal ---------------------------------------------------------------------------------
def mask(
    samples: np.ndarray,
    sample_rate: int,
    intervals: Iterable[Interval],
    mode: Mode = "silence",
    tone_hz: float = 1000.0,
    tone_level: float = 0.1,
    fade_s: float = _FADE_S,
) -> np.ndarray:
    """A copy of ``samples`` (float, mono or frames x channels) with each interval silenced or toned.

    The intervals themselves are fully masked; the speech fades out over ``fade_s`` just before
    each and back in just after (and a tone fades in and out inside it), so no edge clicks. One
    slice operation per interval: a 5-minute call with dozens of spans takes a millisecond or so.
    """
    if mode not in ("silence", "tone"):
        raise ValueError(f"mode must be 'silence' or 'tone', not {mode!r}")
    if not np.issubdtype(samples.dtype, np.floating):
        raise TypeError("mask works on float samples (decode with dtype='float32')")
    out = samples.copy()
    n = out.shape[0]
    spans = [
        (a, b)
        for s, e in merge_intervals(intervals)
        if (a := max(0, math.floor(s * sample_rate))) < (b := min(n, math.ceil(min(e, n / sample_rate) * sample_rate)))
    ]
    if not spans:
        return out
    fade = max(1, round(fade_s * sample_rate))
    shape = (-1,) + (1,) * (out.ndim - 1)
    down = (1.0 - np.arange(1, fade + 1, dtype=out.dtype) / (fade + 1)).reshape(shape)  # ~1 -> ~0
    up = down[::-1]
    for a, b in spans:
        out[a:b] = 0
        before, after = min(fade, a), min(fade, n - b)
        if before:
            out[a - before : a] *= down[fade - before :]
        if after:
            out[b : b + after] *= up[:after]
    if mode == "tone":
        step = 2 * np.pi * tone_hz / sample_rate
        for a, b in spans:
            length = b - a
            envelope = np.ones(length, dtype=out.dtype)
            ramp = min(fade, length // 2)
            if ramp:
                envelope[:ramp] = up[fade - ramp :].reshape(-1)
                envelope[length - ramp :] = down[:ramp].reshape(-1)
            tone = (tone_level * np.sin(step * np.arange(length)) * envelope).astype(out.dtype)
            out[a:b] += tone.reshape(shape)
    return out


# -- a whole call ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TurnAudioReport:
    index: int
    intervals: list[Interval]  # seconds from the start of the call
    seconds_masked: float
    words: int  # ASR words the alignment had
    aligned_share: float  # share of the turn's words matched one to one (low: the ASR disagreed)


@dataclass
class CallAudioReport:
    turns: list[TurnAudioReport] = field(default_factory=list)

    @property
    def intervals(self) -> int:
        return sum(len(t.intervals) for t in self.turns)

    @property
    def seconds_masked(self) -> float:
        return round(sum(t.seconds_masked for t in self.turns), 3)

    def as_dict(self) -> dict[str, Any]:
        return {
            "intervals": self.intervals,
            "seconds_masked": self.seconds_masked,
            "turns": [
                {"index": t.index, "intervals": len(t.intervals), "seconds_masked": t.seconds_masked,
                 "aligned_share": t.aligned_share}
                for t in self.turns
            ],
        }  # fmt: skip


@dataclass(frozen=True)
class RedactedAudio:
    data: bytes  # the masked file, same format, subtype and sample rate as the input
    decoded: Decoded  # the masked samples (for verification without decoding again)
    report: CallAudioReport


def _as_list(redactions: TurnRedactions) -> list[Redaction]:
    """One redaction or several (ASR text and reference transcript of the same turn)."""
    if hasattr(redactions, "entities"):
        return [redactions]  # type: ignore[list-item]
    return list(redactions)  # type: ignore[arg-type]


def turn_bounds(turn: Mapping[str, Any], sample_rate: int, frames: int) -> tuple[int, int]:
    """[start, end) samples of a turn, clamped to the file (turn times are in seconds)."""
    start = min(frames, max(0, math.floor(float(turn["start_s"]) * sample_rate)))
    return start, min(frames, max(start, math.ceil(float(turn["end_s"]) * sample_rate)))


def turns_to_mask(redactions: Mapping[int, TurnRedactions], blank_turns: Iterable[int] = ()) -> list[int]:
    """Turn indices that need masking: any entity in any of their redactions, or blanked whole."""
    with_pii = {i for i, r in redactions.items() if any(x.entities for x in _as_list(r))}
    return sorted(with_pii | set(blank_turns))


@dataclass(frozen=True)
class TurnClip:
    """One turn's audio at the ASR rate and its known text: what word timing works on."""

    audio: np.ndarray
    text: str


def turn_clip(decoded: Decoded, turn: Mapping[str, Any]) -> TurnClip:
    a, b = turn_bounds(turn, decoded.sample_rate, decoded.samples.shape[0])
    return TurnClip(to_16k(decoded.samples[a:b], decoded.sample_rate), str(turn.get("text") or ""))


def word_timings(asr: AsrEngine, clips: Sequence[TurnClip], method: WordTimings = "align") -> list[list[Word]]:
    """Words with times (from each clip's start) of many turns at once: the only ASR work masking needs.

    ``align``: force-align each turn's own text to its audio, batched in short windows across
    every clip given (the words are the text's; see :meth:`core.asr.AsrEngine.align_words_batch`).
    ``transcribe``: re-transcribe each turn with word timestamps, one at a time, with the exact
    decoding that wrote the text (then :func:`align_words` matches the words to the text).
    """
    if method == "align":
        return asr.align_words_batch([c.audio for c in clips], [c.text for c in clips])
    if method == "transcribe":
        return [asr.transcribe_words(c.audio) for c in clips]
    raise ValueError(f"method must be 'transcribe' or 'align', not {method!r}")


def turn_word_timings(
    asr: AsrEngine,
    decoded: Decoded,
    turns: Sequence[Mapping[str, Any]],
    indices: Iterable[int],
    method: WordTimings = "transcribe",
) -> dict[int, list[Word]]:
    """:func:`word_timings` of the given turns of one call, by turn index."""
    wanted = list(indices)
    timed = word_timings(asr, [turn_clip(decoded, turns[i]) for i in wanted], method)
    return dict(zip(wanted, timed, strict=True))


def redact_call_audio(
    data: bytes | Decoded,
    turns: Sequence[Mapping[str, Any]],
    redactions: Mapping[int, TurnRedactions],
    *,
    asr: AsrEngine | None = None,
    words: Mapping[int, Sequence[Word]] | None = None,
    blank_turns: Iterable[int] = (),
    mode: Mode = "silence",
    pad_s: float = 0.15,
    tone_hz: float = 1000.0,
    tone_level: float = 0.1,
    timings: WordTimings = "transcribe",
) -> RedactedAudio:
    """Mask every PII word of a call's audio (``data``: the raw file's bytes, or decoded) and encode it alike.

    ``turns`` are the call document's turns (``start_s``, ``end_s``, ``text``); ``redactions``
    maps a turn index to the redaction(s) of that turn's texts (the ASR text and, if there is
    one, the reference transcript: each is aligned to the same word timings). ``words`` gives
    word timings already computed (per turn, from the turn's start); turns missing from it get
    them from ``asr`` (``timings``: see :func:`turn_word_timings`). ``blank_turns`` are masked
    whole (e.g. turns whose text leaked PII the redactor did not find: no span to go by).
    """
    decoded = data if isinstance(data, Decoded) else decode_audio(data)
    frames, rate = decoded.samples.shape[0], decoded.sample_rate
    blank = set(blank_turns)
    todo = turns_to_mask(redactions, blank)
    timed: dict[int, Sequence[Word]] = dict(words or {})
    missing = [i for i in todo if i not in timed and i not in blank]
    if missing:
        if asr is None:
            raise ValueError(f"no word timings for turns {missing} and no ASR engine to get them")
        timed.update(turn_word_timings(asr, decoded, turns, missing, timings))
    report = CallAudioReport()
    everything: list[Interval] = []
    for index in todo:
        a, b = turn_bounds(turns[index], rate, frames)
        offset, length = a / rate, (b - a) / rate
        if index in blank:
            local, n_words, aligned = [(0.0, length)], 0, 0.0
        else:
            local, spans_total, spans_aligned = [], 0, 0
            for redaction in _as_list(redactions.get(index, ())):
                if not redaction.entities:
                    continue
                spans = align_words(redaction.text, timed[index], length)
                local += pii_intervals(redaction.text, spans, redaction.entities, pad_s, length)
                spans_total += len(spans)
                spans_aligned += sum(s.aligned for s in spans)
            local = merge_intervals(local)
            n_words, aligned = len(timed[index]), round(spans_aligned / spans_total, 3) if spans_total else 0.0
        absolute = [(round(offset + s, 4), round(offset + e, 4)) for s, e in local]
        everything += absolute
        seconds = round(sum(e - s for s, e in absolute), 3)
        report.turns.append(TurnAudioReport(index, absolute, seconds, n_words, aligned))
    masked = mask(decoded.samples, rate, everything, mode=mode, tone_hz=tone_hz, tone_level=tone_level)
    out = Decoded(masked, rate, decoded.format, decoded.subtype)
    return RedactedAudio(encode_audio(masked, rate, decoded.format, decoded.subtype), out, report)


# -- verification ---------------------------------------------------------------------------------
# The recognizers' number words, plus "for": ASR writes a heard "four" so, and verification
# should rather over-hear than miss a digit.
_UNITS = {**UNITS, "for": "4"}
_JOINERS = {",", "-", ".", "(", ")", "/", "uh", "um", "umm", "er", "erm", "ah", "eh", "hmm", "mm"}
# Words of an e-mail or name value that identify nobody on their own.
_NOT_NAME = {"dot", "at", "com", "net", "org", "co", "uk", "underscore", "dash", "hyphen", "mr", "mrs",
             "ms", "miss", "dr", "the", "and", "email", "mail", "gmail", "yahoo", "hotmail", "outlook", "aol",
             "icloud", "live", "msn", "protonmail"} | set(_UNITS) | set(TEENS) | set(TENS) | set(REPEAT)  # fmt: skip
_VERIFY_TOKEN_RE = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")
MIN_DIGITS = 4


def digit_runs(text: str) -> list[str]:
    """Digit strings said or written in ``text``: "four one five, double five" -> ["41555"].

    Digits, unit words ("oh" = 0), teens, tens ("forty two" = 42) and "double"/"triple" join into
    one run across commas, hyphens, dots and fillers; any other word ends the run.
    """
    tokens = _VERIFY_TOKEN_RE.findall(text.lower())
    runs: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok.isdigit():
            current.append(tok)
        elif tok in REPEAT and (nxt in _UNITS or (nxt.isdigit() and len(nxt) == 1)):
            current.append(_UNITS.get(nxt, nxt) * REPEAT[tok])
            i += 1
        elif tok in _UNITS:
            current.append(_UNITS[tok])
        elif tok in TEENS:
            current.append(TEENS[tok])
        elif tok in TENS:
            if nxt in _UNITS and _UNITS[nxt] != "0":
                current.append(TENS[tok] + _UNITS[nxt])
                i += 1
            else:
                current.append(TENS[tok] + "0")
        elif tok not in _JOINERS:
            if current:
                runs.append("".join(current))
            current = []
        i += 1
    if current:
        runs.append("".join(current))
    return runs


def _name_tokens(value: str) -> set[str]:
    return {t for t in re.findall(r"[a-z]+", value.lower()) if len(t) >= 3 and t not in _NOT_NAME}


def pii_recovered(
    transcript: str, pii_values: Sequence[tuple[str, str]], ignore_words: Iterable[str] = ()
) -> list[str]:
    """Types of the ``(type, value)`` pairs whose value shows in ``transcript`` (never the values).

    A value leaks when any 4 consecutive digits of it appear in a digit run of the transcript
    (partial numbers identify too), or when one of its name words (3+ letters, not a number,
    e-mail or ``ignore_words`` word) is a word of the transcript. ``ignore_words``: the words the
    turn says outside its entities ("my *email* is ..."), which prove nothing when heard.
    """
    runs = [r for r in digit_runs(transcript) if len(r) >= MIN_DIGITS]
    heard_words = set(re.findall(r"[a-z]+", transcript.lower())) - {w.lower() for w in ignore_words}
    kinds: list[str] = []
    for kind, value in pii_values:
        digits = "".join(digit_runs(value))
        grams = {digits[i : i + MIN_DIGITS] for i in range(len(digits) - MIN_DIGITS + 1)}
        leaked = any(g in run for g in grams for run in runs) or bool(_name_tokens(value) & heard_words)
        if leaked and kind not in kinds:
            kinds.append(kind)
    return sorted(kinds)


@dataclass(frozen=True)
class HearingCheck:
    """One masked turn to listen to: its audio, the masked intervals (seconds into it) and what to listen for."""

    audio: np.ndarray
    sample_rate: int
    pii_values: Sequence[tuple[str, str]]
    intervals: Sequence[Interval] = ()
    ignore_words: Iterable[str] = ()

    def heard_audio(self) -> np.ndarray:
        """The audio with the masked intervals cut out, at the ASR rate."""
        cut = merge_intervals(self.intervals)
        heard = splice_out(self.audio, self.sample_rate, cut) if cut else self.audio
        return to_16k(heard, self.sample_rate)


def verify_turns(asr: AsrEngine, checks: Sequence[HearingCheck]) -> list[list[str]]:
    """Re-transcribe masked turns (batched); per turn, the entity types whose values can still be heard.

    Each turn is transcribed with its masked intervals cut out instead of silenced: that holds
    every sample a listener could still hear, and greedy Whisper often stops at a long silence
    ("my phone number is..."), so it would miss a second saying of the number after a mask. One
    transcription per turn, all turns of a batch of calls together (short windows, as serving
    transcribes). ``ignore_words``: see :func:`pii_recovered` (:func:`context_words` gives them).
    """
    listened = [i for i, check in enumerate(checks) if check.pii_values]
    texts = asr.transcribe_batch([checks[i].heard_audio() for i in listened])
    out: list[list[str]] = [[] for _ in checks]
    for i, text in zip(listened, texts, strict=True):
        out[i] = pii_recovered(text, checks[i].pii_values, list(checks[i].ignore_words))
    return out


def verify_audio_redaction(
    asr: AsrEngine,
    audio: np.ndarray,
    sample_rate: int,
    pii_values: Sequence[tuple[str, str]],
    intervals: Iterable[Interval] = (),
    ignore_words: Iterable[str] = (),
) -> list[str]:
    """:func:`verify_turns` for one turn: the entity types still heard in ``audio`` (empty: clean)."""
    return verify_turns(asr, [HearingCheck(audio, sample_rate, pii_values, list(intervals), ignore_words)])[0]


def splice_out(audio: np.ndarray, sample_rate: int, intervals: Sequence[Interval], gap_s: float = 0.2) -> np.ndarray:
    """``audio`` without the (merged) intervals and their fades, the pieces joined by ``gap_s`` of silence."""
    margin = _FADE_S
    gap = np.zeros((round(gap_s * sample_rate),) + audio.shape[1:], dtype=audio.dtype)
    kept, cursor = [], 0
    for start, end in intervals:
        a = max(0, math.floor((start - margin) * sample_rate))
        if a > cursor:
            kept.append(audio[cursor:a])
        cursor = max(cursor, math.ceil((end + margin) * sample_rate))
    if cursor < audio.shape[0]:
        kept.append(audio[cursor:])
    pieces = [part for piece in kept for part in (gap, piece)][1:]
    return np.concatenate(pieces) if pieces else audio[:0]


def pii_values(redactions: TurnRedactions) -> list[tuple[str, str]]:
    """(type, value) of every entity of a turn's redaction(s): what verification listens for."""
    return [(e.type, r.text[e.start : e.end]) for r in _as_list(redactions) for e in r.entities]


def context_words(redactions: TurnRedactions) -> set[str]:
    """Words a turn's texts say outside their entities (lowercase): hearing them again is no leak."""
    out: set[str] = set()
    for r in _as_list(redactions):
        kept = apply_spans(r.text, r.entities)
        out |= set(re.findall(r"[a-z]+", kept.lower()))
    return out


def apply_spans(text: str, entities: Sequence[Entity]) -> str:
    """``text`` with every entity span blanked (spaces), whatever the entities' order or overlaps."""
    chars = list(text)
    for e in entities:
        chars[e.start : e.end] = " " * (e.end - e.start)
    return "".join(chars)
