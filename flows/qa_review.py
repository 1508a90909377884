"""``voiceloop qa push`` and ``qa pull``: the week's sample to Label Studio, and the finished reviews back as labels.

Push: each sampled call becomes a task (qa/review_page.py) with its redacted audio copied where
Label Studio serves it (the store's review media, audited); blind calls carry no prediction, the
others the champion's redacted transcript and intent (the bot's log, or the monitor's champion
reading), with the bundle version. Nothing unredacted is read: the push acts for ``labelling``,
which may not read raw calls. A call pushed before is not pushed again.

Pull: every task's answers are read back (audited), checked and reconciled (qa/reviews.py). What
reviewers typed is redacted and leak-gated like any call text before it is kept. An answer that
cannot be a label is quarantined with its reason and the call waits for a good one (a reviewer's
corrected answer, another reviewer's); a turn still leaking PII after redaction, or a reviewer's
"PII still audible" flag (a redaction miss), quarantines the call's review, and the call is not
labelled. Each is quarantined once, however often the pull runs. The labels zone keeps per call:
the final transcripts and intents, the outcome, each reviewer's (pseudonymised) answers for
agreement, and the champion's answers to score it against.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.corpus import intent_names
from core.settings import Settings
from flows.qa_sample import PURPOSE, stored_sample
from flows.qa_studio import audio_url, connection
from governance.crypto import pseudonym
from governance.redaction.leak_gate import TurnText, leak_gate
from governance.redaction.redactor import Redactor
from governance.session import open_store
from governance.store import GovernedStore
from monitoring.signals import CallSignals
from qa.labels_zone import REVIEW_KIND, TASK_KIND
from qa.review_page import CallToReview, TurnToReview, label_config, task
from qa.reviews import Answer, Reconciled, check_answer, needs_adjudication, read_answer, reconcile
from qa.studio_api import StudioClient
from qa.weekly_sample import SampledCall

QUARANTINE_STAGE = "review"

Progress = Callable[[str], None]


@dataclass
class PushSummary:
    week: str
    project_id: int
    pushed: int = 0
    already: int = 0  # pushed by an earlier run
    blind: int = 0
    no_audio: list[str] = field(default_factory=list)  # calls without redacted audio: reviewed from the text only
    gone: list[str] = field(default_factory=list)  # sampled calls no longer in the redacted zone: not pushed


@dataclass
class PullSummary:
    labelled: int = 0  # new reviews kept as labels
    already: int = 0
    waiting: int = 0  # not answered yet, or a double review missing its second answer
    adjudication: list[str] = field(default_factory=list)  # calls whose two reviewers disagreed: a third is needed
    quarantined: list[str] = field(default_factory=list)  # reviews that cannot be labels (`voiceloop quarantine`)
    pii_flagged: list[str] = field(default_factory=list)  # redaction misses reported by reviewers


def _customer_turns(document: dict[str, Any], signals: CallSignals | None) -> tuple[TurnToReview, ...]:
    heard = {t.index: t for t in signals.turns} if signals else {}
    turns = []
    for turn in document["turns"]:
        if turn["speaker"] != "customer":
            continue
        signal = heard.get(turn["index"])
        turns.append(TurnToReview(turn["index"], turn["start_s"], turn["end_s"], turn.get("text") or "",
                                  signal.intent if signal else None, signal.confidence if signal else None,
                                  signal.bundle if signal else None))
    return tuple(turns)


def push_week(settings: Settings, role: str, week: str, progress: Progress | None = None) -> PushSummary:
    """Put ``week``'s sampled calls into Label Studio (once each) and remember where each went.

    A call no longer in the redacted zone (retention, a correction under way) is skipped and named. A task
    Label Studio already holds for a call (a push killed before it recorded its tasks) is adopted, not
    made twice.
    """
    store = open_store(settings, role, PURPOSE)
    sample = stored_sample(store, week)
    pushed = set(store.label_keys(TASK_KIND))
    in_zone = store.redacted_call_ids()
    todo = [c for c in sample.calls if c.call_id not in pushed and c.call_id in in_zone]
    studio = connection(settings, store)
    with StudioClient(studio) as client:
        project_id = client.ensure_project(settings.qa.project_title, label_config(intent_names()))
        client.ensure_local_storage(project_id, store.review_media_root())
        summary = PushSummary(week, project_id, already=len([c for c in sample.calls if c.call_id in pushed]),
                              gone=sorted(c.call_id for c in sample.calls
                                          if c.call_id not in pushed and c.call_id not in in_zone))
        if not todo:
            return summary
        ids = [c.call_id for c in todo]
        held = {b["data"].get("call_id"): int(b["id"]) for b in client.tasks(project_id)
                if b["data"].get("call_id") in set(ids)}
        fresh = [c for c in todo if c.call_id not in held]
        task_ids = dict(held)
        if fresh:
            bodies = _task_bodies(settings, store, week, fresh, summary)
            if progress:
                progress(f"importing {len(bodies)} tasks into Label Studio project {project_id}")
            task_ids |= dict(zip([c.call_id for c in fresh], client.import_tasks(project_id, bodies), strict=True))
            versions = Counter(p["model_version"] for body in bodies for p in body.get("predictions", []))
            if versions:  # the queue pre-fills the newest push's commonest bundle (a task opened by id shows any)
                client.show_predictions_of(project_id, versions.most_common(1)[0][0])
    now = datetime.now(UTC).isoformat()
    store.write_labels(TASK_KIND, {
        c.call_id: {"call_ids": [c.call_id], "caller_ref": c.caller_ref, "week": week, "studio_url": studio.url,
                    "project_id": project_id, "task_id": task_ids[c.call_id], "blind": c.blind, "double": c.double,
                    "pushed_at": now}
        for c in todo})
    summary.pushed, summary.blind = len(todo), sum(c.blind for c in todo)
    store.audit.append(store.actor, "qa.push", zone="labels", call_ids=ids,
                       detail={"week": week, "project_id": project_id, "studio_url": studio.url,
                               "tasks": len(todo), "adopted": len(held), "blind": summary.blind,
                               "no_audio": len(summary.no_audio), "gone": len(summary.gone)})
    return summary


def _task_bodies(settings: Settings, store: GovernedStore, week: str, calls: list[SampledCall],
                 summary: PushSummary) -> list[dict[str, Any]]:
    """The calls' tasks: their redacted turns, the champion's reading of each, their audio copied for review."""
    ids = [c.call_id for c in calls]
    documents = {d["call_id"]: d for d in store.read_redacted(ids)}
    signals = {k: CallSignals.from_record(r) for k, r in store.read_monitoring("calls", ids).items()}
    media = store.export_review_media(ids)
    summary.no_audio = sorted(set(ids) - set(media))
    return [task(CallToReview(c.call_id, week, audio_url(settings, store, media[c.call_id]) if c.call_id in media
                              else "", _customer_turns(documents[c.call_id], signals.get(c.call_id)), c.blind,
                              c.double)) for c in calls]


def _reviewer(store: GovernedStore, studio_url: str, user: str) -> str:
    """A reviewer's pseudonym: the same person gets the same one, and the label never names them."""
    return pseudonym(f"label-studio|{studio_url}|{user}", store.keys.pseudonym_key)


