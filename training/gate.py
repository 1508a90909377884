"""The promotion gate: one documented decision rule over per-utterance evidence.

Decision rule
-------------
The challenger and the champion score the same golden set, utterance by utterance. For each
metric the gate computes the paired difference per utterance (intent correctness, ASR word
errors, whole digit strings right) and a paired bootstrap confidence interval of the change,
signed so that positive means the challenger is worse (for WER, a ratio of sums, each resample
recomputes errors / reference words).

* **Non-inferiority** (a champion exists): pass when the interval's upper bound is below
  ``margin``; i.e. we are confident the challenger is at most ``margin`` worse. Fail when the whole
  interval lies above the margin. An interval across the margin fails when the golden set is large
  enough for the margin, and is **underpowered** when it is not (below).
* **Floor** (no champion yet): pass when the challenger's point estimate is at least ``floor``.

Power (issue 19; training/power.py): margins are capped at 0.02 (``core.settings.MAX_MARGIN``), and each
non-inferiority criterion reports, from its per-unit differences, the discordance (share of units the
two models disagree on), the smallest difference it detects with probability ``power`` at one-sided
alpha (1 - ``confidence``) / 2, and the units its margin needs for that power (about
discordance x 10.5 / margin^2 for right/wrong units). An inconclusive criterion under that size is
"underpowered": neither passed nor failed. When no criterion failed and one is underpowered, the
verdict is ``underpowered``: the champion stays, the reasons name the figures, and promotion is a
person's call (``voiceloop promote --bundle N --reason ...``, audited). No units differing needs no
units; the floor rule has no power figures. The golden-set size to aim for: benchmarks/README.md#gate-power.

ASR adds four criteria when the run trained an ASR challenger: golden WER, WER in every slice
(voice, channel, SNR bin) with enough utterances (every slice is reported in ``asr_slices``),
digit-string accuracy on a real speaker training never heard, and word errors on a handful of
real clean recordings. That last set is too small for an interval (six clips, 86 words), so its
rule is a count: the challenger may make at most ``clean_speech_max_extra_errors`` more word
errors in total than the champion. The ASR champion is the champion
bundle's ASR, or the base model while no bundle has one.

Slices, tested for harm (``slices_holm``, training/slice_tests.py): on every slice (intent
accuracy per intent group, ASR WER per voice, channel and SNR bin) a one-sided paired test asks whether
the challenger is significantly worse; the p-values are Holm-corrected together at
``slice_alpha``, and any rejected slice blocks. A slice under ``min_slice_utterances`` is not
tested and is listed as untested (``slice_tests``), never passed. This is beside the slice
non-inferiority rule above: that one needs evidence that a large slice is not much worse, this
one blocks on evidence that any slice is worse at all. Intents are tested in about ten groups
(training/intent_groups.yaml), not one by one: at 11 turns per intent no per-intent test could block.
Per-intent changes are reported with their intervals (``per_intent``), never deciding.

End to end (``e2e_intent_accuracy``): what the bot understands from what it hears. Each bundle's
intent model reads its own ASR's transcripts of the golden audio, redacted as serving redacts
them; non-inferior within ``e2e_margin`` (reported only, in ``statistics``, while no champion exists).

Production (``production_intent_accuracy``): intent accuracy on the production golden set, QA-reviewed
production turns of the random floor (reviewed blind, callers never trained on: training/reviewed_labels.py),
beside the synthetic golden set and under the same margin and power rule; its channels join the slice
tests as ``production[channel=...]``. While the set is small it is "underpowered": a person decides.

Latency (``serving_latency``): the challenger bundle's serving path (transcribe, redact,
understand: what ``POST /v1/process`` runs) is timed on ``latency_utterances`` golden turns at
decision time, one after another; its p95 must be within ``latency_budget_ms``.

Reported beside the criteria (``statistics``), never deciding: McNemar's exact test on the intent
model's discordant utterances (right for one model, wrong for the other).

The challenger is promoted only when every criterion passes (criteria named in ``report_only`` are
recorded but do not decide). Criteria are small functions
from :class:`GateEvidence` to :class:`CriterionResult`; later metrics (WER, slices, latency)
are added to :data:`CRITERIA` without touching the rule that combines them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from core.settings import GateConfig
from training.evaluate import correct
from training.intent_groups import group_of
from training.power import Power, paired_change_interval, paired_power
from training.slice_tests import UNTESTED, WORSE, SliceTest, judge, mcnemar_worse, sign_flip_worse

T = TypeVar("T")

PASSED, FAILED, UNDERPOWERED = "passed", "failed", "underpowered"  # a criterion's status
PROMOTE, REJECT = "promote", "reject"  # the decision's verdict, or UNDERPOWERED
MANUAL_PROMOTION = (f"{UNDERPOWERED}: the golden set is too small for the margins named above, so the champion "
                    "stays; grow the golden set to the size needed, or promote by hand with "
                    "`voiceloop promote --bundle N --reason ...`")


@dataclass
class AsrEvidence:
    """Per-utterance ASR word errors of both models on the same golden turns (lower is better).

    The champion is the serving ASR: the champion bundle's, or the base model while no bundle has one.
    """

    ref_words: np.ndarray
    challenger_errors: np.ndarray
    champion_errors: np.ndarray
    slices: list[dict[str, str]]  # per utterance: slice key -> value ("channel" -> "telephone8k")
    challenger_digits_correct: np.ndarray  # per digit-set utterance: 1.0 if the whole digit string is right
    champion_digits_correct: np.ndarray
    champion_label: str = "base"
    # per clean real recording (training/asr/clean_speech.py): word errors of each model
    challenger_clean_errors: np.ndarray = field(default_factory=lambda: np.zeros(0))
    champion_clean_errors: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class IntentPairs:
    """Intent predictions of both bundles on the same labelled utterances (champion: None when there is none)."""

    labels: list[str]
    challenger: list[str]
    champion: list[str] | None = None
    slices: list[str] | None = None  # each utterance's slice (e.g. its channel), for the per-slice tests

    def accuracy(self, predictions: list[str]) -> np.ndarray:
        return correct(predictions, self.labels)


@dataclass
class GateEvidence:
    """Per-utterance results on the golden set, aligned by position."""

    labels: list[str]
    challenger_predictions: list[str]
    champion_predictions: list[str] | None = None
    champion_version: str | None = None
    asr: AsrEvidence | None = None
    latency_s: np.ndarray | None = None  # the challenger bundle's serving path, seconds per golden utterance
    end_to_end: IntentPairs | None = None  # intent read from each bundle's own ASR transcripts of the golden audio
    production: IntentPairs | None = None  # the production golden set: QA-reviewed production turns, reviewed blind
    _computed: dict[tuple[str, str], Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def correct(self, predictions: list[str]) -> np.ndarray:
        return correct(predictions, self.labels)

    def once(self, name: str, config: GateConfig, compute: Callable[[], T]) -> T:
        """``compute()`` once per evidence and configuration: a criterion and the decision record share it."""
        key = (name, config.model_dump_json())
        if key not in self._computed:
            self._computed[key] = compute()
        return self._computed[key]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class CriterionResult:
    name: str
    passed: bool
    rule: str
    challenger: float
    champion: float | None = None
    delta: float | None = None  # champion - challenger (positive = challenger worse)
    interval: tuple[float, float] | None = None
    threshold: float | None = None
    power: Power | None = None  # non-inferiority: what this golden set can detect (training/power.py)
    status: str = ""  # passed, failed or underpowered (neither: too few units to tell); "" = from ``passed``
    decides: bool = True  # False: named in gate.report_only, recorded but not deciding

    def __post_init__(self) -> None:
        if not self.status:
            object.__setattr__(self, "status", PASSED if self.passed else FAILED)


@dataclass
class GateDecision:
    promote: bool
    criteria: list[CriterionResult]
    per_intent: list[dict[str, Any]] = field(default_factory=list)
    asr_slices: list[CriterionResult] = field(default_factory=list)  # every slice, reported even when small
    slice_tests: list[SliceTest] = field(default_factory=list)  # every slice's test (or "untested")
    config: dict[str, Any] = field(default_factory=dict)
    n: int = 0
    champion_version: str | None = None
    statistics: dict[str, Any] = field(default_factory=dict)  # reported, not criteria (McNemar for intent)

    @property
    def deciding(self) -> list[CriterionResult]:
        return [c for c in self.criteria if c.decides]

    @property
    def verdict(self) -> str:
        """promote; underpowered when nothing failed but the golden set was too small to tell; else reject."""
        if self.promote:
            return PROMOTE
        statuses = {c.status for c in self.deciding}
        return UNDERPOWERED if UNDERPOWERED in statuses and FAILED not in statuses else REJECT

    @property
    def reasons(self) -> list[str]:
        why = [f"{c.name}: {c.rule}" for c in self.deciding if not c.passed]
        return [*why, MANUAL_PROMOTION] if self.verdict == UNDERPOWERED else why

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = self.reasons
        out["verdict"] = self.verdict
        out["underpowered"] = [c.name for c in self.deciding if c.status == UNDERPOWERED]
        out["report_only"] = [c.name for c in self.criteria if not c.decides]
        return out


def _bootstrap_interval(
    size: int, statistic: Callable[[np.ndarray], np.ndarray], n_resamples: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over resamples of ``size`` utterances with replacement.

    ``statistic`` maps a [resamples, size] index matrix to one value per resample; resamples are
    drawn in chunks so memory stays bounded for large golden sets.
    """
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // size)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        values[start:stop] = statistic(rng.integers(0, size, size=(stop - start, size)))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap(
    champion: np.ndarray, challenger: np.ndarray, n_resamples: int, confidence: float, seed: int
) -> tuple[float, float, float]:
    """Mean of ``champion - challenger`` and its percentile interval, resampling utterances."""
    diff = np.asarray(champion, dtype=float) - np.asarray(challenger, dtype=float)
    if diff.size == 0:
        raise ValueError("the golden set is empty: nothing to compare")
    low, high = _bootstrap_interval(diff.size, lambda idx: diff[idx].mean(axis=1), n_resamples, confidence, seed)
    return float(diff.mean()), low, high


