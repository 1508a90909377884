"""Retention on a project trained by the real flow: dry run vs apply, audited, redacted kept, digests stable."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from flows.erase import erase_caller
from governance.access import AccessDenied
from governance.audit import open_audit
from governance.retention import RETAINED_CALLERS, apply_retention
from governance.session import open_store
from governance.store import GovernedStore
from tests.flow_helpers import TrainedProject, cli, clone_project, project_fixture

template = project_fixture("retention-template", "template")
RAW_DAYS = 30


@pytest.fixture()
def project(template: TrainedProject, tmp_path: Path) -> TrainedProject:
    """A fresh copy per test: retention deletes for real."""
    return clone_project(template, tmp_path)


def _store(project: TrainedProject, role: str = "compliance-officer") -> GovernedStore:
    return open_store(project.settings, role, "retention")


def _middle(store: GovernedStore) -> datetime:
    """A ``now`` that puts about half the raw calls past a RAW_DAYS window."""
    starts = sorted(datetime.fromisoformat(e.started_at) for e in store.raw_index().values())
    return starts[len(starts) // 2] + timedelta(days=RAW_DAYS)


def test_a_dry_run_reports_exactly_what_apply_deletes_and_deletes_nothing(project: TrainedProject) -> None:
    store = _store(project)
    now = _middle(store)
    raw_before, redacted_before = store.raw_call_ids(), store.redacted_call_ids()
    expected = sorted(c for c, e in store.raw_index().items() if datetime.fromisoformat(e.started_at) < now
                      - timedelta(days=RAW_DAYS))
    assert 0 < len(expected) < len(raw_before)

    dry = apply_retention(store, now, RAW_DAYS, keep_redacted=True, dry_run=True)
    assert dry.dry_run and dry.raw == expected and dry.redacted == [] and dry.deleted == {}
    assert store.raw_call_ids() == raw_before

    applied = apply_retention(store, now, RAW_DAYS, keep_redacted=True, dry_run=False)
    assert (applied.raw, applied.redacted, applied.quarantine) == (dry.raw, dry.redacted, dry.quarantine)
    assert store.raw_call_ids() == raw_before - set(expected)
    assert store.redacted_call_ids() == redacted_before  # derivatives kept
    assert applied.deleted["raw"]["call_ids"] == len(expected) and applied.deleted["raw"]["bytes"] > 0

    audit = open_audit(project.settings)
    [dry_entry] = audit.entries(action="retention.dry-run")
    [apply_entry] = audit.entries(action="retention.apply")
    assert dry_entry.purpose == apply_entry.purpose == "retention" and dry_entry.role == "compliance-officer"
    assert dry_entry.call_ids == apply_entry.call_ids == expected
    [raw_delete] = [e for e in audit.entries(action="raw.delete") if e.call_ids]
    assert raw_delete.call_ids == expected and raw_delete.purpose == "retention"
    assert audit.verify().ok


def test_quarantined_items_of_expired_calls_go_with_them(project: TrainedProject) -> None:
    store = _store(project)
    items = store.quarantined()
    assert items, "the tiny corpus quarantines at least one turn at validation"
    last_start = max(datetime.fromisoformat(e.started_at) for e in store.raw_index().values())
    report = apply_retention(store, last_start + timedelta(days=RAW_DAYS, seconds=1), RAW_DAYS, True, False)
    assert report.raw == sorted(store.redacted_call_ids())  # every raw call expired
    assert report.quarantine == sorted(f"{i['stage']}/{i['item']}" for i in items if i["call_id"] in report.raw)
    assert store.quarantined() == [i for i in items if i["call_id"] not in report.raw]


def test_build_datasets_gives_the_same_digests_after_retention(project: TrainedProject) -> None:
    params = str(project.params)
    before = cli("build-datasets", "--json", "--params", params)
    assert before.exit_code == 0, before.output
    assert json.loads(before.stdout) == {name: d["digest"] for name, d in project.summary["datasets"].items()}

    # raw_days 0: every raw call (they all started in the past) expires now
    env = {"VOICELOOP__RETENTION__RAW_DAYS": "0"}
    dry = cli("retention", "apply", "--dry-run", "--json", "--as", "compliance-officer", "--params", params, env=env)
    assert dry.exit_code == 0, dry.output
    planned = json.loads(dry.stdout)
    assert planned["dry_run"] and planned["raw"] and planned["keep_redacted"]
    applied = cli("retention", "apply", "--json", "--as", "compliance-officer", "--params", params, env=env)
    assert applied.exit_code == 0, applied.output
    done = json.loads(applied.stdout)
    assert done["raw"] == planned["raw"] and not done["dry_run"]
    assert not any((project.settings.zones_dir / "raw").iterdir())

    after = cli("build-datasets", "--json", "--params", params)
    assert after.exit_code == 0, after.output
    assert json.loads(after.stdout) == json.loads(before.stdout)
    table = cli("retention", "apply", "--as", "compliance-officer", "--params", params, env=env)
    assert table.exit_code == 0 and "redacted calls are kept" in table.output


def test_without_keep_redacted_the_redacted_calls_go_too_and_erasure_still_finds_their_rows(
    project: TrainedProject,
) -> None:
    store = _store(project, "admin")
    now = _middle(store)
    report = apply_retention(store, now, RAW_DAYS, keep_redacted=False, dry_run=False)
    assert report.redacted == report.raw and report.raw
    assert not set(report.raw) & (store.redacted_call_ids() | store.raw_call_ids())
    # the next run also removes redacted calls whose raw calls expired in an earlier run
    store.delete_raw([sorted(store.raw_call_ids())[0]])  # as if an earlier run had removed it
    orphan = sorted(store.redacted_call_ids() - store.raw_call_ids())
    assert apply_retention(store, now, RAW_DAYS, keep_redacted=False, dry_run=True).redacted == orphan

    # dataset rows carry no caller pseudonym: retention keeps call -> pseudonym for erasure
    apply_retention(store, now + timedelta(days=365), RAW_DAYS, keep_redacted=False, dry_run=False)
    assert not store.raw_call_ids() and not store.redacted_call_ids()
    retained = store.read_state(RETAINED_CALLERS)["calls"]
    [train] = [d for d in store.list_datasets() if d.name == "intent-train"]
    call_id = next(c for c in train.call_ids if c in retained and c not in project.call_ids)
    caller = json.loads((project.sources / "calls" / f"{call_id}.json").read_text())["caller_id"]
    outcome = erase_caller(project.settings, "admin", caller)
    assert call_id in outcome.certificate["call_ids"]
    assert [d["name"] for d in outcome.certificate["datasets"]] == ["asr-train", "intent-train"]
    assert not any(call_id in d.call_ids for d in store.list_datasets())
    assert call_id not in store.read_state(RETAINED_CALLERS)["calls"]


def test_retention_needs_a_role_holding_the_retention_purpose(project: TrainedProject) -> None:
    refused = cli("retention", "apply", "--dry-run", "--as", "ml-engineer", "--params", str(project.params))
    assert refused.exit_code == 2 and "may not act for purpose 'retention'" in refused.output
    with pytest.raises(AccessDenied):  # even in a dry run, when the role lacks it
        apply_retention(open_store(project.settings, "pipeline", "ingest"), datetime.now().astimezone(), RAW_DAYS,
                        True, dry_run=True)
    [cli_denied, denied] = open_audit(project.settings).entries(outcome="denied")
    assert (cli_denied.action, cli_denied.role, cli_denied.purpose) == ("role.refused", "ml-engineer", "retention")
    assert denied.role == "pipeline" and denied.purpose == "retention"
