"""The review page reviewers see in Label Studio, and the task each sampled call becomes.

One task per call: the call's redacted audio, then one block per customer turn (what the caller said,
in an editable box; what they wanted: one of the intents, "out of scope", or "no request" for a turn
that asks for nothing (a detail, thanks, a reaction); whether PII is still
audible or visible in that turn), then the call-level question "was the caller's problem
resolved?". Calls of the random floor are reviewed blind: no prediction, so the reviewer's answer
is not anchored on the champion's. The others carry the champion's redacted transcript and intent
as a prediction, with the bundle version that produced them, for the reviewer to correct.

Names in the page (``transcript_<i>``, ``intent_<i>``, ``pii_<i>``, ``resolved``) are what
``qa.reviews`` reads back, so both sides use :func:`control` from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from core.corpus import NO_REQUEST, OUT_OF_SCOPE

RESOLVED_CHOICES = ("yes", "no", "cannot tell")
PII_FLAG = "PII still audible or visible"
AUDIO = "audio"  # the Audio tag's name: every control points at it


def control(kind: str, position: int | str | None = None) -> str:
    """A control's name in the page: ``transcript_2`` for the call's third customer turn (``{{idx}}`` in the
    page's Repeater), ``resolved`` for the call."""
    return kind if position is None else f"{kind}_{position}"


def label_config(intents: Sequence[str]) -> str:
    """The Label Studio labelling configuration (XML) for calls with any number of customer turns."""
    choices = "".join(f"<Choice value={quoteattr(name)}/>" for name in (NO_REQUEST, *intents, OUT_OF_SCOPE))
    resolved = "".join(f"<Choice value={quoteattr(v)}/>" for v in RESOLVED_CHOICES)
    return (
        "<View>"
        '<Header value="Listen to the call. Correct what the caller said (placeholders like &lt;PERSON&gt; stand for '
        'redacted words), choose what they wanted, and flag any personal data you can still hear or read."/>'
        f'<Audio name="{AUDIO}" value="$audio" hotkey="space"/>'
        '<Repeater on="$turns" indexFlag="{{idx}}">'
        "<View>"
        '<Header value="$turns[{{idx}}].title" size="5"/>'
        f'<TextArea name="{control("transcript", "{{idx}}")}" toName="{AUDIO}" editable="true" rows="2" '
        'maxSubmissions="1" placeholder="what the caller said"/>'
        f'<Choices name="{control("intent", "{{idx}}")}" toName="{AUDIO}" choice="single" layout="select">'
        f"{choices}</Choices>"
        f'<Choices name="{control("pii", "{{idx}}")}" toName="{AUDIO}" choice="multiple">'
        f"<Choice value={quoteattr(PII_FLAG)}/></Choices>"
        "</View>"
        "</Repeater>"
        '<Header value="Was the caller\'s problem resolved?" size="5"/>'
        f'<Choices name="{control("resolved")}" toName="{AUDIO}" choice="single" showInline="true">{resolved}</Choices>'
        "</View>"
    )


@dataclass(frozen=True)
class TurnToReview:
    """One customer turn of a sampled call, as the champion handled it."""

    index: int  # the turn's index in the call
    start_s: float
    end_s: float
    transcript: str  # the champion's (platform's) transcript, redacted
    intent: str | None  # what the bot understood (its log, or the champion's reading)
    confidence: float | None
    bundle: str | None


@dataclass(frozen=True)
class CallToReview:
    call_id: str
    week: str
    audio_url: str  # where Label Studio fetches the redacted audio
    turns: tuple[TurnToReview, ...]
    blind: bool
    double: bool


def _turn_title(position: int, count: int, turn: TurnToReview) -> str:
    return f"Caller, turn {position + 1} of {count} ({turn.start_s:.1f}-{turn.end_s:.1f} s)"


def task(call: CallToReview) -> dict[str, Any]:
    """The Label Studio task of one call; a prediction (the champion's answers) unless the call is blind."""
    count = len(call.turns)
    data = {"audio": call.audio_url, "call_id": call.call_id, "week": call.week,
            "review": "blind" if call.blind else "pre-filled", "double": call.double,
            "turns": [{"title": _turn_title(i, count, t), "turn": t.index} for i, t in enumerate(call.turns)]}
    body: dict[str, Any] = {"data": data}
    if not call.blind:
        body["predictions"] = [prediction(call)]
    return body


def prediction(call: CallToReview) -> dict[str, Any]:
    """The champion's transcripts and intents as a Label Studio prediction (model_version: its bundle); a turn the
    bot did not read as a request (no intent logged) is pre-filled as ``no_request``."""
    bundles = sorted({t.bundle for t in call.turns if t.bundle})
    scores = [t.confidence for t in call.turns if t.confidence is not None]
    return {"model_version": "+".join(bundles) or "unknown", "score": min(scores) if scores else 0.0,
            "result": answer_result([t.transcript for t in call.turns], [t.intent or NO_REQUEST for t in call.turns],
                                    None)}

def answer_result(transcripts: Sequence[str], intents: Sequence[str | None], resolved: str | None,
                  pii_turns: Sequence[int] = ()) -> list[dict[str, Any]]:
    """An annotation's ``result`` answering a task turn by turn (positions as in the task): what a reviewer's
    submit sends, for answers made by a program (the demo's simulated reviewers)."""
    result: list[dict[str, Any]] = []
    for position, (text, intent) in enumerate(zip(transcripts, intents, strict=True)):
        result.append({"from_name": control("transcript", position), "to_name": AUDIO, "type": "textarea",
                       "value": {"text": [text]}})
        if intent:
            result.append({"from_name": control("intent", position), "to_name": AUDIO, "type": "choices",
                           "value": {"choices": [intent]}})
        if position in pii_turns:
            result.append({"from_name": control("pii", position), "to_name": AUDIO, "type": "choices",
                           "value": {"choices": [PII_FLAG]}})
    if resolved:
        result.append({"from_name": control("resolved"), "to_name": AUDIO, "type": "choices",
                       "value": {"choices": [resolved]}})
    return result
