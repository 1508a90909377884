"""Deliver the monitor's alerts to their owners through Alertmanager, and escalate the ones nobody acknowledges.

Three parts, each small:

* :func:`alertmanager_config` builds the Alertmanager configuration from the owners the policy
  names: one webhook receiver per owner, alerts routed by their ``owner`` label. A critical alert
  (``severity="critical"``) goes to its owner at once *and* to the escalation receiver after
  ``escalate_after_s``. Acknowledging an alert is a silence on its ``alert_id``
  (:func:`acknowledge`): Alertmanager drops silenced alerts when a notification is due, so a
  silence made before ``escalate_after_s`` means the escalation receiver never hears of it.
* :class:`LocalAlertmanager` runs ``prometheus-alertmanager`` from the project folder, on
  127.0.0.1 only and with clustering off (:mod:`core.local_service`).
* a client of Alertmanager's v2 API: :func:`post_alerts`, :func:`active_alerts`,
  :func:`acknowledge`, :func:`resolve`. An alert's labels are the fields of :class:`AlertNotice`
  and nothing else: never a call id, never call text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from core.local_service import LocalService, ServiceStatus, call_service, listen_address
from governance.policy import COMPONENTS  # the parts of the bot an alert can be about; the policy names owners

SEVERITIES = ("critical", "warning", "info")
#: The label that carries an alert's id: what a silence (an acknowledgement) matches on.
ALERT_ID = "alert_id"
START_HINT = "start it with `voiceloop alertmanager start` (or check the Alertmanager URL in the settings)"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ALERT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:=-]{0,127}$")
_LABEL_VALUE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


# -- configuration ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """Who answers for a component (or one of its slices): ``name`` is the ``owner`` label's value and the
    receiver's name, ``team`` the team behind it (for people; Alertmanager does not use it),
    ``receiver_url`` the webhook that notifies them ("": none yet; Alertmanager keeps and lists their alerts)."""

    name: str
    team: str
    receiver_url: str

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"owner name {self.name!r} must be 1-64 letters, digits, '.', '_' or '-'")
        if self.receiver_url and not self.receiver_url.startswith(("http://", "https://")):
            raise ValueError(f"owner {self.name}: receiver_url {self.receiver_url!r} must be an http(s) URL")


def _duration(seconds: float, setting: str) -> str:
    """Seconds as an Alertmanager duration in its largest whole unit (``4h``, ``15m``, ``4s``, ``1500ms``)."""
    if seconds < 0:
        raise ValueError(f"{setting} must be 0 or more seconds, got {seconds}")
    milliseconds = round(seconds * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if milliseconds and milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"


def _matcher(label: str, value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{label}="{escaped}"'


def _receiver(owner: Owner) -> dict[str, Any]:
    if not owner.receiver_url:
        return {"name": owner.name}  # a receiver without notifiers: alerts are kept and listed, not sent
    return {"name": owner.name, "webhook_configs": [{"url": owner.receiver_url, "send_resolved": True}]}


def alertmanager_config(owners: list[Owner], *, escalation_receiver: Owner, escalate_after_s: float,
                        repeat_interval_s: float, group_wait_s: float, group_interval_s: float = 60.0,
                        resolve_timeout_s: float = 300.0) -> dict[str, Any]:
    """The Alertmanager configuration (a dict to dump as YAML) for ``owners``.

    Routing, in Alertmanager's own terms (each alert is its own group: ``group_by: [owner, alert_id]``):

    1. ``severity="critical"`` -> the escalation receiver, ``group_wait: escalate_after_s``,
       ``continue: true`` (matching goes on to the owner's route below);
    2. ``owner="<name>"`` -> that owner's receiver, after ``group_wait_s``; one route per owner;
    3. anything else (an owner the configuration does not know) -> the escalation receiver at once.

    An alert acknowledged (silenced, :func:`acknowledge`) before ``escalate_after_s`` is filtered
    out when the escalation is due, so it is never sent; one resolved before then is not sent
    either (Alertmanager sends no "resolved" for an alert it never notified).
    """
    if not owners:
        raise ValueError("alertmanager_config: no owners; the policy must name at least one owner")
    names = [owner.name for owner in owners]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(f"alertmanager_config: owners named more than once: {', '.join(duplicated)}")
    if escalation_receiver.name in names:
        raise ValueError(f"alertmanager_config: the escalation receiver {escalation_receiver.name!r} must not "
                         "also be an owner (give it its own name)")
    if escalate_after_s <= group_wait_s:
        raise ValueError(f"escalate_after_s ({escalate_after_s:g}) must be longer than group_wait_s "
                         f"({group_wait_s:g}): the owner must hear of a critical alert before it escalates")
    if repeat_interval_s <= 0 or group_interval_s <= 0:
        raise ValueError("repeat_interval_s and group_interval_s must be more than 0 seconds")
    escalate = {"receiver": escalation_receiver.name, "matchers": [_matcher("severity", "critical")],
                "group_wait": _duration(escalate_after_s, "escalate_after_s"), "continue": True}
    by_owner = [{"receiver": owner.name, "matchers": [_matcher("owner", owner.name)]} for owner in owners]
    unknown_owner = {"receiver": escalation_receiver.name}  # no matchers: whatever no owner route took
    return {
        "global": {"resolve_timeout": _duration(resolve_timeout_s, "resolve_timeout_s")},
        "route": {
            "receiver": escalation_receiver.name,
            "group_by": ["owner", ALERT_ID],
            "group_wait": _duration(group_wait_s, "group_wait_s"),
            "group_interval": _duration(group_interval_s, "group_interval_s"),
            "repeat_interval": _duration(repeat_interval_s, "repeat_interval_s"),
            "routes": [escalate, *by_owner, unknown_owner],
        },
        "receivers": [_receiver(owner) for owner in owners] + [_receiver(escalation_receiver)],
    }


# -- the local daemon -------------------------------------------------------------------------------


class LocalAlertmanager:
    """``prometheus-alertmanager`` with its config, data, log and pid file under ``folder``, on 127.0.0.1:``port``.

    Clustering is off (``--cluster.listen-address=``): one local instance, nothing listening for peers.
    """

    def __init__(self, folder: Path, port: int, config: dict[str, Any]) -> None:
        self.folder = Path(folder).resolve()
        self.config = config
        self.config_file = self.folder / "alertmanager.yml"
        self.data = self.folder / "data"
        self.service = LocalService(
            name="alertmanager", binary="prometheus-alertmanager", package="prometheus-alertmanager",
            folder=self.folder, port=port,
            args=[f"--config.file={self.config_file}", f"--storage.path={self.data}",
                  f"--web.listen-address={listen_address(port)}", "--cluster.listen-address="],
        )

    @property
    def url(self) -> str:
        return self.service.url

    def write_config(self) -> Path:
        """Write the configuration (readable by this user only: webhook URLs can hold tokens)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(exist_ok=True)
        self.config_file.touch(mode=0o600, exist_ok=True)
        self.config_file.chmod(0o600)
        self.config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return self.config_file

    def start(self, timeout_s: float = 30.0) -> ServiceStatus:
        """Write the configuration and start Alertmanager; one already running reloads it instead."""
        self.service.executable()  # a missing binary is reported before anything is written
        running = self.service.status().running
        self.write_config()
        if running:
            response = httpx.post(f"{self.url}/-/reload", timeout=10.0)
            if response.status_code != 200:
                raise AlertmanagerError(f"Alertmanager at {self.url} refused the configuration {self.config_file}: "
                                        f"{response.text.strip()[:500]}")
            return self.service.status()
        return self.service.start(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> bool:
        return self.service.stop(timeout_s)

    def status(self) -> ServiceStatus:
        return self.service.status()


# -- the client -------------------------------------------------------------------------------------


class AlertmanagerError(RuntimeError):
    """Alertmanager answered with an error."""


class AlertmanagerUnreachable(AlertmanagerError):
    """Nothing answers at the Alertmanager URL."""


def _utc(moment: datetime, field: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"AlertNotice.{field} must carry a time zone (datetime.now(UTC)), got {moment.isoformat()}")
    return moment.astimezone(UTC)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    text = text.replace("Z", "+00:00")
    if "." in text:  # Alertmanager writes nanoseconds; Python takes up to microseconds
        head, rest = text.split(".", 1)
        digits = re.match(r"\d+", rest)
        fraction = digits.group(0) if digits else ""
        text = f"{head}.{fraction[:6].ljust(6, '0')}{rest[len(fraction):]}"
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class AlertNotice:
    """One alert as Alertmanager sees it. Every field but ``summary`` and the times is a label; the labels are
    exactly these, short single-line values, so no call id or call text can ride along."""

    alert_id: str
    alertname: str
    severity: str
    owner: str
    component: str
    metric: str
    slice: str
    summary: str
    starts_at: datetime
    ends_at: datetime | None = None

    def __post_init__(self) -> None:
        if not _ALERT_ID.match(self.alert_id):
            raise ValueError(f"alert_id {self.alert_id!r} must be 1-128 letters, digits, '.', '_', ':', '=' or '-'")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} must be one of {', '.join(SEVERITIES)}")
        if self.component not in COMPONENTS:
            raise ValueError(f"component {self.component!r} must be one of {', '.join(COMPONENTS)}")
        for field in ("alertname", "owner", "metric", "slice"):
            if not _LABEL_VALUE.match(getattr(self, field)):
                raise ValueError(f"AlertNotice.{field} must be one line of 1-200 characters")
        if not self.summary.strip() or len(self.summary) > 1000:
            raise ValueError("AlertNotice.summary must be 1-1000 characters")
        _utc(self.starts_at, "starts_at")
        if self.ends_at is not None:
            _utc(self.ends_at, "ends_at")

    def labels(self) -> dict[str, str]:
        return {ALERT_ID: self.alert_id, "alertname": self.alertname, "severity": self.severity,
                "owner": self.owner, "component": self.component, "metric": self.metric, "slice": self.slice}

    def to_api(self) -> dict[str, Any]:
        """The alert as ``POST /api/v2/alerts`` takes it."""
        record: dict[str, Any] = {"labels": self.labels(), "annotations": {"summary": self.summary},
                                  "startsAt": _timestamp(self.starts_at)}
        if self.ends_at is not None:
            record["endsAt"] = _timestamp(self.ends_at)
        return record

    @classmethod
    def from_api(cls, record: dict[str, Any]) -> AlertNotice:
        labels, annotations = record.get("labels", {}), record.get("annotations", {})
        ends_at = _parse_time(record["endsAt"]) if record.get("endsAt") else None
        return cls(alert_id=labels[ALERT_ID], alertname=labels["alertname"], severity=labels["severity"],
                   owner=labels["owner"], component=labels["component"], metric=labels["metric"],
                   slice=labels["slice"], summary=annotations.get("summary", "-"),
                   starts_at=_parse_time(record["startsAt"]), ends_at=ends_at)


@dataclass(frozen=True)
class ActiveAlert:
    """An alert Alertmanager holds now: ``state`` is ``active`` or ``suppressed`` (silenced: acknowledged, or
    inhibited); ``silenced_by`` the ids of the silences on it."""

    notice: AlertNotice
    state: str
    silenced_by: tuple[str, ...]
    receivers: tuple[str, ...]

    @property
    def acknowledged(self) -> bool:
        return bool(self.silenced_by)


def _call(method: str, url: str, path: str, **kwargs: Any) -> httpx.Response:
    return call_service("Alertmanager", method, url, path, unreachable=AlertmanagerUnreachable,
                        failed=AlertmanagerError, hint=START_HINT, **kwargs)


def post_alerts(url: str, alerts: list[AlertNotice]) -> None:
    """Send (or re-send: Alertmanager keeps an alert firing only while it is re-sent) ``alerts``."""
    if alerts:
        _call("POST", url, "/api/v2/alerts", json=[alert.to_api() for alert in alerts])


def resolve(url: str, alerts: list[AlertNotice], at: datetime | None = None) -> None:
    """Mark ``alerts`` resolved (``ends_at`` now, or ``at``); their owners get a "resolved" notification."""
    ended = _utc(at, "ends_at") if at is not None else datetime.now(UTC)
    post_alerts(url, [replace(alert, ends_at=ended) for alert in alerts])


def active_alerts(url: str, *, owner: str | None = None) -> list[ActiveAlert]:
    """The monitor's unresolved alerts, silenced ones included (``owner``: only that owner's).

    Alerts that are not the monitor's (without the :class:`AlertNotice` labels) are left out.
    """
    params: dict[str, Any] = {"filter": [_matcher("owner", owner)]} if owner is not None else {}
    found = []
    for record in _call("GET", url, "/api/v2/alerts", params=params).json():
        try:
            notice = AlertNotice.from_api(record)
        except (KeyError, ValueError):
            continue
        status = record.get("status", {})
        found.append(ActiveAlert(notice, str(status.get("state", "unknown")),
                                 tuple(status.get("silencedBy") or ()),
                                 tuple(receiver["name"] for receiver in record.get("receivers", []))))
    return found


def acknowledge(url: str, alert_id: str, by: str, comment: str, duration_s: float) -> str:
    """Acknowledge alert ``alert_id``: a silence on it for ``duration_s`` (no escalation, no repeats while it
    lasts). Returns the silence's id; ``by`` and ``comment`` are kept with it."""
    if not _ALERT_ID.match(alert_id):
        raise ValueError(f"alert_id {alert_id!r} is not an alert id")
    if not by.strip() or not comment.strip():
        raise ValueError("acknowledge: say who acknowledges (by) and why (comment)")
    if duration_s <= 0:
        raise ValueError(f"acknowledge: duration_s must be more than 0 seconds, got {duration_s}")
    now = datetime.now(UTC)
    silence = {
        "matchers": [{"name": ALERT_ID, "value": alert_id, "isRegex": False, "isEqual": True}],
        "startsAt": _timestamp(now),
        "endsAt": _timestamp(now + timedelta(seconds=duration_s)),
        "createdBy": by,
        "comment": comment,
    }
    return str(_call("POST", url, "/api/v2/silences", json=silence).json()["silenceID"])
