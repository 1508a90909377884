"""A self-contained HTML report of the audit log, for compliance officers.

One file, no external assets (the chart is an inline PNG), readable offline and fit to attach
to a ticket. It answers the questions an auditor asks first: is the log intact; who read or
wrote raw (unredacted) call data, in which role and for what purpose; which attempts were
denied; which models were promoted or rolled back and on what gate decision; which erasure
requests were handled, and which are overdue. Callers appear only as pseudonyms.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from governance.audit import AuditEntry, AuditLog, VerifyResult

RAW_ACTIONS = ("raw.read", "raw.write")
MODEL_ACTIONS = ("gate.decision", "registry.promote", "registry.rollback")
ERASURE_PREFIX = "erasure."


@dataclass
class RawAccess:
    """Raw-zone accesses of one (user, role, purpose, action), summed."""

    user: str
    role: str
    purpose: str
    action: str
    entries: int = 0
    calls: set[str] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None

    def add(self, entry: AuditEntry) -> None:
        self.entries += 1
        self.calls.update(entry.call_ids)
        self.first = min(self.first or entry.when, entry.when)
        self.last = max(self.last or entry.when, entry.when)


@dataclass
class ReportData:
    generated_at: datetime
    verify: VerifyResult
    total_entries: int
    since: datetime | None = None
    raw_access: list[RawAccess] = field(default_factory=list)
    denied: list[AuditEntry] = field(default_factory=list)
    model_changes: list[AuditEntry] = field(default_factory=list)
    erasures: list[AuditEntry] = field(default_factory=list)
    overdue: list[tuple[AuditEntry, datetime]] = field(default_factory=list)
    daily: Counter[tuple[date, str]] = field(default_factory=Counter)
    # the serving champion when it was trained on erased or withdrawn calls: version, requests, since,
    # deadline, status (given by the caller, who reads the model registry; the log does not know it)
    stale_champion: dict[str, Any] | None = None


def _deadline(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def collect(log: AuditLog, *, since: datetime | None = None, now: datetime | None = None) -> ReportData:
    """Gather the report's facts with indexed queries (the log may hold millions of entries)."""
    now = now or datetime.now(UTC)
    data = ReportData(now, log.verify(), log.count(), since)
    groups: dict[tuple[str, str, str, str], RawAccess] = {}
    for action in RAW_ACTIONS:
        for entry in log.entries(action=action, since=since):
            if entry.outcome == "ok":
                key = (entry.actor, entry.role, entry.purpose, entry.action)
                groups.setdefault(key, RawAccess(*key)).add(entry)
                data.daily[(entry.when.date(), entry.action)] += 1
    data.raw_access = sorted(groups.values(), key=lambda g: (-g.entries, g.user, g.action))
    data.denied = list(log.entries(outcome="denied", since=since))
    for entry in data.denied:
        data.daily[(entry.when.date(), "denied")] += 1
    data.model_changes = sorted((e for action in MODEL_ACTIONS for e in log.entries(action=action, since=since)),
                                key=lambda e: e.id)
    data.erasures = list(log.entries(action=ERASURE_PREFIX + "*", since=since))
    # overdue: every request ever made counts, whatever the report's period
    requests: dict[str, AuditEntry] = {}
    completed: set[str] = set()
    for entry in log.entries(action=ERASURE_PREFIX + "*"):
        request_id = str(entry.detail.get("request_id", ""))
        if entry.action == "erasure.request" and request_id:
            requests[request_id] = entry
        elif entry.action == "erasure.completed" and request_id:
            completed.add(request_id)
    for request_id, entry in requests.items():
        deadline = _deadline(entry.detail.get("deadline"))
        if deadline is not None and deadline < now and request_id not in completed:
            data.overdue.append((entry, deadline))
    return data


