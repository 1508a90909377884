"""ASR metrics against hand-computed cases: WER, normalisation, digit strings, slices, the plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from training.asr.metrics import (
    SNR_BIN_EDGES_DB,
    UtteranceErrors,
    digit_accuracy,
    digit_string,
    error_arrays,
    normalize_text,
    slice_table,
    snr_bin,
    utterance_errors,
    wer,
    wer_by_slice_plot,
)

REF = "the cat sat on the mat"


@pytest.mark.parametrize(
    ("hypothesis", "errors"),
    [
        ("the cat sat on the mat", 0),
        ("the cat sat on mat", 1),  # deletion
        ("the cat sat on the big mat", 1),  # insertion
        ("the dog sat on the mat", 1),  # substitution
        ("a dog sat on mat today", 4),  # 2 substitutions, 1 deletion, 1 insertion
        ("", 6),  # everything deleted
    ],
)
def test_word_errors_hand_computed(hypothesis: str, errors: int) -> None:
    assert utterance_errors([REF], [hypothesis]) == [UtteranceErrors(errors=errors, ref_words=6)]


@pytest.mark.parametrize(
    ("reference", "hypothesis"),
    [
        ("Mr. Smith called", "mister smith called"),
        ("twenty two pounds", "22 pounds"),
        ("Hello, World!", "hello world"),
        ("four one five nine", "4, 1, 5, 9."),
        ("four one five nine", "4159"),
        ("zero four one five", "0415"),  # Whisper's normaliser alone would drop the zero
        ("um I lost my card", "I lost my card"),
    ],
)
def test_normalisation_makes_equivalent_texts_equal(reference: str, hypothesis: str) -> None:
    assert normalize_text(reference) == normalize_text(hypothesis)
    assert utterance_errors([reference], [hypothesis])[0].errors == 0


def test_numbers_are_scored_digit_by_digit() -> None:
    assert normalize_text("My PIN is 4159.") == "my pin is 4 1 5 9"
    (one_wrong,) = utterance_errors(["four one five nine"], ["4 1 6 9"])
    assert one_wrong == UtteranceErrors(errors=1, ref_words=4)


def test_empty_reference_counts_hypothesis_words_as_errors() -> None:
    assert utterance_errors(["", "uh"], ["hello there", ""]) == [UtteranceErrors(2, 0), UtteranceErrors(0, 0)]
    with pytest.raises(ValueError, match="undefined"):
        wer([UtteranceErrors(2, 0)])


def test_corpus_wer_is_a_ratio_of_sums() -> None:
    errors = [UtteranceErrors(errors=1, ref_words=2), UtteranceErrors(errors=0, ref_words=8)]
    assert wer(errors) == pytest.approx(0.1)  # the mean of per-utterance WERs would be 0.25
    e, r = error_arrays(errors)
    assert e.dtype == np.int64 and r.dtype == np.int64
    assert e.tolist() == [1, 0] and r.tolist() == [2, 8]
    idx = np.array([0, 0, 1])  # one bootstrap resample
    assert e[idx].sum() / r[idx].sum() == pytest.approx(2 / 12)


def test_wer_over_several_utterances() -> None:
    errors = utterance_errors([REF, "good morning"], ["the cat sat on mat", "good morning to you"])
    assert [u.errors for u in errors] == [1, 2]
    assert wer(errors) == pytest.approx(3 / 8)
    with pytest.raises(ValueError):
        utterance_errors([REF], [])


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("four one five", "415"),
        ("4 1 5", "415"),
        ("415", "415"),
        ("4, 1, 5.", "415"),
        ("4-1-5", "415"),
        ("zero", "0"),
        ("zero four one five", "0415"),
        ("0415", "0415"),
        ("four oh five", "405"),
        ("oh four one", "041"),
        ("Oh, I see. Four one five.", "415"),  # an interjection, not a zero
        ("double five seven", "557"),
        ("twenty two", "22"),
        ("My pin is 4 1 5 9.", "4159"),
        ("I lost my card", ""),
        ("one two to three", "123"),  # homophones are not digits
    ],
)
def test_digit_string(text: str, digits: str) -> None:
    assert digit_string(text) == digits


def test_digit_accuracy_fails_a_transposition_and_skips_references_without_digits() -> None:
    references = ["four one five nine", "two two one", "hello there", "7 7"]
    hypotheses = ["4 1 5 9", "2 1 2", "4 4 4", "seven seven"]
    # the third utterance does not count; the transposed second one fails
    assert digit_accuracy(references, hypotheses) == pytest.approx(2 / 3)
    assert digit_accuracy(["1 2 3"], ["1 2 3 4"]) == 0.0  # an extra digit fails too
    with pytest.raises(ValueError, match="no reference"):
        digit_accuracy(["hello"], ["4"])


def test_snr_bins() -> None:
    assert SNR_BIN_EDGES_DB == (10.0, 15.0)
    assert snr_bin(None) == "clean"
    assert snr_bin(5.0) == "<10 dB"
    assert snr_bin(9.99) == "<10 dB"
    assert snr_bin(10.0) == "10-15 dB"
    assert snr_bin(14.9) == "10-15 dB"
    assert snr_bin(15.0) == ">=15 dB"
    assert snr_bin(30.0) == ">=15 dB"


def test_slice_table_counts_and_bins() -> None:
    rows: list[dict[str, Any]] = [
        {"voice": "a", "channel": "clean16k", "snr_db": None},
        {"voice": "a", "channel": "telephone8k", "snr_db": 7.0},
        {"voice": "b", "channel": "telephone8k", "snr_db": 12.0},
        {"voice": "b", "channel": "telephone8k", "snr_db": 18.0},
        {"voice": "b", "channel": "clean16k", "snr_db": None},
    ]
    errors = [
        UtteranceErrors(0, 4),
        UtteranceErrors(2, 4),
        UtteranceErrors(1, 2),
        UtteranceErrors(1, 5),
        UtteranceErrors(0, 0),
    ]
    table = {entry["slice"]: entry for entry in slice_table(rows, errors)}
    assert list(table) == [
        "all",
        "voice=a",
        "voice=b",
        "channel=clean16k",
        "channel=telephone8k",
        "snr=clean",
        "snr=<10 dB",
        "snr=10-15 dB",
        "snr=>=15 dB",
    ]
    assert table["all"] == {"slice": "all", "n": 5, "ref_words": 15, "errors": 4, "wer": pytest.approx(4 / 15)}
    assert (table["voice=a"]["n"], table["voice=a"]["wer"]) == (2, pytest.approx(2 / 8))
    assert (table["channel=telephone8k"]["n"], table["channel=telephone8k"]["errors"]) == (3, 4)
    assert table["channel=telephone8k"]["wer"] == pytest.approx(4 / 11)
    assert table["snr=clean"]["n"] == 2 and table["snr=clean"]["ref_words"] == 4
    assert [table[f"snr={b}"]["n"] for b in ("<10 dB", "10-15 dB", ">=15 dB")] == [1, 1, 1]
    only_empty = slice_table([{"voice": "c"}], [UtteranceErrors(1, 0)], keys=("voice", "channel"))
    assert math.isnan(only_empty[0]["wer"]) and only_empty[-1]["slice"] == "channel=unknown"
    with pytest.raises(ValueError):
        slice_table(rows, errors[:2])


def test_wer_by_slice_plot_writes_a_png(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {"voice": "a", "channel": "clean16k", "snr_db": None},
        {"voice": "b", "channel": "telephone8k", "snr_db": 8},
    ]
    base = slice_table(rows, [UtteranceErrors(2, 4), UtteranceErrors(3, 4)])
    challenger = slice_table(rows, [UtteranceErrors(1, 4), UtteranceErrors(1, 4)])
    path = wer_by_slice_plot({"base": base, "challenger": challenger}, tmp_path / "plots" / "wer.png")
    assert path == tmp_path / "plots" / "wer.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5_000