def paired_bootstrap_wer(
    champion_errors: np.ndarray, challenger_errors: np.ndarray, ref_words: np.ndarray, n_resamples: int,
    confidence: float, seed: int,
) -> tuple[float, float, float]:
    """Challenger WER - champion WER (positive = challenger worse) and its interval, resampling utterances.

    WER is a ratio of sums (errors / reference words), so each resample recomputes both sums.
    """
    diff = np.asarray(challenger_errors, dtype=float) - np.asarray(champion_errors, dtype=float)
    ref = np.asarray(ref_words, dtype=float)
    if diff.size == 0 or ref.sum() == 0:
        raise ValueError("no reference words: nothing to compare")

    def wer_change(idx: np.ndarray) -> np.ndarray:
        return diff[idx].sum(axis=1) / np.maximum(ref[idx].sum(axis=1), 1.0)  # type: ignore[no-any-return]

    low, high = _bootstrap_interval(diff.size, wer_change, n_resamples, confidence, seed)
    return float(diff.sum() / ref.sum()), low, high


def non_inferiority_status(interval: tuple[float, float], margin: float, power: Power) -> str:
    """Passed below the margin, failed above it; an interval across it fails only where the golden set has the
    power for the margin, and is underpowered where it has not."""
    low, high = interval
    if high < margin:
        return PASSED
    return FAILED if low >= margin or not power.underpowered else UNDERPOWERED


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of the challenger with the champion: the change, its interval, per-unit differences.

    ``change``: positive = the challenger worse; ``differences``: one per unit, on the change's scale, for power.
    """

    change: float
    interval: tuple[float, float]
    differences: np.ndarray
    challenger: float
    champion: float
    of: str = "champion - challenger"  # what the change is, in words
    unit: float = 1.0  # one unit's difference on the change's scale (a right/wrong flip; one word error in WER)

    @classmethod
    def of_accuracy(cls, champion: np.ndarray, challenger: np.ndarray, config: GateConfig) -> Comparison:
        """Right or wrong per unit (intent, whole digit strings): champion - challenger accuracy.

        The interval is the wider of the paired bootstrap's and Newcombe's: with few or no discordant units the
        bootstrap collapses to [0, 0] (two models that both got 2 turns wrong are not shown to be equal),
        Newcombe's interval does not."""
        delta, low, high = paired_bootstrap(champion, challenger, config.n_bootstrap, config.confidence, config.seed)
        gain_low, gain_high = paired_change_interval(np.asarray(champion), np.asarray(challenger), config.confidence)
        return cls(delta, (min(low, -gain_high), max(high, -gain_low)),  # the change is minus the gain
                   np.asarray(champion, dtype=float) - np.asarray(challenger, dtype=float),
                   float(np.mean(challenger)), float(np.mean(champion)))


