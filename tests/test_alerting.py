"""Alert delivery and metrics export against the real daemons: Alertmanager 0.25, the Pushgateway, promtool.

Nothing is mocked: each daemon is started by the project's own helpers on a free port of
127.0.0.1, with its files in a temp folder, once for the module, and stopped after. Alertmanager
posts to a webhook receiver this test runs (http.server in a thread). Timings are short
(group_wait 1 s, escalation after 4 s) so the whole file takes well under a minute.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from core.local_service import BinaryMissing, LocalService, LocalServiceError
from monitoring.alertmanager import (
    AlertmanagerUnreachable,
    AlertNotice,
    LocalAlertmanager,
    Owner,
    acknowledge,
    active_alerts,
    alertmanager_config,
    post_alerts,
    resolve,
)
from monitoring.pushgateway import (
    LocalPushgateway,
    PushgatewayUnreachable,
    Sample,
    bounded_slices,
    delete,
    push,
    render_metrics,
)
from tests.alerting_helpers import Receiver, free_port, wait_for

REPO = Path(__file__).resolve().parents[1]
GROUP_WAIT_S = 1.0
ESCALATE_AFTER_S = 4.0


def _config(receiver: Receiver) -> dict[str, Any]:
    owners = [Owner("asr-team", "speech", receiver.url("asr-team")),
              Owner("intent-team", "nlu", receiver.url("intent-team"))]
    return alertmanager_config(owners, escalation_receiver=Owner("on-call", "platform", receiver.url("on-call")),
                               escalate_after_s=ESCALATE_AFTER_S, repeat_interval_s=3600, group_wait_s=GROUP_WAIT_S,
                               group_interval_s=1)


@pytest.fixture(scope="module")
def alertmanager(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAlertmanager]:
    manager = LocalAlertmanager(tmp_path_factory.mktemp("alertmanager"), free_port(), _config(receiver))
    manager.start()
    try:
        yield manager
    finally:
        manager.stop()


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPushgateway]:
    gateway = LocalPushgateway(tmp_path_factory.mktemp("pushgateway"), free_port())
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def _notice(alert_id: str, owner: str, severity: str = "warning", **fields: Any) -> AlertNotice:
    values: dict[str, Any] = {
        "alert_id": alert_id, "alertname": "MetricShift", "severity": severity, "owner": owner,
        "component": "asr", "metric": "wer_estimate", "slice": "channel=telephone8k",
        "summary": "estimated WER rose from 0.12 to 0.19 on channel=telephone8k", "starts_at": datetime.now(UTC),
        **fields,
    }
    return AlertNotice(**values)


# -- Alertmanager ---------------------------------------------------------------------------------


def test_config_routes_critical_alerts_to_escalation_with_continue(receiver: Receiver) -> None:
    route = _config(receiver)["route"]
    escalate, *owner_routes, unknown = route["routes"]
    assert escalate == {"receiver": "on-call", "matchers": ['severity="critical"'], "group_wait": "4s",
                        "continue": True}
    assert [r["matchers"] for r in owner_routes] == [['owner="asr-team"'], ['owner="intent-team"']]
    assert unknown == {"receiver": "on-call"} and route["group_by"] == ["owner", "alert_id"]
    with pytest.raises(ValueError, match="escalate_after_s"):
        alertmanager_config([Owner("a", "t", "http://x")], escalation_receiver=Owner("b", "t", "http://y"),
                            escalate_after_s=1, repeat_interval_s=60, group_wait_s=2)


def test_owner_routing_escalation_and_acknowledgement(alertmanager: LocalAlertmanager, receiver: Receiver) -> None:
    url = alertmanager.url
    routed = _notice("shift-asr-1", "asr-team")
    for_intent = _notice("shift-intent-1", "intent-team", component="intent", metric="intent_confidence")
    ignored = _notice("crit-asr-ignored", "asr-team", severity="critical")
    acked = _notice("crit-asr-acked", "asr-team", severity="critical")
    sent = time.monotonic()
    post_alerts(url, [routed, for_intent, ignored, acked])
    silence = acknowledge(url, acked.alert_id, by="ana@asr", comment="looking into it", duration_s=600)
    assert silence

    # every alert reaches its owner (critical ones at once, not after escalate_after), no other owner
    assert wait_for(lambda: all(receiver.got(a.owner, a.alert_id) for a in (routed, for_intent, ignored)), 5)
    assert not receiver.got("intent-team", routed.alert_id) and not receiver.got("asr-team", for_intent.alert_id)
    first = min(at for at, a in receiver.alerts_for("asr-team") if a["labels"]["alert_id"] == ignored.alert_id)
    assert first - sent < ESCALATE_AFTER_S - 0.5

    # the critical alert nobody acknowledged escalates after escalate_after, not before
    assert wait_for(lambda: receiver.got("on-call", ignored.alert_id), ESCALATE_AFTER_S + 6)
    escalated = min(at for at, a in receiver.alerts_for("on-call") if a["labels"]["alert_id"] == ignored.alert_id)
    assert escalated - sent >= ESCALATE_AFTER_S - 0.5
    # the acknowledged one (same timing, same route) never does; warnings never escalate
    time.sleep(1.5)
    assert not receiver.got("on-call", acked.alert_id)
    assert not receiver.got("on-call", routed.alert_id) and not receiver.got("on-call", for_intent.alert_id)

    # labels: the alert id and the notice's fields only, no call id or call text
    for _, alert in receiver.alerts_for("asr-team") + receiver.alerts_for("on-call"):
        assert set(alert["labels"]) == {"alert_id", "alertname", "severity", "owner", "component", "metric", "slice"}
        assert not any("call" in value for value in alert["labels"].values())

    listed = {a.notice.alert_id: a for a in active_alerts(url)}
    assert listed[acked.alert_id].acknowledged and listed[acked.alert_id].silenced_by == (silence,)
    assert listed[acked.alert_id].state == "suppressed" and listed[ignored.alert_id].state == "active"
    read_back = listed[routed.alert_id].notice  # Alertmanager keeps times to the millisecond, sets ends_at
    assert abs((read_back.starts_at - routed.starts_at).total_seconds()) < 0.001 and read_back.ends_at is not None
    assert read_back == replace(routed, starts_at=read_back.starts_at, ends_at=read_back.ends_at)
    assert {a.notice.alert_id for a in active_alerts(url, owner="intent-team")} == {for_intent.alert_id}

    resolve(url, [routed])
    assert wait_for(lambda: receiver.got("asr-team", routed.alert_id, status="resolved"), 5)
    assert routed.alert_id not in {a.notice.alert_id for a in active_alerts(url)}


def _listening(pid: int) -> set[str]:
    """Every TCP socket in LISTEN state and every bound UDP socket of process ``pid``, as 'proto ip:port'."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode not in inodes or (proto.startswith("tcp") and state != "0A"):
                continue
            address, port = local.split(":")
            ip = ".".join(map(str, reversed(bytes.fromhex(address)))) if len(address) == 8 else f"ipv6:{address}"
            found.add(f"{proto} {ip}:{int(port, 16)}")
    return found


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = str(sock.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_status_listens_on_loopback_only_and_stops(receiver: Receiver, tmp_path: Path) -> None:
    port = free_port()
    manager = LocalAlertmanager(tmp_path / "am", port, _config(receiver))
    try:
        started = manager.start()
        assert started.running and started.pid and started.url == f"http://127.0.0.1:{port}"
        assert manager.status() == started
        assert (tmp_path / "am" / "alertmanager.log").exists() and (tmp_path / "am" / "data").is_dir()
        assert yaml.safe_load(manager.config_file.read_text()) == manager.config
        # only its web port, on 127.0.0.1; no cluster port (9094), TCP or UDP
        assert _listening(started.pid) == {f"tcp 127.0.0.1:{port}"}
        other = _non_loopback_address()
        if other is not None:
            with socket.socket() as sock:
                sock.settimeout(1)
                assert sock.connect_ex((other, port)) != 0
        assert manager.start().pid == started.pid  # running already: config reloaded, not started twice
    finally:
        assert manager.stop()
    assert not manager.status().running and manager.status().pid is None
    assert not manager.service.pid_file.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1)
    assert manager.stop() is False


