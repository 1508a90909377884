"""The QA review tool against a real Label Studio 1.23: loopback only, offline, projects, tasks, reviewers, erasure.

One server for the session (the ``label_studio`` fixture, tests/studio_server.py); each test makes
projects of its own, so the tests do not depend on each other's order; the restart test comes after the others
that use the server.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qa.studio import LocalLabelStudio, StudioError, install_studio
from qa.studio_api import StudioApiError, StudioClient
from tests.alerting_helpers import free_port
from tests.studio_server import StudioHarness

LABEL_CONFIG = """<View>
  <Audio name="audio" value="$audio"/>
  <TextArea name="transcript" toName="audio" editable="true" maxSubmissions="1"/>
  <Choices name="intent" toName="audio"><Choice value="card_arrival"/><Choice value="lost_card"/></Choices>
</View>"""


def _intent(value: str) -> dict[str, Any]:
    return {"from_name": "intent", "to_name": "audio", "type": "choices", "value": {"choices": [value]}}


def _transcript(text: str) -> dict[str, Any]:
    return {"from_name": "transcript", "to_name": "audio", "type": "textarea", "value": {"text": [text]}}


def _task(call_id: str, audio: str = "/data/local-files/?d=calls/none.wav", text: str = "") -> dict[str, Any]:
    return {"data": {"audio": audio, "call_id": call_id, "asr_text": text},
            "predictions": [{"model_version": "intent-v7", "score": 0.42, "result": [_intent("card_arrival")]}]}


@pytest.fixture(scope="module")
def client(label_studio: StudioHarness) -> Iterator[StudioClient]:
    with label_studio.client() as admin:
        yield admin


def _project(client: StudioClient, name: str) -> int:
    return client.ensure_project(f"{name} {uuid.uuid4().hex[:8]}", LABEL_CONFIG)


def _listening_addresses(port: int) -> set[str]:
    """The local addresses that accept connections on ``port`` (IPv4 and IPv6), from /proc/net/tcp*."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                packed = bytes.fromhex(address)
                words = b"".join(packed[i:i + 4][::-1] for i in range(0, len(packed), 4))  # little-endian words
                found.add(socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, words))
    return found


