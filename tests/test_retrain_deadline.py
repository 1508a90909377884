"""A champion trained on erased calls has a deadline: shown by status and the audit report, audited once
when overdue, and (when the policy says so) rolled back to the newest bundle not trained on them."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from governance.audit import open_audit
from tests.flow_helpers import TrainedProject, cli, project_fixture
from training.registry import CHAMPION, Registry
from training.retrain_deadline import OVERDUE_ACTION

project = project_fixture("retrain-deadline")


def _set_retention(project: TrainedProject, **values: Any) -> None:
    data = yaml.safe_load(project.params.read_text())
    project.params.write_text(yaml.safe_dump({**data, "retention": {**data.get("retention", {}), **values}}))


def _json(*args: str, project: TrainedProject) -> dict[str, Any]:
    result = cli(*args, "--json", "--params", str(project.params))
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


@pytest.fixture(scope="module")
def erased(project: TrainedProject) -> TrainedProject:
    assert _json("status", project=project)["retrain_required"] is None  # a clean champion has no deadline
    _json("erase", "--caller-id", project.caller_id, "--as", "compliance-officer", project=project)
    return project


def test_status_and_the_report_show_the_deadline_then_overdue(erased: TrainedProject) -> None:
    stale = _json("status", project=erased)["retrain_required"]
    assert stale["version"] == "1" and stale["status"] == "due" and stale["requests"][0].startswith("er-")
    assert stale["deadline"][:10] > stale["since"][:10]

    _set_retention(erased, retrain_deadline_days=0)
    assert _json("status", project=erased)["retrain_required"]["status"] == "OVERDUE"
    out = erased.settings.root / "report.html"
    result = cli("audit", "report", "--out", str(out), "--as", "compliance-officer", "--params", str(erased.params))
    assert result.exit_code == 0 and "OVERDUE" in result.output, result.output
    section = out.read_text().split('id="stale-champion"')[1]
    assert "v1" in section and "OVERDUE" in section


def test_the_deadline_check_audits_an_overdue_champion_once(erased: TrainedProject) -> None:
    _set_retention(erased, retrain_deadline_days=0)
    first = _json("retention", "check-deadlines", "--as", "compliance-officer", project=erased)
    assert first["champion"]["status"] == "OVERDUE" and first["champion_audited"] and first["rolled_back_to"] is None
    again = _json("retention", "check-deadlines", "--as", "compliance-officer", project=erased)
    assert not again["champion_audited"]
    [entry] = open_audit(erased.settings).entries(action=OVERDUE_ACTION)
    assert entry.detail["bundle_version"] == "1" and entry.role == "compliance-officer"


def test_with_rollback_when_overdue_the_newest_clean_bundle_serves(erased: TrainedProject) -> None:
    """A bundle registered after the erasure carries no mark (the registry judges bundles by their own tag)."""
    settings = erased.settings
    registry = Registry(settings)
    champion = registry.by_alias(CHAMPION)
    assert champion is not None and champion.run_id
    clean = registry.register_bundle(champion.run_id, champion.components, {"note": "registered after the erasure"})
    _set_retention(erased, retrain_deadline_days=0, rollback_when_overdue=True)

    checked = _json("retention", "check-deadlines", "--as", "compliance-officer", project=erased)
    assert checked["rolled_back_to"] == clean.version
    assert Registry(settings).by_alias(CHAMPION).version == clean.version  # type: ignore[union-attr]
    assert _json("status", project=erased)["retrain_required"] is None
    move = Registry(settings).moves()[-1]
    assert (move.action, move.champion_after) == ("deadline.rollback", clean.version)
