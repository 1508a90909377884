"""The monitor flow on real calls: a simulated production stream, the trained champion, Alertmanager and the
Pushgateway on 127.0.0.1, and an erasure afterwards.

One module-scoped run: the template project (a champion with an intent model, a golden set with audio)
watches a 4-day stream without bot logs (the champion hears every turn) whose channel changes on day 4,
a 2-day stream with bot logs, a call without training consent and a call with a bad bot log. The
reference window is 3 days, so day 4's new channel is judged: an alert that must reach its owner's
webhook through Alertmanager. Hand-checked figures are in tests/test_monitor_metrics.py.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from governance.session import open_store
from tests.alerting_helpers import Receiver, free_port, wait_for
from tests.conftest import write_call
from tests.flow_helpers import TrainedProject, cli, project_fixture

project = project_fixture("monitor")
TEAMS = ("speech-team", "nlu-team", "privacy-team", "platform-team", "contact-centre-ops")
UNCONSENTED_WORDS = "my name is Bartholomew Quigley and my card was swallowed by the machine"


@dataclass
class Watched:
    project: TrainedProject
    params: Path
    store_dir: Path
    truth: list[dict[str, Any]]  # every simulated call's truth
    documents: dict[str, dict[str, Any]]  # call id -> its call store document
    summary: dict[str, Any]
    again: dict[str, Any]  # a second run straight after
    receiver: Receiver


def _policy_with_receivers(receiver: Receiver, folder: Path) -> Path:
    from governance.policy import SHIPPED_POLICY

    policy = yaml.safe_load(SHIPPED_POLICY.read_text())
    policy["owners"] = [{**owner, "receiver": receiver.url(owner["team"])} for owner in policy["owners"]]
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def _simulate(calls: Path, truth: Path, *args: str) -> None:
    result = cli("simulate-calls", "--production", "--out", str(calls), "--truth", str(truth), "--start",
                 "2026-11-01", *args)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def watched(project: TrainedProject, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    folder = tmp_path_factory.mktemp("production")
    calls, truth = folder / "calls", folder / "truth"
    _simulate(calls, truth / "a", "--days", "4", "--calls-per-day", "2", "--seed", "5", "--no-bot-log",
              "--drift", "noisy-channel@4:1.0")
    _simulate(calls, truth / "b", "--days", "2", "--calls-per-day", "2", "--seed", "6")
    write_call(calls, "call-unconsented", consent=False, caller_id="caller-unconsented-77",
               started_at="2026-11-02T11:00:00+00:00", seconds=3.0,
               turns=[{"speaker": "bot", "start_s": 0.0, "end_s": 0.8, "text": "how can I help"},
                      {"speaker": "customer", "start_s": 1.2, "end_s": 2.9, "text": UNCONSENTED_WORDS}],
               outcome="contained")
    bad = json.loads((calls / "call-prod-s6-d001-0000.json").read_text())
    logged = next(i for i, turn in enumerate(bad["turns"]) if turn.get("bot"))
    bad["turns"][logged]["bot"] = {**bad["turns"][logged]["bot"], "confidence": 7}  # a probability over 1
    (calls / "call-prod-s6-d001-0000.json").write_text(json.dumps(bad))
    params = project.params.with_name("monitor-params.yaml")
    settings = yaml.safe_load(project.params.read_text())
    settings["sources"]["call_store"] = str(calls)
    settings["access"] = {"policy_file": str(_policy_with_receivers(receiver, folder))}
    settings["monitor"] = {**settings.get("monitor", {}), "reference_days": 3, "alertmanager_port": free_port(),
                           "pushgateway_port": free_port(), "escalate_after_s": 3600}
    params.write_text(yaml.safe_dump(settings))
    for daemon in ("alertmanager", "pushgateway"):
        started = cli(daemon, "start", "--params", str(params))
        assert started.exit_code == 0, started.output
    try:
        first = cli("monitor", "--json", "--params", str(params))
        assert first.exit_code == 0, first.output
        second = cli("monitor", "--json", "--params", str(params))
        assert second.exit_code == 0, second.output
        documents = {p.stem: json.loads(p.read_text()) for p in calls.glob("*.json")}
        truths = [json.loads(p.read_text()) for p in truth.glob("*/call-*.json")]
        yield Watched(project, params, Path(settings["project_dir"]) / "zones", truths, documents,
                      json.loads(first.stdout), json.loads(second.stdout), receiver)
    finally:
        for daemon in ("alertmanager", "pushgateway"):
            cli(daemon, "stop", "--params", str(params))


def _zone_text(zones: Path, zone: str) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (zones / zone).rglob("*") if p.is_file())


def test_every_call_is_watched_once_and_the_champion_hears_those_without_a_bot_log(watched: Watched) -> None:
    collected = watched.summary["collect"]
    watching = {p.stem for p in (watched.store_dir / "monitoring/calls").glob("*.json")}
    assert set(watched.documents) <= watching  # and the template's own calls, redacted before the monitor ran
    assert collected["monitored"] == len(watching)
    assert collected["unconsented"] == sum(not d["consent"]["training"] for d in watched.documents.values())
    assert collected["champion_turns"] > 0 and collected["bot_logged_turns"] > 0
    assert collected["fields_quarantined"] == 1
    assert watched.again["collect"]["monitored"] == 0, "a second run reads no call twice"
    assert {"2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"} <= set(watched.summary["days"])
    day4 = json.loads((watched.store_dir / "monitoring/days/2026-11-04.json").read_text())
    assert {"latency_p95_ms", "callback_24h_rate", "sentiment_end", "est_wer"} <= {
        f["metric"] for f in day4["figures"] if f["slice"] == "all"}
    on_day4 = {c for c, d in watched.documents.items() if d["started_at"].startswith("2026-11-04")}
    assert set(day4["call_ids"]) == on_day4


def test_the_champion_is_calibrated_on_the_golden_set_and_estimates_carry_intervals(watched: Watched) -> None:
    calibration = watched.summary["calibration"]
    assert calibration is not None and calibration["turns"] >= 30
    assert calibration["intent_ece_calibrated"] is not None and calibration["wer_mae"] is not None
    days = [json.loads(p.read_text()) for p in sorted((watched.store_dir / "monitoring/days").glob("*.json"))]
    estimates = [f for d in days for f in d["figures"] if f["metric"] in ("est_wer", "est_intent_accuracy")]
    assert estimates and all(f["low"] <= f["value"] <= f["high"] for f in estimates)
    noisy = [f for f in estimates if f["slice"] == "channel=gsm-noisy8k"]
    assert noisy, "the new channel's turns were heard and estimated"


def test_a_new_channel_raises_an_alert_that_reaches_its_owner_without_call_ids(watched: Watched) -> None:
    [alert] = [a for a in watched.summary["alerts"] if a["slice"] == "channel=gsm-noisy8k"]
    assert alert["metric"] == "new_slice" and alert["day"] == "2026-11-04" and alert["owner"] == "speech-team"
    assert watched.summary["delivered_to"] and watched.summary["delivery_error"] is None
    assert wait_for(lambda: watched.receiver.got("speech-team", alert["alert_id"]), 30)
    notified = next(n for _, n in watched.receiver.alerts_for("speech-team")
                    if n["labels"]["alert_id"] == alert["alert_id"])
    assert not set(watched.documents) & set(json.dumps(notified).split('"')), "no call id in the notification"
    assert watched.again["alerts"] == [], "found again, it is the same alert"
    listed = cli("alerts", "--json", "--params", str(watched.params), "--as", "ml-engineer")
    assert listed.exit_code == 0 and alert["alert_id"] in listed.stdout and "call-prod" not in listed.stdout
    shown = cli("alerts", "show", alert["alert_id"], "--json", "--params", str(watched.params), "--as",
                "compliance-officer")
    assert shown.exit_code == 0, shown.output
    behind = json.loads(shown.stdout)["call_ids"]
    assert behind and all(watched.documents[c]["meta"]["channel"] == "gsm-noisy8k" for c in behind)
    audit = open_store(watched.project.settings, "compliance-officer", "audit").audit
    assert any(e.detail.get("alert_id") == alert["alert_id"] for e in audit.entries(action="monitoring.alert"))
    reads = [e for e in audit.entries(action="monitoring.read") if e.role == "compliance-officer"]
    assert reads and set(behind) <= set(reads[-1].call_ids), "showing the calls behind an alert is audited"
    refused = cli("alerts", "show", alert["alert_id"], "--params", str(watched.params), "--as", "serving")
    assert refused.exit_code == 2


def test_no_text_and_no_caller_id_in_monitoring_records_metrics_or_alerts(watched: Watched) -> None:
    monitoring = _zone_text(watched.store_dir, "monitoring")
    said = {w.lower() for t in watched.truth for turn in t.get("turns", []) for w in
            re.findall(r"[A-Za-z]{7,}", turn.get("transcript") or "")} | {"bartholomew", "quigley", "swallowed"}
    leaked = sorted(w for w in said if re.search(rf"\b{w}\b", monitoring, re.IGNORECASE))
    assert not leaked, f"call words in the monitoring zone: {leaked[:10]}"
    callers = {d["caller_id"] for d in watched.documents.values()}
    assert not [c for c in callers if c in monitoring]
    settings = yaml.safe_load(watched.params.read_text())
    metrics = httpx.get(f"http://127.0.0.1:{settings['monitor']['pushgateway_port']}/metrics", timeout=5).text
    assert "voiceloop_monitor_callback_24h_rate" in metrics and "call-" not in metrics
    assert not [c for c in callers if c in metrics]


def test_a_call_without_training_consent_is_only_a_monitoring_record(watched: Watched) -> None:
    zones = watched.store_dir
    assert (zones / "monitoring/calls/call-unconsented.json").exists()
    assert not (zones / "raw/call-unconsented").exists() and not (zones / "redacted/call-unconsented.json").exists()
    record = json.loads((zones / "monitoring/calls/call-unconsented.json").read_text())
    assert record["consent_training"] is False and record["turns"], "its turn was heard and scored"


def test_a_bad_bot_log_is_quarantined_with_its_reason_and_the_call_watched(watched: Watched) -> None:
    folder = watched.store_dir / "quarantine/ingest-field"
    [reason] = [json.loads(p.read_text()) for p in folder.glob("*/reason.json")]
    assert reason["call_id"] == "call-prod-s6-d001-0000"
    assert re.search(r"turns\.\d+\.bot\.confidence: Input should be less than or equal to 1", reason["reason"])
    assert "the call kept" in reason["reason"]
    assert (watched.store_dir / "monitoring/calls/call-prod-s6-d001-0000.json").exists()


def test_the_report_page_and_the_daemons_status(watched: Watched, tmp_path: Path) -> None:
    page = tmp_path / "monitor.html"
    made = cli("monitor", "report", "--out", str(page), "--params", str(watched.params))
    assert made.exit_code == 0, made.output
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "channel=gsm-noisy8k" in text and "data:image/png;base64," in text
    status = cli("alertmanager", "status", "--json", "--params", str(watched.params))
    assert json.loads(status.stdout)["running"] and "127.0.0.1" in json.loads(status.stdout)["url"]
    owners = json.loads(cli("status", "--json", "--params", str(watched.params)).stdout)["owners"]
    assert {(o["component"], o["team"], o["notified"]) for o in owners} >= {("asr", "speech-team", True),
                                                                            ("service", "contact-centre-ops", True)}


def test_erasure_takes_a_caller_out_of_monitoring_records_and_alerts(watched: Watched) -> None:
    """Last in the module: it erases the caller of the calls behind the new-channel alert's first call."""
    [alert] = [a for a in watched.summary["alerts"] if a["slice"] == "channel=gsm-noisy8k"]
    alerts_file = watched.store_dir / f"monitoring/alerts/{alert['alert_id']}.json"
    call_id = json.loads(alerts_file.read_text())["call_ids"][0]
    caller = watched.documents[call_id]["caller_id"]
    theirs = sorted(c for c, d in watched.documents.items() if d["caller_id"] == caller)
    unconsented = cli("erase", "--caller-id", "caller-unconsented-77", "--as", "compliance-officer", "--json",
                      "--params", str(watched.params))
    assert unconsented.exit_code == 0, unconsented.output
    assert json.loads(unconsented.stdout)["call_ids"] == ["call-unconsented"], "found by its monitoring record only"
    erased = cli("erase", "--caller-id", caller, "--as", "compliance-officer", "--json", "--params",
                 str(watched.params))
    assert erased.exit_code == 0, erased.output
    monitoring = _zone_text(watched.store_dir, "monitoring")
    assert not [c for c in [*theirs, "call-unconsented"] if c in monitoring]
    assert json.loads(alerts_file.read_text())["metric"] == "new_slice", "the alert stays, without their calls"
    shutil.rmtree(watched.store_dir / ".trash", ignore_errors=True)
