"""Lineage on a project trained by the real flow: call -> datasets -> runs -> models -> bundles, and back."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from flows.erase import erase_caller
from governance.session import open_store
from tests.flow_helpers import TrainedProject, cli, project_fixture

project = project_fixture("lineage")


def _lineage(project: TrainedProject, *args: str) -> dict[str, Any]:
    result = cli("lineage", *args, "--json", "--params", str(project.params))
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_a_call_is_traced_to_its_datasets_runs_models_and_bundles(project: TrainedProject) -> None:
    train_call = project.call_ids[0]
    data = _lineage(project, "--call-id", train_call)
    summary = project.summary
    assert (data["raw"], data["redacted"], data["erased_by"]) == (True, True, None)
    assert {d["name"] for d in data["datasets"]} == {"intent-train", "asr-train"}  # text and audio
    [dataset] = [d for d in data["datasets"] if d["name"] == "intent-train"]
    train = summary["datasets"]["intent-train"]
    assert (dataset["name"], dataset["digest"], dataset["current"]) == ("intent-train", train["digest"], True)
    assert (dataset["rows"], dataset["calls"]) == (train["rows"], train["calls"])
    assert {r["run_id"] for r in data["runs"]} == {summary["training"]["run_id"], summary["asr"]["run_id"]}
    [run] = [r for r in data["runs"] if r["run_id"] == summary["training"]["run_id"]]
    assert run["datasets"]["intent-train"] == train["digest"]
    assert sorted((m["name"], m["version"]) for m in data["models"]) == [("voiceloop-asr", "1"),
                                                                          ("voiceloop-intent", "1")]
    [bundle] = data["bundles"]
    assert bundle["version"] == "1" and set(bundle["aliases"]) == {"champion", "challenger"}
    assert bundle["components"] == {"intent": "voiceloop-intent/1", "asr": "voiceloop-asr/1"}

    table = cli("lineage", "--call-id", train_call, "--params", str(project.params))
    assert table.exit_code == 0 and "champion" in table.output and train["digest"][:16] in table.output


def test_a_model_is_traced_back_to_the_data_it_saw(project: TrainedProject) -> None:
    summary = project.summary
    data = _lineage(project, "--model", "voiceloop-intent", "--version", "1")
    assert data["run"]["run_id"] == summary["training"]["run_id"]
    facts = {d["name"]: d for d in data["datasets"]}
    intent_sets = {name: info for name, info in summary["datasets"].items() if not name.startswith("asr-")}
    assert set(facts) == set(intent_sets)
    for name, info in intent_sets.items():
        assert (facts[name]["digest"], facts[name]["rows"], facts[name]["calls"]) == (
            info["digest"], info["rows"], info["calls"])
        assert facts[name]["present"] and facts[name]["current"]
    assert [b["version"] for b in data["bundles"]] == ["1"]
    bundle = _lineage(project, "--model", "voiceloop-bundle", "--version", "1")
    assert bundle["run"]["run_id"] == summary["training"]["run_id"]
    assert [b["version"] for b in bundle["bundles"]] == ["1"]


def test_bad_lineage_input_exits_with_2(project: TrainedProject) -> None:
    params = ["--params", str(project.params)]
    for args in ([], ["--call-id", "x", "--model", "m", "--version", "1"], ["--model", "voiceloop-intent"]):
        assert cli("lineage", *args, *params).exit_code == 2, args
    missing = cli("lineage", "--model", "voiceloop-intent", "--version", "99", *params)
    assert missing.exit_code == 2 and "no model version voiceloop-intent/99" in missing.output


def test_after_an_erasure_lineage_shows_the_tombstone_and_the_replaced_version(project: TrainedProject) -> None:
    settings = project.settings
    golden_docs = [json.loads(p.read_text()) for p in sorted((project.sources / "golden").glob("*.json"))]
    callers = Counter(d["caller_id"] for d in golden_docs)
    store = open_store(settings, "compliance-officer", "audit")
    [golden] = [d for d in store.list_datasets() if d.name == "intent-golden"]
    doc = next(d for d in golden_docs if callers[d["caller_id"]] == 1 and d["call_id"] in golden.call_ids
               and d["call_id"] not in project.call_ids)
    outcome = erase_caller(settings, "compliance-officer", doc["caller_id"])
    request_id = outcome.request.request_id

    call = _lineage(project, "--call-id", doc["call_id"])
    assert (call["raw"], call["redacted"], call["erased_by"], call["datasets"]) == (False, False, request_id, [])
    model = _lineage(project, "--model", "voiceloop-intent", "--version", "1")
    assert model["model"]["retrain_required"] == request_id
    facts = {d["name"]: d for d in model["datasets"]}
    assert not facts["intent-golden"]["present"] and not facts["intent-golden"]["current"]
    assert facts["intent-train"]["present"] and facts["intent-train"]["current"]
    assert model["run"]["input_rows"]["intent-golden"] == project.summary["datasets"]["intent-golden"]["rows"]
    # the call was in the golden text set and, unless all its turns were PII, in the golden audio set
    assert {d["name"] for d in outcome.certificate["datasets"]} <= {"intent-golden", "asr-golden"}
    [rebuilt] = [d for d in outcome.certificate["datasets"] if d["name"] == "intent-golden"]
    other = next(c for c in golden.call_ids if c != doc["call_id"])
    [now] = [d for d in _lineage(project, "--call-id", other)["datasets"] if d["name"] == "intent-golden"]
    assert now["digest"] == rebuilt["new_digest"] and now["current"] and now["rebuilt_from"] == golden.digest
