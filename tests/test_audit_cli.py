"""`voiceloop audit ...`: log filters, verify exit codes, the compliance report (real SQLite log)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from core.settings import load_settings
from governance.audit import Actor, AuditLog, EntryDraft, open_audit
from governance.audit_report import collect
from tests.conftest import write_params
from voiceloop.cli_audit import audit_app, parse_since

app = typer.Typer()
app.add_typer(audit_app, name="audit")
runner = CliRunner()

PIPELINE = Actor("pipeline", "ingest", user="svc-pipeline", flow_run_id="run-7")
ANALYST = Actor("analyst", "qa-review", user="bob")
TRAINER = Actor("trainer", "training", user="carol")


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, AuditLog]:
    """A project whose log has raw accesses, a denial, a promotion and two erasure requests."""
    monkeypatch.delenv("VOICELOOP_AUDIT_KEY", raising=False)
    params = write_params(tmp_path)
    log = open_audit(load_settings(params))
    now = datetime.now(UTC)
    log.append_many([
        EntryDraft(PIPELINE, "raw.write", zone="raw", call_ids=["call-1", "call-2"], ts=now - timedelta(days=20)),
        EntryDraft(PIPELINE, "raw.read", zone="raw", call_ids=["call-1", "call-2"], ts=now - timedelta(days=3)),
        EntryDraft(TRAINER, "raw.read", zone="raw", outcome="denied", ts=now - timedelta(days=2),
                   detail={"reason": "role trainer may not read zone raw for purpose training"}),
        EntryDraft(ANALYST, "raw.read", zone="raw", call_ids=["call-2"], ts=now - timedelta(days=1)),
        EntryDraft(PIPELINE.for_purpose("evaluation"), "gate.decision", ts=now - timedelta(hours=5),
                   detail={"bundle_version": "4", "verdict": "promote"}),
        EntryDraft(PIPELINE.for_purpose("evaluation"), "registry.promote", ts=now - timedelta(hours=5),
                   detail={"bundle_version": "4", "previous": "3"}),
        EntryDraft(ANALYST.for_purpose("erasure"), "erasure.request", caller="+15550001111",
                   ts=now - timedelta(days=40),
                   detail={"request_id": "req-old", "deadline": (now - timedelta(days=10)).isoformat(),
                           "calls": ["call-1"]}),
        EntryDraft(ANALYST.for_purpose("erasure"), "erasure.request", caller="+15550002222",
                   ts=now - timedelta(days=35),
                   detail={"request_id": "req-done", "deadline": (now - timedelta(days=5)).isoformat()}),
        EntryDraft(PIPELINE.for_purpose("erasure"), "erasure.completed", caller="+15550002222",
                   ts=now - timedelta(days=6), detail={"request_id": "req-done"}),
        EntryDraft(ANALYST.for_purpose("erasure"), "erasure.request", caller="+15550003333",
                   ts=now - timedelta(hours=1),
                   detail={"request_id": "req-new", "deadline": (now + timedelta(days=29)).isoformat()}),
    ])
    return params, log


def _ids(output: str) -> list[int]:
    return [entry["id"] for entry in json.loads(output)]


def test_log_filters(project: tuple[Path, AuditLog]) -> None:
    params, _ = project
    def run(*args: str) -> list[int]:
        result = runner.invoke(app, ["audit", "log", "--params", str(params), "--json", *args])
        assert result.exit_code == 0, result.output
        return _ids(result.stdout)

    assert run() == list(range(1, 11))
    assert run("--since", "7d") == [2, 3, 4, 5, 6, 9, 10]
    assert run("--since", (datetime.now(UTC) - timedelta(days=4)).date().isoformat()) == [2, 3, 4, 5, 6, 10]
    assert run("--role", "analyst") == [4, 7, 8, 10]
    assert run("--call-id", "call-1") == [1, 2, 7]  # 7 names it in its detail
    assert run("--action", "erasure.*", "--since", "30d") == [9, 10]
    assert run("--caller", "+15550002222") == [8, 9]
    assert run("--denied") == [3]
    assert run("--limit", "2") == [9, 10]
    table = runner.invoke(app, ["audit", "log", "--params", str(params), "--role", "trainer"])
    assert table.exit_code == 0 and "denied" in table.stdout and "carol" in table.stdout
    bad = runner.invoke(app, ["audit", "log", "--params", str(params), "--since", "last tuesday"])
    assert bad.exit_code == 2


def test_entries_never_show_caller_ids_in_clear(project: tuple[Path, AuditLog]) -> None:
    params, _ = project
    result = runner.invoke(app, ["audit", "log", "--params", str(params), "--json"])
    assert "+1555000" not in result.stdout and '"caller": "cp_' in result.stdout


def test_verify_exit_codes(project: tuple[Path, AuditLog]) -> None:
    params, log = project
    result = runner.invoke(app, ["audit", "verify", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert "10 entries, chain intact, head matches" in result.stdout
    with log.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET actor = 'nobody' WHERE id = 4"))
    result = runner.invoke(app, ["audit", "verify", "--params", str(params)])
    assert result.exit_code == 1
    assert "entry 4: content does not match its MAC" in result.stdout and "first bad entry: 4" in result.stdout
    as_json = runner.invoke(app, ["audit", "verify", "--params", str(params), "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["first_bad_id"] == 4


def test_verify_fails_when_the_head_file_is_gone(project: tuple[Path, AuditLog]) -> None:
    params, _ = project
    load_settings(params).audit_head_file.unlink()
    result = runner.invoke(app, ["audit", "verify", "--params", str(params)])
    assert result.exit_code == 1 and "is missing" in result.stdout
    fixed = runner.invoke(app, ["audit", "reanchor", "--params", str(params), "--reason", "restored from backup"])
    assert fixed.exit_code == 0, fixed.output
    assert runner.invoke(app, ["audit", "verify", "--params", str(params)]).exit_code == 0


def test_report_has_every_section(project: tuple[Path, AuditLog], tmp_path: Path) -> None:
    params, _ = project
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["audit", "report", "--params", str(params), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    for section in ("verification", "raw-access", "accesses-over-time", "denied", "model-changes", "erasures",
                    "overdue-erasures"):
        assert f'id="{section}"' in page, section
    assert "Chain intact." in page and "10 entries, chain intact, head matches" in page
    assert re.search(r'src="data:image/png;base64,[A-Za-z0-9+/]{200,}', page)
    assert "svc-pipeline" in page and "bob" in page and "qa-review" in page  # who, and why
    assert "role trainer may not read zone raw" in page  # the denial
    assert "registry.promote" in page and "gate.decision" in page
    overdue = page.split('id="overdue-erasures"')[1]
    assert "req-old" in overdue and "req-done" not in overdue and "req-new" not in overdue
    assert "+1555000" not in page and "<script" not in page


def test_report_facts_and_a_tampered_log(project: tuple[Path, AuditLog], tmp_path: Path) -> None:
    params, log = project
    data = collect(log)
    assert [(g.user, g.action, g.entries, len(g.calls)) for g in data.raw_access] == [
        ("bob", "raw.read", 1, 1), ("svc-pipeline", "raw.read", 1, 2), ("svc-pipeline", "raw.write", 1, 2)]
    assert [e.detail["request_id"] for e, _ in data.overdue] == ["req-old"]
    with log.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_delete"))
        conn.execute(text("DELETE FROM audit_log WHERE id = 10"))
    out = tmp_path / "tampered.html"
    result = runner.invoke(app, ["audit", "report", "--params", str(params), "--out", str(out)])
    assert result.exit_code == 0 and "VERIFICATION FAILED" in result.output
    assert "Verification FAILED." in out.read_text() and "the tail was cut" in out.read_text()


def test_parse_since() -> None:
    now = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == datetime(2026, 5, 3, 12, 0, tzinfo=UTC)
    assert parse_since("12h", now) == datetime(2026, 5, 10, 0, 0, tzinfo=UTC)
    assert parse_since("2w", now) == datetime(2026, 4, 26, 12, 0, tzinfo=UTC)
    assert parse_since("2026-05-01") == datetime(2026, 5, 1, tzinfo=UTC)
    assert parse_since("2026-05-01T12:00+02:00") == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def test_rotate_key_command(project: tuple[Path, AuditLog]) -> None:
    params, log = project
    old_id = log.key_id
    result = runner.invoke(app, ["audit", "rotate-key", "--params", str(params)])
    assert result.exit_code == 0, result.output
    settings = load_settings(params)
    assert (settings.keys_dir / f"audit.{old_id}.key").exists()
    rotated = open_audit(settings)
    assert rotated.key_id != old_id
    last = list(rotated.entries())[-1]
    assert (last.action, last.key_id, last.detail["new_key_id"]) == ("audit.key-rotated", old_id, rotated.key_id)
    verified = runner.invoke(app, ["audit", "verify", "--params", str(params)])
    assert verified.exit_code == 0 and "11 entries, chain intact, head matches" in verified.stdout
