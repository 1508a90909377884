"""Is the challenger significantly worse on any slice? One test per slice, Holm-corrected together.

A challenger can win on average and lose on one accent over the phone. Every slice of the golden
set is tested: ASR word errors per voice, channel and SNR bin, and intent accuracy per intent group
(training/intent_groups.yaml: single intents are too small a slice for any test to block).
The null hypothesis of each test is "the challenger is not worse on this slice". Each test is
one-sided and exact or resampled, paired utterance by utterance:

- **intent** (right or wrong per utterance): McNemar's exact test on the discordant utterances,
  P(X >= utterances only the champion got right), X ~ Binomial(discordant, 1/2);
- **ASR** (word errors per utterance): a paired sign-flip permutation test of the summed error
  difference (challenger minus champion). Under the null, each utterance's difference is as likely
  to be negated.

Holm's step-down procedure keeps the chance of blocking any not-worse slice at most ``alpha``
(1 - ``gate.confidence``) across all tested slices. A slice with fewer than
``gate.min_slice_utterances`` utterances is not tested: it is reported as ``untested`` with its
size, never counted as passed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORSE, NOT_WORSE, UNTESTED = "worse", "not worse", "untested"


@dataclass(frozen=True)
class SliceTest:
    name: str  # "intent_group[top_up]", "asr_wer[voice=en-sc]"
    n: int  # utterances in the slice
    challenger: float  # accuracy or WER on the slice
    champion: float
    p_value: float | None = None  # one-sided: the challenger is worse; None: untested
    threshold: float | None = None  # Holm's threshold for this p-value's rank
    status: str = UNTESTED


def holm(p_values: list[float], alpha: float) -> list[tuple[bool, float]]:
    """Holm's step-down procedure: (rejected, threshold) per p-value, in input order.

    The k-th smallest p-value (k from 0) is compared with alpha / (m - k); once one is not
    rejected, no larger one is.
    """
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    out: list[tuple[bool, float]] = [(False, alpha)] * len(p_values)
    still = True
    for rank, index in enumerate(order):
        threshold = alpha / (len(p_values) - rank)
        still = still and p_values[index] <= threshold
        out[index] = (still, threshold)
    return out


def mcnemar_worse(champion_correct: np.ndarray, challenger_correct: np.ndarray) -> float:
    """One-sided exact McNemar p-value that the challenger is right less often than the champion."""
    from scipy.stats import binomtest

    champion_only = int(np.sum((champion_correct == 1) & (challenger_correct == 0)))
    discordant = champion_only + int(np.sum((champion_correct == 0) & (challenger_correct == 1)))
    return float(binomtest(champion_only, discordant, 0.5, alternative="greater").pvalue) if discordant else 1.0


def sign_flip_worse(differences: np.ndarray, n_resamples: int, seed: int) -> float:
    """One-sided paired permutation p-value that the summed differences (challenger - champion) are above 0."""
    diff = np.asarray(differences, dtype=float)
    observed = diff.sum()
    if not np.any(diff):
        return 1.0
    rng = np.random.default_rng(seed)
    at_least = 0
    chunk = max(1, 2_000_000 // diff.size)
    for start in range(0, n_resamples, chunk):
        signs = rng.choice((-1.0, 1.0), size=(min(chunk, n_resamples - start), diff.size))
        at_least += int(np.sum(signs @ diff >= observed - 1e-9))
    return (1 + at_least) / (1 + n_resamples)


def judge(tests: list[SliceTest], alpha: float) -> list[SliceTest]:
    """Holm over the tested slices; each gets its threshold and status, the untested keep theirs."""
    tested = [t for t in tests if t.p_value is not None]
    verdicts = dict(zip((t.name for t in tested), holm([t.p_value for t in tested if t.p_value is not None], alpha),
                        strict=True))
    return [SliceTest(t.name, t.n, t.challenger, t.champion, t.p_value, verdicts[t.name][1],
                      WORSE if verdicts[t.name][0] else NOT_WORSE) if t.name in verdicts else t for t in tests]
