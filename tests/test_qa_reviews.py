"""QA reviews without a server: the page's names, answers read back, checks, reconciliation, the simulated reviewer,
the weekly sample's record and its blind floor."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from core.corpus import NO_REQUEST, OUT_OF_SCOPE
from qa.review_page import (
    CallToReview,
    TurnToReview,
    answer_result,
    label_config,
    task,
)
from qa.reviews import check_answer, disagree, needs_adjudication, read_answer, reconcile
from qa.sampling import CallRisk, RiskThresholds, SamplingDesign, blind_probability, inclusion_probabilities
from qa.simulated_reviewer import ReviewerNoise, answer, heard_text
from qa.weekly_sample import WeeklySample, draw_week
from qa.weeks import BadWeek, parse_week, previous_week, week_of

INTENTS = ("card_arrival", "top_up", "lost_card")
TURNS = (TurnToReview(1, 1.0, 3.0, "my card has not arrived", "card_arrival", 0.91, "4"),
         TurnToReview(3, 5.0, 6.5, "it is <CREDIT_CARD>", "lost_card", 0.42, "4"),
         TurnToReview(5, 8.0, 9.0, "thanks", None, None, "4"))


def _call(blind: bool = False, double: bool = False) -> CallToReview:
    return CallToReview("call-7", "2026-W46", "/data/local-files/?d=media/call-7/audio.wav", TURNS[:2], blind, double)


def _annotation(annotation_id: int, reviewer: int, intents: list[str | None], resolved: str | None = "yes",
                transcripts: list[str] | None = None, pii_turns: tuple[int, ...] = ()) -> dict[str, Any]:
    texts = transcripts or ["my card has not arrived", "it is <CREDIT_CARD>"]
    return {"id": annotation_id, "completed_by": reviewer,
            "result": answer_result(texts, intents, resolved, pii_turns)}


def test_the_page_names_every_control_and_offers_the_extra_choices() -> None:
    page = label_config(INTENTS)
    for name in ("transcript_{{idx}}", "intent_{{idx}}", "pii_{{idx}}", '"resolved"', '<Audio name="audio"'):
        assert name in page
    assert f'value="{OUT_OF_SCOPE}"' in page and f'value="{NO_REQUEST}"' in page


def test_blind_tasks_carry_no_prediction_and_pre_filled_ones_carry_the_champion() -> None:
    blind = task(_call(blind=True))
    assert "predictions" not in blind and blind["data"]["review"] == "blind"
    assert [t["turn"] for t in blind["data"]["turns"]] == [1, 3]
    shown = task(_call())
    prediction = shown["predictions"][0]
    assert prediction["model_version"] == "4" and prediction["score"] == pytest.approx(0.42)
    values = {r["from_name"]: r["value"] for r in prediction["result"]}
    assert values["transcript_0"] == {"text": ["my card has not arrived"]}
    assert values["intent_1"] == {"choices": ["lost_card"]}


def test_a_turn_the_bot_read_as_no_request_is_pre_filled_so() -> None:
    call = CallToReview("call-8", "2026-W46", "", TURNS, blind=False, double=False)
    values = {r["from_name"]: r["value"] for r in task(call)["predictions"][0]["result"]}
    assert values["intent_2"] == {"choices": [NO_REQUEST]}


def test_an_answer_reads_back_in_the_calls_own_turn_numbers() -> None:
    body = task(_call())
    read = read_answer(body, _annotation(11, 5, ["card_arrival", NO_REQUEST], "no", pii_turns=(1,)))
    assert [t.turn for t in read.turns] == [1, 3]
    assert [t.intent for t in read.turns] == ["card_arrival", NO_REQUEST]
    assert read.resolved == "no" and read.pre_filled and read.reviewer == "5"
    assert read.pii_flagged == (3,)


@pytest.mark.parametrize(("intents", "resolved", "fragment"), [
    ([None, None], None, "empty"),
    (["card_arrival", "no_such_intent"], "yes", "not one of the page's choices"),
    (["card_arrival", None], "yes", "no intent chosen"),
])
def test_answers_that_cannot_be_labels_are_named(intents: list[str | None], resolved: str | None,
                                                 fragment: str) -> None:
    body = task(_call())
    texts = ["", ""] if resolved is None else None
    problem = check_answer("call-7", read_answer(body, _annotation(3, 1, intents, resolved, texts)), INTENTS)
    assert problem is not None and fragment in problem.reason and "call-7" in problem.reason


def test_a_good_answer_passes_the_checks() -> None:
    good = read_answer(task(_call()), _annotation(3, 1, ["card_arrival", OUT_OF_SCOPE]))
    assert check_answer("call-7", good, INTENTS) is None


def test_double_reviews_agree_disagree_and_are_adjudicated_by_majority() -> None:
    body = task(_call(double=True))
    first = read_answer(body, _annotation(1, 1, ["card_arrival", NO_REQUEST]))
    same = read_answer(body, _annotation(2, 2, ["card_arrival", NO_REQUEST]))
    other = read_answer(body, _annotation(3, 2, ["top_up", NO_REQUEST]))
    assert reconcile([first], double=True) is None  # waits for the second reviewer
    agreed = reconcile([first, same], double=True)
    assert agreed is not None and not agreed.adjudicated and len(agreed.answers) == 2
    assert not disagree(first, same) and disagree(first, other)
    assert reconcile([first, other], double=True) is None and needs_adjudication([first, other], double=True)
    third = read_answer(body, _annotation(4, 3, ["lost_card", NO_REQUEST], transcripts=["adjudicated", "x"]))
    settled = reconcile([first, other, third], double=True)
    assert settled is not None and settled.adjudicated
    assert settled.turns[0].intent == "lost_card"  # all three differ: the adjudicator's
    assert settled.turns[0].transcript == "adjudicated"
    majority = reconcile([first, other, read_answer(body, _annotation(5, 3, ["top_up", NO_REQUEST]))], double=True)
    assert majority is not None and majority.turns[0].intent == "top_up"  # two of three


def test_a_reviewers_second_answer_does_not_count_as_a_second_reviewer() -> None:
    body = task(_call(double=True))
    answers = [read_answer(body, _annotation(1, 1, ["card_arrival", NO_REQUEST])),
               read_answer(body, _annotation(2, 1, ["top_up", NO_REQUEST]))]
    assert reconcile(answers, double=True) is None and not needs_adjudication(answers, double=True)


TRUTH = {"call_id": "call-7", "resolved": True, "turns": [
    {"turn": 0, "speaker": "bot", "transcript": "hello"},
    {"turn": 1, "speaker": "customer", "transcript": "my card has not arrived", "intent": "card_arrival", "pii": []},
    {"turn": 2, "speaker": "bot", "transcript": "your card number please"},
    {"turn": 3, "speaker": "customer", "transcript": "it is 4111 1111 1111 1111", "intent": None,
     "pii": [{"entity": "CREDIT_CARD", "start": 6, "end": 25}]}]}


def test_the_simulated_reviewer_hears_placeholders_and_answers_deterministically() -> None:
    assert heard_text(TRUTH["turns"][3]) == "it is <CREDIT_CARD>"
    quiet = ReviewerNoise(word_noise=0.0, intent_noise=0.0, anchoring=0.0)
    body = task(_call(blind=True))
    result = answer(body["data"], None, TRUTH, INTENTS, quiet, "r1", seed=0)
    read = read_answer(body, {"id": 1, "completed_by": 1, "result": result})
    assert [t.intent for t in read.turns] == ["card_arrival", NO_REQUEST]
    assert [t.transcript for t in read.turns] == ["my card has not arrived", "it is <CREDIT_CARD>"]
    assert read.resolved == "yes"
    noisy = ReviewerNoise(word_noise=0.5, intent_noise=1.0, anchoring=0.0)
    one = answer(body["data"], None, TRUTH, INTENTS, noisy, "r1", seed=3)
    assert one == answer(body["data"], None, TRUTH, INTENTS, noisy, "r1", seed=3)
    assert read_answer(body, {"id": 1, "result": one}).turns[0].intent != "card_arrival"


def test_an_anchored_reviewer_keeps_the_champions_answer() -> None:
    body = task(_call())
    anchored = ReviewerNoise(word_noise=0.0, intent_noise=0.0, anchoring=1.0)
    result = answer(body["data"], body["predictions"][0], TRUTH, INTENTS, anchored, "r1", seed=0)
    assert [t.intent for t in read_answer(body, {"id": 1, "result": result}).turns] == ["card_arrival", "lost_card"]


def test_weeks_parse_and_follow_iso_numbering() -> None:
    assert parse_week("2026-W46") == (date(2026, 11, 9), date(2026, 11, 15))
    assert week_of(date(2026, 11, 15)) == "2026-W46" and previous_week("2026-W01") == "2025-W52"
    with pytest.raises(BadWeek, match="YYYY-Www"):
        parse_week("2026-46")


def test_the_blind_floor_is_an_equal_chance_inside_every_calls_own() -> None:
    calls = [CallRisk(f"c{i:03d}", ("all", "channel=gsm" if i < 20 else "channel=tel"), escalated=i % 3 == 0)
             for i in range(200)]
    design = SamplingDesign(budget=40, random_share=0.3)
    probabilities = inclusion_probabilities(calls, design, RiskThresholds(), alerted_slices=("channel=gsm",))
    floor = blind_probability(probabilities, design.random_share)
    assert 0 < floor <= min(probabilities.values()) and floor == pytest.approx(0.3 * 40 / 200)
    refs = {c.call_id: f"ref-{c.call_id}" for c in calls}
    sample = draw_week("2026-W46", calls, refs, RiskThresholds(), design, ("channel=gsm",), seed=1)
    blind = [c for c in sample.calls if c.blind]
    assert blind and len(blind) < len(sample.calls)
    assert all(c.alerted for c in sample.calls if "channel=gsm" in c.slices)
    again = WeeklySample.from_record(sample.to_record())
    assert again == sample
    assert sample.to_record()["call_ids"] == sample.call_ids
