"""The monitor's per-call signals, daily figures, reference windows and alerts, on small hand-checked calls.

No audio and no models here: the calls are redacted documents written by hand, so every figure can be
worked out on paper (the numbers in the comments). The monitor flow on real calls is tests/test_monitor.py.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.settings import MonitorConfig
from governance.audit import Actor, AuditLog
from governance.contract import parse_call
from governance.ingest_lock import ingest_lock
from governance.store import GovernedStore
from monitoring.alerting import alert_id, raise_alerts
from monitoring.daily import daily_figures, intent_mix_shift, new_slices, repeat_facts
from monitoring.figures import DailyFigure
from monitoring.signals import HeardTurn, call_signals
from monitoring.watch import reference_window

COUNTED = {"PERSON", "ACCOUNT_NUMBER"}


def _turn(index: int, speaker: str, start: float, end: float, text: str = "", **extra: Any) -> dict[str, Any]:
    return {"index": index, "speaker": speaker, "start_s": start, "end_s": end, "text": text, **extra}


def _call(call_id: str, caller: str, started: str, outcome: str, turns: list[dict[str, Any]],
          **extra: Any) -> dict[str, Any]:
    return {"call_id": call_id, "caller_ref": caller, "started_at": started, "consent_training": True,
            "outcome": outcome, "meta": {"channel": "telephone8k", "voice": "en-gb+f4"},
            "audio": {"duration_s": 12.0}, "turns": turns, **extra}


# Caller X escalates on day 1 (the agent asks for their name again), rings back that evening and is
# contained; caller Y is contained on day 3. Latencies: 400 and 300 ms (A), 450 ms (B), 250 ms (C).
A = _call("a", "x", "2026-11-01T10:00:00+00:00", "escalated", [
    _turn(0, "customer", 0.0, 2.0, "my card never arrived", speech_dbfs=-22.0),
    _turn(1, "bot", 2.4, 4.0, bot={"intent": "card_arrival", "confidence": 0.9, "bundle": "7",
                                   "asr": {"avg_logprob": -0.3, "no_speech_prob": 0.05}}),
    _turn(2, "customer", 4.5, 6.0, "my name is <PERSON>", pii_types=["PERSON"]),
    _turn(3, "bot", 6.3, 7.0),
    _turn(4, "agent", 8.0, 9.0),
    _turn(5, "customer", 9.0, 10.0, "it is <PERSON> as I said, this is useless", pii_types=["PERSON"]),
], handoff={"at_s": 7.5, "transcript_sent": True, "intent": "card_arrival", "sentiment": -0.4, "verified": []})
B = _call("b", "x", "2026-11-01T20:00:00+00:00", "contained", [
    _turn(0, "customer", 0.0, 1.5, "is my card on its way"),
    _turn(1, "bot", 1.95, 3.0),
    _turn(2, "customer", 3.5, 4.5, "great thanks"),
])
C = _call("c", "y", "2026-11-03T09:00:00+00:00", "contained", [
    _turn(0, "customer", 0.0, 1.5, "what is my balance"),
    _turn(1, "bot", 1.75, 3.0),
], meta={"channel": "clean16k", "voice": "en-us+m3"})
HEARD_B = {0: HeardTurn("card_arrival", 0.8, -0.4, 0.1, 6, "7", -21.0, 18.0),
           2: HeardTurn("card_arrival", 0.5, -0.2, 0.2, 2, "7", -20.0, 17.0)}


def _signals() -> list[Any]:
    return [call_signals(A, {}, COUNTED), call_signals(B, HEARD_B, COUNTED), call_signals(C, {}, COUNTED)]


def _figure(figures: list[DailyFigure], day: str, metric: str, slice_name: str = "all") -> DailyFigure:
    [found] = [f for f in figures if f.day == date.fromisoformat(day) and f.metric == metric and f.slice == slice_name]
    return found


def test_a_calls_signals_come_from_its_bot_log_or_the_champion_and_stop_at_the_handoff() -> None:
    a, b, c = _signals()
    assert [t.index for t in a.turns] == [0, 2]  # turn 5 came after the handoff (7.5 s): the agent's part
    assert [t.latency_ms for t in a.turns] == [400.0, 300.0]
    assert (a.turns[0].source, a.turns[0].intent, a.turns[0].confidence) == ("bot-log", "card_arrival", 0.9)
    assert a.turns[1].source == "none"  # the bot turn answering it logged nothing, and no champion reading
    assert (b.turns[0].source, b.turns[0].words, b.turns[0].snr_db) == ("champion", 6, 18.0)
    assert b.turns[1].latency_ms is None  # the call ended: nothing answered it
    assert a.handoff_complete and a.handoff_repeated_types == ["PERSON"]
    assert a.sentiment_end is not None and a.sentiment_start is not None and a.sentiment_end < a.sentiment_start
    assert c.handoff_repeated_types == [] and not c.handoff_present
    record = json.dumps(a.to_record())
    assert "never arrived" not in record and "useless" not in record  # numbers and types, never text


def test_repeat_calls_look_forward_and_stay_provisional_until_their_window_has_passed() -> None:
    facts = repeat_facts(_signals(), callback_hours=24, window_days=7)
    assert facts["a"].callback and facts["a"].repeated  # b is 10 hours later
    assert not facts["b"].callback and not facts["c"].repeated
    assert facts["a"].callback_final and not facts["a"].repeat_final  # newest call: day 3, 09:00
    assert not facts["c"].callback_final


def test_the_days_figures_worked_out_by_hand() -> None:
    figures = daily_figures(_signals(), callback_hours=24, window_days=7)
    day1 = "2026-11-01"
    assert _figure(figures, day1, "latency_p50_ms").value == 400.0  # 300, 400, 450
    assert _figure(figures, day1, "latency_p95_ms").value == pytest.approx(445.0)
    assert _figure(figures, day1, "callback_24h_rate").value == 0.5  # a was called back, b not
    assert not _figure(figures, day1, "callback_24h_rate").provisional
    assert _figure(figures, day1, "repeat_7d_rate").provisional
    assert _figure(figures, day1, "escalation_rate").value == 0.5
    assert _figure(figures, day1, "resolution_rate").value == 0.5  # b: contained, not repeated
    assert _figure(figures, day1, "false_containment_rate").value == 0.0  # the only contained call, b
    assert _figure(figures, day1, "handoff_complete_rate").value == 1.0
    assert _figure(figures, day1, "handoff_repeat_rate").value == 1.0
    assert _figure(figures, day1, "intent_confidence_mean").value == pytest.approx((0.9 + 0.8 + 0.5) / 3, abs=1e-5)
    assert _figure(figures, day1, "latency_p50_ms", "channel=telephone8k").n == 3
    assert _figure(figures, "2026-11-03", "containment_rate", "channel=clean16k").value == 1.0
    assert not [f for f in figures if f.day == date(2026, 11, 3) and f.metric == "handoff_complete_rate"]


def test_each_metrics_reference_starts_once_its_look_ahead_sees_every_earlier_call() -> None:
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(30)]
    window = reference_window(days, MonitorConfig(reference_days=14))
    assert min(window.reference_for("repeat_7d_rate")) == date(2026, 11, 8)
    assert min(window.reference_for("callback_24h_rate")) == date(2026, 11, 2)
    assert sorted(window.reference_for("est_wer")) == days[:14]


def test_a_slice_the_reference_never_saw_is_new_once() -> None:
    day = [date(2026, 11, 1) + timedelta(days=i) for i in range(4)]
    figures = [DailyFigure(d, "containment_rate", s, 1.0, 10) for d in day for s in ("all", "channel=a")]
    figures += [DailyFigure(d, "containment_rate", "channel=gsm", 0.5, 4) for d in day[2:]]
    [new] = new_slices(figures, {day[0], day[1]})
    assert (new.day, new.slice, new.value) == (day[2], "channel=gsm", 1.0)


def test_the_intent_mix_shift_is_a_chi_square_against_the_reference_mix() -> None:
    def asking(day: int, intent: str, n: int) -> list[Any]:
        return [call_signals(_call(f"d{day}-{intent}-{i}", f"c{day}{intent}{i}", f"2026-11-0{day}T10:00:00+00:00",
                                   "contained", [_turn(0, "customer", 0, 1)]),
                             {0: HeardTurn(intent, 0.9, -0.2, 0.1, 4, "7")}, COUNTED) for i in range(n)]

    calls = asking(1, "a", 2) + asking(1, "b", 2) + asking(2, "a", 2) + asking(2, "b", 2) + asking(3, "a", 4)
    shifts = {f.day.day: f.value for f in intent_mix_shift(calls, {date(2026, 11, 1), date(2026, 11, 2)})}
    # days 1 and 2 each against the other (the same mix): 0; day 3, four "a" where half "a" half "b" was
    # expected (smoothed 4.5/9 each): chi-square (4-2)^2/2 + (0-2)^2/2 = 4 over 1 degree of freedom
    assert shifts == {1: 0.0, 2: 0.0, 3: 4.0}


def _store(tmp_path: Path) -> GovernedStore:
    return GovernedStore(tmp_path / "zones", AuditLog(f"sqlite:///{tmp_path / 'audit.db'}"),
                         Actor(role="pipeline", purpose="monitoring", user="t"))


def _stable_then_jump(jump_from: int) -> list[DailyFigure]:
    """30 days of a callback rate of about 0.10 on 100 calls a day, 0.45 from ``jump_from``."""
    wobble = [0.09, 0.11, 0.10, 0.12, 0.08, 0.10, 0.11, 0.09, 0.10, 0.12]
    figures = []
    for i in range(30):
        rate = 0.45 if i >= jump_from else wobble[i % len(wobble)]
        figures.append(DailyFigure(date(2026, 11, 1) + timedelta(days=i), "callback_24h_rate", "all", rate, 100,
                                   round((rate * (1 - rate) / 100) ** 0.5, 5)))
    return figures


def test_a_stable_stream_raises_no_alert_and_a_jump_raises_one_with_its_owner_and_calls(tmp_path: Path) -> None:
    from core.settings import Settings

    settings = Settings(project_dir=str(tmp_path / "state"))
    store = _store(tmp_path)
    days = sorted({f.day for f in _stable_then_jump(99)})
    window = reference_window(days, settings.monitor)
    calls = [call_signals(_call(f"call-{i}", f"who-{i}", f"{d.isoformat()}T10:00:00+00:00", "contained",
                                [_turn(0, "customer", 0, 1)]), {}, COUNTED) for i, d in enumerate(days)]
    stable = raise_alerts(settings, store, _stable_then_jump(99), window, calls)
    assert stable.raised == [] and stable.tests > 0

    jumped = raise_alerts(settings, store, _stable_then_jump(22), window, calls)
    [alert] = jumped.raised
    assert alert["metric"] == "callback_24h_rate" and alert["owner"] == "contact-centre-ops"
    assert date.fromisoformat(alert["day"]) - date(2026, 11, 23) <= timedelta(days=1)
    assert "call_ids" not in alert
    kept = store.read_monitoring("alerts")[alert["alert_id"]]
    # the rate stays high, so later days' alarms continue this alert (one alert, not one a day) and add their calls
    assert kept["last_day"] > kept["day"] and jumped.continued == [], "extended in the run that raised it"
    assert kept["call_ids"] == sorted(c.call_id for c in calls if kept["day"] <= c.day <= kept["last_day"])
    entries = [e for e in store.audit.entries(action="monitoring.alert")]
    assert [e.detail["alert_id"] for e in entries] == [alert["alert_id"]] and not entries[0].call_ids
    again = raise_alerts(settings, store, _stable_then_jump(22), window, calls)
    assert again.raised == [], "the same alarm found again is the same alert"
    assert alert["alert_id"] == alert_id(alert["rule"], "all", date.fromisoformat(alert["day"]))


def test_an_alert_that_goes_on_is_posted_again_with_its_first_start(tmp_path: Path) -> None:
    """Alertmanager drops an alert ACTIVE_FOR after its last post: a later run whose days continue the episode
    hands it to delivery again, same id and start, without the calls behind it."""
    from core.settings import Settings
    from monitoring.delivery import ACTIVE_FOR, notice

    settings = Settings(project_dir=str(tmp_path / "state"))
    store = _store(tmp_path)
    figures = _stable_then_jump(22)
    window = reference_window(sorted({f.day for f in figures}), settings.monitor)
    first_run = raise_alerts(settings, store, [f for f in figures if f.day <= date(2026, 11, 24)], window, [])
    [alert] = first_run.raised
    later = raise_alerts(settings, store, figures, window, [])
    assert later.raised == [] and [a["alert_id"] for a in later.continued] == [alert["alert_id"]]
    assert later.to_deliver == later.continued and "call_ids" not in later.continued[0]
    now = datetime.fromisoformat(alert["raised_at"]) + timedelta(days=2)
    posted = notice(later.continued[0], now)
    assert posted.starts_at == datetime.fromisoformat(alert["raised_at"]) and posted.ends_at == now + ACTIVE_FOR
    assert raise_alerts(settings, store, figures, window, []).continued == [], "nothing new: nothing re-posted"


def test_an_alarm_before_a_known_alert_is_an_alert_of_its_own(tmp_path: Path) -> None:
    """A backfill (days judged out of order) must not fold an earlier alarm into a later alert's episode."""
    from core.settings import Settings

    settings = Settings(project_dir=str(tmp_path / "state"))
    figures = _stable_then_jump(22)
    window = reference_window(sorted({f.day for f in figures}), settings.monitor)
    [alert] = raise_alerts(settings, _store(tmp_path / "first"), figures, window, []).raised
    store = _store(tmp_path / "second")
    later = (date.fromisoformat(alert["last_day"]) + timedelta(days=30)).isoformat()
    store.write_monitoring("alerts", {"al-later": {**alert, "alert_id": "al-later", "day": later, "last_day": later,
                                                   "call_ids": []}})
    [again] = raise_alerts(settings, store, figures, window, []).raised
    assert again["alert_id"] == alert["alert_id"] and again["day"] == alert["day"]