def non_inferior(name: str, statement: str, comparison: Comparison, margin: float,
                 config: GateConfig) -> CriterionResult:
    """The non-inferiority rule with its power figures; ``statement`` opens the rule's text."""
    low, high = comparison.interval
    power = paired_power(comparison.differences, margin, config.confidence, config.power, comparison.unit)
    status = non_inferiority_status(comparison.interval, margin, power)
    rule = (f"{statement}: upper bound of the {config.confidence:.0%} interval of {comparison.of} "
            f"({high:+.4f}) must be < margin {margin:.4f}")
    return CriterionResult(
        name=name,
        passed=status == PASSED,
        rule=rule + (f"; {UNDERPOWERED}: {power.describe()}" if status == UNDERPOWERED else ""),
        challenger=comparison.challenger,
        champion=comparison.champion,
        delta=comparison.change,
        interval=(low, high),
        threshold=margin,
        power=power,
        status=status,
    )


def intent_accuracy(evidence: GateEvidence, config: GateConfig) -> CriterionResult:
    challenger = evidence.correct(evidence.challenger_predictions)
    if evidence.champion_predictions is None:
        value = float(challenger.mean())
        return CriterionResult(
            name="intent_accuracy",
            passed=value >= config.floor,
            rule=f"no champion: accuracy {value:.4f} must be >= floor {config.floor:.4f}",
            challenger=value,
            threshold=config.floor,
        )
    champion = evidence.correct(evidence.champion_predictions)
    return non_inferior("intent_accuracy", "non-inferiority", Comparison.of_accuracy(champion, challenger, config),
                        config.margin, config)