def _answers(task_body: dict[str, Any]) -> list[Answer]:
    return [read_answer(task_body, a) for a in task_body.get("annotations", []) if not a.get("was_cancelled")]


def pull_reviews(settings: Settings, role: str, week: str | None = None, progress: Progress | None = None,
                 redactor: Redactor | None = None) -> PullSummary:
    """Bring finished reviews into the labels zone (each call once); see the module docstring for the rules."""
    store = open_store(settings, role, PURPOSE)
    tasks = store.read_labels(TASK_KIND)
    if week:
        tasks = {cid: t for cid, t in tasks.items() if t["week"] == week}
    done = set(store.label_keys(REVIEW_KIND))
    summary = PullSummary(already=len(set(tasks) & done))
    pending = {cid: t for cid, t in tasks.items() if cid not in done}
    if not pending:
        return summary
    studio = connection(settings, store)
    with StudioClient(studio) as client:
        bodies = {body["id"]: body for project in sorted({t["project_id"] for t in pending.values()})
                  for body in client.tasks(project)}
    store.audit.append(store.actor, "qa.pull", zone="labels", call_ids=sorted(pending),
                       detail={"studio_url": studio.url, "tasks": len(pending), "week": week})
    intents = intent_names()
    held = {item["item"] for item in store.quarantined(QUARANTINE_STAGE)}
    settled: dict[str, tuple[dict[str, Any], Reconciled]] = {}
    for call_id, record in sorted(pending.items()):
        body = bodies.get(record["task_id"])
        answers = _answers(body) if body else []
        flagged = sorted({turn for a in answers for turn in a.pii_flagged})
        if flagged:  # the whole call: what reviewers heard is not redacted enough to keep
            if call_id not in held:
                _quarantine(store, call_id, call_id, f"a reviewer heard or read PII still there in call {call_id}, "
                            f"turn(s) {', '.join(map(str, flagged))}: a redaction miss; the call is not labelled",
                            answers)
                summary.pii_flagged.append(call_id)
            continue
        usable = []
        for answer in answers:  # a bad answer is set aside with its reason; the call waits for a good one
            problem = check_answer(call_id, answer, intents)
            if problem is None:
                usable.append(answer)
            elif (item := f"{call_id}.answer{answer.annotation_id}") not in held:
                _quarantine(store, call_id, item, problem.reason, [answer])
                summary.quarantined.append(call_id)
        if (label := reconcile(usable, record["double"])) is not None:
            settled[call_id] = (record, label)
        elif needs_adjudication(usable, record["double"]):
            summary.adjudication.append(call_id)
        else:
            summary.waiting += 1
    if settled:
        if progress:
            progress(f"redacting {len(settled)} reviewed calls' transcripts")
        reviews = _redacted_reviews(settings, store, settled, redactor, summary)
        if reviews:
            store.write_labels(REVIEW_KIND, reviews)
        summary.labelled = len(reviews)
    return summary


