"""A gate that knows its power (issue 19, part 5): capped margins, power figures, "underpowered", intent groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from core.corpus import intent_names
from core.settings import MARGIN_KEYS, GateConfig
from training.gate import MANUAL_PROMOTION, AsrEvidence, GateEvidence, decide, intent_accuracy
from training.intent_groups import OTHER, group_of, intent_groups
from training.power import paired_change_interval, paired_power, recommended_size

CONFIG = GateConfig(margin=0.02, n_bootstrap=1000)
INTENTS = list(intent_names())


def _pair(n: int, champion_only: int, challenger_only: int) -> GateEvidence:
    """``n`` golden turns over the 77 intents: both right except ``champion_only`` and ``challenger_only`` turns."""
    labels = [INTENTS[i % len(INTENTS)] for i in range(n)]
    champion = ["wrong" if champion_only <= i < champion_only + challenger_only else y for i, y in enumerate(labels)]
    challenger = ["wrong" if i < champion_only else y for i, y in enumerate(labels)]
    return GateEvidence(labels, challenger, champion, champion_version="1")


@pytest.mark.parametrize("key", MARGIN_KEYS)
def test_a_margin_above_the_cap_is_refused_by_name(key: str) -> None:
    with pytest.raises(ValidationError, match=rf"gate\.{key} = 0\.03: above 0\.02"):
        GateConfig(**{key: 0.03})
    assert getattr(GateConfig(**{key: 0.02}), key) == 0.02
    with pytest.raises(ValidationError):
        GateConfig(**{key: 0.0})  # no margin: nothing could pass non-inferiority


def test_the_shipped_margins_are_within_the_cap() -> None:
    import yaml

    shipped = GateConfig(**yaml.safe_load((Path(__file__).parent.parent / "params.yaml").read_text())["gate"])
    assert shipped.margin == 0.02 and all(getattr(shipped, key) <= 0.02 for key in MARGIN_KEYS)
    assert shipped.power == 0.9 and shipped.report_only == []


def test_power_figures_on_a_hand_checked_example() -> None:
    # 100 turns, 3 only the champion got right and 3 only the challenger: differences +1 x3, -1 x3, 0 x94.
    # sd = sqrt(6/100) = 0.24495; z(0.975) + z(0.9) = 1.95996 + 1.28155 = 3.24152 (squared: 10.5074)
    power = paired_power(np.array([1.0] * 3 + [-1.0] * 3 + [0.0] * 94), 0.02, 0.95, 0.9)
    assert (power.n, power.discordance, power.alpha, power.power) == (100, 0.06, pytest.approx(0.025), 0.9)
    assert power.sd == pytest.approx(0.24495, abs=1e-5)
    assert power.minimum_detectable == pytest.approx(3.24152 * 0.24495 / 10, abs=1e-5)  # 0.0794
    assert power.n_needed == 1577  # 0.06 * 10.5074 / 0.02^2 = 1576.1, up
    assert power.underpowered
    assert recommended_size(0.06, 0.02, 0.95, 0.9) == 1577  # the benchmark's sizing, same formula


def test_no_discordance_is_planned_at_the_rule_of_three() -> None:
    """No disagreement on n turns still leaves a discordance up to about 3/n plausible: the size follows from it."""
    power = paired_power(np.zeros(50), 0.02, 0.95, 0.9)
    assert power.discordance == 0.0 and power.sd == pytest.approx((3 / 50) ** 0.5)
    assert power.n_needed == 1577 and power.underpowered  # 0.06 x 10.5074 / 0.0004, as for 6% discordance
    assert intent_accuracy(_pair(50, 0, 0), CONFIG).status == "underpowered"
    enough = paired_power(np.zeros(2000), 0.02, 0.95, 0.9)
    assert enough.n_needed == 40 and not enough.underpowered
    assert intent_accuracy(_pair(2000, 0, 0), CONFIG).status == "passed"


def test_an_equal_challenger_on_too_small_a_golden_set_is_underpowered_and_the_champion_stays() -> None:
    small = decide(_pair(200, 6, 6), CONFIG)  # 6% discordance, equal: needs about 1,577 turns
    [result] = [c for c in small.criteria if c.name == "intent_accuracy"]
    assert result.status == "underpowered" and not result.passed and result.interval is not None
    assert result.interval[0] < 0.02 <= result.interval[1]  # inconclusive: across the margin
    assert not small.promote and small.verdict == "underpowered"
    assert small.reasons[0].startswith("intent_accuracy: non-inferiority") and "n 200 < 1577 needed" in small.reasons[0]
    assert small.reasons[-1] == MANUAL_PROMOTION and "`voiceloop promote --bundle N --reason ...`" in MANUAL_PROMOTION
    record = small.to_dict()
    assert record["verdict"] == "underpowered" and record["underpowered"] == ["intent_accuracy"]
    assert record["criteria"][0]["power"]["n_needed"] == 1577 and record["criteria"][0]["status"] == "underpowered"

    enough = decide(_pair(2000, 60, 60), CONFIG)  # the same discordance on 2,000 turns
    assert enough.promote and enough.verdict == "promote" and enough.criteria[0].power is not None
    assert not enough.criteria[0].power.underpowered and enough.reasons == []


def test_the_champion_stays_when_the_verdict_is_underpowered() -> None:
    from training.promotion import _apply

    class Registry:
        def __init__(self) -> None:
            self.calls: list[tuple[str, str]] = []

        def promote(self, version: str, decision: dict[str, Any], uri: str) -> None:
            self.calls.append(("promote", version))

        def mark_rejected(self, version: str, decision: dict[str, Any], uri: str) -> None:
            self.calls.append(("mark_rejected", version))

    registry = Registry()
    _apply(registry, "5", decide(_pair(200, 6, 6), CONFIG).to_dict(), "run", None)  # type: ignore[arg-type]
    _apply(registry, "6", decide(_pair(2000, 60, 60), CONFIG).to_dict(), "run", None)  # type: ignore[arg-type]
    assert registry.calls == [("mark_rejected", "5"), ("promote", "6")]


def test_a_criterion_fails_when_it_shows_a_worse_challenger_or_has_the_power_and_stays_inconclusive() -> None:
    clearly_worse = intent_accuracy(_pair(200, 30, 0), CONFIG)  # 15 points worse: the whole interval above 0.02
    assert clearly_worse.status == "failed" and clearly_worse.power is not None and clearly_worse.power.underpowered
    powered = decide(_pair(2000, 80, 40), CONFIG)  # 2 points worse on enough turns: across the margin, failed
    result = powered.criteria[0]
    assert result.interval is not None and result.interval[0] < 0.02 <= result.interval[1]
    assert result.status == "failed" and powered.verdict == "reject" and MANUAL_PROMOTION not in powered.reasons
    better = intent_accuracy(_pair(200, 0, 30), CONFIG)  # better, whatever the size: passed
    assert better.status == "passed" and better.power is not None and better.power.underpowered


def test_the_floor_rule_has_no_power_test() -> None:
    evidence = _pair(100, 0, 0)
    evidence.champion_predictions = None
    result = intent_accuracy(evidence, CONFIG)
    assert result.passed and result.power is None


def test_wer_power_uses_each_utterances_error_difference_over_the_mean_reference_words() -> None:
    challenger = [3] * 4 + [1] * 4 + [2] * 32  # one word more on 4 turns, one fewer on 4, of 10 words each
    asr = AsrEvidence(ref_words=np.full(40, 10), challenger_errors=np.asarray(challenger),
                      champion_errors=np.full(40, 2), slices=[{"channel": "telephone8k"}] * 40,
                      challenger_digits_correct=np.ones(10), champion_digits_correct=np.ones(10))
    decision = decide(GateEvidence(labels=["a"], challenger_predictions=["a"], asr=asr), CONFIG)
    wer = {c.name: c for c in decision.criteria}["asr_wer"]
    # normalised differences: +-1 error x 40 turns / 400 words = +-0.1 on 8 of 40; sd = sqrt(0.2 * 0.01) = 0.0447
    assert wer.power is not None and wer.power.discordance == 0.2
    assert wer.power.sd == pytest.approx(0.04472, abs=1e-5) and wer.power.n_needed == 53  # 0.002 * 10.5074 / 0.0004
    digits = {c.name: c for c in decision.criteria}["digit_accuracy"]  # 10 equal strings prove little
    assert digits.power is not None and digits.power.n_needed > 10 and digits.status == "underpowered"


def test_asr_slices_too_small_for_their_margin_make_the_slice_criterion_underpowered() -> None:
    rng = np.random.default_rng(0)
    champion = rng.integers(0, 4, 120)
    challenger = champion + rng.choice([-1, 0, 0, 1], 120)  # equal on average, differing on half the turns
    asr = AsrEvidence(ref_words=np.full(120, 8), challenger_errors=np.maximum(challenger, 0),
                      champion_errors=champion, slices=[{"voice": ("a", "b")[i % 2]} for i in range(120)],
                      challenger_digits_correct=np.ones(5), champion_digits_correct=np.ones(5))
    decision = decide(GateEvidence(labels=["a"], challenger_predictions=["a"], asr=asr),
                      GateConfig(n_bootstrap=500, min_slice_utterances=30))
    results = {c.name: c for c in decision.criteria}
    assert results["asr_wer_slices"].status == "underpowered", results["asr_wer_slices"].rule
    assert "underpowered: asr_wer[voice=" in results["asr_wer_slices"].rule
    assert all(s.power is not None for s in decision.asr_slices)


def test_every_shipped_intent_is_in_one_of_about_ten_groups() -> None:
    groups = intent_groups()
    assert set(groups) == set(INTENTS) and len(INTENTS) == 77
    sizes = {g: sum(1 for v in groups.values() if v == g) for g in set(groups.values())}
    assert len(sizes) == 10 and min(sizes.values()) >= 5, sizes
    assert OTHER not in sizes and group_of("an_intent_beyond_banking77") == OTHER


def test_an_intent_in_two_groups_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import training.intent_groups as module

    twice = tmp_path / "groups.yaml"
    twice.write_text("cards: [card_arrival]\nsecurity: [pin_blocked, card_arrival]\n")
    monkeypatch.setattr(module, "GROUPS_FILE", twice)
    module.intent_groups.cache_clear()
    try:
        with pytest.raises(ValueError, match="'card_arrival' is in both 'cards' and 'security'"):
            module.intent_groups()
    finally:
        module.intent_groups.cache_clear()


def test_slice_tests_run_on_intent_groups_at_the_demo_size() -> None:
    decision = decide(_pair(847, 25, 25), CONFIG)  # 11 turns per intent, as the demo's golden set
    names = {t.name: t for t in decision.slice_tests}
    assert set(names) == {f"intent_group[{g}]" for g in set(intent_groups().values())}
    assert all(t.status == "not worse" and t.n >= 55 for t in names.values())  # 11 per intent, >= 5 intents
    per_intent = decision.per_intent
    assert len(per_intent) == 77 and all(len(row["interval"]) == 2 for row in per_intent)


def test_per_intent_intervals_are_paired_and_never_degenerate() -> None:
    same = np.ones(11)
    low, high = paired_change_interval(same, same, 0.95)
    assert low < 0 < high and low == pytest.approx(-high)  # 11 of 11 right for both: not [0, 0]
    champion = np.array([1] * 36 + [0] * 12 + [1] * 2)
    challenger = np.array([1] * 36 + [1] * 12 + [0] * 2)
    low, high = paired_change_interval(champion, challenger, 0.95)
    assert 0 < low < 0.2 < high < 1  # +10 of 50 discordant, one way: above 0
    worst = paired_change_interval(np.ones(11), np.zeros(11), 0.95)
    assert -1 <= worst[0] < worst[1] < 0


def test_report_only_criteria_are_recorded_but_do_not_decide() -> None:
    evidence = _pair(200, 30, 0)  # intent clearly worse
    decision = decide(evidence, GateConfig(n_bootstrap=500, report_only=["intent_accuracy"]))
    assert decision.promote and not decision.criteria[0].passed and not decision.criteria[0].decides
    assert decision.to_dict()["report_only"] == ["intent_accuracy"] and decision.reasons == []
    with pytest.raises(ValidationError):
        GateConfig(report_only=["no_such_criterion"])  # type: ignore[list-item]


def test_the_report_shows_the_underpowered_verdict_and_the_power_figures() -> None:
    from training.report import decision_html

    page = decision_html(decide(_pair(200, 6, 6), CONFIG).to_dict(), [], "gate")
    assert '<span class="underpowered">underpowered</span>' in page and "voiceloop promote --bundle N" in page
    power = page[page.index("<h2>Power"):page.index("<h2>Slices")]
    assert "<td>1577</td>" in power and "<td>0.06</td>" in power


def test_a_handful_of_turns_both_bundles_got_wrong_is_underpowered_not_a_pass() -> None:
    """Two turns with no disagreement have not shown the bundles agree: the bootstrap's [0, 0] must not pass."""
    from core.settings import GateConfig
    from training.gate import Comparison, non_inferior

    config = GateConfig()
    tiny = non_inferior("x", "tiny", Comparison.of_accuracy(np.zeros(2), np.zeros(2), config), 0.02, config)
    assert tiny.status == "underpowered" and tiny.power is not None and tiny.power.n_needed > 1000
    agreed = np.ones(850)
    large = non_inferior("x", "large", Comparison.of_accuracy(agreed, agreed, config), 0.02, config)
    assert large.status == "passed"  # 850 turns without a disagreement do rule out a 0.02 loss