def _wer_result(name: str, asr: AsrEvidence, mask: np.ndarray, margin: float, config: GateConfig) -> CriterionResult:
    """WER non-inferiority; for power, each utterance's error difference over the mean reference words (their
    mean is the WER change)."""
    ref, chal, champ = asr.ref_words[mask], asr.challenger_errors[mask], asr.champion_errors[mask]
    delta, low, high = paired_bootstrap_wer(champ, chal, ref, config.n_bootstrap, config.confidence, config.seed)
    words = max(float(ref.sum()), 1.0)
    comparison = Comparison(delta, (low, high), (chal - champ) * ref.size / words, float(chal.sum() / words),
                            float(champ.sum() / words), "challenger - champion WER", unit=ref.size / words)
    return non_inferior(name, f"non-inferiority vs {asr.champion_label}", comparison, margin, config)


def asr_wer(evidence: GateEvidence, config: GateConfig) -> CriterionResult | None:
    """Golden WER of the ASR challenger: non-inferior to the serving ASR (paired bootstrap)."""
    if evidence.asr is None:
        return None
    return _wer_result("asr_wer", evidence.asr, np.ones(evidence.asr.ref_words.size, dtype=bool),
                       config.wer_margin, config)


def _asr_slice_masks(asr: AsrEvidence) -> list[tuple[str, np.ndarray]]:
    """("asr_wer[key=value]", utterance mask) of every slice (voice, channel, SNR bin) with reference words."""
    out = []
    for key in sorted({k for row in asr.slices for k in row}):
        values = np.asarray([row.get(key, "unknown") for row in asr.slices])
        out += [(f"asr_wer[{key}={value}]", values == value) for value in sorted(set(values))
                if asr.ref_words[values == value].sum() > 0]
    return out


def asr_slice_results(evidence: GateEvidence, config: GateConfig) -> list[CriterionResult]:
    """The WER rule on every slice (voice, channel, SNR bin) with reference words, small ones included."""
    asr = evidence.asr
    if asr is None:
        return []
    return evidence.once("asr_slice_results", config, lambda: [
        _wer_result(name, asr, mask, config.slice_wer_margin, config) for name, mask in _asr_slice_masks(asr)])


