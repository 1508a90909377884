"""The serving runtime over real HTTP (uvicorn in a thread), on a project the real flow trained.

The champion is the template's first bundle (intent + ASR). A second bundle of the same
components is registered (it becomes the challenger, which shadow mode runs), promoted by hand
while clients keep sending requests, and rolled back: the server must follow each move without
a single failed request.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from core.settings import AdmissionConfig, Settings
from governance.audit import open_audit
from serving.api_keys import ApiKey
from serving.app import create_app, server_config
from serving.runtime import build_runtime, resolve_keys, start_following, stop_following
from serving.state import Runtime
from tests.conftest import REPO
from tests.flow_helpers import TrainedProject, cli, project_fixture
from training.registry import CHAMPION, Registry
from training.rollout import promote_by_hand, rollback

project = project_fixture("serving")
DIGITS_WAV = REPO / "data" / "sample" / "speech_fixtures" / "vosk_digits.wav"


KEYS = (ApiKey("qa-dashboard", "serving", "k-serving-0123456789"),  # answers redacted
        ApiKey("bot-platform", "voice-bot", "k-voice-bot-0123456789"))  # raw transcripts (transcription)


@dataclass
class Server:
    url: str
    runtime: Runtime
    key: str = KEYS[0].secret
    bot_key: str = KEYS[1].secret
    port: int = 0

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": key if key is not None else self.key},
                            timeout=60)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(runtime: Runtime, follow_every_s: float = 0.2) -> Iterator[Server]:
    """``runtime`` served by uvicorn in a thread on a free port of 127.0.0.1, its alias followers running."""
    port = _free_port()
    uv = uvicorn.Server(server_config(create_app(runtime), "127.0.0.1", port))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uv.started, "uvicorn did not start"
    start_following(runtime, follow_every_s)
    try:
        yield Server(f"http://127.0.0.1:{port}", runtime, port=port)
    finally:
        stop_following(runtime)
        uv.should_exit = True
        thread.join(timeout=30)


def with_admission(settings: Settings, **limits: Any) -> Settings:
    """``settings`` with ``serving.admission`` set to ``limits`` (the rest at their defaults)."""
    serving_config = settings.serving.model_copy(update={"admission": AdmissionConfig(**limits)})
    return settings.model_copy(update={"serving": serving_config})


@pytest.fixture(scope="module")
def server(project: TrainedProject) -> Iterator[Server]:
    # these tests are not about overload (tests/test_serving_admission.py is): four clients never wait for a slot
    settings = with_admission(project.settings, max_inflight=4)
    with serving(build_runtime(settings, shadow=True, keys=KEYS)) as served:
        yield served


def _wait_for(condition: Any, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_request_without_the_api_key_is_refused(server: Server, project: TrainedProject) -> None:
    for client in (server.client(key=""), server.client(key="not-a-key")):
        refused = client.post("/v1/understand", json={"text": "where is my card"})
        assert refused.status_code == 401 and "X-API-Key" in refused.json()["detail"]
    open_routes = server.client(key="")
    health = open_routes.get("/healthz").json()
    champion = Registry(project.settings).by_alias(CHAMPION)
    assert champion is not None and health["champion"] == champion.version and health["intent_model"] is True
    assert "voiceloop_requests_total" in open_routes.get("/metrics").text


def test_understand_transcribe_and_process(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    client = server.client()
    meaning = client.post("/v1/understand", json={"text": "I still have not received my new card"})
    assert meaning.status_code == 200, meaning.text
    body = meaning.json()
    labels = server.runtime.champion.current.intent.labels  # type: ignore[union-attr]
    assert body["intent"] in labels and 0 < body["confidence"] <= 1
    assert body["bundle"] == server.runtime.champion.version

    audio = DIGITS_WAV.read_bytes()
    heard = server.client(server.bot_key).post("/v1/transcribe", content=audio).json()  # raw: a voice-bot key
    assert heard["text"] and heard["words"] and heard["duration_s"] == pytest.approx(8.3, abs=0.2)
    assert heard["redacted"] is False and heard["speech"] is True
    assert all(0 <= w["start"] <= w["end"] <= heard["duration_s"] for w in heard["words"])

    with caplog.at_level(logging.DEBUG):
        processed = client.post("/v1/process", content=audio)
    assert processed.status_code == 200, processed.text
    out = processed.json()
    assert set(out) == {"bundle", "transcript", "pii_types", "intent", "confidence", "duration_s", "speech"}
    assert out["intent"] in labels
    said = {w["word"].strip(".,").lower() for w in heard["words"] if len(w["word"].strip(".,")) > 3}
    logged = " ".join(record.getMessage().lower() for record in caplog.records)
    assert not {word for word in said if word in logged}, "words of the caller reached the logs"


def test_bad_uploads_get_a_clear_4xx(server: Server, tmp_path: Path) -> None:
    client = server.client()
    empty = client.post("/v1/transcribe", content=b"")
    assert empty.status_code == 400 and "empty upload" in empty.json()["detail"]
    not_audio = client.post("/v1/process", content=b"this is a text file, not audio\n" * 20)
    assert not_audio.status_code == 415 and "PyAV" in not_audio.json()["detail"]
    silent = tmp_path / "no-frames.wav"
    with wave.open(str(silent), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16_000)
    nothing = client.post("/v1/transcribe", content=silent.read_bytes())
    assert nothing.status_code == 422 and "no audio samples" in nothing.json()["detail"]
    limit, server.runtime.max_audio_s = server.runtime.max_audio_s, 2.0
    try:
        too_long = client.post("/v1/transcribe", content=DIGITS_WAV.read_bytes())
    finally:
        server.runtime.max_audio_s = limit
    assert too_long.status_code == 413 and "max_audio_s" in too_long.json()["detail"]
    assert client.post("/v1/understand", json={"text": ""}).status_code == 422


@pytest.fixture(scope="module")
def second_bundle(project: TrainedProject) -> str:
    """A bundle of the champion's components, registered: the challenger."""
    registry = Registry(project.settings)
    first = registry.by_alias(CHAMPION)
    assert first is not None and first.run_id
    return registry.register_bundle(first.run_id, first.components, {"note": "test"}).version


