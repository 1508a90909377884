"""The audit head mirror (issue 17, item 15): a second copy of the chain head, written on every append,
that names itself when it disagrees with the database; and the warning while the key and every head copy
share the project folder. Real logs, real files, real fsspec filesystems (``memory://`` stands in for a
bucket: the same fsspec calls an ``s3://`` mirror makes).
"""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import pytest
from typer.testing import CliRunner

from core.settings import Settings, load_settings
from governance.audit import Actor, AuditIntegrityError, AuditLog, open_audit, shared_folder_warning
from governance.audit_chain import KEY_ENV, ChainKey, Head, audit_key
from tests.conftest import write_params
from tests.s3_server import S3
from tests.test_audit import forge_chain, tamper

ACTOR = Actor("pipeline", "ingest", user="tester")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _keys_from_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("VOICELOOP_RAW_KEYS", raising=False)
    monkeypatch.setenv("VOICELOOP_ROLE", "compliance-officer")


def _project(tmp_path: Path, mirror: str) -> tuple[Path, Settings]:
    params = write_params(tmp_path, audit={"head_mirror": mirror})
    return params, load_settings(params)


def _filled(settings: Settings, n: int = 5) -> AuditLog:
    log = open_audit(settings)
    for i in range(n):
        log.append(ACTOR, "raw.write", zone="raw", call_ids=[f"c{i}"])
    return log


def _mirror_text(url: str) -> str:
    with fsspec.open(url, "r") as handle:
        return str(handle.read())


def _verify(params: Path) -> tuple[int, str]:
    from voiceloop.cli import app

    result = runner.invoke(app, ["audit", "verify", "--params", str(params)])
    return result.exit_code, result.output


