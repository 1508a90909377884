"""Audio redaction: PII words of the audio silenced (or toned) so that the ASR no longer hears them.

Real components throughout: espeak-ng speech (sox for the 8 kHz telephone line), the bundled
faster-whisper tiny.en, the real Redactor and a real governed store. The model, the redactor and
the synthesised speech are module-scoped, so the slow parts happen once.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from pydantic import ValidationError

from core import synthesis
from core.asr import AsrEngine, Word
from core.audio import SAMPLE_RATE, TELEPHONE_RATE, decode_audio, resample, to_16k
from core.settings import AudioRedactionConfig, RedactionConfig, Settings
from governance.access import AccessDenied
from governance.audit import Actor, AuditLog
from governance.ingest import ingest
from governance.redaction.audio import (
    TimedSpan,
    align_words,
    context_words,
    digit_runs,
    mask,
    merge_intervals,
    pii_intervals,
    pii_recovered,
    redact_call_audio,
    splice_out,
    verify_audio_redaction,
)
from governance.redaction.call_audio import redact_audio_of_calls
from governance.redaction.calls import redact_calls
from governance.redaction.redactor import Entity, Redaction, Redactor
from governance.store import GovernedStore
from tests.conftest import write_call

PHONE = "my phone number is four one five five five five zero one three four, thank you very much"
# "five" does not survive the 300-3400 Hz band ("time"): the telephone number avoids it.
PHONE_8K = "my phone number is four one six two eight seven zero one three four, thank you very much"
TWICE = (
    "my phone number is four one five five five five zero one three four, "
    "I repeat, four one five five five five zero one three four"
)
BOT = "how can I help you today"


def _w(text: str, start: float, end: float) -> Word:
    return Word(text, start, end, 1.0)


# -- alignment ------------------------------------------------------------------------------------
def test_equal_words_take_their_asr_times_and_differing_blocks_the_whole_block() -> None:
    text = "My phone is 41, 5, 5. Thanks"
    words = [_w("My", 0.0, 0.2), _w("phone", 0.2, 0.5), _w("is", 0.5, 0.6), _w("41.5,", 0.6, 1.0),
             _w("5.", 1.1, 1.3), _w("Thanks", 1.4, 1.8)]  # fmt: skip
    spans = align_words(text, words)
    assert [text[s.start : s.end] for s in spans] == ["My", "phone", "is", "41", "5", "5", "Thanks"]
    assert (spans[1].start_s, spans[1].end_s, spans[1].aligned) == (0.2, 0.5, True)
    # "41, 5" against "41.5,": no one-to-one match, both words get the whole ASR block
    assert [(s.start_s, s.end_s, s.aligned) for s in spans[3:5]] == [(0.6, 1.0, False)] * 2
    assert (spans[5].start_s, spans[5].end_s) == (1.1, 1.3) and spans[6].aligned


def test_words_the_asr_did_not_produce_are_widened_over_their_neighbours() -> None:
    text = "call me john smith tomorrow"
    words = [_w("call", 0.0, 0.3), _w("me", 0.3, 0.5), _w("tomorrow", 1.4, 1.9)]
    spans = {text[s.start : s.end]: s for s in align_words(text, words, duration_s=2.5)}
    assert (spans["john"].start_s, spans["john"].end_s, spans["john"].aligned) == (0.3, 1.9, False)
    assert (spans["smith"].start_s, spans["smith"].end_s) == (0.3, 1.9)
    other = "hello there john"
    edge = {other[s.start : s.end]: s for s in align_words(other, [_w("hello", 0.5, 0.9)], 3.0)}
    assert (edge["john"].start_s, edge["john"].end_s) == (0.5, 3.0)  # nothing after: to the end
    nothing = align_words("john smith", [], duration_s=2.0)
    assert [(s.start_s, s.end_s) for s in nothing] == [(0.0, 2.0)] * 2


# -- intervals ------------------------------------------------------------------------------------
def _spans(*rows: tuple[int, int, float, float]) -> list[TimedSpan]:
    return [TimedSpan(a, b, s, e, True) for a, b, s, e in rows]


def test_intervals_cover_whole_words_padded_merged_and_clipped() -> None:
    text = "john and 4155 then 0134 ok"
    #       0    5   9    14   19   24
    spans = _spans((0, 4, 0.1, 0.4), (5, 8, 0.4, 0.6), (9, 13, 0.6, 1.2), (14, 18, 1.2, 1.4),
                   (19, 23, 1.5, 2.0), (24, 26, 2.1, 2.3))  # fmt: skip
    entities = [Entity("PERSON", 1, 3, 0.9), Entity("DIGIT_STRING", 9, 13, 0.9), Entity("DIGIT_STRING", 19, 23, 0.9)]
    assert pii_intervals(text, spans, entities, pad_s=0.0) == [(0.1, 0.4), (0.6, 1.2), (1.5, 2.0)]
    # padding clips at 0 and at the end, and joins the name with the first number (they now touch)
    padded = pii_intervals(text, spans, entities, pad_s=0.1, duration_s=2.05)
    assert len(padded) == 2
    assert padded[0] == pytest.approx((0.0, 1.3)) and padded[1] == pytest.approx((1.4, 2.05))
    assert pii_intervals(text, spans, entities, pad_s=0.2, duration_s=2.05) == [(0.0, 2.05)]
    with pytest.raises(ValueError):
        pii_intervals(text, spans, entities, pad_s=-0.1)


def test_an_entity_between_words_takes_the_neighbours_and_no_words_means_the_whole_turn() -> None:
    text = "my pin , is"
    spans = _spans((0, 2, 0.0, 0.2), (3, 6, 0.2, 0.5), (9, 11, 0.9, 1.1))
    assert pii_intervals(text, spans, [Entity("X", 7, 8, 1.0)], 0.0) == [(0.2, 1.1)]
    assert pii_intervals("!!", [], [Entity("X", 0, 2, 1.0)], 0.1, duration_s=3.0) == [(0.0, 3.0)]


def test_merge_joins_overlapping_and_touching_intervals() -> None:
    assert merge_intervals([(2.0, 3.0), (0.0, 1.0), (1.0, 1.5), (2.5, 4.0), (5.0, 5.0)]) == [(0.0, 1.5), (2.0, 4.0)]


# -- mask -----------------------------------------------------------------------------------------
def _noise(seconds: float, rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def test_silence_masks_the_intervals_fades_at_the_edges_and_leaves_the_original_alone() -> None:
    audio = _noise(2.0)
    before = audio.copy()
    out = mask(audio, SAMPLE_RATE, [(0.5, 1.0), (1.9, 5.0)])
    assert np.array_equal(audio, before)  # untouched
    assert out.shape == audio.shape and out.dtype == audio.dtype
    assert not out[8000:16000].any() and not out[30400:].any()  # 1.9 s .. the end (clipped)
    assert np.array_equal(out[:7800], audio[:7800]) and np.array_equal(out[16200:30200], audio[16200:30200])
    fade = np.abs(out[7840:8000] / audio[7840:8000])  # the 10 ms before: ramps down, no hard edge
    assert 0 < fade[-1] < 0.05 and fade[0] > 0.9 and np.all(np.diff(fade) <= 1e-6)


def test_tone_replaces_the_interval_with_a_sine_of_the_configured_pitch_and_level() -> None:
    audio = _noise(1.0)
    out = mask(audio, SAMPLE_RATE, [(0.25, 0.75)], mode="tone", tone_hz=1000.0, tone_level=0.2)
    inside = out[4000:12000]
    assert np.abs(inside).max() == pytest.approx(0.2, abs=1e-3)
    spectrum = np.abs(np.fft.rfft(inside))
    assert np.fft.rfftfreq(inside.size, 1 / SAMPLE_RATE)[spectrum.argmax()] == pytest.approx(1000.0, abs=2.0)
    assert abs(inside[0]) < 1e-3 and abs(inside[-1]) < 0.02  # the tone fades in and out too
    with pytest.raises(ValueError):
        mask(audio, SAMPLE_RATE, [(0.1, 0.2)], mode="beep")  # type: ignore[arg-type]


def test_mask_handles_stereo_nothing_to_do_and_refuses_integer_samples() -> None:
    stereo = np.stack([_noise(1.0), _noise(1.0, seed=1)], axis=1)
    out = mask(stereo, SAMPLE_RATE, [(0.1, 0.2)], mode="tone")
    assert out.shape == stereo.shape and np.allclose(out[1600:3200, 0], out[1600:3200, 1])
    assert np.array_equal(mask(stereo, SAMPLE_RATE, []), stereo) and mask(stereo, SAMPLE_RATE, []) is not stereo
    with pytest.raises(TypeError):
        mask(np.zeros(100, dtype=np.int16), SAMPLE_RATE, [(0.0, 0.001)])


def test_a_five_minute_call_with_dozens_of_spans_masks_every_span_and_nothing_else() -> None:
    """How fast is benchmarks/audio_redaction.py's figure (mask_s, README "Audio"); here, what it does."""
    audio = _noise(300.0)
    spans = [(t, t + 0.8) for t in np.arange(2.0, 290.0, 5.0)]  # 58 spans
    inside, near = np.zeros(audio.size, dtype=bool), np.zeros(audio.size, dtype=bool)
    for start, end in spans:
        inside[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)] = True
        near[int((start - 0.05) * SAMPLE_RATE):int((end + 0.05) * SAMPLE_RATE)] = True  # the speech fades out and in
    for mode in ("silence", "tone"):
        masked = mask(audio, SAMPLE_RATE, spans, mode=mode)  # type: ignore[arg-type]
        assert masked.shape == audio.shape and np.array_equal(masked[~near], audio[~near]), mode
        changed = masked[inside] != audio[inside]
        assert changed.mean() > 0.99, mode  # every span replaced (a tone may cross the noise at a few samples)
        if mode == "silence":
            assert not masked[inside].any()