def asr_wer_slices(evidence: GateEvidence, config: GateConfig) -> CriterionResult | None:
    """Every slice with at least ``min_slice_utterances`` must pass the WER rule with ``slice_wer_margin``."""
    if evidence.asr is None:
        return None
    judged = [r for r in asr_slice_results(evidence, config)
              if _slice_size(evidence.asr, r.name) >= config.min_slice_utterances]
    failed = [r.name for r in judged if r.status == FAILED]
    weak = [f"{r.name} (n {r.power.n} < {r.power.n_needed})" for r in judged
            if r.status == UNDERPOWERED and r.power is not None]
    worst = max((r.interval[1] for r in judged if r.interval), default=0.0)
    return CriterionResult(
        name="asr_wer_slices",
        passed=not failed and not weak,
        rule=(f"every slice with >= {config.min_slice_utterances} utterances non-inferior within "
              f"{config.slice_wer_margin:.4f}" + (f"; failed: {', '.join(failed)}" if failed else "")
              + (f"; {UNDERPOWERED}: {', '.join(weak)}" if weak else "")),
        challenger=float(sum(r.passed for r in judged)),
        champion=float(len(judged)),
        delta=worst,
        threshold=config.slice_wer_margin,
        status=FAILED if failed else UNDERPOWERED if weak else PASSED,
    )


def _slice_size(asr: AsrEvidence, name: str) -> int:
    key, value = name[len("asr_wer[") : -1].split("=", 1)
    return sum(1 for row in asr.slices if row.get(key, "unknown") == value)


def slice_tests(evidence: GateEvidence, config: GateConfig) -> list[SliceTest]:
    """Every slice tested for "significantly worse" (training/slice_tests.py): intent accuracy per intent
    (when a champion exists) and ASR WER per voice, channel and SNR bin; small slices untested."""
    return evidence.once("slice_tests", config, lambda: _slice_tests(evidence, config))


def _slice_tests(evidence: GateEvidence, config: GateConfig) -> list[SliceTest]:
    tests = []
    if evidence.champion_predictions is not None:
        groups = np.asarray([group_of(intent) for intent in evidence.labels])
        champion = evidence.correct(evidence.champion_predictions)
        challenger = evidence.correct(evidence.challenger_predictions)
        for group in sorted(set(groups)):
            mask = groups == group
            tested = int(mask.sum()) >= config.min_slice_utterances
            tests.append(SliceTest(f"intent_group[{group}]", int(mask.sum()), float(challenger[mask].mean()),
                                   float(champion[mask].mean()),
                                   mcnemar_worse(champion[mask], challenger[mask]) if tested else None))
    tests += _production_slice_tests(evidence.production, config)
    if evidence.asr is not None:
        asr = evidence.asr
        for name, mask in _asr_slice_masks(asr):
            words = max(float(asr.ref_words[mask].sum()), 1.0)
            difference = asr.challenger_errors[mask] - asr.champion_errors[mask]
            tested = int(mask.sum()) >= config.min_slice_utterances
            tests.append(SliceTest(name, int(mask.sum()), float(asr.challenger_errors[mask].sum() / words),
                                   float(asr.champion_errors[mask].sum() / words),
                                   sign_flip_worse(difference, config.n_bootstrap, config.seed) if tested else None))
    return judge(tests, config.slice_alpha)


def _production_slice_tests(pairs: IntentPairs | None, config: GateConfig) -> list[SliceTest]:
    """Intent accuracy per slice of the production golden set (its channels), tested like the intent groups."""
    if pairs is None or pairs.champion is None or not pairs.slices:
        return []
    champion, challenger = pairs.accuracy(pairs.champion), pairs.accuracy(pairs.challenger)
    slices = np.asarray(pairs.slices)
    tests = []
    for name in sorted(set(pairs.slices)):
        mask = slices == name
        tested = int(mask.sum()) >= config.min_slice_utterances
        tests.append(SliceTest(f"production[{name}]", int(mask.sum()), float(challenger[mask].mean()),
                               float(champion[mask].mean()),
                               mcnemar_worse(champion[mask], challenger[mask]) if tested else None))
    return tests