def test_shadow_mode_runs_the_challenger_and_keeps_no_text(server: Server, second_bundle: str) -> None:
    assert server.runtime.challenger is not None and server.runtime.shadow is not None
    _wait_for(lambda: server.runtime.challenger.version == second_bundle, "the challenger follower")  # type: ignore[union-attr]
    client = server.client()
    for text in ("I still have not received my new card", "how do I top up by bank transfer"):
        assert client.post("/v1/understand", json={"text": text}).status_code == 200
    raw = server.client(server.bot_key)  # the raw transcripts are compared (and not kept)
    assert raw.post("/v1/transcribe", content=DIGITS_WAV.read_bytes()).status_code == 200
    _wait_for(lambda: len(server.runtime.shadow.read()) >= 3, "three shadow records")  # type: ignore[union-attr]
    rows = server.runtime.shadow.read()
    champion = server.runtime.champion.version
    assert {(r["endpoint"], r["champion"], r["challenger"]) for r in rows} == {
        ("understand", champion, second_bundle), ("transcribe", champion, second_bundle)}
    understood = [r for r in rows if r["endpoint"] == "understand"]
    assert all(r["intent_agrees"] for r in understood)  # the same components answer the same
    [heard] = [r for r in rows if r["endpoint"] == "transcribe"]
    assert heard["transcript_word_edits"] == 0 and heard["champion_words"] > 0
    assert "received" not in server.runtime.shadow.path.read_text()  # comparisons only, no text