def test_stale_pid_file_is_ignored_and_removed(tmp_path: Path) -> None:
    port = free_port()
    service = LocalService(name="alertmanager", binary="prometheus-alertmanager", package="prometheus-alertmanager",
                           folder=tmp_path, port=port, args=[f"--web.listen-address=127.0.0.1:{port}"])
    gone = subprocess.Popen(["true"])
    gone.wait()
    for pid in (gone.pid, os.getpid()):  # a dead process, and a live one that is not Alertmanager
        service.pid_file.write_text(json.dumps({"pid": pid, "url": service.url}))
        assert not service.status().running
        assert not service.pid_file.exists()
        assert service.stop() is False


def test_missing_binary_and_unreachable_urls_say_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                             receiver: Receiver) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(AlertmanagerUnreachable, match=f"{url}.*voiceloop alertmanager start"):
        post_alerts(url, [_notice("x-1", "asr-team")])
    with pytest.raises(AlertmanagerUnreachable, match="voiceloop alertmanager start"):
        acknowledge(url, "x-1", by="ana", comment="ack", duration_s=60)
    with pytest.raises(PushgatewayUnreachable, match=f"{url}.*voiceloop pushgateway start"):
        push(url, "monitor", [Sample("voiceloop_monitor_x", {}, 1.0, "x")], {})

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BinaryMissing, match="prometheus-alertmanager.*make setup"):
        LocalAlertmanager(tmp_path / "am", port, _config(receiver)).start()
    assert not (tmp_path / "am" / "alertmanager.yml").exists()
    with pytest.raises(BinaryMissing, match="prometheus-pushgateway.*make setup"):
        LocalPushgateway(tmp_path / "pg", port).start()


