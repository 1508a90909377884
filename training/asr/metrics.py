"""ASR evaluation: corpus WER, digit-string accuracy, WER per slice and a plot of it.

Every text is compared after :func:`normalize_text`: Whisper's own English normaliser (what
Whisper papers report WER with) plus one digit rule of ours, because the normaliser alone
scores the same spoken number differently depending on how it was written ("four one five
nine" -> ``4159``, but "4 1 5 9" -> ``4 one 5 9`` and "0415" -> ``415``). Numbers are therefore
scored digit by digit: "four one five nine", "4 1 5 9", "4, 1, 5, 9." and "4159" all become
``4 1 5 9``, so a wrong digit is one substitution and a missing digit one deletion, whatever
style the recogniser writes digits in.

WER is a corpus figure, the sum of word errors over the sum of reference words (not a mean of
per-utterance WERs, which would let short utterances weigh as much as long ones).
:func:`error_arrays` hands the per-utterance counts out as numpy arrays so a paired bootstrap can
resample utterances and recompute the ratio of sums on each resample.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.spoken import DIGIT_WORDS

if TYPE_CHECKING:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

# SNR bins of the slice table: below 10 dB, 10 to 15 dB, 15 dB and above; None (no added noise) is "clean".
SNR_BIN_EDGES_DB: tuple[float, ...] = (10.0, 15.0)
SLICE_KEYS: tuple[str, ...] = ("voice", "channel", "snr_db")

# A word that is a digit on its own: what "oh" must sit next to, to count as zero.
_DIGIT_UNIT = re.compile(r"^(?:\d+|" + "|".join(DIGIT_WORDS) + r"|oh|o|double|triple)$")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# An integer written with leading zeros ("0415", "07"): Whisper's normaliser would drop the zeros.
_LEADING_ZEROS = re.compile(r"(?<![\d.,])0\d+(?![\d]|[.,]\d)")
_NUMBER_TOKEN = re.compile(r"^\d+(?:\.\d+)*$")


@lru_cache(maxsize=1)
def normalizer() -> EnglishTextNormalizer:
    """Whisper's English text normaliser, built once.

    It takes a British-to-American spelling mapping (``english.json`` in OpenAI's repository);
    none ships with transformers and nothing is downloaded offline, so the mapping is empty:
    "colour" and "color" count as different words.
    """
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})


def normalize_text(text: str) -> str:
    """Whisper-normalised text with numbers spelt digit by digit ("My PIN is 4159." -> "my pin is 4 1 5 9").

    Before Whisper's normaliser, integers with leading zeros are split so the zeros survive
    ("0415" -> "0 4 1 5"); after it, "one" (which the normaliser writes for a lone "1") is the
    digit 1 and every number token is split into its digits (decimal points dropped).
    """
    protected = _LEADING_ZEROS.sub(lambda m: " ".join(m.group()), text.lower())
    words: list[str] = []
    for word in normalizer()(protected).split():
        if word == "one":
            word = "1"
        if _NUMBER_TOKEN.match(word):
            words.extend(ch for ch in word if ch.isdigit())
        else:
            words.append(word)
    return " ".join(words)


@dataclass(frozen=True)
class UtteranceErrors:
    """Word errors of one utterance: substitutions + deletions + insertions, and reference words."""

    errors: int
    ref_words: int


def utterance_errors(references: Sequence[str], hypotheses: Sequence[str]) -> list[UtteranceErrors]:
    """Per-utterance word errors after :func:`normalize_text` (jiwer alignment).

    An utterance whose normalised reference is empty has ``ref_words`` 0 and as many errors as
    the hypothesis has words (all insertions).
    """
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    out: list[UtteranceErrors] = []
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        ref, hyp = normalize_text(reference), normalize_text(hypothesis)
        if not ref:
            out.append(UtteranceErrors(errors=len(hyp.split()), ref_words=0))
            continue
        if not hyp:
            n = len(ref.split())
            out.append(UtteranceErrors(errors=n, ref_words=n))
            continue
        result = jiwer.process_words(ref, hyp)
        out.append(
            UtteranceErrors(
                errors=result.substitutions + result.deletions + result.insertions,
                ref_words=result.substitutions + result.deletions + result.hits,
            )
        )
    return out


def error_arrays(errors: Sequence[UtteranceErrors]) -> tuple[np.ndarray, np.ndarray]:
    """Per-utterance (errors, ref_words) as int64 arrays, aligned with the input order.

    For a paired bootstrap: resample indices ``idx`` and take ``e[idx].sum() / r[idx].sum()``.
    """
    e = np.fromiter((u.errors for u in errors), dtype=np.int64, count=len(errors))
    r = np.fromiter((u.ref_words for u in errors), dtype=np.int64, count=len(errors))
    return e, r


def wer(errors: Sequence[UtteranceErrors]) -> float:
    """Corpus WER: total errors / total reference words. Raises ValueError with no reference words."""
    e, r = error_arrays(errors)
    total = int(r.sum())
    if total == 0:
        raise ValueError("no reference words: WER is undefined")
    return float(e.sum()) / total


# -- digits -----------------------------------------------------------------------------------
def _drop_interjection_oh(text: str) -> str:
    """Remove "oh"/"o" unless a neighbouring word is a digit unit (so "four oh five" keeps its zero)."""
    words = _WORD.findall(text.lower())
    kept = []
    for i, word in enumerate(words):
        if word in ("oh", "o"):
            neighbours = words[max(i - 1, 0) : i] + words[i + 1 : i + 2]
            if not any(_DIGIT_UNIT.match(n) and n not in ("oh", "o") for n in neighbours):
                continue
        kept.append(word)
    return " ".join(kept)


def digit_string(text: str) -> str:
    """The digits a text says, in order: "four oh five", "4 0 5", "405", "4-0-5" all give "405".

    Digits are read off :func:`normalize_text`, so number words count ("twenty two" -> "22",
    "double five" -> "55", a lone "one" -> "1", "zero" -> "0"). "oh"/"o" is 0 only next to another
    digit word or digit ("four oh five"); elsewhere ("oh, I see") it is an interjection and ignored.
    Homophones are not digits ("to", "for" stay words).
    """
    return "".join(ch for ch in normalize_text(_drop_interjection_oh(text)) if ch.isdigit())


def digits_correct(references: Sequence[str], hypotheses: Sequence[str]) -> np.ndarray:
    """Per utterance whose reference says digits: 1.0 when the digit string is exactly right, else 0.0.

    One wrong, missing, extra or transposed digit fails the utterance (the gate bootstraps these).
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    return np.asarray(
        [ref_digits == digit_string(hyp) for ref, hyp in zip(references, hypotheses, strict=True)
         if (ref_digits := digit_string(ref))],
        dtype=float,
    )


def digit_accuracy(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Share of utterances whose digit string equals the reference's exactly (see :func:`digits_correct`).

    Only utterances whose reference says digits count. Raises ValueError when no reference has digits.
    """
    correct = digits_correct(references, hypotheses)
    if correct.size == 0:
        raise ValueError("no reference says any digits")
    return float(correct.mean())


# -- slices -----------------------------------------------------------------------------------
def snr_bin(snr_db: float | None) -> str:
    """The SNR bin label of an utterance: "clean" for None, else a bin of :data:`SNR_BIN_EDGES_DB`."""
    if snr_db is None:
        return "clean"
    edges = SNR_BIN_EDGES_DB
    if snr_db < edges[0]:
        return f"<{edges[0]:g} dB"
    for low, high in zip(edges, edges[1:], strict=False):
        if snr_db < high:
            return f"{low:g}-{high:g} dB"
    return f">={edges[-1]:g} dB"


def _snr_order() -> list[str]:
    return ["clean", snr_bin(-math.inf), *(snr_bin(edge) for edge in SNR_BIN_EDGES_DB)]


def _slice_value(row: Mapping[str, Any], key: str) -> str:
    if key == "snr_db":
        value = row.get("snr_db")
        return snr_bin(None if value is None else float(value))
    value = row.get(key)
    return "unknown" if value is None else str(value)


def _slice_row(name: str, members: Sequence[UtteranceErrors]) -> dict[str, Any]:
    e, r = error_arrays(members)
    ref_words, errors = int(r.sum()), int(e.sum())
    return {
        "slice": name,
        "n": len(members),
        "ref_words": ref_words,
        "errors": errors,
        "wer": errors / ref_words if ref_words else math.nan,
    }


def slice_table(
    rows: Sequence[Mapping[str, Any]], errors: Sequence[UtteranceErrors], keys: Sequence[str] = SLICE_KEYS
) -> list[dict[str, Any]]:
    """WER per slice: "all", then ``key=value`` for every value of each key (rows align with ``errors``).

    Rows carry ``voice``, ``channel`` (clean16k / telephone8k) and ``snr_db`` (None = no added
    noise; binned with :func:`snr_bin`, the slice is named ``snr=<bin>``); a missing key reads
    "unknown". Each entry: {slice, n, ref_words, errors, wer}, wer NaN when a slice has no
    reference words. Values are sorted, SNR bins from clean to the highest bin.
    """
    if len(rows) != len(errors):
        raise ValueError(f"{len(rows)} rows but {len(errors)} error counts")
    table = [_slice_row("all", list(errors))]
    for key in keys:
        groups: dict[str, list[UtteranceErrors]] = {}
        for row, err in zip(rows, errors, strict=True):
            groups.setdefault(_slice_value(row, key), []).append(err)
        if key == "snr_db":
            order = _snr_order()
            values = sorted(groups, key=lambda v: order.index(v) if v in order else len(order))
            label = "snr"
        else:
            values, label = sorted(groups), key
        table.extend(_slice_row(f"{label}={value}", groups[value]) for value in values)
    return table


def wer_by_slice_plot(tables: Mapping[str, Sequence[Mapping[str, Any]]], path: Path) -> Path:
    """Grouped horizontal bars of WER per slice, one colour per model (e.g. {"base": ..., "challenger": ...}).

    Slices follow the first table's order (others' extra slices go last); labels carry n. Writes
    a PNG to ``path`` and returns it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not tables:
        raise ValueError("no tables to plot")
    slices: list[str] = []
    counts: dict[str, int] = {}
    for table in tables.values():
        for entry in table:
            if entry["slice"] not in counts:
                slices.append(entry["slice"])
                counts[entry["slice"]] = int(entry["n"])
    models = list(tables)
    height = 0.8 / len(models)
    y = np.arange(len(slices), dtype=float)
    fig, ax = plt.subplots(figsize=(8.0, max(2.5, 0.45 * len(slices) * max(1.0, len(models) / 2) + 1.2)))
    for i, model in enumerate(models):
        by_slice = {entry["slice"]: float(entry["wer"]) for entry in tables[model]}
        values = np.array([by_slice.get(s, math.nan) for s in slices])
        positions = y - 0.4 + height * (i + 0.5)
        bars = ax.barh(positions, np.nan_to_num(values), height=height, label=model)
        for bar, value in zip(bars, values, strict=True):
            if not math.isnan(value):
                ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:.3f}", va="center", fontsize=7)
    ax.set_yticks(y, [f"{s} (n={counts[s]})" for s in slices], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("WER (errors / reference words)")
    ax.set_title("ASR word error rate by slice")
    ax.legend(loc="best", fontsize=8)
    ax.margins(x=0.15)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
    return path
