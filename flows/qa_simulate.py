"""``voiceloop qa simulate-review``: the demo's reviewers, answering open tasks through Label Studio's API.

So that the loop runs unattended in the demo, three reviewer accounts answer from the simulator's
truth files (qa/simulated_reviewer.py): single-review calls go to reviewer 1 or 2, double-review
calls to both, and when those two disagree reviewer 3 adjudicates. Each answers as itself (its own
token), so Label Studio records who answered, as it would for people. Tasks already answered enough
are left alone; calls without a truth file are skipped and counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.corpus import intent_names
from core.settings import Settings
from flows.qa_sample import PURPOSE
from flows.qa_studio import connection
from governance.session import open_store
from qa.labels_zone import TASK_KIND
from qa.reviews import disagree, first_per_reviewer, read_answer
from qa.simulated_reviewer import ReviewerNoise, answer
from qa.studio_api import StudioClient

REVIEWERS = ("reviewer-1@voiceloop.local", "reviewer-2@voiceloop.local", "reviewer-3@voiceloop.local")


@dataclass
class SimulatedReview:
    answered: int = 0  # annotations made
    adjudicated: int = 0  # double reviews that needed the third reviewer
    no_truth: int = 0


def _truth(truth_dir: Path, call_id: str) -> dict[str, Any] | None:
    path = truth_dir / f"{call_id}.json"
    return json.loads(path.read_text()) if path.exists() else None


def simulate_review(settings: Settings, role: str, truth_dir: Path, noise: ReviewerNoise, seed: int = 0,
                    week: str | None = None) -> SimulatedReview:
    """Answer every open task of the project's QA review (of ``week``, or all) as the simulated reviewers."""
    store = open_store(settings, role, PURPOSE)
    records = {cid: r for cid, r in store.read_labels(TASK_KIND).items() if week is None or r["week"] == week}
    summary = SimulatedReview()
    if not records:
        return summary
    admin = connection(settings, store)
    intents = intent_names()
    with StudioClient(admin) as client:
        reviewers = {email: client.ensure_user(email).token for email in REVIEWERS}
        bodies = {b["id"]: b for project in sorted({r["project_id"] for r in records.values()})
                  for b in client.tasks(project)}
        for call_id, record in sorted(records.items()):
            body = bodies.get(record["task_id"])
            truth = _truth(truth_dir, call_id)
            if body is None:
                continue
            if truth is None:
                summary.no_truth += 1
                continue
            _answer_task(client, body, truth, record["double"], reviewers, intents, noise, seed, summary)
    return summary


def _answer_task(client: StudioClient, body: dict[str, Any], truth: dict[str, Any], double: bool,
                 reviewers: dict[str, str], intents: tuple[str, ...], noise: ReviewerNoise, seed: int,
                 summary: SimulatedReview) -> None:
    """Give a task the answers it still lacks: one, two, or two and an adjudicator's."""
    data = body["data"]
    prediction = (body.get("predictions") or [None])[0]
    have = len(first_per_reviewer([read_answer(body, a) for a in body.get("annotations", [])
                                   if not a.get("was_cancelled")]))
    first = REVIEWERS[sum(data["call_id"].encode()) % 2]
    wanted = list(REVIEWERS[:2]) if double else [first]
    results = {}
    for email in wanted[have:]:
        results[email] = answer(data, prediction, truth, intents, noise, email, seed)
        client.annotate(body["id"], results[email], reviewers[email])
        summary.answered += 1
    if double and len(results) == 2:
        # the two answers made here (answers made by an earlier run were adjudicated, or not needed, then)
        pair = [read_answer(body, {"id": i, "result": r, "completed_by": e})
                for i, (e, r) in enumerate(results.items())]
        if disagree(pair[0], pair[1]):
            client.annotate(body["id"], answer(data, prediction, truth, intents, noise, REVIEWERS[2], seed),
                            reviewers[REVIEWERS[2]])
            summary.answered += 1
            summary.adjudicated += 1