def test_hot_reload_under_load_drops_no_request_and_rollback_restores(server: Server, project: TrainedProject,
                                                                      second_bundle: str) -> None:
    registry = Registry(project.settings)
    first = server.runtime.champion.version
    assert first is not None and first != second_bundle
    failures: list[str] = []
    served: dict[str | None, int] = {}
    stop = threading.Event()

    def client_loop() -> None:
        with server.client() as client:
            while not stop.is_set():
                try:
                    response = client.post("/v1/understand", json={"text": "my card payment was declined"})
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text[:200]}")
                        continue
                    version = response.json()["bundle"]
                    served[version] = served.get(version, 0) + 1
                except httpx.HTTPError as error:
                    failures.append(repr(error))

    clients = [threading.Thread(target=client_loop) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        _wait_for(lambda: served.get(first, 0) >= 10, "traffic on the first bundle")
        promote_by_hand(registry, second_bundle, "test: hot reload under load", "test as admin")
        _wait_for(lambda: server.runtime.champion.version == second_bundle, "the swap to the promoted bundle")
        _wait_for(lambda: served.get(second_bundle, 0) >= 10, "traffic on the promoted bundle")
        rollback(registry, "test: rollback under load", "test as admin")
        _wait_for(lambda: server.runtime.champion.version == first, "the swap back after the rollback")
        seen_first = served[first]
        _wait_for(lambda: served[first] >= seen_first + 10, "traffic on the restored bundle")
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
    assert failures == []
    assert server.client().get("/healthz").json()["champion"] == first
    swaps = [e.detail for e in open_audit(project.settings).entries(action="serving.bundle-swap")
             if e.detail["alias"] == "champion"]
    assert [(s["before"], s["after"]) for s in swaps] == [(first, second_bundle), (second_bundle, first)]
    metrics = server.client(key="").get("/metrics").text
    assert 'voiceloop_bundle_reloads_total{alias="champion",outcome="ok"} 2.0' in metrics


# uvicorn's loggers do not propagate to the root, so each gets the handler
LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "voiceloop.serving", "voiceloop.serving.access")


class _Records(logging.Handler):
    """Every log record of the loggers a request could reach."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def __enter__(self) -> _Records:
        for name in LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(self)


def _raw_request(server: Server, head: str) -> bytes:
    """Send a request head alone (no body) and read the first reply, within 15 s."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as conn:
        conn.sendall(head.encode())
        return conn.recv(4096)


def test_the_key_is_checked_before_the_body_is_read_and_every_body_is_capped(server: Server) -> None:
    """A client without a key cannot make the server hold a body; a keyed one cannot send more than a route takes."""
    head = "POST /v1/understand HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n"
    assert _raw_request(server, head.format(1_000_000_000, "")).startswith(b"HTTP/1.1 401")  # no body waited for
    keyed = head.format(10_000_000, f"X-API-Key: {server.key}\r\n")
    assert _raw_request(server, keyed).startswith(b"HTTP/1.1 413")

    def chunks() -> Iterator[bytes]:  # no declared length: cut off as the bytes pass the cap
        yield b'{"text": "'
        for _ in range(50):
            yield b"a" * 4096

    cut = server.client().post("/v1/understand", content=chunks(), headers={"Content-Type": "application/json"})
    assert cut.status_code == 413 and "bytes this route takes" in cut.json()["detail"]


def test_bad_text_gets_a_4xx_that_echoes_nothing_and_errors_reach_no_log(server: Server) -> None:
    card = "4111 1111 1111 1111"
    client = server.client()
    with _Records() as logs:
        surrogate = client.post("/v1/understand", content=f'{{"text": "\\ud800 my card {card}"}}'.encode(),
                                headers={"Content-Type": "application/json"})
        assert surrogate.status_code == 422 and surrogate.json()["detail"][0]["loc"] == ["body", "text"]
        latin1 = client.post("/v1/understand", content=f"Zoë's card {card}".encode("latin-1"),
                             headers={"Content-Type": "text/plain"})
        assert latin1.status_code == 422
        for nothing in ("   \t\n ", "\u0000\u0000", "\u200b"):
            empty = client.post("/v1/understand", json={"text": nothing})
            assert empty.status_code == 422 and "no text" in empty.text
        assert card not in surrogate.text + latin1.text + empty.text  # no 4xx echoes the input

        class Exploding:
            def redact(self, text: str) -> None:
                raise RuntimeError(f"redactor broke on {card}")

        kept, server.runtime.redactor = server.runtime.redactor, Exploding()  # type: ignore[assignment]
        try:
            broken = client.post("/v1/process", content=DIGITS_WAV.read_bytes())
        finally:
            server.runtime.redactor = kept
        assert broken.status_code == 500 and card not in broken.text
    assert not [line for line in logs.lines if card in line or "redactor broke" in line], logs.lines
    metrics = server.client(key="").get("/metrics").text
    assert 'voiceloop_requests_total{endpoint="/v1/process",status="500"} 1.0' in metrics


