"""The serving runtime over real HTTP (uvicorn in a thread), on a project the real flow trained.

The champion is the template's first bundle (intent + ASR). A second bundle of the same
components is registered (it becomes the challenger, which shadow mode runs), promoted by hand
while clients keep sending requests, and rolled back: the server must follow each move without
a single failed request.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from governance.audit import open_audit
from serving.api_keys import api_keys_path
from serving.app import create_app
from serving.runtime import build_runtime, start_following, stop_following
from serving.state import Runtime
from tests.conftest import REPO
from tests.flow_helpers import TrainedProject, project_fixture
from training.registry import CHAMPION, Registry
from training.rollout import promote_by_hand, rollback

project = project_fixture("serving")
DIGITS_WAV = REPO / "data" / "sample" / "speech_fixtures" / "vosk_digits.wav"


@dataclass
class Server:
    url: str
    runtime: Runtime
    key: str

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": key if key is not None else self.key},
                            timeout=60)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(project: TrainedProject) -> Iterator[Server]:
    settings = project.settings
    runtime = build_runtime(settings, shadow=True)
    key = next(line for line in api_keys_path(settings.keys_dir, "").read_text().splitlines()
               if line and not line.startswith("#"))
    port = _free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="info"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uv.started, "uvicorn did not start"
    start_following(runtime, 0.2)
    yield Server(f"http://127.0.0.1:{port}", runtime, key)
    stop_following(runtime)
    uv.should_exit = True
    thread.join(timeout=30)


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
    heard = client.post("/v1/transcribe", content=audio).json()
    assert heard["text"] and heard["words"] and heard["duration_s"] == pytest.approx(8.3, abs=0.2)
    assert all(0 <= w["start"] <= w["end"] <= heard["duration_s"] for w in heard["words"])

    with caplog.at_level(logging.DEBUG):
        processed = client.post("/v1/process", content=audio)
    assert processed.status_code == 200, processed.text
    out = processed.json()
    assert set(out) == {"bundle", "transcript", "pii_types", "intent", "confidence", "duration_s"}
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
    assert client.post("/v1/transcribe", content=DIGITS_WAV.read_bytes()).status_code == 200
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