def test_port_taken_by_another_program_is_refused(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalServiceError, match=f"port {port} .* already in use"):
            LocalPushgateway(tmp_path, port).start()


def test_notice_labels_refuse_text_and_bad_values() -> None:
    with pytest.raises(ValueError, match="alert_id"):
        _notice("call 123 said my card", "asr-team")
    with pytest.raises(ValueError, match="slice"):
        _notice("a-1", "asr-team", slice="line one\nline two")
    with pytest.raises(ValueError, match="component"):
        _notice("a-1", "asr-team", component="billing")
    with pytest.raises(ValueError, match="time zone"):
        _notice("a-1", "asr-team", starts_at=datetime(2026, 1, 1))


# -- Pushgateway ----------------------------------------------------------------------------------


def _scrape(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith("voiceloop_monitor_")}


def test_push_read_back_and_delete(pushgateway: LocalPushgateway) -> None:
    wer = {"all": 0.14, "channel=telephone8k": 0.31, "channel=web": 0.09, "accent=en-IE": 0.22,
           "accent=en-IN": 0.27, "channel=app": float("nan")}
    kept = bounded_slices(wer, top=2)
    assert kept == {"channel=telephone8k": 0.31, "accent=en-IN": 0.27, "all": 0.14}
    assert bounded_slices({"all": 0.9, "a": 0.5, "b": 0.7}, top=1, higher_is_worse=False) == {"a": 0.5, "all": 0.9}
    samples = [Sample("voiceloop_monitor_wer_estimate", {"component": "asr", "slice": key}, value,
                      "estimated word error rate, by slice") for key, value in kept.items()]
    samples.append(Sample("voiceloop_monitor_calls", {"slice": "all"}, 1234, "calls monitored"))

    push(pushgateway.url, "voiceloop-monitor", samples, {"day": "2026-11-20"})
    scraped = _scrape(pushgateway.url)
    base = 'day="2026-11-20",instance="",job="voiceloop-monitor"'
    assert scraped[f'voiceloop_monitor_wer_estimate{{component="asr",{base},slice="channel=telephone8k"}}'] == 0.31
    assert scraped[f'voiceloop_monitor_wer_estimate{{component="asr",{base},slice="all"}}'] == 0.14
    assert scraped[f'voiceloop_monitor_calls{{{base},slice="all"}}'] == 1234
    assert len([key for key in scraped if key.startswith("voiceloop_monitor_wer_estimate")]) == 3  # bounded

    push(pushgateway.url, "voiceloop-monitor", samples[:1], {"day": "2026-11-20"})  # PUT replaces the group
    assert len([key for key in _scrape(pushgateway.url) if "day=" in key]) == 1
    delete(pushgateway.url, "voiceloop-monitor", {"day": "2026-11-20"})
    assert not [key for key in _scrape(pushgateway.url) if "day=" in key]
    assert pushgateway.status().running


def test_render_metrics_escapes_and_refuses_bad_names() -> None:
    text = render_metrics([Sample("voiceloop_monitor_x", {"slice": 'a "b"\\c\nd'}, float("inf"), "line\nhelp \\")])
    assert text == ('# HELP voiceloop_monitor_x line\\nhelp \\\\\n# TYPE voiceloop_monitor_x gauge\n'
                    'voiceloop_monitor_x{slice="a \\"b\\"\\\\c\\nd"} +Inf\n')
    with pytest.raises(ValueError, match="voiceloop_monitor_"):
        render_metrics([Sample("wer", {}, 1.0, "x")])
    with pytest.raises(ValueError, match="label name"):
        render_metrics([Sample("voiceloop_monitor_x", {"bad-label": "v"}, 1.0, "x")])
    with pytest.raises(ValueError, match="given twice"):
        render_metrics([Sample("voiceloop_monitor_x", {}, 1.0, "x"), Sample("voiceloop_monitor_x", {}, 2.0, "x")])


# -- Prometheus rules of the serving runtime ------------------------------------------------------


def test_serving_rules_check_and_unit_tests_pass() -> None:
    for command in (["promtool", "check", "rules", "serving/prometheus_rules.yml"],
                    ["promtool", "test", "rules", "serving/prometheus_rules_test.yml"]):
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"
