"""Call sessions and the handoff packet (/v1/calls): redacted on arrival, bounded, audited, served to the agent.

Nothing is trained: the app runs on the bundled base Whisper and the real PII redactor, with a
keyword stand-in for the intent model (the sessions only need *an* intent, not a good one).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.settings import CallSessionsConfig, RedactionConfig
from governance.contract import HandoffPacket
from governance.redaction.redactor import Redactor
from serving.api_keys import ApiKey
from serving.app import create_app
from serving.follower import BundleFollower
from serving.metrics import ServingMetrics
from serving.request_audit import RequestAuditor
from serving.runtime import SessionRuntime, start_following, stop_following
from serving.sessions import SessionStore
from tests.conftest import REPO
from training.bundle import ServedBundle, bundle_from_folders

DIGITS_WAV = REPO / "data" / "sample" / "speech_fixtures" / "vosk_digits.wav"  # "one zero zero zero one ..." 8.3 s
KEYS = (ApiKey("qa-dashboard", "serving", "k-serving-0123456789"),  # evaluation only: no call sessions
        ApiKey("bot-platform", "voice-bot", "k-voice-bot-0123456789"))  # transcription: call sessions
QA, BOT = ({"X-API-Key": key.secret} for key in KEYS)
TURNS = [  # what the caller says, and the entity types the bot verified in that turn
    ("Hi, my name is John Smith and I lost my card yesterday, I am really upset", []),
    ("the card is 4539 1488 0343 6467 and my pin is 9911", ["CREDIT_CARD"]),
    ("you can call me back on 415 555 0123, thank you so much", []),
]
# the values said (and heard: the ASR writes the digits of DIGITS_WAV as "10001 90210 01 803")
RAW = ("John", "Smith", "4539", "1488", "0343", "9911", "415 555", "10001", "90210")
LAST_4 = ("6467", "0123")  # the masked values' digits: in the packet, nowhere else


class KeywordIntent:
    """A stand-in intent model: the first label whose keyword the (redacted) text holds."""

    labels = ["lost_or_stolen_card", "verify_my_identity", "request_callback", "card_arrival"]
    keywords = ("lost", "<DIGIT_STRING>", "call me", "")

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        rows = np.full((len(texts), len(self.labels)), 0.1)
        for row, text in zip(rows, texts, strict=True):
            row[next(n for n, word in enumerate(self.keywords) if word in text)] = 0.7
        return rows


@pytest.fixture(scope="module")
def parts() -> tuple[ServedBundle, Redactor]:
    """The expensive parts, loaded once: base Whisper (no bundle trained) and the redactor."""
    bundle = bundle_from_folders(None, None, None, window_s=10.0, cpu_threads=2)
    return replace(bundle, version="7", intent=KeywordIntent()), Redactor(RedactionConfig())  # type: ignore[arg-type]


@dataclass
class Served:
    client: TestClient
    runtime: SessionRuntime
    audited: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sessions(self) -> SessionStore:
        return self.runtime.sessions

    def turn(self, call_id: str, text: str, verified: list[str] | None = None) -> Any:
        return self.client.post(f"/v1/calls/{call_id}/turns", json={"text": text, "verified": verified or []},
                                headers=BOT)

    def handoff(self, call_id: str, headers: dict[str, str] = BOT) -> Any:
        return self.client.get(f"/v1/calls/{call_id}/handoff", headers=headers)

    def metric(self, line: str) -> bool:
        return line in self.client.get("/metrics").text.splitlines()


Serve = Callable[..., Served]


@pytest.fixture()
def serve(parts: tuple[ServedBundle, Redactor]) -> Iterator[Serve]:
    """An app over a fresh runtime (the loaded parts, new sessions with ``caps``, an audit that keeps its entries)."""
    with ExitStack() as stack:

        def make(intent: bool = True, **caps: Any) -> Served:
            bundle, redactor = parts
            bundle = bundle if intent else replace(bundle, intent=None)
            metrics, audited = ServingMetrics(), []

            def write(group: tuple[str, str, str, str], count: int, _since: datetime, _until: datetime) -> None:
                audited.append(dict(zip(("key", "role", "purpose", "endpoint"), group, strict=True), count=count))

            runtime = SessionRuntime(champion=BundleFollower(lambda: bundle.version, lambda _v: bundle),
                                     redactor=redactor, keys=KEYS, metrics=metrics,
                                     raw_roles=frozenset({"voice-bot"}), requests=RequestAuditor(write),
                                     sessions=SessionStore(CallSessionsConfig(**caps), metrics))
            client = stack.enter_context(TestClient(create_app(runtime)))
            return Served(client, runtime, audited)

        yield make


def test_turns_are_kept_redacted_and_the_packet_is_what_the_agent_needs(serve: Serve,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    served = serve()
    with caplog.at_level(logging.DEBUG):
        answers = [served.turn("call-0001", text, verified) for text, verified in TURNS]
        heard = served.client.post("/v1/calls/call-0001/turns?verified=DATE_OF_BIRTH",
                                   content=DIGITS_WAV.read_bytes(), headers=BOT)
        packet = served.handoff("call-0001")
    assert all(a.status_code == 200 for a in [*answers, heard, packet]), [a.text for a in [*answers, heard, packet]]

    first = answers[0].json()
    assert first["turn"] == 0 and first["text"].startswith("Hi, my name is <PERSON>") and first["speech"] is True
    assert first["intent"] == "lost_or_stolen_card" and first["confidence"] > 0 and first["pii_types"] == ["PERSON"]
    audio = heard.json()
    assert audio["turn"] == 3 and "<DIGIT_STRING>" in audio["text"] and not re.search(r"\d{3}", audio["text"])

    body = packet.json()
    assert body["transcript"].count("\n") == 3 and "<CREDIT_CARD>" in body["transcript"]
    assert "<PHONE_NUMBER>" in body["transcript"] and "<PIN>" in body["transcript"]
    assert not [value for value in (*RAW, *LAST_4) if value in body["transcript"]]
    assert body["intent"] == "verify_my_identity" and body["intent_confidence"] == audio["confidence"]
    assert len(body["sentiment_trend"]) == len(body["turns"]) == 4 and body["sentiment"] == body["sentiment_trend"][-1]
    assert body["sentiment_trend"][0] < 0 < body["sentiment_trend"][2]  # upset, then thankful
    assert [t["source"] for t in body["turns"]] == ["text", "text", "text", "audio"]
    assert {t["speaker"] for t in body["turns"]} == {"customer"} and body["bundle"] == "7"
    entities = {e["type"]: (e["verified"], e["masked"]) for e in body["entities"]}
    assert entities == {"PERSON": (False, None), "CREDIT_CARD": (True, "•••• 6467"), "PIN": (False, None),
                        "PHONE_NUMBER": (False, "•••• 0123"), "DIGIT_STRING": (False, None),
                        "DATE_OF_BIRTH": (True, None)}  # verified by the bot, never said

    handed = HandoffPacket.model_validate(body)
    assert handed.complete and handed.verified == ["CREDIT_CARD", "DATE_OF_BIRTH"] and 0 <= handed.at_s < 60

    kept = repr(served.sessions._sessions)  # all the server holds of the call
    assert "<PERSON>" in kept and not [value for value in RAW if value in kept]
    served.runtime.requests.flush()  # type: ignore[union-attr]
    assert {"key": "bot-platform", "role": "voice-bot", "purpose": "transcription",
            "endpoint": "calls/{call_id}/handoff", "count": 1} in served.audited
    assert {e["endpoint"] for e in served.audited} == {"calls/{call_id}/turns", "calls/{call_id}/handoff"}
    server_side = [r for r in caplog.records if not r.name.startswith("httpx")]  # not the test client's own
    logged = " ".join(record.getMessage() for record in server_side) + repr(served.audited)
    assert "POST /v1/calls/{call_id}/turns 200" in logged and "call-0001" not in logged
    assert not [value for value in (*RAW, *LAST_4, "upset", "yesterday") if value in logged]
    assert served.metric("voiceloop_call_sessions_open 1.0")
    assert served.metric('voiceloop_call_turns_total{source="audio"} 1.0')


def test_without_an_intent_model_turns_are_kept_and_the_packet_is_incomplete(serve: Serve) -> None:
    served = serve(intent=False)
    answer = served.turn("call-0002", "I lost my card")
    assert answer.status_code == 200 and answer.json()["intent"] is None
    handed = HandoffPacket.model_validate(served.handoff("call-0002").json())
    assert handed.transcript == "I lost my card" and handed.intent is None and not handed.complete


def test_the_turn_cap_answers_409_before_any_work(serve: Serve) -> None:
    served = serve(max_turns=2)
    assert [served.turn("call-0003", f"turn {n}").status_code for n in range(2)] == [200, 200]
    for refused in (served.turn("call-0003", "one too many"),
                    served.client.post("/v1/calls/call-0003/turns", content=b"not even audio", headers=BOT)):
        assert refused.status_code == 409 and "serving.sessions.max_turns" in refused.json()["detail"]
    assert len(served.handoff("call-0003").json()["turns"]) == 2


def test_a_full_store_evicts_the_least_recently_active_call(serve: Serve) -> None:
    served = serve(max_sessions=2)
    for call_id in ("call-a", "call-b", "call-a", "call-c"):  # call-a spoke after call-b: call-b is evicted
        assert served.turn(call_id, "where is my card").status_code == 200
    assert [served.handoff(c).status_code for c in ("call-a", "call-b", "call-c")] == [200, 404, 200]
    assert len(served.handoff("call-a").json()["turns"]) == 2
    assert served.metric('voiceloop_call_sessions_closed_total{reason="evicted"} 1.0')
    assert served.metric("voiceloop_call_sessions_open 2.0")


def test_an_idle_call_expires_on_access_and_in_the_sweep(serve: Serve) -> None:
    served = serve(idle_s=0.3)
    assert served.turn("call-0004", "where is my card").status_code == 200
    time.sleep(0.45)
    gone = served.handoff("call-0004")
    assert gone.status_code == 404 and "idle_s" in gone.json()["detail"]
    assert served.metric('voiceloop_call_sessions_closed_total{reason="expired"} 1.0')

    start_following(served.runtime, 5.0)  # the sweep: every idle_s / 2
    try:
        assert served.turn("call-0005", "where is my card").status_code == 200
        deadline = time.monotonic() + 5
        while len(served.sessions) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(served.sessions) == 0, "the sweep did not drop the idle call"
    finally:
        stop_following(served.runtime)
    assert served.metric('voiceloop_call_sessions_closed_total{reason="expired"} 2.0')


def test_delete_ends_the_call(serve: Serve) -> None:
    served = serve()
    assert served.turn("call-0006", "where is my card").status_code == 200
    assert served.client.delete("/v1/calls/call-0006", headers=BOT).status_code == 204
    assert served.handoff("call-0006").status_code == 404
    assert served.client.delete("/v1/calls/call-0006", headers=BOT).status_code == 404
    assert served.metric('voiceloop_call_sessions_closed_total{reason="ended"} 1.0')


def test_bad_call_ids_bad_turns_and_keys_without_the_role_are_refused(serve: Serve) -> None:
    served = serve()
    for bad in (".hidden", "bad%20id", "x" * 129, "semi;colon"):
        refused = served.turn(bad, "where is my card")
        assert refused.status_code == 422 and bad not in refused.text, (bad, refused.text)
    assert served.turn("call-0007", " \t").status_code == 422  # the text rules of /v1/understand
    assert served.turn("call-0007", "x" * 2001).status_code == 422
    assert served.turn("call-0007", "hi", verified=["not a type"]).status_code == 422
    broken = served.client.post("/v1/calls/call-0007/turns", content=b'{"text": "4539 1488', headers=BOT | {
        "Content-Type": "application/json"})
    assert broken.status_code == 422 and "4539" not in broken.text
    assert served.client.post("/v1/calls/call-0007/turns", content=b"", headers=BOT).status_code == 400

    assert served.turn("call-0008", "where is my card").status_code == 200
    for response in (served.client.post("/v1/calls/call-0008/turns", json={"text": "hi"}, headers=QA),
                     served.handoff("call-0008", headers=QA),
                     served.client.delete("/v1/calls/call-0008", headers=QA)):
        assert response.status_code == 403 and "transcription" in response.json()["detail"]
    assert served.handoff("call-0008", headers={}).status_code == 401
    assert len(served.handoff("call-0008").json()["turns"]) == 1  # the refused turn was not kept