def test_splice_out_drops_the_masked_stretches_and_joins_the_rest_with_short_gaps() -> None:
    audio = np.arange(1, 16001, dtype=np.float32)  # 1 s, every sample non-zero and unique
    out = splice_out(audio, SAMPLE_RATE, [(0.2, 0.4), (0.9, 1.0)], gap_s=0.05)
    kept = out[out != 0]
    assert out.size == kept.size + 800  # one 50 ms gap (nothing is kept after the last interval)
    assert kept[0] == 1 and not np.isin(kept, audio[3200:6400]).any() and kept.max() < audio[14400]


# -- what verification listens for -------------------------------------------------------------------
def test_spoken_numbers_become_digit_strings() -> None:
    assert digit_runs("four one five, double five, oh one") == ["4155501"]
    assert digit_runs("call 415-555 0134 now or forty two") == ["4155550134", "42"]
    assert digit_runs("triple 7 and twelve") == ["777", "12"]


def test_recovered_pii_is_named_by_type_never_by_value() -> None:
    values = [("PHONE_NUMBER", "four one five five five five zero one three four"), ("PERSON", "John Smith")]
    assert pii_recovered("thank you very much", values) == []
    assert pii_recovered("it ends in 0, 1, 3, 4", values) == ["PHONE_NUMBER"]  # 4 digits are enough
    assert pii_recovered("it ends in 1, 3, 4", values) == []
    assert pii_recovered("yes this is mr smith", values) == ["PERSON"]
    assert pii_recovered("John here, 41555", values) == ["PERSON", "PHONE_NUMBER"]
    # words the turn says outside its entities prove nothing ("my *email* is ...", a "Smith Street")
    email = [("EMAIL_ADDRESS", "amy underscore stone at email dot com")]
    assert pii_recovered("my email address is", email) == []  # e-mail words are never name words
    assert pii_recovered("stone cold", email) == ["EMAIL_ADDRESS"]
    text = "I live on Stone Road, my email is amy underscore stone at email dot com"
    context = context_words(Redaction(text, "", [Entity("EMAIL_ADDRESS", text.index("amy"), len(text), 1.0)]))
    assert "stone" in context and "amy" not in context
    assert pii_recovered("stone road", email, context) == [] and pii_recovered("amy", email, context)


