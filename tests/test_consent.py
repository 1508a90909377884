"""Consent withdrawn after ingest, on projects trained by the real flow (store, DVC, MLflow, audit).

A call store document that turns ``consent.training`` false, and a caller who withdraws through the
command line, both take the calls out of every dataset version, purge their DVC objects, tag the
models trained on them and certify it; the caller's new calls stay out until they consent again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import yaml
from mlflow.tracking import MlflowClient

from core.settings import Settings
from flows.erase import carry_out_pending_withdrawals
from governance.audit import open_audit
from governance.consent import ConsentLedger
from governance.erasure import verify_certificate
from governance.ingest import ingest, ingest_sources
from governance.session import open_store
from governance.validation import validate_redacted
from tests.flow_helpers import TrainedProject, cli, project_fixture
from training.registry import RETRAIN_REQUIRED_TAG

project = project_fixture("consent")
erasing_project = project_fixture("consent-erase", "erasing_project")


def _trained_call(project: TrainedProject) -> str:
    """The earliest consenting training call in intent-train (older than the watermark: ingest must still look)."""
    store = open_store(project.settings, "compliance-officer", "audit")
    [train] = [d for d in store.list_datasets() if d.name == "intent-train"]
    docs = {cid: json.loads((project.sources / "calls" / f"{cid}.json").read_text()) for cid in train.call_ids}
    return min((c for c in docs if c not in project.call_ids), key=lambda c: docs[c]["started_at"])


def _withdraw_in_the_call_store(project: TrainedProject, call_id: str) -> None:
    path = project.sources / "calls" / f"{call_id}.json"
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "consent": {**document["consent"], "training": False}}))


def _datasets_holding(settings: Settings, call_ids: set[str]) -> list[str]:
    store = open_store(settings, "compliance-officer", "audit")
    return [f"{d.name}@{d.digest[:12]}" for d in store.list_datasets() if call_ids & set(d.call_ids)]


def _validated_calls(settings: Settings) -> set[str]:
    store = open_store(settings, "pipeline", "validation")
    return set(validate_redacted(store, settings.validation).passed["call_id"])


def _carry_out(settings: Settings) -> list[Any]:
    return carry_out_pending_withdrawals(settings, open_store(settings, "pipeline", "withdrawal"))


def test_a_document_that_withdraws_consent_takes_its_call_out_of_training(project: TrainedProject) -> None:
    settings = project.settings
    call_id = _trained_call(project)
    assert _datasets_holding(settings, {call_id}) and call_id in _validated_calls(settings)
    watermark = project.summary["ingest"]["train"]["watermark"]
    _withdraw_in_the_call_store(project, call_id)

    reports = ingest_sources(open_store(settings, "pipeline", "ingest"), settings.sources)
    assert reports["train"].withdrawn == [call_id] and reports["train"].ingested == []
    assert reports["train"].watermark == watermark
    raw = open_store(settings, "compliance-officer", "audit").raw_index()[call_id]
    assert raw.consent_training is False  # the raw copy follows its document

    [outcome] = _carry_out(settings)
    certificate = outcome.certificate
    assert certificate["kind"] == "consent-withdrawal" and certificate["call_ids"] == [call_id]
    assert certificate["withdrawal"]["on_withdrawal"] == "exclude"
    assert {d["name"] for d in certificate["datasets"]} == {"intent-train", "asr-train"}
    assert _datasets_holding(settings, {call_id}) == []
    assert certificate["dvc"]["cache"]["objects"] and certificate["dvc"]["remote"]["objects"]
    mlflow.set_tracking_uri(settings.tracking_uri)
    tags = MlflowClient().get_run(project.summary["training"]["run_id"]).data.tags
    assert tags[RETRAIN_REQUIRED_TAG] == outcome.request.request_id
    audit = open_audit(settings)
    assert verify_certificate(audit, certificate).ok
    [withdrawn] = audit.entries(action="consent.withdrawn")
    assert withdrawn.call_ids == [call_id] and withdrawn.detail["scope"] == "call"

    # exclude (the default): the copies stay for their other uses, and no future dataset takes the call
    store = open_store(settings, "compliance-officer", "audit")
    assert call_id in store.raw_call_ids() and call_id in store.redacted_call_ids()
    assert call_id not in _validated_calls(settings)
    assert _carry_out(settings) == [] and ConsentLedger.load(store).pending() == []
    again = ingest_sources(open_store(settings, "pipeline", "ingest"), settings.sources)
    assert again["train"].withdrawn == [] and again["train"].ingested == []


def test_a_caller_withdraws_and_consents_again(project: TrainedProject, tmp_path: Path) -> None:
    """The caller in both a training set and the golden set: the champion is re-measured without them."""
    settings, params = project.settings, str(project.params)
    caller = project.caller_id
    assert _datasets_holding(settings, set(project.call_ids))
    withdrawn = cli("consent", "withdraw", "--caller-id", caller, "--as", "compliance-officer", "--json",
                    "--params", params)
    assert withdrawn.exit_code == 0, withdrawn.output
    certificate = json.loads(withdrawn.stdout)
    assert certificate["withdrawal"]["scope"] == "caller" and set(project.call_ids) <= set(certificate["call_ids"])
    assert _datasets_holding(settings, set(project.call_ids)) == []
    assert certificate["golden"]["rebaselined"]
    assert not set(project.call_ids) & _validated_calls(settings)

    def new_call(call_id: str, started_at: str) -> None:
        template = json.loads((project.sources / "calls" / f"{project.call_ids[0]}.json").read_text())
        (project.sources / "calls" / f"{call_id}.json").write_text(
            json.dumps({**template, "call_id": call_id, "started_at": started_at}))

    ingester = open_store(settings, "pipeline", "ingest")
    new_call("after-withdrawal", "2030-01-01T10:00:00+00:00")
    report = ingest(ingester, settings.sources.call_store, "train")
    assert report.no_consent == ["after-withdrawal"] and report.ingested == []

    granted = cli("consent", "grant", "--caller-id", caller, "--as", "compliance-officer", "--params", params)
    assert granted.exit_code == 0, granted.output
    new_call("after-grant", "2030-02-01T10:00:00+00:00")
    assert ingest(ingester, settings.sources.call_store, "train").ingested == ["after-grant"]

    status = cli("consent", "status", "--caller-id", caller, "--as", "compliance-officer", "--json",
                 "--params", params)
    assert status.exit_code == 0, status.output
    history = json.loads(status.stdout)
    assert [h["status"] for h in history["history"]] == ["withdrawn", "granted"] and not history["withdrawn"]
    assert [e.action for e in open_audit(settings).entries(caller=caller) if e.action.startswith("consent.")] == [
        "consent.withdrawn", "consent.granted"]


def test_a_role_without_the_withdrawal_purpose_is_refused(project: TrainedProject) -> None:
    refused = cli("consent", "withdraw", "--caller-id", project.caller_id, "--as", "ml-engineer",
                  "--params", str(project.params))
    assert refused.exit_code == 2 and "withdrawal" in refused.output


def test_on_withdrawal_erase_deletes_the_calls_copies_too(erasing_project: TrainedProject) -> None:
    settings = erasing_project.settings
    data = yaml.safe_load(erasing_project.params.read_text())
    erasing_project.params.write_text(yaml.safe_dump({**data, "consent": {"on_withdrawal": "erase"}}))
    settings = erasing_project.settings
    call_id = _trained_call(erasing_project)
    _withdraw_in_the_call_store(erasing_project, call_id)
    ingest_sources(open_store(settings, "pipeline", "ingest"), settings.sources)

    [outcome] = _carry_out(settings)
    assert outcome.certificate["withdrawal"]["on_withdrawal"] == "erase"
    assert outcome.certificate["zones"]["raw"]["call_ids"] == [call_id]
    store = open_store(settings, "compliance-officer", "audit")
    assert call_id not in store.raw_call_ids() | store.redacted_call_ids()
    assert _datasets_holding(settings, {call_id}) == []
    # tombstoned: the document in the call store never brings it back
    _withdraw_in_the_call_store(erasing_project, call_id)  # rewritten: a changed document
    assert call_id in ingest(open_store(settings, "pipeline", "ingest"), settings.sources.call_store, "train").erased