@pytest.mark.parametrize("kind", ["path", "file URL", "fsspec URL"])
def test_every_append_writes_the_mirror(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "elsewhere" / "audit.head"
    mirror = {"path": str(folder), "file URL": folder.as_uri(), "fsspec URL": f"memory://{tmp_path.name}/head"}[kind]
    params, settings = _project(tmp_path, mirror)
    log = _filled(settings, 3)
    assert _mirror_text(mirror) == settings.audit_head_file.read_text()
    assert json.loads(_mirror_text(mirror))["last_id"] == 3
    result = log.verify()
    assert result.ok and (result.head, result.mirror) == ("matches", "matches")
    assert result.summary() == "3 entries, chain intact, head matches, mirror matches"
    code, output = _verify(params)  # a command that appends (audit log records its read) moves the mirror too
    assert code == 0 and "mirror matches" in output
    from voiceloop.cli import app

    assert runner.invoke(app, ["audit", "log", "--params", str(params)]).exit_code == 0
    assert json.loads(_mirror_text(mirror))["last_id"] == 4 == log.count()


def test_verify_names_the_mirror_when_the_project_folder_rewrote_history(tmp_path: Path) -> None:
    """Whoever copied the folder holds the key and the head file: they can rewrite entries, re-MAC them and
    re-sign the head file, and only the mirror, which they cannot write, still disagrees."""
    mirror = tmp_path / "anchor" / "audit.head"
    params, settings = _project(tmp_path, str(mirror))
    log = _filled(settings, 5)
    tamper(log, "UPDATE audit_log SET actor = 'nobody' WHERE id = 2")
    forge_chain(log, 2, audit_key(settings.keys_dir))
    forged = log.verify()  # the head file still names entry 5's old MAC: re-sign it, as the attacker would
    assert not forged.ok
    log.head_copies[0].write(_resealed(log, settings))
    result = log.verify()
    assert not result.ok and result.first_bad_id == 5
    assert f"the head mirror {mirror}" in result.reason and "the head file" not in result.reason
    code, output = _verify(params)
    assert code == 1 and "TAMPERED" in output and f"the head mirror {mirror}" in output
    with pytest.raises(AuditIntegrityError, match="head mirror"):  # appends refuse to carry the forgery over
        log.append(ACTOR, "raw.read")
    assert json.loads(mirror.read_text())["last_mac"] != json.loads(settings.audit_head_file.read_text())["last_mac"]


def _resealed(log: AuditLog, settings: Settings) -> Head:
    """The head file the attacker writes for the rewritten chain, with the key they copied."""
    with log.engine.connect() as conn:
        last_id, mac = conn.exec_driver_sql("SELECT id, mac FROM audit_log ORDER BY id DESC LIMIT 1").one()
    return Head.seal(ChainKey.of(audit_key(settings.keys_dir)), last_id, mac, last_id)


def test_verify_names_whichever_copy_was_rolled_back(tmp_path: Path) -> None:
    mirror = tmp_path / "anchor" / "audit.head"
    params, settings = _project(tmp_path, str(mirror))
    log = _filled(settings, 3)
    old = settings.audit_head_file.read_text()
    for _ in range(3):
        log.append(ACTOR, "raw.read")
    mirror.write_text(old)
    result = log.verify()
    assert (result.ok, result.first_bad_id) == (False, 4)
    assert f"not covered by the head mirror {mirror}" in result.reason and "head file" not in result.reason
    mirror.write_text(settings.audit_head_file.read_text())
    settings.audit_head_file.write_text(old)
    result = log.verify()
    assert "not covered by the head file" in result.reason and "mirror" not in result.reason
    assert _verify(params)[0] == 1


def test_a_mirror_that_cannot_be_written_is_reported(tmp_path: Path) -> None:
    """/proc takes no new files, even from root: a real write failure."""
    _, settings = _project(tmp_path, "/proc/voiceloop-test-audit.head")
    log = open_audit(settings)
    with pytest.raises(AuditIntegrityError) as caught:
        log.append(ACTOR, "raw.read")
    message = str(caught.value)
    assert "the head mirror /proc/voiceloop-test-audit.head could not be written" in message
    assert "entries up to 1 are written" in message and "fix access" in message
    assert log.count() == 1 and json.loads(settings.audit_head_file.read_text())["last_id"] == 1
    result = log.verify()
    assert not result.ok and "the head mirror /proc/voiceloop-test-audit.head is missing" in result.reason


def test_a_mirror_set_on_a_running_log_is_seeded_by_reanchor(tmp_path: Path) -> None:
    params, settings = _project(tmp_path, "")
    _filled(settings, 4)
    mirror = tmp_path / "anchor" / "audit.head"
    params, settings = _project(tmp_path, str(mirror))
    log = open_audit(settings)
    with pytest.raises(AuditIntegrityError, match="is missing .* newly set audit.head_mirror"):
        log.append(ACTOR, "raw.read")
    assert _verify(params)[0] == 1
    from voiceloop.cli import app

    seeded = runner.invoke(app, ["audit", "reanchor", "--params", str(params), "--reason", "head mirror enabled"])
    assert seeded.exit_code == 0, seeded.output
    assert log.verify().ok and log.verify().mirror == "matches"
    last = list(log.entries())[-1]
    assert last.detail["previous_mirror"] is None and last.note == "head mirror enabled"


def test_an_s3_mirror_is_written_on_every_append_and_a_missing_bucket_is_named(tmp_path: Path, s3: S3) -> None:
    """The head mirror in a bucket (the session's S3 server on 127.0.0.1, reached as AWS would be)."""
    bucket = s3.bucket()
    (tmp_path / "kept").mkdir()
    (tmp_path / "missing").mkdir()
    _, settings = _project(tmp_path / "kept", f"s3://{bucket}/audit/head")
    log = _filled(settings, 3)
    stored = s3.client.get_object(Bucket=bucket, Key="audit/head")["Body"].read().decode()
    assert stored == settings.audit_head_file.read_text() and json.loads(stored)["last_id"] == 3
    assert log.verify().mirror == "matches"
    _, missing = _project(tmp_path / "missing", "s3://voiceloop-no-such-bucket/head")
    with pytest.raises(AuditIntegrityError, match="head mirror s3://voiceloop-no-such-bucket/head"):
        _filled(missing, 1)


def test_the_warning_stands_while_the_key_and_every_head_copy_share_the_project_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, settings = _project(tmp_path, "")
    warning = shared_folder_warning(settings)
    assert warning is not None and str(settings.root) in warning and "raw-zone keys" in warning
    assert "audit.head_mirror" in warning
    _, inside = _project(tmp_path, str(tmp_path / "state" / "mirror.head"))
    assert shared_folder_warning(inside) is not None  # a mirror in the same folder is no second place
    _, outside = _project(tmp_path, "s3://voiceloop-audit/head")
    assert shared_folder_warning(outside) is None
    monkeypatch.setenv(KEY_ENV, "11" * 32)
    assert shared_folder_warning(settings) is None  # the key lives elsewhere
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv("VOICELOOP_RAW_KEYS", "x")
    assert "raw-zone keys" not in (shared_folder_warning(settings) or "")


def test_the_warning_is_shown_by_status_and_verify_only(tmp_path: Path) -> None:
    from voiceloop.cli import app

    params, settings = _project(tmp_path, "")
    _filled(settings, 2)
    for command in (["status"], ["audit", "verify"]):
        shown = runner.invoke(app, [*command, "--params", str(params)])
        assert shown.exit_code == 0 and "warning:" in shown.output and "sit in the project folder" in shown.output
    status = runner.invoke(app, ["status", "--json", "--params", str(params)])
    assert "sit in the project folder" in json.loads(status.stdout)["audit_warning"]
    quiet = runner.invoke(app, ["audit", "log", "--params", str(params)])
    assert quiet.exit_code == 0 and "project folder" not in quiet.output
    elsewhere = tmp_path / "with-mirror"
    elsewhere.mkdir()
    params, _ = _project(elsewhere, str(tmp_path / "anchor" / "audit.head"))
    verified = runner.invoke(app, ["audit", "verify", "--params", str(params)])
    assert verified.exit_code == 0 and "warning:" not in verified.output


def test_the_retrain_summary_carries_the_warning_and_shows_it_like_the_flows_warnings(tmp_path: Path) -> None:
    import logging

    from rich.console import Console

    from flows.summary import RetrainSummary
    from voiceloop.cli_common import warn
    from voiceloop.run_display import StepDisplay

    _, settings = _project(tmp_path, "")
    summary = RetrainSummary(flow_run_id="run-1", project_dir=str(settings.root),
                             audit_warning=shared_folder_warning(settings))
    assert "sit in the project folder" in summary.to_json()["audit_warning"]
    assert RetrainSummary(flow_run_id="run-1", project_dir="x").to_json()["audit_warning"] is None
    shown = Console(record=True, width=2000)
    with StepDisplay(shown, live=False):
        logging.getLogger("prefect.flow_runs").warning("call c1 quarantined: [no speech]")
    warn(summary.audit_warning, shown)
    lines = shown.export_text().splitlines()
    assert lines[0] == "warning: call c1 quarantined: [no speech]"  # markup in a message is shown, not parsed
    assert lines[1].startswith("warning: the audit key (") and "sit in the project folder" in lines[1]
