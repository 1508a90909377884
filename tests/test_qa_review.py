"""The weekly QA review end to end on real components: the monitor's records, a sample, a real Label Studio on
127.0.0.1, simulated reviewers answering through its API, the reviews pulled back as labels, and an erasure.

One module-scoped run: the trained template watches a 10-day production stream (with bot logs, so the
champion need not hear it), the second week is sampled (budget 5 of its calls), pushed to the session's
Label Studio, answered by the simulated reviewers, one task answered badly by hand, another flagged as
still holding PII, and pulled. The caller of a labelled call is then erased.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from governance.session import open_store
from qa.review_page import answer_result
from qa.studio_api import StudioClient
from tests.flow_helpers import TrainedProject, cli, project_fixture
from tests.studio_server import StudioHarness
from training.reviewed_labels import golden_draw

project = project_fixture("qa")
WEEK = "2026-W46"  # 9-15 November; the stream starts on Monday 2 November (week 45: the thresholds)


@dataclass
class Reviewed:
    project: TrainedProject
    params: Path
    zones: Path
    truth: Path
    documents: dict[str, dict[str, Any]]  # call id -> call store document
    sampled: dict[str, Any]
    pushed: dict[str, Any]
    simulated: dict[str, Any]
    pulled: dict[str, Any]
    bad: str  # the call answered with an impossible intent
    flagged: str  # the call a reviewer flagged as still holding PII
    studio: StudioHarness


def _ok(*args: str) -> dict[str, Any]:
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _as(reviewed: Reviewed, role: str = "ml-engineer") -> tuple[str, ...]:
    return ("--params", str(reviewed.params), "--as", role)


def _task_records(zones: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in (zones / "labels/tasks").glob("*.json")}


def _answer_by_hand(studio: StudioHarness, zones: Path) -> tuple[str, str]:
    """Before the simulated reviewers: one single-review task gets an impossible intent, another a PII flag."""
    records = sorted((cid, r) for cid, r in _task_records(zones).items() if not r["double"])
    (bad, bad_record), (flagged, flagged_record) = records[0], records[1]
    with studio.client() as client:
        bodies = {b["id"]: b for b in client.tasks(bad_record["project_id"])}
        for record, pii in ((bad_record, False), (flagged_record, True)):
            turns = bodies[record["task_id"]]["data"]["turns"]
            intents = ["no_such_intent" if not pii else "no_request"] * len(turns)
            client.annotate(record["task_id"], answer_result(["something"] * len(turns), intents, "yes",
                                                             (0,) if pii else ()))
    return bad, flagged


@pytest.fixture(scope="module")
def reviewed(project: TrainedProject, label_studio: StudioHarness,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reviewed]:
    folder = tmp_path_factory.mktemp("qa-production")
    calls, truth = folder / "calls", folder / "truth"
    result = cli("simulate-calls", "--production", "--out", str(calls), "--truth", str(truth), "--start", "2026-11-02",
                 "--days", "10", "--calls-per-day", "2", "--seed", "7")
    assert result.exit_code == 0, result.output
    params = project.params.with_name("qa-params.yaml")
    settings = yaml.safe_load(project.params.read_text())
    settings["sources"]["call_store"] = str(calls)
    settings["qa"] = {"label_studio_url": label_studio.connection.url,
                      "label_studio_token": label_studio.connection.token,
                      "label_studio_files_root": str(label_studio.studio.media_root),
                      "project_title": f"voiceloop QA {folder.name}"}
    params.write_text(yaml.safe_dump(settings))
    _ok("monitor", "--json", "--params", str(params))
    p = ("--params", str(params), "--as", "ml-engineer")
    sampled = _ok("qa", "sample", "--week", WEEK, "--budget", "5", "--json", *p)
    pushed = _ok("qa", "push", "--week", WEEK, "--json", *p)
    zones = Path(settings["project_dir"]) / "zones"
    bad, flagged = _answer_by_hand(label_studio, zones)
    simulated = _ok("qa", "simulate-review", "--truth", str(truth), "--week", WEEK, "--json", *p)
    pulled = _ok("qa", "pull", "--json", *p)
    documents = {path.stem: json.loads(path.read_text()) for path in calls.glob("*.json")}
    yield Reviewed(project, params, zones, truth, documents, sampled, pushed, simulated, pulled, bad, flagged,
                   label_studio)


def test_the_week_is_sampled_once_with_its_probabilities_recorded(reviewed: Reviewed) -> None:
    sampled = reviewed.sampled
    assert 0 < sampled["selected"] <= sampled["frame"] and not sampled["existing"]
    record = json.loads((reviewed.zones / f"labels/samples/{WEEK}.json").read_text())
    assert record["call_ids"] == sorted(record["calls"]) and len(record["call_ids"]) == sampled["selected"]
    assert all(0 < c["probability"] <= 1 for c in record["calls"].values())
    assert sum(c["blind"] for c in record["calls"].values()) == sampled["blind"]
    clear = {d["caller_id"] for d in reviewed.documents.values()}
    assert all(c["caller_ref"] and c["caller_ref"] not in clear for c in record["calls"].values())
    again = _ok("qa", "sample", "--week", WEEK, "--budget", "9", "--json", *_as(reviewed))
    assert again["existing"] and again["selected"] == sampled["selected"]  # a week is drawn once


def test_push_makes_one_task_per_call_blind_ones_without_the_champions_answers(reviewed: Reviewed) -> None:
    records = _task_records(reviewed.zones)
    assert reviewed.pushed["pushed"] == reviewed.sampled["selected"] == len(records)
    with reviewed.studio.client() as client:
        bodies = {b["id"]: b for b in client.tasks(reviewed.pushed["project_id"])}
        for call_id, record in records.items():
            body = bodies[record["task_id"]]
            assert body["data"]["call_id"] == call_id
            assert bool(body.get("predictions")) is not record["blind"]
            for prediction in body.get("predictions", []):
                assert prediction["model_version"] not in ("", "unknown")
            audio = client.fetch(body["data"]["audio"])  # served by Label Studio from the labels zone
            assert audio == next((reviewed.zones / "labels/media" / call_id).glob("audio.*")).read_bytes()
    again = _ok("qa", "push", "--week", WEEK, "--json", *_as(reviewed))
    assert again["pushed"] == 0 and again["already"] == len(records)
    victim = sorted(records)[0]
    (reviewed.zones / "labels/tasks" / f"{victim}.json").unlink()  # as if a push died before recording it
    adopted = _ok("qa", "push", "--week", WEEK, "--json", *_as(reviewed))
    assert adopted["pushed"] == 1 and _task_records(reviewed.zones)[victim]["task_id"] == records[victim]["task_id"]
    with reviewed.studio.client() as client:
        assert len(client.tasks(reviewed.pushed["project_id"])) == len(records)  # adopted, not made twice


def _pii_values(documents: dict[str, dict[str, Any]], truth: Path) -> set[str]:
    values = set()
    for call_id in documents:
        for turn in json.loads((truth / f"{call_id}.json").read_text())["turns"]:
            values |= {turn["transcript"][s["start"]:s["end"]] for s in turn.get("pii", [])}
    return {v for v in values if len(v) >= 4}


def test_nothing_unredacted_reaches_label_studio(reviewed: Reviewed) -> None:
    values = _pii_values(reviewed.documents, reviewed.truth)
    assert values, "the stream's callers should have said personal details"
    folder = reviewed.studio.studio.folder
    stored = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.suffix != ".log")
    with reviewed.studio.client() as client:
        served = json.dumps(client.tasks(reviewed.pushed["project_id"]))
    leaked = [v for v in values if v.encode() in stored or v in served]
    assert leaked == []


def test_pull_keeps_reconciled_redacted_labels_and_quarantines_the_rest(reviewed: Reviewed) -> None:
    pulled, records = reviewed.pulled, _task_records(reviewed.zones)
    assert reviewed.simulated["answered"] >= len(records) - 2
    assert pulled["quarantined"] == [reviewed.bad] and pulled["pii_flagged"] == [reviewed.flagged]
    reviews = {p.stem: json.loads(p.read_text()) for p in (reviewed.zones / "labels/reviews").glob("*.json")}
    assert pulled["labelled"] == len(reviews) == len(records) - 2
    assert pulled["waiting"] == 1  # the badly answered call waits for a good answer; its bad one is set aside
    for call_id, review in reviews.items():
        record = records[call_id]
        assert review["blind"] == record["blind"] and review["week"] == WEEK
        assert len(review["answers"]) >= (2 if record["double"] else 1)
        assert all(len(a["reviewer"]) >= 16 and "@" not in a["reviewer"] for a in review["answers"])
        assert all(t["intent"] for t in review["turns"])
    values = _pii_values(reviewed.documents, reviewed.truth)
    labels_text = "".join(p.read_text() for p in (reviewed.zones / "labels").rglob("*.json"))
    assert not [v for v in values if v in labels_text]
    store = open_store(reviewed.project.settings, "ml-engineer", "qa-review")
    reasons = {item["call_id"]: item["reason"] for item in store.quarantined("review")}
    assert "not one of the page's choices" in reasons[reviewed.bad]
    assert "redaction miss" in reasons[reviewed.flagged]
    again = _ok("qa", "pull", "--json", *_as(reviewed))
    assert again["labelled"] == 0 and again["quarantined"] == again["pii_flagged"] == []  # each once
    record = _task_records(reviewed.zones)[reviewed.bad]
    with reviewed.studio.client() as client:  # the reviewer answers again, properly this time
        body = next(b for b in client.tasks(record["project_id"]) if b["id"] == record["task_id"])
        count = len(body["data"]["turns"])
        client.annotate(record["task_id"], answer_result(["my card"] * count, ["card_arrival"] * count, "yes"))
    fixed = _ok("qa", "pull", "--json", *_as(reviewed))
    assert fixed["labelled"] == 1
    assert (reviewed.zones / "labels/reviews" / f"{reviewed.bad}.json").exists()


def test_reviewed_labels_reach_the_next_retrains_datasets_with_their_lineage(reviewed: Reviewed) -> None:
    before = reviewed.project.summary["datasets"]
    reviews = {p.stem: json.loads(p.read_text()) for p in (reviewed.zones / "labels/reviews").glob("*.json")}
    # The pseudonyms' salt is new in every project, so the golden share is set between the reviewed callers'
    # draws: the first caller is on the golden side, the others are trained on, whatever the salt drew.
    draws = sorted({golden_draw(r["caller_ref"]) for r in reviews.values()})
    assert len(draws) >= 2, "the week's reviewed calls should come from more than one caller"
    share = (draws[0] + draws[1]) / 2
    params = reviewed.params.with_name("qa-split-params.yaml")
    settings = yaml.safe_load(reviewed.params.read_text())
    settings["qa"]["production_golden_share"] = share
    params.write_text(yaml.safe_dump(settings))
    built = _ok("build-datasets", "--json", "--params", str(params), "--as", "ml-engineer")  # the DVC stage's step
    store = open_store(reviewed.project.settings, "ml-engineer", "training")
    current = {i.name: i for i in store.list_datasets() if built.get(i.name) == i.digest}
    carrying = {name: set(i.manifest.get("reviewed_labels", {})) for name, i in current.items()}
    used = set().union(*carrying.values())
    assert used and used <= set(reviews)
    trained = carrying.get("intent-train", set()) | carrying.get("asr-train", set())
    assert trained <= {c for c in used if golden_draw(reviews[c]["caller_ref"]) >= share}, carrying
    assert trained, carrying
    assert built["intent-train"] != before["intent-train"]["digest"]  # the labels changed what trains
    assert not (carrying.get("intent-production-golden", set()) | carrying.get("asr-production-golden", set())) \
        & trained  # a call is judged on or trained on, never both
    call_id = sorted(trained)[0]
    lineage = _ok("lineage", "--call-id", call_id, "--json", *_as(reviewed))
    assert lineage["reviewed"]
    assert any(d["reviewed_label"] for d in lineage["datasets"])


def test_qa_commands_need_the_labelling_purpose(reviewed: Reviewed) -> None:
    refused = cli("qa", "pull", "--as", "pipeline", "--params", str(reviewed.params))
    assert refused.exit_code == 2 and "labelling" in refused.output
    assert cli("qa", "pull", "--as", "reviewer", "--params", str(reviewed.params)).exit_code == 0


def test_erasure_takes_the_callers_tasks_audio_and_labels(reviewed: Reviewed) -> None:
    """Last in the module: it erases the caller of a labelled call."""
    reviews = sorted(p.stem for p in (reviewed.zones / "labels/reviews").glob("*.json"))
    call_id = reviews[0]
    caller = reviewed.documents[call_id]["caller_id"]
    theirs = {c for c, d in reviewed.documents.items() if d["caller_id"] == caller}
    record = _task_records(reviewed.zones)[call_id]
    unreachable = reviewed.params.with_name("qa-params-unreachable.yaml")
    broken = yaml.safe_load(reviewed.params.read_text())
    broken["qa"]["label_studio_url"] = "http://127.0.0.1:9"  # nothing listens there
    unreachable.write_text(yaml.safe_dump(broken))
    stopped = cli("erase", "--caller-id", caller, "--as", "compliance-officer", "--params", str(unreachable))
    assert stopped.exit_code == 1 and "run the same command again" in stopped.output
    assert (reviewed.zones / "labels/reviews" / f"{call_id}.json").exists()  # nothing of QA deleted yet
    erased = cli("erase", "--caller-id", caller, "--as", "compliance-officer", "--json", "--params",
                 str(reviewed.params))  # the same request, resumed
    assert erased.exit_code == 0, erased.output
    assert not theirs & set(_task_records(reviewed.zones))
    assert not any((reviewed.zones / "labels/media" / c).exists() for c in theirs)
    assert not any((reviewed.zones / "labels/reviews" / f"{c}.json").exists() for c in theirs)
    sample = json.loads((reviewed.zones / f"labels/samples/{WEEK}.json").read_text())
    assert not theirs & set(sample["call_ids"]) and not theirs & set(sample["calls"])
    with StudioClient(reviewed.studio.connection) as client:
        assert record["task_id"] not in {b["id"] for b in client.tasks(record["project_id"])}
    database = next(reviewed.studio.studio.folder.rglob("*.sqlite3"))
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = b"".join(p.read_bytes() for p in database.parent.rglob("*") if p.is_file())
    assert call_id.encode() not in data
    certificate = json.loads(erased.stdout)
    assert "labels" in json.dumps(certificate)
