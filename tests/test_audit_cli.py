"""`voiceloop audit ...`: log filters, verify exit codes, the compliance report (real SQLite log)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner, Result

from core.settings import load_settings
from governance.audit import Actor, AuditEntry, AuditLog, EntryDraft, open_audit
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
    """A project whose log has raw accesses, a denial, a promotion and two erasure requests; commands act as
    compliance-officer (VOICELOOP_ROLE), who may read the audit trail."""
    monkeypatch.delenv("VOICELOOP_AUDIT_KEY", raising=False)
    monkeypatch.setenv("VOICELOOP_ROLE", "compliance-officer")
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
        """The ids shown, but for the audit.read entries each earlier run left (ids above 10)."""
        result = runner.invoke(app, ["audit", "log", "--params", str(params), "--json", *args])
        assert result.exit_code == 0, result.output
        shown = json.loads(result.stdout)
        assert all(e["action"] == "audit.read" for e in shown if e["id"] > 10)
        return [e["id"] for e in shown if e["id"] <= 10]

    assert run() == list(range(1, 11))
    assert run("--since", "7d") == [2, 3, 4, 5, 6, 9, 10]
    assert run("--since", (datetime.now(UTC) - timedelta(days=4)).date().isoformat()) == [2, 3, 4, 5, 6, 10]
    assert run("--role", "analyst") == [4, 7, 8, 10]
    assert run("--call-id", "call-1") == [1, 2, 7]  # 7 names it in its detail
    assert run("--action", "erasure.*", "--since", "30d") == [9, 10]
    assert run("--caller", "+15550002222") == [8, 9]
    assert run("--denied") == [3]
    assert run("--limit", "2", "--role", "analyst") == [8, 10]
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
    result = runner.invoke(app, ["audit", "rotate-key", "--params", str(params), "--as", "admin"])
    assert result.exit_code == 0, result.output
    settings = load_settings(params)
    assert (settings.keys_dir / f"audit.{old_id}.key").exists()
    rotated = open_audit(settings)
    assert rotated.key_id != old_id
    last = list(rotated.entries())[-1]
    assert (last.action, last.key_id, last.detail["new_key_id"]) == ("audit.key-rotated", old_id, rotated.key_id)
    verified = runner.invoke(app, ["audit", "verify", "--params", str(params)])
    assert verified.exit_code == 0 and "11 entries, chain intact, head matches" in verified.stdout


# -- who may read the trail (issue 17, items 8, 9, 13) ----------------------------------------------
def voiceloop(params: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """The whole ``voiceloop`` command, in process."""
    from voiceloop.cli import app as voiceloop_app

    return runner.invoke(voiceloop_app, [*args, "--params", str(params)], env=env, input=input)


READS = {
    "audit log": ["audit", "log", "--json"],
    "audit report": ["audit", "report"],
    "erase --list": ["erase", "--list", "--json"],
    "consent status": ["consent", "status", "--caller-id", "+15550001111", "--json"],
}
# a role without purpose audit, then roles the policy does not define (names are case-sensitive; empty is no role)
REFUSED = {"ml-engineer": "may not act for purpose 'audit'", "serving": "may not act for purpose 'audit'",
           "pipeline": "may not act for purpose 'audit'", "intern": "unknown role 'intern'",
           "ADMIN": "unknown role 'ADMIN'", "": "unknown role ''"}


def _reads(log: AuditLog, outcome: str) -> list[AuditEntry]:
    return list(log.entries(action="audit.read", outcome=outcome))


@pytest.mark.parametrize("command", list(READS))
def test_reading_the_audit_trail_needs_the_audit_purpose(project: tuple[Path, AuditLog], tmp_path: Path,
                                                         command: str) -> None:
    params, log = project
    args = READS[command] + (["--out", str(tmp_path / "report.html")] if command == "audit report" else [])
    for role, message in REFUSED.items():
        for how in ("flag", "environment"):
            result = (voiceloop(params, *args, "--as", role) if how == "flag"
                      else voiceloop(params, *args, env={"VOICELOOP_ROLE": role}))
            assert result.exit_code == 2, (role, how, result.output)
            assert message in result.output and "req-old" not in result.output and "bob" not in result.output
    assert not (tmp_path / "report.html").exists()
    denied = _reads(log, "denied")
    assert [e.role for e in denied] == [role for role in REFUSED for _ in (1, 2)]
    assert all(e.detail["command"] == command and e.detail["reason"] for e in denied)
    assert _reads(log, "ok") == []

    for role in ("compliance-officer", "admin"):
        allowed = voiceloop(params, *args, "--as", role)
        assert allowed.exit_code == 0, allowed.output
    recorded = _reads(log, "ok")
    assert [e.role for e in recorded] == ["compliance-officer", "admin"]
    assert all(e.purpose == "audit" and e.detail["command"] == command for e in recorded)
    assert all("+1555" not in json.dumps(e.as_dict()) for e in [*denied, *recorded])  # callers only as pseudonyms


def test_an_audit_read_records_its_filters_and_the_caller_as_a_pseudonym(project: tuple[Path, AuditLog]) -> None:
    params, log = project
    shown = voiceloop(params, "audit", "log", "--caller", "+15550002222", "--action", "erasure.*", "--json")
    assert shown.exit_code == 0 and _ids(shown.stdout) == [8, 9]  # the read's own entry comes after what it shows
    listed = voiceloop(params, "erase", "--list", "--json")
    assert listed.exit_code == 0, listed.output
    first, second = _reads(log, "ok")
    assert first.detail == {"command": "audit log", "filters": {"action": "erasure.*", "limit": 100}}
    assert first.caller == log.pseudonym("+15550002222") and "+1555" not in json.dumps(first.as_dict())
    assert (second.detail, second.caller) == ({"command": "erase --list", "filters": {}}, None)
    assert [e.id for e in log.entries(caller="+15550002222")] == [8, 9, first.id]  # found like any other entry


def test_refused_erasure_and_retention_are_audited(project: tuple[Path, AuditLog]) -> None:
    params, log = project
    erase = voiceloop(params, "erase", "--caller-id", "+15550009999", "--as", "ml-engineer")
    retention = voiceloop(params, "retention", "apply", "--dry-run", "--as", "ml-engineer")
    nobody = voiceloop(params, "retention", "apply", "--dry-run", env={"VOICELOOP_ROLE": "ADMIN"})
    assert [erase.exit_code, retention.exit_code, nobody.exit_code] == [2, 2, 2]
    assert "may not act for purpose 'erasure'" in erase.output and "unknown role 'ADMIN'" in nobody.output
    denied = list(log.entries(outcome="denied", since_id=10))
    assert [(e.action, e.role, e.purpose) for e in denied] == [
        ("role.refused", "ml-engineer", "erasure"), ("role.refused", "ml-engineer", "retention"),
        ("role.refused", "ADMIN", "retention")]
    assert "roles that may: admin, compliance-officer" in denied[0].detail["reason"]
    assert all("+15550009999" not in json.dumps(e.as_dict()) for e in log.entries())
    assert list(log.entries(action="erasure.request", since_id=10)) == []  # a refusal is no request


def test_verify_is_open_to_every_defined_role_and_writes_nothing(project: tuple[Path, AuditLog]) -> None:
    params, log = project
    assert voiceloop(params, "audit", "verify", "--as", "ml-engineer").exit_code == 0
    assert log.count() == 10  # an integrity check shows no entry, so it records none
    unknown = voiceloop(params, "audit", "verify", env={"VOICELOOP_ROLE": ""})
    assert unknown.exit_code == 2 and "unknown role ''" in unknown.output


def test_log_refuses_an_age_past_the_calendar_and_a_negative_limit(project: tuple[Path, AuditLog]) -> None:
    params, log = project
    too_old = runner.invoke(app, ["audit", "log", "--params", str(params), "--since", "99999999999d"])
    assert too_old.exit_code == 2 and "before year 1" in too_old.output
    assert too_old.exception is None or isinstance(too_old.exception, SystemExit)  # no OverflowError traceback
    negative = runner.invoke(app, ["audit", "log", "--params", str(params), "--limit", "-5"])
    assert negative.exit_code == 2 and "--limit" in negative.output and "most recent -5" not in negative.output
    huge = runner.invoke(app, ["audit", "log", "--params", str(params), "--limit", "99999999999999999999"])
    assert huge.exit_code == 2 and "--limit" in huge.output  # not an OverflowError from the database
    assert log.count() == 10  # refused before the log was read
    with pytest.raises(typer.BadParameter, match="before year 1"):
        parse_since("999999999w")