def test_a_slice_the_reference_never_saw_is_judged_against_the_whole_population(tmp_path: Path) -> None:
    from core.settings import Settings

    settings = Settings(project_dir=str(tmp_path / "state"))
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(20)]
    wobble = [0.20, 0.22, 0.19, 0.21, 0.20, 0.23, 0.18]
    figures = [DailyFigure(d, "est_wer", "all", wobble[i % 7], 120, 0.015) for i, d in enumerate(days)]
    figures += [DailyFigure(d, "est_wer", "channel=gsm", 0.55, 40, 0.04) for d in days[16:]]
    calls = [call_signals(_call(f"g{i}", f"w{i}", f"{d.isoformat()}T10:00:00+00:00", "contained",
                                [_turn(0, "customer", 0, 1)], meta={"channel": "gsm"}), {}, COUNTED)
             for i, d in enumerate(days[16:])]
    run = raise_alerts(settings, _store(tmp_path), figures, reference_window(days, settings.monitor), calls)
    assert {(a["rule"], a["slice"], a["day"]) for a in run.raised} == {("slice_wer_up", "channel=gsm", "2026-11-17")}


def test_a_bad_bot_log_or_handoff_packet_is_set_aside_with_a_reason_and_the_call_kept() -> None:
    document = {"call_id": "c1", "started_at": "2026-11-01T10:00:00Z", "caller_id": "x",
                "consent": {"training": True}, "audio": "a.wav", "outcome": "contained",
                "turns": [{"speaker": "customer", "start_s": 0, "end_s": 1, "text": "hi"},
                          {"speaker": "bot", "start_s": 1.3, "end_s": 2, "text": "ok",
                           "bot": {"intent": "x", "confidence": 1.7}}],
                "handoff": {"at_s": 1.0, "transcript": "hi", "intent": "x", "sentiment": 0.1}}
    record = parse_call(document, "c1.json")
    reasons = sorted(p.reason for p in record.problems)
    assert len(reasons) == 2
    assert reasons[0].startswith("c1.json: handoff: a packet on a call whose outcome is not 'escalated'")
    assert reasons[1].startswith("c1.json: turns.1.bot.confidence: Input should be less than or equal to 1")
    assert record.turns[1].bot is None and record.handoff is None and "bot" not in document["turns"][1]


