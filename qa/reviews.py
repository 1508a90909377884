"""What reviewers answered in Label Studio, read back, checked, and reconciled into one label per call.

An annotation becomes an :class:`Answer` (per turn: transcript, intent, PII flag; per call: resolved).
An answer that cannot be a label (nothing answered, an intent outside the page's choices, a transcript
without an intent) is a :class:`Problem`: the caller quarantines the review with its reason, never
drops it silently. Calls for two reviewers need both; when the two disagree on any turn's intent
or on "resolved", a third review adjudicates (``needs_adjudication``): per turn, the intent two of
the three chose wins, else the adjudicator's; the transcript is the adjudicator's. That rule is
documented in docs/qa.md. Transcripts here are what reviewers typed: the caller redacts them and
runs the leak gate before anything is stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from core.corpus import NO_REQUEST, OUT_OF_SCOPE
from qa.review_page import PII_FLAG, control

MAX_TRANSCRIPT_CHARS = 2000


@dataclass(frozen=True)
class TurnAnswer:
    turn: int  # the turn's index in the call
    transcript: str
    intent: str | None
    pii_flagged: bool


@dataclass(frozen=True)
class Answer:
    """One reviewer's answer to one call."""

    annotation_id: int
    reviewer: str  # Label Studio's user id, pseudonymised by the caller before it is stored
    turns: tuple[TurnAnswer, ...]
    resolved: str | None
    pre_filled: bool  # the reviewer saw the champion's answers (anchoring possible)

    @property
    def pii_flagged(self) -> tuple[int, ...]:
        return tuple(t.turn for t in self.turns if t.pii_flagged)


@dataclass(frozen=True)
class Problem:
    """Why an answer cannot be a label; the message names the call, the reviewer's annotation and the turn."""

    call_id: str
    annotation_id: int
    reason: str


def _values(result: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["from_name"]: item.get("value", {}) for item in result if "from_name" in item}


def read_answer(task: dict[str, Any], annotation: dict[str, Any]) -> Answer:
    """An annotation of a task built by :func:`qa.review_page.task`, as turns in the call's own numbering."""
    values = _values(annotation.get("result") or [])
    turns = []
    for position, entry in enumerate(task["data"]["turns"]):
        text = values.get(control("transcript", position), {}).get("text") or [""]
        intents = values.get(control("intent", position), {}).get("choices") or []
        pii = values.get(control("pii", position), {}).get("choices") or []
        turns.append(TurnAnswer(int(entry["turn"]), " ".join(str(t) for t in text).strip(),
                                str(intents[0]) if intents else None, PII_FLAG in pii))
    resolved = values.get(control("resolved"), {}).get("choices") or [None]
    author = annotation.get("completed_by")
    reviewer = str(author.get("id") if isinstance(author, dict) else author)
    return Answer(int(annotation["id"]), reviewer, tuple(turns), resolved[0],
                  pre_filled=task["data"].get("review") == "pre-filled")


def check_answer(call_id: str, answer: Answer, intents: Collection[str]) -> Problem | None:
    """None when the answer can be a label; else what is wrong with it."""
    allowed = set(intents) | {OUT_OF_SCOPE, NO_REQUEST}

    def problem(reason: str) -> Problem:
        return Problem(call_id, answer.annotation_id, f"review {answer.annotation_id} of call {call_id}: {reason}")

    if not any(t.transcript or t.intent for t in answer.turns) and answer.resolved is None:
        return problem("empty: no transcript, intent or outcome was given")
    for t in answer.turns:
        if t.intent is not None and t.intent not in allowed:
            return problem(f"turn {t.turn}: intent {t.intent!r} is not one of the page's choices")
        if t.intent is None and not t.pii_flagged:
            return problem(f"turn {t.turn}: no intent chosen (choose one, {OUT_OF_SCOPE!r} or {NO_REQUEST!r})")
        if len(t.transcript) > MAX_TRANSCRIPT_CHARS:
            return problem(f"turn {t.turn}: a transcript of {len(t.transcript)} characters is not one turn's speech")
    return None


def disagree(first: Answer, second: Answer) -> bool:
    """Two reviewers disagree when any turn's intent, or the call's outcome, differs."""
    return first.resolved != second.resolved or [t.intent for t in first.turns] != [t.intent for t in second.turns]


@dataclass(frozen=True)
class Reconciled:
    """A call's label from its answers: final turns and outcome, and how they were reached."""

    turns: tuple[TurnAnswer, ...]
    resolved: str | None
    answers: tuple[Answer, ...]  # in annotation order; the first two are the double review's pair
    adjudicated: bool


def reconcile(answers: Sequence[Answer], double: bool) -> Reconciled | None:
    """The call's label, or None while it waits for answers (a second reviewer, or an adjudicator).

    One answer settles a single-review call. A double-review call needs two reviewers; if they
    disagree (:func:`disagree`), a third answer adjudicates: per turn, the intent at least two of
    the three chose, else the adjudicator's; the outcome likewise; the adjudicator's transcripts.
    """
    distinct = first_per_reviewer(answers)
    if not distinct or (double and len(distinct) < 2):
        return None
    if not double or not disagree(distinct[0], distinct[1]):
        return Reconciled(distinct[0].turns, distinct[0].resolved, tuple(distinct[:2 if double else 1]), False)
    if len(distinct) < 3:
        return None
    trio = distinct[:3]
    adjudicator = trio[2]
    turns = tuple(
        TurnAnswer(turn.turn, turn.transcript, _majority([a.turns[i].intent for a in trio], turn.intent),
                   any(a.turns[i].pii_flagged for a in trio))
        for i, turn in enumerate(adjudicator.turns))
    return Reconciled(turns, _majority([a.resolved for a in trio], adjudicator.resolved), tuple(trio), True)


def _majority(values: list[str | None], fallback: str | None) -> str | None:
    value, count = Counter(values).most_common(1)[0]
    return value if count >= 2 else fallback


def needs_adjudication(answers: Sequence[Answer], double: bool) -> bool:
    """A double-review call whose two reviewers disagree and that no third reviewer has answered yet."""
    pair = first_per_reviewer(answers)
    return double and len(pair) == 2 and disagree(pair[0], pair[1])


def first_per_reviewer(answers: Sequence[Answer]) -> list[Answer]:
    """Each reviewer's first answer, in annotation order: one voice per reviewer."""
    first: dict[str, Answer] = {}
    for answer in sorted(answers, key=lambda a: a.annotation_id):
        first.setdefault(answer.reviewer, answer)
    return list(first.values())