def _proc_environment(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def test_server_listens_on_loopback_only(label_studio: StudioHarness) -> None:
    assert _listening_addresses(label_studio.studio.port) == {"127.0.0.1"}


def test_server_runs_offline_and_keeps_its_secrets(label_studio: StudioHarness, client: StudioClient) -> None:
    studio, pid = label_studio.studio, label_studio.status.pid
    assert pid is not None
    env = _proc_environment(pid)
    assert env["COLLECT_ANALYTICS"] == "false"
    assert env["LABEL_STUDIO_LATEST_VERSION_CHECK"] == "false"
    assert env["SENTRY_DSN"] == "" and env["FRONTEND_SENTRY_DSN"] == ""
    assert env["LABEL_STUDIO_DEBUG"] == "false"
    assert env["HTTPS_PROXY"] == "http://127.0.0.1:9"  # any outbound request fails
    assert "VOICELOOP_TEST_HOME" not in env  # built from scratch, not inherited
    version = httpx.get(studio.url + "/api/version", headers={"Authorization": f"Token {client.connection.token}"})
    assert version.json()["label-studio-os-package"]["latest_version_from_pypi"] is None

    credentials = studio.credentials()
    assert stat.S_IMODE(studio.credentials_file.stat().st_mode) == 0o600
    exposed = [Path(f"/proc/{pid}/cmdline").read_bytes(), studio.log_file.read_bytes(), studio.pid_file.read_bytes()]
    for secret in (credentials.password, credentials.token):
        assert secret not in repr(label_studio.status) + repr(credentials) + repr(label_studio.connection)
        assert not any(secret.encode() in text for text in exposed)
    assert studio.ensure_installed() is False  # the venv's stamp names this version: nothing to do


def test_missing_install_names_the_fix(tmp_path: Path) -> None:
    studio = LocalLabelStudio(tmp_path / "studio", free_port(), tmp_path / "no-venv", tmp_path / "media")
    with pytest.raises(StudioError, match="ensure_installed"):
        studio.start()
    assert not studio.credentials_file.exists()


def test_project_is_created_once_then_updated_in_place(client: StudioClient) -> None:
    title = f"QA review {uuid.uuid4().hex[:8]}"
    longer = client.ensure_project(f"{title} (archive)", LABEL_CONFIG)  # the API's title filter matches this too
    first = client.ensure_project(title, LABEL_CONFIG)
    assert first != longer
    assert client.ensure_project(title, LABEL_CONFIG) == first
    wider = LABEL_CONFIG.replace('<Choice value="lost_card"/>', '<Choice value="lost_card"/><Choice value="other"/>')
    assert client.ensure_project(title, wider) == first
    same = [p for p in client.projects(title) if p["title"] == title]
    assert [p["id"] for p in same] == [first]
    assert same[0]["label_config"] == wider


def test_tasks_with_predictions_are_imported_and_listed_in_order(client: StudioClient) -> None:
    project = _project(client, "import")
    tasks = [_task(f"call-{i:03d}") for i in range(200)]
    began = time.perf_counter()
    ids = client.import_tasks(project, tasks)
    listed = client.tasks(project)
    elapsed = time.perf_counter() - began
    assert elapsed < 30, f"import + list of 200 tasks took {elapsed:.1f} s"
    assert len(ids) == 200 and len(set(ids)) == 200
    assert [t["id"] for t in listed] == sorted(ids)
    by_id = {t["id"]: t for t in listed}
    assert [by_id[i]["data"]["call_id"] for i in ids] == [t["data"]["call_id"] for t in tasks]
    prediction = by_id[ids[0]]["predictions"][0]
    assert (prediction["model_version"], prediction["score"], prediction["result"]) == (
        "intent-v7", 0.42, [_intent("card_arrival")])
    assert all(t["annotations"] == [] for t in listed)


def test_local_audio_is_served_to_logged_in_users_only(label_studio: StudioHarness, client: StudioClient) -> None:
    studio = label_studio.studio
    week = studio.media_root / "week-01"
    week.mkdir(parents=True, exist_ok=True)
    audio = week / "call-001.wav"
    audio.write_bytes(b"RIFF" + os.urandom(256))
    (studio.media_root / "stray.wav").write_bytes(b"RIFF-not-covered")
    project = _project(client, "audio")
    with pytest.raises(StudioApiError, match=r"POST .*/api/storages/localfiles -> HTTP 400: .*LOCAL_FILES_DOCUMENT"):
        client.ensure_local_storage(project, studio.media_root)  # the root itself: Label Studio refuses it
    storage = client.ensure_local_storage(project, week)
    assert client.ensure_local_storage(project, week) == storage

    url = studio.media_url(audio)
    assert url == "/data/local-files/?d=week-01/call-001.wav"
    [task_id] = client.import_tasks(project, [_task("call-001", audio=url)])
    [task] = client.tasks(project)
    assert task["id"] == task_id and task["data"]["audio"] == url
    assert client.fetch(task["data"]["audio"]) == audio.read_bytes()
    assert httpx.get(studio.url + url).status_code == 401  # no token, no session: nothing
    with pytest.raises(StudioApiError, match="HTTP 404"):  # below the root, but in no storage
        client.fetch(studio.media_url(studio.media_root / "stray.wav"))


def test_two_reviewers_annotate_the_same_task(client: StudioClient) -> None:
    first, second = client.ensure_user("reviewer-1@localhost"), client.ensure_user("reviewer-2@localhost")
    assert client.ensure_user("reviewer-1@localhost").token == first.token  # logs in again: same account
    assert len({first.token, second.token, client.connection.token}) == 3
    project = _project(client, "double review")
    [task_id] = client.import_tasks(project, [_task("call-042")])
    client.annotate(task_id, [_intent("lost_card")], first.token)
    client.annotate(task_id, [_intent("card_arrival")], second.token)

    [task] = client.tasks(project)
    authors = {a["completed_by"]: a["result"] for a in task["annotations"]}
    with StudioClient(first) as one, StudioClient(second) as two:
        expected = {one.whoami()["id"]: [_intent("lost_card")], two.whoami()["id"]: [_intent("card_arrival")]}
    assert authors == expected and len(authors) == 2


def test_deleted_tasks_leave_no_trace_in_the_database(label_studio: StudioHarness, client: StudioClient) -> None:
    studio = label_studio.studio
    marker = f"erase-me-{uuid.uuid4().hex}"
    project = _project(client, "erasure")
    doomed, kept = client.import_tasks(project, [_task("call-7", text=f"my pin is {marker}"), _task("call-8")])
    client.annotate(doomed, [_transcript(f"pin {marker}")])
    assert marker.encode() in studio.database.read_bytes()  # the scan below can see task data

    assert client.delete_tasks(project, [doomed]) == 1
    assert [t["id"] for t in client.tasks(project)] == [kept]
    with pytest.raises(StudioApiError, match="HTTP 404"):
        client.fetch(f"/api/tasks/{doomed}/")
    leftovers = [path for path in studio.folder.rglob("*") if path.is_file() and marker.encode() in path.read_bytes()]
    assert leftovers == []  # secure_delete: freed pages are zeroed, not left in the file


def test_label_studio_connections_overwrite_what_they_delete(label_studio: StudioHarness) -> None:
    """The hook on Label Studio's PYTHONPATH runs ``PRAGMA secure_delete = ON`` on each new Django SQLite connection.

    Debian's SQLite has secure_delete on by default, so the erasure test above would pass here without
    the hook; this one checks the hook itself, in Label Studio's interpreter, whatever the build.
    """
    studio = label_studio.studio
    script = (
        "import django; from django.conf import settings\n"
        "settings.configure(DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}})\n"
        "django.setup(); from django.db import connection\n"
        "connection.force_debug_cursor = True; connection.ensure_connection()\n"
        "print([query['sql'] for query in connection.queries])\n"
    )
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(studio.hooks_dir)}
    ran = subprocess.run([str(studio.venv / "bin" / "python"), "-c", script], env=env, capture_output=True, text=True,
                         timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert "PRAGMA secure_delete = ON" in ran.stdout


def test_deleted_project_is_gone(client: StudioClient) -> None:
    project = _project(client, "throwaway")
    client.import_tasks(project, [_task("call-1")])
    client.delete_project(project)
    assert project not in [p["id"] for p in client.projects()]


def test_restart_keeps_data_and_credentials(label_studio: StudioHarness, client: StudioClient) -> None:
    studio = label_studio.studio
    project = _project(client, "survives restart")
    before = studio.status()
    assert studio.stop()
    assert not studio.status().running and studio.status().token is None
    after = studio.start()
    assert after.running and after.pid != before.pid and after.token == before.token
    assert project in [p["id"] for p in client.projects()]


def test_failed_install_names_the_command_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", shutil.which("false") or "/bin/false")  # `python -m venv` fails
    with pytest.raises(StudioError, match=r"Run it by hand to see why: `\S*false -m venv \S*no-venv`"):
        install_studio(tmp_path / "no-venv")