def _champion(turn: TurnToReview | None) -> dict[str, Any]:
    """What the champion made of a turn, to score it against the review (None where it is not known)."""
    return {"champion_transcript": turn.transcript if turn else None, "champion_intent": turn.intent if turn else None,
            "champion_bundle": turn.bundle if turn else None}


def _quarantine(store: GovernedStore, call_id: str, item: str, reason: str, answers: list[Answer]) -> None:
    store.as_purpose(PURPOSE).quarantine(QUARANTINE_STAGE, item, reason, call_id=call_id,
                                         payload={"answers": [asdict(a) for a in answers]})


def _redacted_reviews(settings: Settings, store: GovernedStore, settled: dict[str, tuple[dict[str, Any], Reconciled]],
                      redactor: Redactor | None, summary: PullSummary) -> dict[str, dict[str, Any]]:
    """Redact every transcript the reviewers typed, leak-gate them, and build the calls' label records."""
    redactor = redactor or Redactor(settings.redaction, entities=settings.redaction.entities)
    typed = {(cid, i, turn.turn): turn.transcript for cid, (_, label) in settled.items()
             for i, answer in enumerate(label.answers) for turn in answer.turns}
    final = {(cid, turn.turn): turn.transcript for cid, (_, label) in settled.items() for turn in label.turns}
    redacted = [r.redacted for r in redactor.redact_many([*typed.values(), *final.values()])]
    by_answer = dict(zip(typed, redacted[:len(typed)], strict=True))
    by_final = dict(zip(final, redacted[len(typed):], strict=True))
    leaks = {(leak.call_id, leak.turn) for leak in leak_gate(
        [TurnText(cid, turn, text) for (cid, _, turn), text in by_answer.items() if text]
        + [TurnText(cid, turn, text) for (cid, turn), text in by_final.items() if text])}
    in_zone = store.redacted_call_ids()
    documents = {d["call_id"]: d for d in store.read_redacted([c for c in settled if c in in_zone])}
    heard = {k: CallSignals.from_record(r) for k, r in store.read_monitoring("calls", list(settled)).items()}
    now = datetime.now(UTC).isoformat()
    reviews = {}
    for call_id, (record, label) in settled.items():
        leaking = sorted(turn for cid, turn in leaks if cid == call_id)
        if leaking:
            _quarantine(store, call_id, f"{call_id}.typed", f"PII left in what reviewers typed for call {call_id}, "
                        f"turn(s) {', '.join(map(str, leaking))}, after redaction: not labelled", list(label.answers))
            summary.quarantined.append(call_id)
            continue
        champion = {t.index: t for t in _customer_turns(documents[call_id], heard.get(call_id))} \
            if call_id in documents else {}
        reviews[call_id] = {
            "call_ids": [call_id], "caller_ref": record["caller_ref"], "week": record["week"],
            "blind": record["blind"], "double": record["double"], "adjudicated": label.adjudicated,
            "resolved": label.resolved, "pulled_at": now,
            "turns": [{"turn": t.turn, "transcript": by_final[(call_id, t.turn)], "intent": t.intent,
                       **_champion(champion.get(t.turn))}
                      for t in label.turns],
            "answers": [{"reviewer": _reviewer(store, record["studio_url"], a.reviewer), "pre_filled": a.pre_filled,
                         "resolved": a.resolved, "intents": [t.intent for t in a.turns],
                         "transcripts": [by_answer[(call_id, i, t.turn)] for t in a.turns]}
                        for i, a in enumerate(label.answers)],
        }
    return reviews

