"""The week's QA report, hand-checked: Hájek figures of a 4-call sample, kappa, reviewer WER, the blind floor,
the monitor's week, and the flow on a real store (labels and monitor records written through it) and command."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from core.corpus import NO_REQUEST, OUT_OF_SCOPE
from core.settings import Settings, load_settings
from flows.qa_report import agreement_text, render_html, week_report
from governance.session import open_store
from qa.labels_zone import REVIEW_KIND, SAMPLE_KIND
from qa.week_report import (
    ACCURACY,
    BLIND_ACCURACY,
    RESOLVED,
    WER,
    build_report,
    call_scores,
    cohen_kappa,
    monitor_week,
    reviewer_agreement,
    word_errors,
)
from qa.weekly_sample import SampledCall, WeeklySample
from tests.conftest import write_params
from tests.flow_helpers import cli

WEEK = "2026-W46"  # Monday 9 to Sunday 15 November 2026
A, B = "channel=telephone8k", "channel=clean16k"


def _call(call_id: str, probability: float, blind: bool, channel: str, double: bool = False) -> SampledCall:
    return SampledCall(call_id, f"ref-{call_id}", probability, blind, double, ("all", channel), alerted=False)


def _sample() -> WeeklySample:
    """c1 taken for sure, c2 and c3 blind, c4 sampled but never reviewed; blind floor f = 0.25 (<= every p)."""
    calls = (_call("c1", 1.0, False, A, double=True), _call("c2", 0.5, True, A), _call("c3", 0.25, True, B),
             _call("c4", 0.5, False, B))
    return WeeklySample(WEEK, calls, frame=40, expected_size=2.25, blind_probability=0.25, seed=1, design={},
                        thresholds={}, alerted_slices=(), drawn_at="2026-11-16T00:00:00+00:00")


def _turn(turn: int, transcript: str, intent: str, champion_transcript: str | None,
          champion_intent: str | None) -> dict[str, Any]:
    return {"turn": turn, "transcript": transcript, "intent": intent, "champion_transcript": champion_transcript,
            "champion_intent": champion_intent, "champion_bundle": "4"}


def _review(call_id: str, resolved: str | None, turns: list[dict[str, Any]], blind: bool,
            answers: list[dict[str, Any]] | None = None, adjudicated: bool = False) -> dict[str, Any]:
    answers = answers or [{"reviewer": "r1", "pre_filled": not blind, "resolved": resolved,
                           "intents": [t["intent"] for t in turns], "transcripts": [t["transcript"] for t in turns]}]
    return {"call_ids": [call_id], "caller_ref": f"ref-{call_id}", "week": WEEK, "blind": blind,
            "double": len(answers) > 1, "adjudicated": adjudicated, "resolved": resolved, "turns": turns,
            "answers": answers}


def _reviews() -> dict[str, dict[str, Any]]:
    """Per call (accuracy y/x, WER errors/words, resolved y/x): c1 1/1, 1/6, 1/1; c2 0/1, 1/3, 0/1; c3 1/2, 0/8, 1/1.

    c1's second turn asks for nothing (not scored for intent, scored for WER); c3's second turn is out of
    scope, which the champion read as top_up: wrong. c1 was double-reviewed (reviewers disagree on turn 2).
    """
    c1 = [_turn(1, "i lost my card <PERSON>", "lost_card", "i lost a card <PERSON>", "lost_card"),
          _turn(2, "thanks", NO_REQUEST, "thanks", None)]
    second = {"reviewer": "r2", "pre_filled": True, "resolved": "yes", "intents": ["lost_card", "top_up"],
              "transcripts": ["i lost my card", "thanks"]}
    return {
        "c1": _review("c1", "yes", c1, False, [_review("c1", "yes", c1, False)["answers"][0], second]),
        "c2": _review("c2", "no", [_turn(1, "top up please", "top_up", "top up", "card_arrival")], True),
        "c3": _review("c3", "yes", [_turn(1, "where is my card", "card_arrival", "where is my card", "card_arrival"),
                                    _turn(2, "can i buy shares", OUT_OF_SCOPE, "can i buy shares", "top_up")], True),
        "not-sampled": _review("not-sampled", "yes", [_turn(1, "hello", "top_up", "hello", "top_up")], False),
    }


def _figure(day: str, metric: str, slice_name: str, value: float, n: int, low: float | None = None,
            high: float | None = None, flags: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"day": day, "metric": metric, "slice": slice_name, "value": value, "n": n, "se": None, "low": low,
            "high": high, "provisional": False, "flags": list(flags)}


FIGURES = [
    _figure("2026-11-09", "est_intent_accuracy", "all", 0.40, 10, 0.30, 0.50, ("small-calibration",)),
    _figure("2026-11-10", "est_intent_accuracy", "all", 0.50, 30, 0.45, 0.55),
    _figure("2026-11-16", "est_intent_accuracy", "all", 0.90, 99, 0.85, 0.95),  # the week after: ignored
    _figure("2026-11-11", "est_wer", "all", 0.10, 5, 0.05, 0.15),
    _figure("2026-11-11", "est_wer", A, 0.50, 5, 0.40, 0.60),
    _figure("2026-11-11", "containment_rate", "all", 0.70, 5),  # not a label-free estimate
]


# -- per call ----------------------------------------------------------------------------------------
def test_placeholders_are_scored_as_words() -> None:
    same, other = word_errors(["my name is <PERSON>", "<PERSON>"], ["my name is <PERSON>", "<LOCATION>"])
    assert (same.errors, same.ref_words) == (0, 4)
    assert (other.errors, other.ref_words) == (1, 1)


def test_call_scores_follow_the_definitions() -> None:
    reviews = _reviews()
    c1, c2, c3 = (call_scores(reviews[c]) for c in ("c1", "c2", "c3"))
    assert (c1.accuracy.y, c1.accuracy.x, c1.wer.y, c1.wer.x, c1.resolved.y, c1.resolved.x) == (1, 1, 1, 6, 1, 1)
    assert (c2.accuracy.y, c2.accuracy.x, c2.wer.y, c2.wer.x, c2.resolved.y, c2.resolved.x) == (0, 1, 1, 3, 0, 1)
    assert (c3.accuracy.y, c3.accuracy.x, c3.wer.y, c3.wer.x, c3.resolved.y, c3.resolved.x) == (1, 2, 0, 8, 1, 1)
    unsure = call_scores({"resolved": "cannot tell", "turns": [_turn(1, "hi", "top_up", None, None)]})
    assert (unsure.accuracy.y, unsure.accuracy.x) == (0, 1)  # the champion read no request: wrong
    assert (unsure.wer.x, unsure.resolved.x) == (0, 0)  # no champion transcript; "cannot tell" is no answer


# -- the design-based figures -------------------------------------------------------------------------
def test_hajek_figures_weight_each_reviewed_call_by_one_over_p() -> None:
    report = build_report(_sample(), _reviews())
    accuracy = report.metric(ACCURACY)
    everything = accuracy.row("all")
    # sum(y/p) / sum(x/p) over c1 (p 1), c2 (0.5), c3 (0.25): (1 + 0 + 4) / (1 + 2 + 8)
    assert everything.estimate.value == pytest.approx(5 / 11)
    # linearised: z = (y - R x) / X * w -> 6/121, -10/121, 4/121; terms (1 - p) z^2 -> 0, 50/121^2, 12/121^2
    assert everything.estimate.se == pytest.approx(math.sqrt(62) / 121)
    assert (everything.sampled, everything.reviewed, everything.units) == (4, 3, 4)
    assert accuracy.row(A).estimate.value == pytest.approx(1 / 3)  # (1 + 0) / (1 + 2)
    one = accuracy.row(B)  # c3 alone: c4 was sampled but not reviewed
    assert (one.estimate.value, one.sampled, one.reviewed) == (pytest.approx(0.5), 2, 1)
    assert (one.estimate.low, one.estimate.high) == (0.0, 1.0)
    # WER: errors (1/1 + 1/0.5 + 0/0.25) / words (6/1 + 3/0.5 + 8/0.25)
    assert report.metric(WER).row("all").estimate.value == pytest.approx(3 / 44)
    assert report.metric(WER).row("all").estimate.low == 0.0  # t interval's -0.2, cut: a WER is never negative
    assert report.metric(RESOLVED).row("all").estimate.value == pytest.approx(5 / 7)  # (1 + 0 + 4) / (1 + 2 + 4)
    assert (report.sampled, report.reviewed) == (4, 3)
    assert "missing at random" in report.notes[0]


def test_a_week_without_reviews_has_no_figures_yet() -> None:
    report = build_report(_sample(), {})
    row = report.metric(ACCURACY).row("all")
    assert (row.reviewed, row.sampled, math.isnan(row.estimate.value)) == (0, 4, True)
    assert (report.agreement.calls, report.agreement.kappa, report.agreement.reviewer_wer) == (0, None, None)
    assert report.to_json()["metrics"][0]["rows"][0]["estimate"]["value"] is None
    assert "No double-reviewed call" in agreement_text(report.agreement) and render_html(report)


def test_blind_accuracy_weights_the_blind_calls_equally() -> None:
    report = build_report(_sample(), _reviews())
    blind = report.metric(BLIND_ACCURACY)
    # c2 and c3, each with the blind floor's probability: (0 + 1) / (1 + 2), not the 1/p-weighted (0 + 4) / (2 + 8)
    assert blind.row("all").estimate.value == pytest.approx(1 / 3)
    assert (blind.row("all").sampled, blind.row("all").reviewed) == (2, 2)
    assert (report.blind_sampled, report.blind_reviewed) == (2, 2)
    assert blind.row(A).estimate.value == 0.0
    assert (blind.row(A).estimate.low, blind.row(A).estimate.high) == (0.0, 1.0)  # one call: no interval to speak of


# -- reviewer agreement -------------------------------------------------------------------------------
def test_cohen_kappa_on_a_known_two_by_two_table() -> None:
    # 50 items: both yes 20, first yes second no 5, first no second yes 10, both no 15
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    kappa = cohen_kappa(first, second)
    # p_o = 35/50 = 0.7; p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = 0.2 / 0.5
    assert (kappa.value, kappa.agreement, kappa.n) == (pytest.approx(0.4), pytest.approx(0.7), 50)


def test_cohen_kappa_is_none_without_items_or_variation() -> None:
    assert cohen_kappa(["a"], ["a"]).value is None
    unvaried = cohen_kappa(["a", "a"], ["a", "a"])
    assert (unvaried.value, unvaried.agreement, unvaried.n) == (None, 1.0, 2)
    assert cohen_kappa([], []).agreement is None


def test_reviewer_agreement_uses_the_first_two_answers() -> None:
    turns = [_turn(1, "where is my card", "card_arrival", None, None)]
    answers = [{"reviewer": r, "pre_filled": True, "resolved": "yes", "intents": [intent],
                "transcripts": ["where is my card"]}
               for r, intent in (("r1", "card_arrival"), ("r2", "lost_card"), ("r3", "card_arrival"))]
    reviews = [_reviews()["c1"], _review("d2", "yes", turns, False, answers, adjudicated=True), _reviews()["c2"]]
    agreement = reviewer_agreement(reviews)
    # pairs (lost_card, lost_card), (no_request, top_up), (card_arrival, lost_card): p_o 1/3;
    # first: lost_card, no_request, card_arrival once each; second: lost_card 2, top_up 1 -> p_e 2/9
    assert (agreement.calls, agreement.turns, agreement.adjudicated) == (2, 3, 1)
    assert agreement.raw_agreement == pytest.approx(1 / 3)
    assert agreement.kappa == pytest.approx((1 / 3 - 2 / 9) / (1 - 2 / 9))
    # "i lost my card <PERSON>" -> "i lost my card": 1 deletion; "thanks", "where is my card": exact -> 1 / (5 + 1 + 4)
    assert (agreement.reviewer_wer, agreement.reference_words) == (pytest.approx(0.1), 10)


# -- the monitor -------------------------------------------------------------------------------------
def test_the_monitors_week_is_an_n_weighted_mean_of_its_days() -> None:
    week = monitor_week(FIGURES, WEEK)
    assert set(week) == {("est_intent_accuracy", "all"), ("est_wer", "all"), ("est_wer", A)}
    accuracy = week[("est_intent_accuracy", "all")]
    assert (accuracy.value, accuracy.low, accuracy.high) == (pytest.approx(0.475), pytest.approx(0.4125),
                                                             pytest.approx(0.5375))  # (10 x + 30 x) / 40
    assert (accuracy.n, accuracy.days, accuracy.flags) == (40, 2, ("small-calibration",))


def test_the_report_sets_the_reviewed_figure_beside_the_monitors() -> None:
    report = build_report(_sample(), _reviews(), FIGURES)
    accuracy = report.metric(ACCURACY).row("all")
    assert accuracy.difference == pytest.approx(5 / 11 - 0.475)
    assert accuracy.covered is True  # 0.4545 in [0.4125, 0.5375]
    assert report.metric(BLIND_ACCURACY).row("all").covered is False  # 1/3 below 0.4125
    assert report.metric(WER).row(A).covered is False  # (1 + 2) / (6 + 6) against the monitor's [0.4, 0.6]
    assert report.metric(WER).row("all").covered is True  # 3/44 in [0.05, 0.15]
    assert report.metric(ACCURACY).row(A).monitor is None  # the monitor has no accuracy for that slice
    assert report.metric(RESOLVED).monitor_metric is None
    assert report.monitor_days == 2
    json.dumps(report.to_json(), allow_nan=False)  # c3's lone WER call has an unbounded interval: None in JSON


# -- the flow and the command on a real store ----------------------------------------------------------
def _write_week(settings: Settings) -> None:
    labels = open_store(settings, "admin", "labelling")
    labels.write_labels(SAMPLE_KIND, {WEEK: _sample().to_record()})
    labels.write_labels(REVIEW_KIND, _reviews())
    days: dict[str, dict[str, Any]] = {}
    for row in FIGURES:
        days.setdefault(row["day"], {"day": row["day"], "reference": False, "figures": [], "call_ids": []})
        days[row["day"]]["figures"].append(row)
    open_store(settings, "admin", "monitoring").write_monitoring("days", days)


def test_week_report_reads_the_store_and_renders_one_page(tmp_path: Path) -> None:
    settings = Settings(project_dir=str(tmp_path))
    _write_week(settings)
    report = week_report(settings, "reviewer", WEEK)
    assert report.to_json() == build_report(_sample(), _reviews(), FIGURES).to_json()
    page = render_html(report)
    assert page.count("data:image/png;base64,") == 3  # accuracy, WER, blind accuracy: the metrics the monitor has
    assert 'id="table-intent_accuracy"' in page and 'id="table-agreement"' in page
    assert "lost my card" not in page  # numbers and slice names only
    with pytest.raises(LookupError, match="voiceloop qa sample"):
        week_report(settings, "reviewer", "2026-W47")


def test_qa_report_command(tmp_path: Path) -> None:
    params = write_params(tmp_path)
    _write_week(load_settings(params))
    page = tmp_path / "out" / "qa.html"
    result = cli("qa", "report", "--week", WEEK, "--out", str(page), "--json", "--params", str(params),
                 "--as", "reviewer")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reviewed"] == 3
    assert page.read_text().startswith("<!doctype html>")
    table = cli("qa", "report", "--week", WEEK, "--params", str(params), "--as", "reviewer")
    assert table.exit_code == 0 and "Intent accuracy" in table.output and "kappa" in table.output
    bad = cli("qa", "report", "--week", "2026-46", "--params", str(params), "--as", "reviewer")
    assert bad.exit_code == 2 and "ISO week" in bad.output
