"""An agent desktop needs the call so far when a bot escalates: call sessions, redacted on arrival, bounded, in memory.

The bot platform posts each customer turn of a live call (``POST /v1/calls/{call_id}/turns``,
serving/routes/calls.py). The turn is redacted before it is kept: a session holds the redacted
text, the entity types found and, for the types in ``serving.sessions.masked_types`` (card,
account and phone numbers by default), the last 4 digits of the value (``•••• 1234``), never the
value itself. It also holds the intent the champion read from the redacted text and its
sentiment (core/sentiment.py). ``GET /v1/calls/{call_id}/handoff`` assembles the handoff packet
(:class:`governance.contract.HandoffPacket` plus the turns, the sentiment trend and the entities).

Bounds (``serving.sessions``): ``max_sessions`` calls (a new call evicts the one whose last turn
is oldest), ``max_turns`` turns per call (more: :class:`TooManyTurns`, 409), and ``idle_s``
seconds without a turn, after which a call is dropped, on the next access and by a periodic
sweep (:meth:`SessionStore.start`). Nothing is written to disk. Sessions live in one process:
with several, the load balancer must send a call's requests to one of them (docs/serving.md).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from core.settings import CallSessionsConfig
from core.spoken import DIGIT_WORDS
from training.bundle import NoIntentModel, ServedBundle

if TYPE_CHECKING:
    from governance.redaction.redactor import Redaction
    from serving.metrics import ServingMetrics

log = logging.getLogger("voiceloop.serving")

MASK = "•••• "
MIN_MASKED_DIGITS = 8  # a shorter value shows no digits: its last 4 would be half of it or more
SWEEP_EVERY_S = 60.0  # at most; sooner when idle_s is short
_DIGIT_OF = {word: str(n) for n, word in enumerate(DIGIT_WORDS)} | {"oh": "0"}
_REPEAT = {"double": 2, "triple": 3}
_TOKEN = re.compile(r"\d|[a-z]+")
Source = Literal["audio", "text"]


class SessionError(Exception):
    """A call-session request that cannot be served; ``status`` is its HTTP status, the message names no content."""

    status = 400


class SessionGone(SessionError):
    status = 404


class TooManyTurns(SessionError):
    status = 409


@dataclass(frozen=True)
class FoundEntity:
    """A PII value the caller gave: its type and, where policy allows, its last digits (never the value)."""

    type: str
    masked: str | None


@dataclass(frozen=True)
class SessionTurn:
    """One customer turn as a session keeps it: redacted, understood, scored."""

    text: str  # redacted: PII replaced by <TYPE>
    intent: str | None  # None: no intent model yet (no champion bundle)
    confidence: float | None
    sentiment: float
    source: Source
    entities: tuple[FoundEntity, ...] = ()
    verified: tuple[str, ...] = ()  # entity types the bot verified in this turn
    bundle: str | None = None
    at_s: float = 0.0  # when it arrived, seconds from the session's first turn


@dataclass
class CallSession:
    started: float  # the clock when the first turn arrived
    last_turn: float
    turns: list[SessionTurn] = field(default_factory=list)


def digits_of(value: str) -> str:
    """The digits of a value as written or spoken: "4111 1111", "four one one", "double five" -> "4111...55"."""
    digits: list[str] = []
    repeat = 1
    for token in _TOKEN.findall(value.lower()):
        if token in _REPEAT:
            repeat = _REPEAT[token]
            continue
        digit = token if token.isdigit() else _DIGIT_OF.get(token)
        if digit is not None:
            digits.append(digit * repeat)
        repeat = 1
    return "".join(digits)


def masked(entity_type: str, value: str, masked_types: frozenset[str]) -> str | None:
    """``•••• 1234`` for a value of a type policy lets show the last 4 digits of (and long enough), else None."""
    if entity_type not in masked_types:
        return None
    digits = digits_of(value)
    return MASK + digits[-4:] if len(digits) >= MIN_MASKED_DIGITS else None


def _scored(text: str) -> float:
    from core.sentiment import sentiment

    return float(sentiment(text))


def _progression(texts: list[str]) -> dict[str, Any] | None:
    from core.sentiment import progression

    moved = progression(texts)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(moved).items()} if moved else None


def customer_turn(text: str, redact: Callable[[str], Redaction], bundle: ServedBundle, masked_types: frozenset[str],
                  source: Source, verified: Iterable[str] = ()) -> SessionTurn:
    """``text`` (what the caller said, in clear) redacted, understood and scored: only the result is kept.

    The intent is read from the redacted text, as ``/v1/process`` reads it; without an intent
    model (no champion yet) the turn is kept without one.
    """
    redaction = redact(text)
    found = tuple(FoundEntity(e.type, masked(e.type, text[e.start:e.end], masked_types)) for e in redaction.entities)
    try:
        intent, confidence = bundle.understand(redaction.redacted)
    except NoIntentModel:
        intent, confidence = None, None
    return SessionTurn(redaction.redacted, intent, None if confidence is None else round(confidence, 4),
                       round(_scored(redaction.redacted), 4), source, found, tuple(dict.fromkeys(verified)),
                       bundle.version)


class SessionStore:
    """The open call sessions of this process, bounded by ``config``; safe to use from many threads."""

    def __init__(self, config: CallSessionsConfig | None = None, metrics: ServingMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or CallSessionsConfig()
        self.masked_types = frozenset(self.config.masked_types)
        self._metrics, self._clock = metrics, clock
        self._sessions: OrderedDict[str, CallSession] = OrderedDict()  # oldest last turn first
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if metrics is not None:
            metrics.sessions_open.set_function(lambda: float(len(self)))

    def __len__(self) -> int:
        return len(self._sessions)

    def now(self) -> float:
        return self._clock()

    def check_room(self, call_id: str) -> None:
        """Refuse a turn before any work is done on it when its call is full (:class:`TooManyTurns`)."""
        with self._lock:
            self._expire()
            session = self._sessions.get(call_id)
            if session is not None:
                self._check_turns(session)

    def add(self, call_id: str, turn: SessionTurn, arrived: float) -> int:
        """Keep ``turn`` (arrived at clock ``arrived``) in ``call_id``'s session, opened if need be; its index."""
        with self._lock:
            self._expire()
            session = self._sessions.get(call_id)
            if session is None:
                self._make_room()
                session = self._sessions[call_id] = CallSession(started=arrived, last_turn=arrived)
            self._check_turns(session)
            session.turns.append(replace(turn, at_s=round(max(0.0, arrived - session.started), 3)))
            session.last_turn = self._clock()
            self._sessions.move_to_end(call_id)
            return len(session.turns) - 1

    def packet(self, call_id: str) -> dict[str, Any]:
        """The handoff packet of ``call_id`` (:func:`handoff_packet`), or :class:`SessionGone`."""
        with self._lock:
            self._expire()
            session = self._live(call_id)
            turns, at_s = list(session.turns), self._clock() - session.started
        return handoff_packet(call_id, turns, at_s)

    def end(self, call_id: str) -> None:
        """Drop ``call_id``'s session (the call ended), or :class:`SessionGone`."""
        with self._lock:
            self._expire()
            self._live(call_id)
            del self._sessions[call_id]
        self._closed("ended")

    def sweep(self) -> int:
        """Drop the sessions idle for longer than ``idle_s``; how many."""
        with self._lock:
            return self._expire()

    def start(self, every_s: float | None = None) -> None:
        """Sweep every ``every_s`` seconds (default: ``idle_s`` / 2, at most a minute) until :meth:`stop`."""
        interval = every_s or min(SWEEP_EVERY_S, self.config.idle_s / 2)

        def loop() -> None:
            while not self._stop.wait(interval):
                self.sweep()

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="call-session-sweep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _live(self, call_id: str) -> CallSession:
        session = self._sessions.get(call_id)
        if session is None:
            raise SessionGone("no open session for this call: never opened, ended, idle for longer than "
                              f"serving.sessions.idle_s ({self.config.idle_s:g} s), or evicted to make room")
        return session

    def _check_turns(self, session: CallSession) -> None:
        if len(session.turns) >= self.config.max_turns:
            raise TooManyTurns(f"this call already holds {self.config.max_turns} turns (serving.sessions.max_turns);"
                               " read its handoff packet or end it with DELETE")

    def _expire(self) -> int:
        """Drop idle sessions from the front (the oldest last turn first); the caller holds the lock."""
        cutoff, dropped = self._clock() - self.config.idle_s, 0
        while self._sessions and next(iter(self._sessions.values())).last_turn <= cutoff:
            self._sessions.popitem(last=False)
            dropped += 1
        self._closed("expired", dropped)
        return dropped

    def _make_room(self) -> None:
        """Evict the sessions whose last turn is oldest until a new one fits; the caller holds the lock."""
        evicted = 0
        while len(self._sessions) >= self.config.max_sessions:
            self._sessions.popitem(last=False)
            evicted += 1
        if evicted:
            log.warning("call sessions full (serving.sessions.max_sessions = %d): evicted %d idle session(s)",
                        self.config.max_sessions, evicted)
        self._closed("evicted", evicted)

    def _closed(self, reason: str, count: int = 1) -> None:
        if count and self._metrics is not None:
            self._metrics.sessions_closed.labels(reason).inc(count)