def test_retention_deletes_monitoring_records_past_their_window_and_scrubs_their_ids(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from governance.retention import apply_retention

    store = _store(tmp_path)
    a, b, c = _signals()
    store.write_monitoring("calls", {s.call_id: s.to_record() for s in (a, b, c)})
    store.write_monitoring("days", {"2026-11-01": {"day": "2026-11-01", "call_ids": ["a", "b"], "figures": []}})
    admin = GovernedStore(store.root, store.audit, Actor(role="admin", purpose="retention", user="t"))
    now = datetime(2026, 11, 3, 12, tzinfo=UTC)  # a and b started 2 days before, c that morning
    planned = apply_retention(admin, now, 30, True, dry_run=True, monitoring_days=1)
    assert planned.monitoring == ["a", "b"] and store.monitoring_keys("calls") == ["a", "b", "c"]
    done = apply_retention(admin, now, 30, True, dry_run=False, monitoring_days=1)
    assert done.deleted["monitoring"]["call_ids"] == 2
    assert store.monitoring_keys("calls") == ["c"]
    assert store.read_monitoring("days")["2026-11-01"]["call_ids"] == []
    refused = GovernedStore(store.root, store.audit, Actor(role="ml-engineer", purpose="retention", user="t"))
    with pytest.raises(Exception, match="retention"):
        apply_retention(refused, now, 30, True, dry_run=True, monitoring_days=1)


def test_a_bad_field_of_a_call_stored_nowhere_keeps_only_its_reason_in_quarantine(tmp_path: Path) -> None:
    from governance.ingest import ingest
    from tests.conftest import write_call

    packet = {"at_s": -3, "transcript": "my name is Eudora Pennywhistle", "intent": "x", "sentiment": 0}
    write_call(tmp_path / "calls", "kept", outcome="escalated", handoff=packet)
    write_call(tmp_path / "calls", "unconsented", consent=False, outcome="escalated", handoff=packet)
    store = GovernedStore(tmp_path / "zones", AuditLog(f"sqlite:///{tmp_path / 'audit.db'}"),
                          Actor(role="pipeline", purpose="ingest", user="t"))
    report = ingest(store, str(tmp_path / "calls"), "train")
    assert report.ingested == ["kept"] and report.no_consent == ["unconsented"]
    assert [reason for _, reason in report.fields_quarantined] == [
        "kept.json: handoff.at_s: Input should be greater than or equal to 0; the field was set aside "
        "(see README, 'The call store contract'), the call kept",
        "unconsented.json: handoff.at_s: Input should be greater than or equal to 0; the field was set aside "
        "(see README, 'The call store contract'), the call kept"]
    folder = tmp_path / "zones/quarantine/ingest-field"
    assert sorted(p.name for p in (folder / "kept.json.handoff").iterdir()) == ["payload.json.enc", "reason.json"]
    assert sorted(p.name for p in (folder / "unconsented.json.handoff").iterdir()) == ["reason.json"]


def test_the_ingest_lock_lets_one_flow_in_at_a_time(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with (store.ingest_lock(), pytest.raises(TimeoutError, match="another voiceloop flow"),
          _store(tmp_path).ingest_lock(timeout_s=0.3)):
        pass
    with _store(tmp_path).ingest_lock(timeout_s=0.3):  # released: the next one gets in
        pass


def test_machines_sharing_a_store_take_its_ingest_lock_in_the_audit_database(fresh_pg_url: str,
                                                                             tmp_path: Path) -> None:
    """Two machines: work areas of their own (their flocks never meet), one PostgreSQL audit log."""
    audit = AuditLog(fresh_pg_url, key=bytes(range(32)), head_file=tmp_path / "audit.head")
    store, elsewhere = "s3://calls/voiceloop", "s3://other-team/voiceloop"
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    with ingest_lock(tmp_path / "a/lock", audit, store, timeout_s=5):
        with (pytest.raises(TimeoutError, match="ingest lock of s3://calls/voiceloop in the audit database"),
              ingest_lock(tmp_path / "b/lock", audit, store, timeout_s=0.3)):
            pass
        with ingest_lock(tmp_path / "b/lock", audit, elsewhere, timeout_s=0.3):  # another store: no wait
            pass
    with ingest_lock(tmp_path / "b/lock", audit, store, timeout_s=0.3):  # released: the other machine gets in
        pass
    audit.engine.dispose()