def test_the_access_log_has_method_path_and_status_only(server: Server) -> None:
    with _Records() as logs:
        answered = server.client().post("/v1/understand?key=SECRET-IN-THE-QUERY", json={"text": "card declined"})
    assert answered.status_code == 200
    assert "POST /v1/understand 200" in logs.lines
    assert not [line for line in logs.lines if "SECRET-IN-THE-QUERY" in line]  # uvicorn's access log is off


def test_silence_gets_no_speech_instead_of_an_intent(server: Server, tmp_path: Path) -> None:
    silent = tmp_path / "silence.wav"
    with wave.open(str(silent), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16_000)
        out.writeframes(b"\x00\x00" * 32_000)
    heard = server.client(server.bot_key).post("/v1/transcribe", content=silent.read_bytes()).json()
    assert (heard["speech"], heard["text"], heard["words"]) == (False, "", [])
    processed = server.client().post("/v1/process", content=silent.read_bytes()).json()
    assert (processed["speech"], processed["intent"], processed["confidence"]) == (False, None, None)


def test_a_compressed_audio_bomb_is_refused_from_its_header(server: Server, tmp_path: Path) -> None:
    """An hour of silence is a small FLAC; it must be refused before it is decoded (the issue: 10 h, 6.5 GB)."""
    bomb = tmp_path / "hour.flac"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(bomb), "trim", "0", "3600"], check=True)
    assert bomb.stat().st_size < server.runtime.max_upload_bytes
    refused = server.client().post("/v1/transcribe", content=bomb.read_bytes())
    assert refused.status_code == 413 and "header declares 3600.0 s" in refused.json()["detail"]


def test_transcripts_are_redacted_unless_the_keys_role_may_have_them_and_requests_are_audited(
        server: Server, project: TrainedProject) -> None:
    audio = DIGITS_WAV.read_bytes()
    raw = server.client(server.bot_key).post("/v1/transcribe", content=audio).json()
    redacted = server.client().post("/v1/transcribe", content=audio).json()
    expected = server.runtime.redact(raw["text"])
    assert expected.entities, "the digits recording should hold PII (a digit string)"
    assert (raw["redacted"], redacted["redacted"]) == (False, True)
    assert redacted["text"] == expected.redacted != raw["text"]
    values = {raw["text"][e.start:e.end] for e in expected.entities}
    assert not [w for w in redacted["words"] if any(w["word"].strip(" .,") in v.split() for v in values)]
    assert {w["word"] for w in redacted["words"]} & {f"<{e.type}>" for e in expected.entities}

    assert server.runtime.requests is not None
    server.runtime.requests.flush()
    entries = open_audit(project.settings).entries(action="serving.requests")
    groups = {(e.detail["key"], e.role, e.purpose, e.detail["endpoint"]) for e in entries}
    assert ("bot-platform", "voice-bot", "transcription", "transcribe") in groups
    assert ("qa-dashboard", "serving", "evaluation", "transcribe") in groups
    assert all(e.detail["count"] >= 1 and set(e.detail) == {"key", "endpoint", "count", "from", "to"}
               for e in entries)  # counts, never text