def accesses_chart(daily: Counter[tuple[date, str]]) -> str | None:
    """Accesses per day as a base64 PNG (Agg canvas, no display needed); None when there are none."""
    if not daily:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import date2num
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    days = sorted({day for day, _ in daily})
    x = date2num(days)
    figure = Figure(figsize=(9, 3.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    bottom = [0] * len(days)
    for kind, colour in (("raw.read", "#3b6ea8"), ("raw.write", "#8fb4d9"), ("denied", "#c0392b")):
        counts = [daily.get((day, kind), 0) for day in days]
        if any(counts):
            axes.bar(x, counts, bottom=bottom, label=kind, color=colour, width=0.8)
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.xaxis_date()
    axes.set_ylabel("audit entries per day")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.spines[["top", "right"]].set_visible(False)
    figure.legend(loc="upper right", ncol=3, frameon=False)
    figure.autofmt_xdate()
    figure.tight_layout(rect=(0, 0, 1, 0.9))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


# -- rendering ----------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:70em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;margin:.5em 0} th,td{padding:.3em .5em;border-bottom:1px solid #eee;
text-align:left;vertical-align:top} th{background:#f6f6f6} td.n{text-align:right}
.ok{background:#e8f5e9;border-left:6px solid #2e7d32;padding:.8em} .bad{background:#fdecea;border-left:6px solid
#c62828;padding:.8em} .muted{color:#777} code{font-size:.9em} .bad-text{color:#c62828}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _time(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC") if ts else ""


def _detail(detail: dict[str, Any], limit: int = 160) -> str:
    text = json.dumps(detail, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _entry_rows(entries: list[AuditEntry]) -> list[list[str]]:
    return [[_e(e.id), _e(_time(e.when)), _e(e.actor), _e(e.role), _e(e.purpose), _e(e.action), _e(e.outcome),
              f"<code>{_e(_detail(e.detail))}</code>"] for e in entries]


def render_html(data: ReportData) -> str:
    """The report as one HTML string (everything escaped; the chart inline)."""
    v = data.verify
    status = (f'<div class="ok" id="verification"><strong>Chain intact.</strong> {_e(v.summary())}.</div>' if v.ok
              else f'<div class="bad" id="verification"><strong>Verification FAILED.</strong> {_e(v.reason)}'
                   f'{" (first bad entry: " + _e(v.first_bad_id) + ")" if v.first_bad_id else ""}</div>')
    period = f"entries since {_time(data.since)}" if data.since else "the whole log"
    columns = ["id", "time", "user", "role", "purpose", "action", "outcome", "detail"]
    raw_rows = [[_e(g.user), _e(g.role), _e(g.purpose), _e(g.action), f'<span class="n">{g.entries}</span>',
                 f'<span class="n">{len(g.calls)}</span>', _e(_time(g.first)), _e(_time(g.last))]
                for g in data.raw_access]
    erasure_rows = [[_e(e.id), _e(_time(e.when)), _e(e.action), _e(e.detail.get("request_id")), _e(e.caller),
                     _e(len(e.call_ids) or len(e.detail.get("calls", []) or [])), _e(e.actor), _e(e.outcome)]
                    for e in data.erasures]
    overdue_rows = [[_e(e.detail.get("request_id")), _e(_time(e.when)), _e(_time(deadline)),
                     _e(f"{(data.generated_at - deadline).days} days"), _e(e.caller)] for e, deadline in data.overdue]
    stale = data.stale_champion
    stale_rows = [[_e(f"v{stale['version']}"), _e(", ".join(stale["requests"])), _e(stale["since"][:19]),
                   _e(stale["deadline"][:19]),
                   '<strong class="bad-text">OVERDUE</strong>' if stale["status"] == "OVERDUE" else "due"]
                  ] if stale else []
    chart = accesses_chart(data.daily)
    chart_html = (f'<img alt="raw-zone accesses and denied attempts per day" src="data:image/png;base64,{chart}">'
                  if chart else '<p class="muted">No raw-zone accesses or denied attempts in this period.</p>')
    sections = [
        f"<h1>Audit report</h1><p class=\"muted\">Generated {_e(_time(data.generated_at))} over {_e(period)} "
        f"({data.total_entries} entries in the log). Callers appear as keyed pseudonyms only.</p>",
        status,
        '<h2 id="raw-access">Who accessed raw PII, and why</h2>'
        "<p>Reads and writes of the raw zone (unredacted audio and transcripts) that the access policy allowed, "
        "by user, role and declared purpose.</p>"
        + _table(["user", "role", "purpose", "action", "entries", "distinct calls", "first", "last"], raw_rows,
                 "No raw-zone access in this period."),
        '<h2 id="accesses-over-time">Accesses over time</h2>' + chart_html,
        '<h2 id="denied">Denied attempts</h2><p>Accesses the policy refused (every refusal is logged).</p>'
        + _table(columns, _entry_rows(data.denied), "No denied attempts in this period."),
        '<h2 id="model-changes">Promotions and rollbacks</h2><p>Gate decisions and changes of the serving '
        "champion.</p>" + _table(columns, _entry_rows(data.model_changes), "No gate decisions, promotions or "
                                                                          "rollbacks in this period."),
        '<h2 id="erasures">Erasures</h2>'
        + _table(["id", "time", "action", "request", "caller (pseudonym)", "calls", "by", "outcome"], erasure_rows,
                 "No erasure activity in this period."),
        '<h2 id="overdue-erasures">Overdue erasure requests</h2><p>Requests past their deadline with no '
        "<code>erasure.completed</code> entry for the same request id.</p>"
        + _table(["request", "requested", "deadline", "overdue by", "caller (pseudonym)"], overdue_rows,
                 "No overdue erasure requests."),
        '<h2 id="stale-champion">Champion trained on erased or withdrawn calls</h2><p>The serving bundle must be '
        "replaced by a retrain before its deadline (<code>retention.retrain_deadline_days</code>).</p>"
        + _table(["bundle", "erasures / withdrawals", "marked", "deadline", "status"], stale_rows,
                 "The champion was not trained on erased or withdrawn calls."),
    ]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>voiceloop audit report</title>"
            f"<style>{_CSS}</style></head><body>{''.join(sections)}</body></html>\n")


def write_report(log: AuditLog, out: Path, *, since: datetime | None = None, now: datetime | None = None,
                 stale_champion: dict[str, Any] | None = None) -> ReportData:
    """Collect, render and write the report; returns the facts (for a one-line summary)."""
    data = collect(log, since=since, now=now)
    data.stale_champion = stale_champion
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data), encoding="utf-8")
    return data