def handoff_packet(call_id: str, turns: list[SessionTurn], at_s: float) -> dict[str, Any]:
    """What an agent desktop gets: :class:`governance.contract.HandoffPacket`'s fields, and the turns behind them.

    ``intent`` is the latest turn's (the caller's current need; the turns carry the earlier ones),
    or the latest understood one while there is no intent model; ``sentiment`` is the latest turn's.
    """
    latest = turns[-1]
    understood = next((t for t in reversed(turns) if t.intent is not None), None)
    return {
        "call_id": call_id,
        "at_s": round(at_s, 3),
        "transcript": "\n".join(t.text for t in turns),
        "intent": understood.intent if understood else None,
        "intent_confidence": understood.confidence if understood else None,
        "sentiment": latest.sentiment,
        "verified": list(dict.fromkeys(v for t in turns for v in t.verified)),
        "sentiment_trend": [t.sentiment for t in turns],
        "sentiment_progression": _progression([t.text for t in turns]),
        "entities": _entities(turns),
        "turns": [{"index": n, "speaker": "customer", "text": t.text, "intent": t.intent, "confidence": t.confidence,
                   "sentiment": t.sentiment, "at_s": t.at_s, "source": t.source} for n, t in enumerate(turns)],
        "bundle": latest.bundle,
    }


def _entities(turns: list[SessionTurn]) -> list[dict[str, Any]]:
    """One entry per entity type the caller gave (or the bot verified), first given first, with the latest
    masked value of that type."""
    verified = {v for t in turns for v in t.verified}
    shown: dict[str, str | None] = {}
    for turn in turns:
        for entity in turn.entities:
            shown[entity.type] = entity.masked or shown.get(entity.type)
        for kind in turn.verified:
            shown.setdefault(kind, None)
    return [{"type": kind, "verified": kind in verified, "masked": value} for kind, value in shown.items()]