def slices_not_worse(evidence: GateEvidence, config: GateConfig) -> CriterionResult | None:
    """No slice may be significantly worse (one-sided tests, Holm-corrected); small slices are named as untested."""
    tests = slice_tests(evidence, config)
    tested = [t for t in tests if t.status != UNTESTED]
    if not tested:
        return None
    worse = [t.name for t in tested if t.status == WORSE]
    untested = len(tests) - len(tested)
    alpha = config.slice_alpha
    return CriterionResult(
        name="slices_holm",
        passed=not worse,
        rule=(f"no slice significantly worse than {evidence.asr.champion_label if evidence.asr else 'the champion'} "
              f"(one-sided paired tests, Holm-corrected at {alpha:.2f} over {len(tested)} slices)"
              + (f"; worse: {', '.join(worse)}" if worse else "")
              + (f"; {untested} slices under {config.min_slice_utterances} utterances untested" if untested else "")),
        challenger=float(len(tested) - len(worse)),
        champion=float(len(tested)),
        threshold=alpha,
    )


def digit_accuracy(evidence: GateEvidence, config: GateConfig) -> CriterionResult | None:
    """Whole-string digit accuracy on a held-out real speaker: a transposed digit fails the utterance."""
    if evidence.asr is None or evidence.asr.challenger_digits_correct.size == 0:
        return None
    asr = evidence.asr
    comparison = Comparison.of_accuracy(asr.champion_digits_correct, asr.challenger_digits_correct, config)
    return non_inferior("digit_accuracy", f"non-inferiority vs {asr.champion_label}", comparison,
                        config.digit_margin, config)


def clean_speech(evidence: GateEvidence, config: GateConfig) -> CriterionResult | None:
    """Real clean recordings unlike the calls: retraining must not make the ASR forget them."""
    if evidence.asr is None or evidence.asr.challenger_clean_errors.size == 0:
        return None
    challenger = int(evidence.asr.challenger_clean_errors.sum())
    champion = int(evidence.asr.champion_clean_errors.sum())
    allowed = config.clean_speech_max_extra_errors
    return CriterionResult(
        name="clean_speech",
        passed=challenger - champion <= allowed,
        rule=(f"word errors on {evidence.asr.challenger_clean_errors.size} clean real recordings: challenger "
              f"{challenger} may exceed {evidence.asr.champion_label} ({champion}) by at most {allowed}"),
        challenger=float(challenger),
        champion=float(champion),
        delta=float(champion - challenger),
        threshold=float(allowed),
    )


def end_to_end_intent(evidence: GateEvidence, config: GateConfig) -> CriterionResult | None:
    """Intent accuracy on what the bot hears: each bundle's intent model on its own ASR's transcripts of the
    golden audio (redacted, as served). Non-inferior within ``e2e_margin``; reported only while no champion."""
    pairs = evidence.end_to_end
    if pairs is None or pairs.champion is None or not pairs.labels:
        return None
    comparison = Comparison.of_accuracy(pairs.accuracy(pairs.champion), pairs.accuracy(pairs.challenger), config)
    return non_inferior("e2e_intent_accuracy", f"non-inferiority on ASR transcripts ({len(pairs.labels)} golden turns)",
                        comparison, config.e2e_margin, config)


def production_intent(evidence: GateEvidence, config: GateConfig) -> CriterionResult | None:
    """Intent accuracy on what production callers actually said: the production golden set (QA reviews of the
    random floor, reviewed blind; ``out_of_scope`` counts against any in-scope prediction). Non-inferior within
    ``margin``, with its power: while the set is small the verdict is "underpowered" and a person decides."""
    pairs = evidence.production
    if pairs is None or pairs.champion is None or not pairs.labels:
        return None
    comparison = Comparison.of_accuracy(pairs.accuracy(pairs.champion), pairs.accuracy(pairs.challenger), config)
    return non_inferior("production_intent_accuracy",
                        f"non-inferiority on the production golden set ({len(pairs.labels)} reviewed turns)",
                        comparison, config.margin, config)


def serving_latency(evidence: GateEvidence, config: GateConfig) -> CriterionResult | None:
    """The challenger bundle must answer within budget: p95 of its serving path, timed at decision time."""
    if evidence.latency_s is None or evidence.latency_s.size == 0:
        return None
    p95 = float(np.percentile(evidence.latency_s, 95)) * 1000
    return CriterionResult(
        name="serving_latency",
        passed=p95 <= config.latency_budget_ms,
        rule=(f"p95 of transcribe -> redact -> understand on {evidence.latency_s.size} golden utterances "
              f"({p95:.0f} ms) must be <= {config.latency_budget_ms:.0f} ms"),
        challenger=p95,
        threshold=config.latency_budget_ms,
    )


