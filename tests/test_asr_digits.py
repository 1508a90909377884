"""The digit corpus and its held-out evaluation set, built with the real FSDD files, espeak-ng and sox."""

from __future__ import annotations

import numpy as np
import pytest

from core.corpus import fsdd_path, sample_dir
from training.asr.digits import (
    CARRIERS,
    EVAL_SPEAKERS,
    TELEPHONE_SNR_DB,
    TRAIN_SPEAKERS,
    TRAIN_TAKES,
    DigitUtterance,
    digit_corpus,
    digit_eval_set,
    fsdd_strings,
    synthetic_strings,
    target_text,
)
from training.asr.metrics import digit_string
from voiceloop.simulate.plan import FSDD_TAKES, GOLDEN_VOICE, TRAIN_VOICES


def _check_audio(u: DigitUtterance) -> None:
    assert u.audio.dtype == np.float32 and u.audio.ndim == 1
    assert 0.5 < u.duration_s < 12.0
    assert float(np.abs(u.audio).max()) <= 1.0
    assert float(np.abs(u.audio).max()) > 0.05  # it says something
    assert np.isfinite(u.audio).all()


def _take(file: str) -> int:
    return int(file.rsplit("_", 1)[1])


@pytest.fixture(scope="module")
def corpus() -> list[DigitUtterance]:
    return digit_corpus(n_fsdd=8, n_synthetic=6, seed=1)


@pytest.fixture(scope="module")
def eval_set() -> list[DigitUtterance]:
    return digit_eval_set(8, seed=1)


def test_eval_set_is_deterministic_for_a_seed(eval_set: list[DigitUtterance]) -> None:
    again = digit_eval_set(8, seed=1)
    assert [u.text for u in again] == [u.text for u in eval_set]
    assert [u.files for u in again] == [u.files for u in eval_set]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(again, eval_set, strict=True))
    other = digit_eval_set(8, seed=2)
    assert [u.files for u in other] != [u.files for u in eval_set]


def test_synthetic_strings_are_deterministic() -> None:
    first = synthetic_strings(TRAIN_VOICES[:2], 3, seed=5)
    second = synthetic_strings(TRAIN_VOICES[:2], 3, seed=5)
    assert [u.text for u in first] == [u.text for u in second]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(first, second, strict=True))


def test_corpus_and_eval_set_are_disjoint(corpus: list[DigitUtterance], eval_set: list[DigitUtterance]) -> None:
    assert not set(TRAIN_SPEAKERS) & set(EVAL_SPEAKERS)
    real = [u for u in corpus if u.source == "fsdd"]
    synthetic = [u for u in corpus if u.source == "synthetic"]
    assert len(real) == 8 and len(synthetic) == 6
    assert {u.speaker for u in real} <= set(TRAIN_SPEAKERS)
    assert {_take(f) for u in real for f in u.files} <= set(TRAIN_TAKES)
    assert not set(TRAIN_TAKES) & set(FSDD_TAKES["train"])  # not the takes of simulated train calls
    assert {u.speaker for u in synthetic} <= set(TRAIN_VOICES)
    assert GOLDEN_VOICE not in {u.speaker for u in corpus}
    assert {u.speaker for u in eval_set} == set(EVAL_SPEAKERS)
    assert not {f for u in corpus for f in u.files} & {f for u in eval_set for f in u.files}


def test_audio_is_16k_float32_in_range(corpus: list[DigitUtterance], eval_set: list[DigitUtterance]) -> None:
    for u in corpus + eval_set:
        _check_audio(u)
        assert u.channel in ("clean16k", "telephone8k")
        assert set(u.row()) >= {"voice", "channel", "snr_db"}


def test_reference_digits_match_the_files_used(eval_set: list[DigitUtterance]) -> None:
    folder = sample_dir()
    for u in eval_set:
        assert u.source == "fsdd"
        assert 3 <= len(u.digits) <= 8 and u.digits.isdigit()
        assert "".join(f.split("_")[0] for f in u.files) == u.digits
        assert all(f.split("_")[1] == u.speaker for f in u.files)  # one speaker per string
        assert all(fsdd_path(folder, d, u.speaker, _take(f)).is_file() for d, f in zip(u.digits, u.files, strict=True))
        assert u.text == " ".join(u.digits) == target_text(u.digits)
        assert digit_string(u.text) == digit_string(u.spoken) == u.digits


def test_telephone_channel_is_band_limited() -> None:
    (line,) = fsdd_strings(TRAIN_SPEAKERS, TRAIN_TAKES, 1, seed=0, telephone_share=1.0)
    (clean,) = fsdd_strings(TRAIN_SPEAKERS, TRAIN_TAKES, 1, seed=0, telephone_share=0.0, noise_share=0.0)
    assert line.channel == "telephone8k" and line.snr_db is not None
    assert TELEPHONE_SNR_DB[0] <= line.snr_db <= TELEPHONE_SNR_DB[1]
    assert clean.channel == "clean16k" and clean.snr_db is None
    for u in (line, clean):
        _check_audio(u)
    spectrum = np.abs(np.fft.rfft(line.audio)) ** 2
    freqs = np.fft.rfftfreq(line.audio.size, 1 / 16_000)
    assert spectrum[freqs > 4_100].sum() < 0.01 * spectrum.sum()  # 8 kHz line: nothing above 4 kHz


def test_synthetic_strings_say_their_target() -> None:
    carried = synthetic_strings(TRAIN_VOICES[:2], 3, seed=2, telephone_share=0.0, carrier_share=1.0)
    for u in carried:
        _check_audio(u)
        assert u.source == "synthetic" and u.channel == "clean16k"
        carrier = next(c for c in CARRIERS if u.spoken.startswith(c))
        assert u.text == target_text(u.digits, carrier) and u.text.endswith(".")
        assert u.text.lower().startswith(carrier)
        assert digit_string(u.text) == digit_string(u.spoken) == u.digits
    bare = synthetic_strings(TRAIN_VOICES[2:4], 3, seed=2, telephone_share=1.0, carrier_share=0.0)
    for u in bare:
        _check_audio(u)
        assert u.channel == "telephone8k" and u.text == " ".join(u.digits)


def test_missing_takes_are_refused() -> None:
    with pytest.raises(ValueError, match="lacks takes"):
        fsdd_strings(TRAIN_SPEAKERS, (0, 99), 1)
    with pytest.raises(ValueError, match="length_range"):
        fsdd_strings(TRAIN_SPEAKERS, TRAIN_TAKES, 1, length_range=(5, 2))
