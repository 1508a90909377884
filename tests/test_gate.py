"""The gate's decision rule on known evidence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.settings import GateConfig
from training.gate import AsrEvidence, GateEvidence, decide, paired_bootstrap

CONFIG = GateConfig(margin=0.01, floor=0.8, confidence=0.95, n_bootstrap=2000, seed=0)


def _evidence(n: int, champion_acc: float, challenger_acc: float, seed: int = 0) -> GateEvidence:
    rng = np.random.default_rng(seed)
    labels = [f"intent{i % 7}" for i in range(n)]

    def predictions(acc: float) -> list[str]:
        hit = rng.random(n) < acc
        return [y if h else "wrong" for y, h in zip(labels, hit, strict=True)]

    return GateEvidence(labels, predictions(challenger_acc), predictions(champion_acc), champion_version="1")


def test_a_worse_challenger_is_blocked_with_a_reason() -> None:
    decision = decide(_evidence(1000, 0.92, 0.80), CONFIG)
    assert not decision.promote
    assert decision.reasons and "non-inferiority" in decision.reasons[0]
    crit = decision.criteria[0]
    assert crit.delta is not None and crit.delta > 0.05 and crit.interval is not None and crit.interval[0] > 0


def test_a_better_challenger_passes_non_inferiority() -> None:
    decision = decide(_evidence(1000, 0.85, 0.95), CONFIG)
    assert decision.promote
    assert decision.to_dict()["verdict"] == "promote"


def test_mcnemar_is_reported_with_the_discordant_pairs() -> None:
    labels = ["a"] * 40
    champion = ["a"] * 30 + ["b"] * 10  # right on the first 30
    challenger = ["b"] * 12 + ["a"] * 28  # wrong on the first 12, right on the last 10
    decision = decide(GateEvidence(labels, challenger, champion, champion_version="1"), CONFIG)
    test = decision.statistics["intent_mcnemar"]
    assert (test["champion_only_right"], test["challenger_only_right"]) == (12, 10)
    assert 0.8 < test["p_value"] <= 1.0  # 12 vs 10 discordant: no evidence of a difference
    lopsided = decide(GateEvidence(labels, ["b"] * 20 + ["a"] * 20, ["a"] * 40, champion_version="1"), CONFIG)
    assert lopsided.statistics["intent_mcnemar"]["p_value"] < 1e-5  # 20 vs 0
    assert decide(GateEvidence(labels, challenger), CONFIG).statistics == {}  # no champion, nothing to pair


def test_without_a_champion_the_floor_decides() -> None:
    evidence = _evidence(200, 0.0, 0.9)
    evidence.champion_predictions = None
    assert decide(evidence, CONFIG).promote
    assert not decide(evidence, GateConfig(floor=0.99)).promote


def test_per_intent_changes_are_reported_worst_first() -> None:
    decision = decide(_evidence(700, 0.9, 0.9), CONFIG)
    rows = decision.per_intent
    assert len(rows) == 7 and all("delta" in r for r in rows)
    assert [r["delta"] for r in rows] == sorted(r["delta"] for r in rows)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=200))
def test_bootstrap_interval_contains_the_observed_difference(pairs: list[tuple[bool, bool]]) -> None:
    champion = np.array([a for a, _ in pairs], dtype=float)
    challenger = np.array([b for _, b in pairs], dtype=float)
    mean, low, high = paired_bootstrap(champion, challenger, 500, 0.95, 0)
    assert low - 1e-9 <= mean <= high + 1e-9
    assert -1 <= low <= high <= 1


def _asr_evidence(challenger_errors: list[int], champion_errors: list[int], refs: list[int],
                  digits: tuple[list[float], list[float]] = ([1.0] * 1000, [1.0] * 1000)) -> AsrEvidence:
    # enough equal digit strings for their criterion to pass (20 could not rule out a 0.02 loss: underpowered)
    n = len(refs)
    return AsrEvidence(
        ref_words=np.asarray(refs), challenger_errors=np.asarray(challenger_errors),
        champion_errors=np.asarray(champion_errors),
        slices=[{"channel": "telephone8k" if i % 2 else "clean16k"} for i in range(n)],
        challenger_digits_correct=np.asarray(digits[0]), champion_digits_correct=np.asarray(digits[1]),
    )


def test_asr_wer_is_a_ratio_of_sums_and_a_worse_asr_is_blocked_per_slice() -> None:
    config = GateConfig(n_bootstrap=500, min_slice_utterances=10)
    refs = [10] * 40
    # challenger worse on telephone turns only: 3 more errors per 10 words there
    worse = _asr_evidence([2 + 3 * (i % 2) for i in range(40)], [2] * 40, refs)
    evidence = GateEvidence(labels=["a"], challenger_predictions=["a"], asr=worse)
    decision = decide(evidence, config)
    results = {c.name: c for c in decision.criteria}
    assert results["asr_wer"].challenger == 0.35 and results["asr_wer"].champion == 0.2
    assert not results["asr_wer"].passed and not results["asr_wer_slices"].passed
    assert "asr_wer[channel=telephone8k]" in results["asr_wer_slices"].rule
    slices = {s.name: s for s in decision.asr_slices}
    assert slices["asr_wer[channel=clean16k]"].passed and not slices["asr_wer[channel=telephone8k]"].passed
    assert not decision.promote

    better = GateEvidence(labels=["a"], challenger_predictions=["a"], asr=_asr_evidence([1] * 40, [4] * 40, refs))
    assert decide(better, config).promote


def test_forgetting_clean_real_speech_blocks_the_asr_even_when_the_calls_improve() -> None:
    config = GateConfig(n_bootstrap=500, clean_speech_max_extra_errors=1)
    refs = [10] * 40
    asr = _asr_evidence([1] * 40, [4] * 40, refs)  # much better on the golden calls
    asr.champion_clean_errors, asr.challenger_clean_errors = np.asarray([1, 2, 0]), np.asarray([2, 2, 1])
    results = {c.name: c for c in decide(GateEvidence(labels=["a"], challenger_predictions=["a"], asr=asr),
                                         config).criteria}
    assert results["asr_wer"].passed and not results["clean_speech"].passed
    assert (results["clean_speech"].challenger, results["clean_speech"].champion) == (5, 3)
    asr.challenger_clean_errors = np.asarray([2, 2, 0])  # one word worse in total: allowed
    assert decide(GateEvidence(labels=["a"], challenger_predictions=["a"], asr=asr), config).promote
    asr.challenger_clean_errors = asr.champion_clean_errors = np.zeros(0)  # no recordings: no criterion
    assert "clean_speech" not in {c.name for c in decide(GateEvidence(labels=["a"], challenger_predictions=["a"],
                                                                      asr=asr), config).criteria}


def test_a_transposed_digit_string_blocks_the_asr_even_when_wer_holds() -> None:
    config = GateConfig(n_bootstrap=500)
    refs = [10] * 40
    asr = _asr_evidence([2] * 40, [2] * 40, refs, digits=([0.0] * 10 + [1.0] * 10, [1.0] * 20))
    decision = decide(GateEvidence(labels=["a"], challenger_predictions=["a"], asr=asr), config)
    results = {c.name: c for c in decision.criteria}
    assert results["asr_wer"].passed and not results["digit_accuracy"].passed and not decision.promote


def test_holm_steps_down_and_stops_at_the_first_kept_hypothesis() -> None:
    from training.slice_tests import holm

    verdicts = holm([0.01, 0.04, 0.02, 0.2], 0.05)
    assert [rejected for rejected, _ in verdicts] == [True, False, False, False]  # 0.02 > 0.05/3 stops it, 0.04 too
    assert [round(t, 4) for _, t in verdicts] == [0.0125, 0.025, 0.0167, 0.05]
    assert [r for r, _ in holm([0.001, 0.002, 0.003], 0.05)] == [True, True, True]


def test_the_sign_flip_test_is_one_sided() -> None:
    from training.slice_tests import sign_flip_worse

    worse = sign_flip_worse(np.ones(40), 2000, 0)
    assert worse == 1 / 2001  # no sign flip reaches every difference being positive
    assert sign_flip_worse(-np.ones(40), 2000, 0) == 1.0  # better is never "worse"
    assert sign_flip_worse(np.zeros(40), 2000, 0) == 1.0
    noise = np.random.default_rng(1).choice([-1.0, 1.0], 200)
    assert sign_flip_worse(noise, 2000, 0) > 0.05


def test_a_challenger_better_overall_but_significantly_worse_on_one_voice_is_blocked() -> None:
    config = GateConfig(n_bootstrap=1000, min_slice_utterances=30, report_only=["asr_wer_slices"])  # Holm alone blocks
    voices = ["en-us"] * 400 + ["en-sc"] * 60 + ["en-in"] * 5
    challenger = [1 if v == "en-us" else 5 if v == "en-sc" else 9 for v in voices]  # much better on en-us
    champion = [4 if v == "en-us" else 3 if v == "en-sc" else 1 for v in voices]
    asr = AsrEvidence(ref_words=np.full(len(voices), 10), challenger_errors=np.asarray(challenger),
                      champion_errors=np.asarray(champion), slices=[{"voice": v} for v in voices],
                      challenger_digits_correct=np.ones(1000), champion_digits_correct=np.ones(1000))
    decision = decide(GateEvidence(labels=["a"], challenger_predictions=["a"], asr=asr), config)
    results = {c.name: c for c in decision.criteria}
    assert results["asr_wer"].passed and results["asr_wer"].challenger < results["asr_wer"].champion
    assert not decision.promote and decision.reasons == [f"slices_holm: {results['slices_holm'].rule}"]
    assert not results["asr_wer_slices"].passed and not results["asr_wer_slices"].decides  # recorded, not deciding
    assert decision.to_dict()["report_only"] == ["asr_wer_slices"]
    assert "worse: asr_wer[voice=en-sc]" in results["slices_holm"].rule and "1 slices under 30" in decision.reasons[0]
    tests = {t.name: t for t in decision.slice_tests}
    assert tests["asr_wer[voice=en-sc]"].status == "worse"
    assert tests["asr_wer[voice=en-us]"].status == "not worse"
    untested = tests["asr_wer[voice=en-in]"]  # 5 utterances, much worse, but too few to test: said so
    assert (untested.status, untested.p_value, untested.n) == ("untested", None, 5)


def test_a_challenger_better_overall_but_significantly_worse_on_one_intent_group_is_blocked() -> None:
    config = GateConfig(n_bootstrap=1000, margin=0.01)
    better = {"card_arrival": "card_ordering", "pending_top_up": "top_up", "request_refund": "refunds_and_disputes",
              "exchange_rate": "exchange_and_currency"}
    worse = ["lost_or_stolen_card", "pin_blocked"]  # both in the security group
    labels = [y for y in [*better, *worse] for _ in range(60)]
    champion = ["wrong" if i % 10 < 3 and y not in worse else y for i, y in enumerate(labels)]  # 70 % / 100 %
    challenger = ["wrong" if y in worse and i % 10 < 3 else y for i, y in enumerate(labels)]  # 100 % / 70 %
    evidence = GateEvidence(labels, challenger, champion, champion_version="1")
    decision = decide(evidence, config)
    results = {c.name: c for c in decision.criteria}
    assert results["intent_accuracy"].challenger > results["intent_accuracy"].champion
    assert results["intent_accuracy"].passed and not results["slices_holm"].passed
    assert "worse: intent_group[security]" in results["slices_holm"].rule and not decision.promote
    assert {t.name: t.status for t in decision.slice_tests} == {
        **{f"intent_group[{g}]": "not worse" for g in better.values()}, "intent_group[security]": "worse"}
    changes = {row["intent"]: row for row in decision.per_intent}  # per intent: reported with an interval
    assert changes["pin_blocked"]["group"] == "security" and changes["pin_blocked"]["delta"] == pytest.approx(-0.3)
    low, high = changes["pin_blocked"]["interval"]
    assert low < -0.3 < high < 0


def test_a_challenger_slower_than_the_latency_budget_is_blocked() -> None:
    config = GateConfig(latency_budget_ms=500)
    fast = _evidence(1000, 0.90, 0.92)
    fast.latency_s = np.asarray([0.2] * 19 + [0.45])
    assert {c.name: c.passed for c in decide(fast, config).criteria}["serving_latency"]
    slow = _evidence(1000, 0.90, 0.92)
    slow.latency_s = np.asarray([0.2] * 18 + [0.9, 1.2])  # p95 lands between the two slow ones
    decision = decide(slow, config)
    assert not decision.promote and decision.reasons[0].startswith("serving_latency: p95")
    assert "on 20 golden utterances" in decision.reasons[0]


def test_intent_read_from_the_asr_transcripts_must_not_get_worse() -> None:
    from training.gate import IntentPairs

    labels = [f"intent{i % 5}" for i in range(600)]
    heard_well = list(labels)
    heard_badly = [y if i % 4 else "wrong" for i, y in enumerate(labels)]  # a quarter misunderstood
    evidence = _evidence(1000, 0.90, 0.92)
    evidence.end_to_end = IntentPairs(labels, heard_badly, heard_well)
    decision = decide(evidence, CONFIG)
    results = {c.name: c for c in decision.criteria}
    assert results["intent_accuracy"].passed and not results["e2e_intent_accuracy"].passed
    assert results["e2e_intent_accuracy"].challenger == 0.75 and not decision.promote
    evidence.end_to_end = IntentPairs(labels, heard_well, heard_badly)
    assert decide(evidence, CONFIG).promote
    evidence.end_to_end = IntentPairs(labels, heard_badly, None)  # no champion: reported, not judged
    first = decide(evidence, CONFIG)
    assert "e2e_intent_accuracy" not in {c.name for c in first.criteria}
    assert first.statistics["e2e_intent_accuracy"] == {"n": 600, "challenger": 0.75, "champion": None}


def test_the_production_golden_set_is_judged_with_its_power_and_its_channels_are_slices() -> None:
    from training.gate import IntentPairs

    labels = [f"intent{i % 5}" for i in range(40)] + ["out_of_scope"] * 4  # out of scope: wrong for any intent
    champion = [y if i % 10 else "wrong" for i, y in enumerate(labels)]
    small = IntentPairs(labels, [y if i % 7 else "wrong" for i, y in enumerate(labels)], champion,
                        ["channel=gsm" if i % 2 else "channel=telephone8k" for i in range(len(labels))])
    evidence = _evidence(1000, 0.90, 0.92)
    evidence.production = small
    decision = decide(evidence, CONFIG)
    result = {c.name: c for c in decision.criteria}["production_intent_accuracy"]
    assert result.status == "underpowered" and decision.verdict == "underpowered" and not decision.promote
    assert result.power is not None and result.power.n == 44 and result.power.n_needed > 44
    names = {t["name"] for t in decision.to_dict()["slice_tests"]}
    assert {"production[channel=gsm]", "production[channel=telephone8k]"} <= names
    many = [f"intent{i % 5}" for i in range(4000)]
    evidence.production = IntentPairs(many, list(many), list(many))  # as good, on plenty of turns
    assert {c.name: c for c in decide(evidence, CONFIG).criteria}["production_intent_accuracy"].passed