# A criterion returns None when its evidence is absent (no ASR challenger in this run).
Criterion = Callable[[GateEvidence, GateConfig], CriterionResult | None]
CRITERIA: list[Criterion] = [intent_accuracy, asr_wer, asr_wer_slices, slices_not_worse, digit_accuracy, clean_speech,
                              end_to_end_intent, production_intent, serving_latency]


def mcnemar(champion_correct: np.ndarray, challenger_correct: np.ndarray) -> dict[str, Any]:
    """McNemar's exact test on paired right/wrong: do the two models err on different utterances more
    often in one direction than chance allows? Reported beside the rule, not part of it: it tests
    "any difference", while the rule asks "at most ``margin`` worse"."""
    from scipy.stats import binomtest

    champion_only = int(np.sum((champion_correct == 1) & (challenger_correct == 0)))
    challenger_only = int(np.sum((champion_correct == 0) & (challenger_correct == 1)))
    discordant = champion_only + challenger_only
    p_value = float(binomtest(champion_only, discordant, 0.5).pvalue) if discordant else 1.0
    return {"champion_only_right": champion_only, "challenger_only_right": challenger_only, "p_value": p_value}


def statistics(evidence: GateEvidence) -> dict[str, Any]:
    """Reported with the decision, not criteria: McNemar's test for intent when a champion exists, and the
    end-to-end intent accuracy of each bundle (on its own ASR's transcripts) when there is an ASR challenger."""
    out: dict[str, Any] = {}
    if evidence.champion_predictions is not None:
        out["intent_mcnemar"] = mcnemar(evidence.correct(evidence.champion_predictions),
                                        evidence.correct(evidence.challenger_predictions))
    pairs = evidence.end_to_end
    if pairs is not None and pairs.labels:
        out["e2e_intent_accuracy"] = {
            "n": len(pairs.labels), "challenger": float(pairs.accuracy(pairs.challenger).mean()),
            "champion": float(pairs.accuracy(pairs.champion).mean()) if pairs.champion is not None else None}
    return out


def per_intent_changes(evidence: GateEvidence, confidence: float = 0.95) -> list[dict[str, Any]]:
    """Accuracy per intent for both models, worst change first; with a champion, the change (challenger -
    champion) has a paired interval at ``confidence`` (training/power.py), and each intent names its group.
    Reported, never deciding: at a dozen turns an intent's interval is tens of points wide."""
    labels = np.asarray(evidence.labels)
    challenger = evidence.correct(evidence.challenger_predictions)
    champion = evidence.correct(evidence.champion_predictions) if evidence.champion_predictions else None
    rows = []
    for intent in sorted(set(evidence.labels)):
        mask = labels == intent
        row: dict[str, Any] = {"intent": intent, "group": group_of(intent), "n": int(mask.sum()),
                               "challenger": float(challenger[mask].mean())}
        if champion is not None:
            row["champion"] = float(champion[mask].mean())
            row["delta"] = row["challenger"] - row["champion"]
            row["interval"] = paired_change_interval(champion[mask], challenger[mask], confidence)
        rows.append(row)
    return sorted(rows, key=lambda r: r.get("delta", r["challenger"]))


def decide(evidence: GateEvidence, config: GateConfig, criteria: list[Criterion] | None = None) -> GateDecision:
    """Every criterion the evidence supports; those named in ``config.report_only`` are recorded, not deciding."""
    results = [replace(r, decides=r.name not in config.report_only)
               for criterion in (criteria or CRITERIA) if (r := criterion(evidence, config)) is not None]
    return GateDecision(
        promote=all(r.passed for r in results if r.decides),
        criteria=results,
        per_intent=per_intent_changes(evidence, config.confidence),
        asr_slices=asr_slice_results(evidence, config),
        slice_tests=slice_tests(evidence, config),
        config=config.model_dump(),
        n=len(evidence.labels),
        champion_version=evidence.champion_version,
        statistics=statistics(evidence),
    )