# -- config -----------------------------------------------------------------------------------------
def test_audio_redaction_settings_have_safe_defaults_and_are_validated() -> None:
    config = Settings().redaction.audio
    assert (config.enabled, config.mode, config.pad_s, config.verify) == (True, "silence", 0.15, True)
    with pytest.raises(ValidationError):
        AudioRedactionConfig(pad_s=-0.1)
    with pytest.raises(ValidationError):
        AudioRedactionConfig(mode="bleep")  # type: ignore[arg-type]


# -- the real thing: speech in, ASR, redactor, mask, ASR again -------------------------------------------
@pytest.fixture(scope="module")
def asr() -> AsrEngine:
    return AsrEngine(cpu_threads=2)


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(RedactionConfig())


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Synthesised utterances at 16 kHz, and the telephone one at 8 kHz, each with short silences around."""
    work = tmp_path_factory.mktemp("tts")
    pad = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    out = {}
    for name, text in (("phone", PHONE), ("phone8k", PHONE_8K), ("twice", TWICE), ("bot", BOT)):
        out[name] = np.concatenate([pad, synthesis.level(synthesis.tts(text, "en-us", 165, 50, work)), pad])
    line = out.pop("phone8k")
    out["phone8k"] = synthesis.telephone(line, [(0, line.size)], 40.0, 0, work)
    return out


def _redact_utterance(asr: AsrEngine, redactor: Redactor, audio: np.ndarray, rate: int) -> tuple[str, Redaction, str]:
    """Transcribe, redact the text, mask the audio, transcribe again: (text, redaction, text after)."""
    text = asr.transcribe_arrays([to_16k(audio, rate)])[0]
    redaction = redactor.redact(text)
    assert redaction.entities, f"the redactor should find the number in {text!r}"
    turn = {"start_s": 0.0, "end_s": audio.size / rate}
    data = io.BytesIO()
    sf.write(data, audio, rate, format="WAV", subtype="PCM_16")
    result = redact_call_audio(data.getvalue(), [turn], {0: redaction}, asr=asr)
    assert result.decoded.samples.size == audio.size and result.decoded.sample_rate == rate
    assert result.report.intervals >= 1 and 0.5 < result.report.seconds_masked < 0.7 * audio.size / rate
    after = asr.transcribe_arrays([to_16k(result.decoded.samples, rate)])[0]
    values = [(e.type, text[e.start : e.end]) for e in redaction.entities]
    assert verify_audio_redaction(asr, result.decoded.samples, rate, values) == []
    return text, redaction, after


def test_spoken_phone_number_is_gone_from_16k_audio_and_the_rest_is_still_heard(
    asr: AsrEngine, redactor: Redactor, voices: dict[str, np.ndarray]
) -> None:
    text, _, after = _redact_utterance(asr, redactor, voices["phone"], SAMPLE_RATE)
    assert [r for r in digit_runs(text) if len(r) >= 4], text  # the ASR did hear the number
    assert not [r for r in digit_runs(after) if len(r) >= 4], after
    assert re.search(r"phone number", after, re.I) and re.search(r"thank you", after, re.I), after


def test_spoken_phone_number_is_gone_from_8k_telephone_audio(
    asr: AsrEngine, redactor: Redactor, voices: dict[str, np.ndarray]
) -> None:
    text, _, after = _redact_utterance(asr, redactor, voices["phone8k"], TELEPHONE_RATE)
    assert [r for r in digit_runs(text) if len(r) >= 4], text
    assert not [r for r in digit_runs(after) if len(r) >= 4], after
    # tiny.en rewrites the words next to a gap ("phone number in" -> "phone is"): "phone" survives
    assert re.search(r"phone", after, re.I) and re.search(r"thank you", after, re.I), after


def test_forced_alignment_of_the_known_text_times_the_same_words(asr: AsrEngine, voices: dict[str, np.ndarray]) -> None:
    audio = voices["phone"]
    text = asr.transcribe_arrays([audio])[0]
    heard, aligned = asr.transcribe_words(audio), asr.align_words(audio, text)
    assert [w.text for w in aligned] == [w.text for w in heard]  # same greedy text, so the same words
    assert all(abs(a.start - h.start) <= 0.1 and abs(a.end - h.end) <= 0.1 for a, h in zip(aligned, heard, strict=True))
    assert asr.align_words(audio, "") == [] and asr.transcribe_words(audio[:10]) == []


def test_tone_mode_with_forced_alignment_hides_the_number_too(
    asr: AsrEngine, redactor: Redactor, voices: dict[str, np.ndarray]
) -> None:
    audio = voices["phone"]
    text = asr.transcribe_arrays([audio])[0]
    redaction = redactor.redact(text)
    data = io.BytesIO()
    sf.write(data, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    turn = {"start_s": 0.0, "end_s": audio.size / SAMPLE_RATE, "text": text}
    result = redact_call_audio(data.getvalue(), [turn], {0: redaction}, asr=asr, mode="tone", tone_level=0.05,
                               timings="align")  # fmt: skip
    assert sf.info(io.BytesIO(result.data)).format == "FLAC"  # written back in the input's format
    values = [(e.type, text[e.start : e.end]) for e in redaction.entities]
    assert verify_audio_redaction(asr, result.decoded.samples, SAMPLE_RATE, values) == []


# -- through the governed store ----------------------------------------------------------------------
def _wav(audio: np.ndarray, rate: int, fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt, subtype="PCM_16")
    return buffer.getvalue()


_TEXTS: dict[tuple[bytes, int], str] = {}


def _transcribe(asr: AsrEngine, audio: np.ndarray, rate: int) -> str:
    """The ASR text of some samples, once per distinct audio (the bot turn opens every call)."""
    key = (hashlib.sha256(audio.tobytes()).digest(), rate)
    if key not in _TEXTS:
        _TEXTS[key] = asr.transcribe_arrays([to_16k(audio, rate)])[0]
    return _TEXTS[key]


def _call(asr: AsrEngine, bot: np.ndarray, customer: np.ndarray, rate: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Two turns laid out like the simulator does, with the ASR text of each turn's samples."""
    gap = np.zeros(rate // 4, dtype=np.float32)
    audio = np.concatenate([bot, gap, customer])
    bounds = [(0, bot.size), (bot.size + gap.size, audio.size)]
    texts = [_transcribe(asr, audio[a:b], rate) for a, b in bounds]
    turns = [
        {"speaker": speaker, "start_s": a / rate, "end_s": b / rate, "text": text}
        for speaker, (a, b), text in zip(("bot", "customer"), bounds, texts, strict=True)
    ]
    return audio, turns


@pytest.fixture()
def ingested(
    tmp_path: Path, asr: AsrEngine, voices: dict[str, np.ndarray]
) -> Iterator[tuple[GovernedStore, dict[str, bytes]]]:
    """Calls in the raw zone: PII at 16 kHz (WAV), at 8 kHz (FLAC), said twice, and none at all."""
    source = tmp_path / "calls"
    bot8k = resample(voices["bot"], SAMPLE_RATE, TELEPHONE_RATE)
    calls = {
        "pii16": (voices["bot"], voices["phone"], SAMPLE_RATE, "WAV"),
        "pii8": (bot8k, voices["phone8k"], TELEPHONE_RATE, "FLAC"),
        "twice": (voices["bot"], voices["twice"], SAMPLE_RATE, "WAV"),
        "nopii": (voices["bot"], voices["bot"], SAMPLE_RATE, "WAV"),
    }
    raw_bytes = {}
    for call_id, (bot, customer, rate, fmt) in calls.items():
        audio, turns = _call(asr, bot, customer, rate)
        data = _wav(audio, rate, fmt)
        name = f"audio/{call_id}.{fmt.lower()}"
        write_call(source, call_id, turns=turns, audio_bytes=data, audio=name)
        (source / name).write_bytes(data)
        raw_bytes[call_id] = data
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    store = GovernedStore(tmp_path / "zones", audit, Actor(role="pipeline", purpose="ingest", user="t"))
    assert len(ingest(store, str(source), "train").ingested) == len(calls)
    yield store.as_purpose("redaction"), raw_bytes


def test_calls_are_masked_verified_and_stored_and_a_leak_is_quarantined(
    ingested: tuple[GovernedStore, dict[str, bytes]], asr: AsrEngine, redactor: Redactor, tmp_path: Path
) -> None:
    store, raw_bytes = ingested
    ids = sorted(raw_bytes)
    redact_calls(store, ids, RedactionConfig(audio=AudioRedactionConfig(enabled=False)))  # documents first
    documents = {d["call_id"]: d for d in store.read_raw_documents(ids)}
    by_call = {
        cid: dict(enumerate(redactor.redact_many([t["text"] for t in d["turns"]]))) for cid, d in documents.items()
    }
    # the redactor "misses" the second saying of the number: only the first run of digits is an entity
    said_twice = documents["twice"]["turns"][1]["text"]
    first = re.search(r"\d[\d,.\s-]*\d", said_twice)
    assert first and len(digit_runs(said_twice)) == 2, said_twice
    by_call["twice"][1] = Redaction(said_twice, "", [Entity("PHONE_NUMBER", first.start(), first.end(), 1.0)])

    # two batches (3 calls, then 1): timings and verification run per batch, results land per call
    report = redact_audio_of_calls(store, by_call, AudioRedactionConfig(), asr, timings="align", calls_per_batch=3)

    assert report.calls == ["nopii", "pii16", "pii8"]
    assert report.quarantined == [("twice", ["PHONE_NUMBER"])]
    assert report.per_call["pii16"]["intervals"] >= 1 and report.per_call["nopii"]["intervals"] == 0
    assert report.asr_s > 0 and report.verify_s > 0 and report.seconds_masked > 1.0
    reason = store.quarantined("audio-redaction")[0]
    assert reason["call_id"] == "twice" and "PHONE_NUMBER" in reason["reason"] and "turn 1" in reason["reason"]
    assert not re.search(r"\d{3}", reason["reason"].replace("turn 1", ""))  # types, never values
    trainer = store.as_purpose("training")  # who reads the redacted zone (redaction only writes it)
    with pytest.raises(FileNotFoundError):
        trainer.read_redacted_audio("twice")

    # raw audio untouched byte for byte; redacted audio alike in format, rate and length, PII gone
    for document, audio in store.read_raw(ids):
        assert audio == raw_bytes[document["call_id"]]
    for call_id in report.calls:
        redacted, raw = decode_audio(trainer.read_redacted_audio(call_id)), decode_audio(raw_bytes[call_id])
        assert (redacted.sample_rate, redacted.format, redacted.samples.shape) == (
            raw.sample_rate, raw.format, raw.samples.shape)  # fmt: skip
        changed = not np.array_equal(redacted.samples, raw.samples)
        assert changed == (call_id != "nopii"), call_id
    stored = sorted(
        p.relative_to(tmp_path / "zones").as_posix() for p in (tmp_path / "zones/redacted/audio").rglob("*")
    )
    assert stored == [
        "redacted/audio/nopii",
        "redacted/audio/nopii/audio.wav",
        "redacted/audio/pii16",
        "redacted/audio/pii16/audio.wav",
        "redacted/audio/pii8",
        "redacted/audio/pii8/audio.flac",
    ]
    actions = [(e.action, (e.detail or {}).get("content")) for e in store.audit.entries() if e.zone == "redacted"]
    assert actions.count(("redacted.write", "audio")) == 3


def test_redacted_audio_round_trip_is_audited_and_goes_with_its_document(tmp_path: Path) -> None:
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    store = GovernedStore(tmp_path / "zones", audit, Actor(role="admin", purpose="redaction", user="t"))
    with pytest.raises(FileNotFoundError, match="redacted document"):
        store.write_redacted_audio("c1", b"RIFF", ".wav")  # audio never lands without its document
    store.write_redacted([{"call_id": "c1", "caller_ref": "x", "turns": []}, {"call_id": "c2", "turns": []}])
    with pytest.raises(AccessDenied):
        store.read_redacted_audio("c1")  # redaction writes the zone, it does not read it back
    assert store.write_redacted_audio("c1", b"first", ".flac") == "redacted/audio/c1/audio.flac"
    assert store.write_redacted_audio("c1", b"second", ".wav") == "redacted/audio/c1/audio.wav"
    reader = store.as_purpose("qa-review")
    assert reader.read_redacted_audio("c1") == b"second"  # the older format is replaced, not kept beside
    assert store.redacted_call_ids() == {"c1", "c2"}  # audio folders are not calls
    for bad in ("wav", ".json", "/../x"):
        with pytest.raises(ValueError):
            store.write_redacted_audio("c1", b"x", bad)
    with pytest.raises(ValueError):
        store.write_redacted_audio("../c1", b"x", ".wav")
    eraser = store.as_purpose("erasure")
    deletion = eraser.delete_redacted(["c1", "c2", "c3"])
    assert deletion.call_ids == ["c1", "c2"] and deletion.missing == ["c3"]
    assert sorted(deletion.paths) == ["redacted/audio/c1/audio.wav", "redacted/c1.json", "redacted/c2.json"]
    assert not (tmp_path / "zones/redacted/audio/c1").exists()
    with pytest.raises(FileNotFoundError):
        reader.read_redacted_audio("c1")
    reads = [e for e in audit.entries(action="redacted.read") if (e.detail or {}).get("content") == "audio"]
    assert [(e.call_ids, e.outcome) for e in reads] == [(["c1"], "ok")]