def test_keys_need_a_role_fit_to_serve_and_an_empty_key_list_fails_at_start(project: TrainedProject) -> None:
    settings = project.settings
    with pytest.raises(ValueError, match="'intern' is not in the access policy"):
        resolve_keys(settings, (ApiKey("temp", "intern", "k"),), "serving")
    with pytest.raises(ValueError, match="neither for evaluation nor for transcription"):
        resolve_keys(settings, (ApiKey("auditor", "compliance-officer", "k"),), "serving")
    [bare] = resolve_keys(settings, (ApiKey("key-1", "", "k"),), "serving")  # a key from before roles
    assert bare.role == "serving" and "k'" not in repr(bare)
    refused = cli("serve", "--params", str(project.params), env={"VOICELOOP_API_KEYS": " , "})
    assert refused.exit_code != 0 and "holds no API key" in refused.output
    for command in ("serve", "history"):  # the server's own role, and any reader: resolved and audited alike
        unknown = cli(command, "--as", "intern", "--params", str(project.params))
        assert unknown.exit_code == 2 and "intern" in unknown.output
    refusals = [e for e in open_audit(settings).entries(action="role.refused") if e.role == "intern"]
    assert sorted(e.detail["command"] for e in refusals) == ["history", "serve"]


def test_a_failed_swap_audit_or_load_stops_nothing_and_clears_once_healthy(server: Server, project: TrainedProject,
                                                                            second_bundle: str) -> None:
    """The audit head moved aside: the follower keeps following (a rollback too), says so in /healthz and
    /metrics, and writes the swap entries once the audit log is back; a bundle that fails to load leaves
    no stale error once the alias is back on the bundle serving."""
    settings = project.settings
    registry = Registry(settings)
    first = server.runtime.champion.version
    assert first is not None and first != second_bundle
    move = registry.client.set_registered_model_alias  # the alias alone: promote_by_hand would audit too
    def champion_swaps() -> list[tuple[str, str]]:
        return [(e.detail["before"], e.detail["after"]) for e in open_audit(settings).entries(
            action="serving.bundle-swap") if e.detail["alias"] == "champion"]

    audited = len(champion_swaps())
    head, aside = settings.audit_head_file, settings.audit_head_file.with_name("audit.head.aside")
    os.replace(head, aside)
    try:
        move(settings.tracking.bundle_name, CHAMPION, second_bundle)
        _wait_for(lambda: server.runtime.champion.version == second_bundle, "the swap while the audit log is away")
        # the swap is visible a moment before its failed report is: wait for the report's error
        _wait_for(lambda: server.runtime.champion.last_error is not None, "the failed swap report")
        health = server.client(key="").get("/healthz").json()
        assert health["status"] == "degraded" and "recording the bundle swap failed" in health["last_reload_error"]
        metrics = server.client(key="").get("/metrics").text
        assert 'voiceloop_follower_healthy{alias="champion"} 0.0' in metrics
        assert 'voiceloop_follower_errors_total{alias="champion",stage="report"}' in metrics
        move(settings.tracking.bundle_name, CHAMPION, first)  # a rollback is still followed
        _wait_for(lambda: server.runtime.champion.version == first, "the swap back while the audit log is away")
    finally:
        os.replace(aside, head)
    _wait_for(lambda: server.client(key="").get("/healthz").json()["status"] == "ok", "the follower to recover")
    assert champion_swaps()[audited:] == [(first, second_bundle), (second_bundle, first)]  # written late, in order

    champion = registry.bundle(first)
    broken = registry.register_bundle(str(champion.run_id), {"intent": f"{settings.tracking.intent_model_name}/999"},
                                      {"note": "test: a component that does not exist"})
    move(settings.tracking.bundle_name, CHAMPION, broken.version)
    _wait_for(lambda: server.runtime.champion.last_error is not None, "the failed load")
    assert "loading the bundle failed" in str(server.runtime.champion.last_error)
    assert server.runtime.champion.version == first  # still serving
    move(settings.tracking.bundle_name, CHAMPION, first)
    _wait_for(lambda: server.runtime.champion.last_error is None, "the error to clear on the bundle serving")
