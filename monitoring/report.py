"""The monitor's figures and alerts as one page a person can read, so a drift is seen before a customer reports it.

``render_report`` turns the days' :class:`~monitoring.figures.DailyFigure` records and the alerts
raised on them into one self-contained HTML page (``voiceloop monitor report``): a header (days
covered, alert count, notes), the alerts newest first, the worst slices per metric on the newest
day and pooled over the last week, one small trend plot per metric (``all`` and the busiest
slices, intervals shaded, provisional points hollow, alert days in red, figures outside the
calibration domain marked) grouped by section, and the new slices as a list. Plots are inline PNGs
drawn on an Agg canvas; every string from the inputs is HTML-escaped. The inputs hold numbers,
slice names and alert fields only, and the page adds no call text.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from monitoring.figures import ALL, OUTSIDE_CALIBRATION, DailyFigure, lower_is_worse

#: Sections of the page and the metrics each shows, in order; a metric named nowhere goes to "Other".
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Service", ("latency_p50_ms", "latency_p95_ms", "containment_rate", "escalation_rate", "resolution_rate",
                 "false_containment_rate", "false_containment_24h_rate", "callback_24h_rate", "repeat_7d_rate",
                 "handoff_complete_rate", "handoff_repeat_rate")),
    ("Understanding", ("est_intent_accuracy", "est_wer", "intent_confidence_mean", "asr_logprob_mean")),
    ("Audio and drift", ("audio_dbfs_mean", "snr_db_mean", "duration_s_mean", "no_speech_prob_mean",
                         "intent_mix_shift", "input_drift_share")),
    ("Sentiment", ("sentiment_start", "sentiment_end", "sentiment_change")),
)
OTHER_SECTION = "Other"
#: Metrics where a lower value is the worse one (named in full: ``false_containment_rate`` is not one).
#: Listed, not plotted: 1.0 on the first day a slice value the reference never saw appears.
NEW_SLICE = "new_slice"
WORST_PER_METRIC = 3
POOLED_DAYS = 7
PLOT_SIZE_IN = (7.0, 2.6)
PLOT_DPI = 80
LABEL_CHARS = 28
ALERT_COLOUR = "#c62828"
SEVERITIES = ("critical", "warning", "info")

PAGE_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:72em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
h3{font-size:1.05em;margin-top:1.5em} table{border-collapse:collapse;width:100%;margin:.5em 0;font-size:.92em}
th,td{padding:.25em .5em;border-bottom:1px solid #eee;text-align:left;vertical-align:top} th{background:#f6f6f6}
.n{font-variant-numeric:tabular-nums} .muted{color:#777} .flag{background:#fff3cd;
padding:0 .3em;border-radius:3px;font-size:.9em} .critical{color:#c62828;font-weight:600} .warning{color:#b26a00}
figure{margin:1em 0} figcaption{font-size:.85em;color:#555;max-width:56em} .empty{font-size:1.2em;padding:1em;
background:#f6f6f6}
"""


# -- small helpers ------------------------------------------------------------------------------------
def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def fmt(value: object) -> str:
    """A number short enough for a table cell (``–`` for none); anything else as text."""
    if value is None:
        return "–"
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def _as_date(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _alert_days(alert: Mapping[str, Any], limit: int = 366) -> list[date]:
    first = _as_date(alert.get("day"))
    if first is None:
        return []
    last = _as_date(alert.get("last_day")) or first
    span = max(0, min((last - first).days, limit))
    return [first + timedelta(days=i) for i in range(span + 1)]


def _interval(low: float | None, high: float | None) -> str:
    return f"[{fmt(low)}, {fmt(high)}]" if low is not None and high is not None else ""


def _flags(flags: Iterable[str], provisional: bool) -> str:
    shown = [*flags, *(["provisional"] if provisional else [])]
    return " ".join(f'<span class="flag">{_e(f)}</span>' for f in shown)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str, table_id: str = "") -> str:
    """Cells arrive escaped already; ``empty`` is said instead of a table without rows."""
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    ident = f' id="{_e(table_id)}"' if table_id else ""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>\n" for row in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def metric_sections(metrics: Iterable[str]) -> list[tuple[str, list[str]]]:
    """The page's sections with the given metrics in each (empty sections left out, unknown ones in "Other")."""
    present = set(metrics) - {NEW_SLICE}
    sections = [(name, [m for m in members if m in present]) for name, members in SECTIONS]
    known = {m for _, members in SECTIONS for m in members}
    sections.append((OTHER_SECTION, sorted(present - known)))
    return [(name, members) for name, members in sections if members]


# -- worst slices -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SliceValue:
    """One slice's value of one metric, on a day or pooled over several (``days``)."""

    metric: str
    slice: str
    value: float
    n: int
    low: float | None = None
    high: float | None = None
    provisional: bool = False
    flags: tuple[str, ...] = ()
    days: int = 1


def _of_figure(f: DailyFigure) -> SliceValue:
    return SliceValue(f.metric, f.slice, f.value, f.n, f.low, f.high, f.provisional, f.flags)


def pooled(figures: Sequence[DailyFigure]) -> SliceValue:
    """Figures of one metric and slice over several days: the n-weighted mean (plain mean when n is 0), no interval."""
    total = sum(max(f.n, 0) for f in figures)
    finite = [f for f in figures if math.isfinite(f.value)]
    weight = sum(max(f.n, 0) for f in finite)
    if weight > 0:
        value = sum(f.value * max(f.n, 0) for f in finite) / weight
    else:
        value = sum(f.value for f in finite) / len(finite) if finite else math.nan
    flags = tuple(dict.fromkeys(flag for f in figures for flag in f.flags))
    first = figures[0]
    return SliceValue(first.metric, first.slice, value, total, provisional=any(f.provisional for f in figures),
                      flags=flags, days=len({f.day for f in figures}))


def worst_slices(values: Iterable[SliceValue], metric: str, k: int = WORST_PER_METRIC) -> list[SliceValue]:
    """The ``k`` slices (not ``all``) with the worst ``metric``, worst first; ties go to the busier slice."""
    sign = 1.0 if lower_is_worse(metric) else -1.0
    candidates = [v for v in values if v.metric == metric and v.slice != ALL and math.isfinite(v.value)]
    return sorted(candidates, key=lambda v: (sign * v.value, -v.n, v.slice))[:k]


def _worst_rows(values: Sequence[SliceValue], metrics: Sequence[str], pooled_days: bool) -> list[list[str]]:
    overall = {v.metric: v for v in values if v.slice == ALL}
    rows: list[list[str]] = []
    for metric in metrics:
        direction = "lower" if lower_is_worse(metric) else "higher"
        reference = overall.get(metric)
        for rank, v in enumerate(worst_slices(values, metric), start=1):
            row = [_e(metric), _e(direction), f'<span class="n">{rank}</span>', _e(v.slice),
                   f'<span class="n">{_e(fmt(v.value))}</span>', f'<span class="n">{v.n}</span>']
            row.append(f'<span class="n">{v.days}</span>' if pooled_days else _e(_interval(v.low, v.high)))
            row += [_e(fmt(reference.value) if reference else "–"), _flags(v.flags, v.provisional)]
            rows.append(row)
    return rows


def _worst_section(figures: Sequence[DailyFigure], metrics: Sequence[str]) -> str:
    newest = max(f.day for f in figures)
    today = [_of_figure(f) for f in figures if f.day == newest]
    headers = ["metric", "worse when", "rank", "slice", "value", "n", "interval", "all", "flags"]
    parts = [f"<h3>Newest day, {_e(newest.isoformat())}</h3>",
             html_table(headers, _worst_rows(today, metrics, False), "No slice figures on the newest day.",
                    "worst-newest")]
    first = newest - timedelta(days=POOLED_DAYS - 1)
    window = [f for f in figures if first <= f.day <= newest]
    if len({f.day for f in window}) > 1:
        groups: dict[tuple[str, str], list[DailyFigure]] = defaultdict(list)
        for f in window:
            groups[(f.metric, f.slice)].append(f)
        week = [pooled(group) for group in groups.values()]
        parts += [f"<h3>Last {POOLED_DAYS} days pooled, {_e(first.isoformat())} to {_e(newest.isoformat())}</h3>",
                  '<p class="muted">Value: the n-weighted mean of the daily values (for percentiles an '
                  "approximation); n: calls or turns summed; pooled values carry no interval.</p>",
                  html_table([*headers[:6], "days", *headers[7:]], _worst_rows(week, metrics, True),
                         "No slice figures in the last week.", "worst-pooled")]
    return ('<h2 id="worst">Worst slices</h2><p class="muted">Per metric, the slices (not <code>all</code>) with '
            f"the worst values, at most {WORST_PER_METRIC}; the <code>all</code> column gives the whole traffic's "
            "value for comparison.</p>" + "".join(parts))


# -- alerts -------------------------------------------------------------------------------------------
def _alert_order(alert: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(alert.get("last_day") or alert.get("day") or ""), str(alert.get("day") or ""),
            str(alert.get("raised_at") or ""))


def _alert_row(alert: Mapping[str, Any]) -> list[str]:
    first, last = alert.get("day"), alert.get("last_day")
    days = f"{first} to {last}" if last and str(last) != str(first) else str(first or "")
    severity = str(alert.get("severity") or "")
    css = f' class="{severity}"' if severity in SEVERITIES else ""
    against = f"{fmt(alert.get('value'))} vs {fmt(alert.get('reference_mean'))}"
    if alert.get("statistic") is not None:
        against += f" (statistic {fmt(alert.get('statistic'))})"
    return [f"<code>{_e(alert.get('alert_id'))}</code>", _e(days), f"<span{css}>{_e(severity)}</span>",
            _e(alert.get("owner")), _e(alert.get("metric")), _e(alert.get("slice")), _e(alert.get("rule")),
            _e(against)]


def _alerts_section(alerts: Sequence[Mapping[str, Any]]) -> str:
    rows = [_alert_row(a) for a in sorted(alerts, key=_alert_order, reverse=True)]
    headers = ["alert", "day(s)", "severity", "owner", "metric", "slice", "rule", "value vs reference"]
    return '<h2 id="alerts">Alerts</h2>' + html_table(headers, rows, "No alerts.", "alerts-table")


# -- new slices ---------------------------------------------------------------------------------------
def _new_slices_section(figures: Sequence[DailyFigure]) -> str:
    found = sorted((f for f in figures if f.metric == NEW_SLICE), key=lambda f: (f.day, f.slice), reverse=True)
    if not found:
        return ""
    items = "".join(f"<li>{_e(f.day.isoformat())}: <code>{_e(f.slice)}</code> ({f.n} calls)</li>" for f in found)
    return ('<h2 id="new-slices">New slices</h2><p class="muted">Slice values the reference period never saw, '
            f"on the day each first appeared.</p><ul>{items}</ul>")


# -- trend plots --------------------------------------------------------------------------------------
Index = dict[str, dict[date, DailyFigure]]


def _by_slice(figures: Iterable[DailyFigure]) -> dict[str, Index]:
    """metric -> slice -> day -> figure (a later duplicate wins)."""
    index: dict[str, Index] = defaultdict(lambda: defaultdict(dict))
    for f in figures:
        index[f.metric][f.slice][f.day] = f
    return index


def busiest_slices(slices: Index, count: int) -> list[str]:
    """The ``count`` slices (not ``all``) with the most calls over the days, busiest first."""
    totals = {name: sum(max(f.n, 0) for f in days.values()) for name, days in slices.items() if name != ALL}
    return sorted(totals, key=lambda name: (-totals[name], name))[:max(count, 0)]


def _label(name: str) -> str:
    short = name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "…"
    return short.replace("$", r"\$")  # no mathtext from a slice name


def _draw_line(axes: Any, xs: list[int], days: list[date], figures: Mapping[date, DailyFigure], colour: str,
               label: str, width: float) -> None:
    import numpy as np

    values = np.array([figures[d].value if d in figures else np.nan for d in days], dtype=float)
    low = np.array([_or_nan(figures[d].low) if d in figures else np.nan for d in days], dtype=float)
    high = np.array([_or_nan(figures[d].high) if d in figures else np.nan for d in days], dtype=float)
    provisional = np.array([d in figures and figures[d].provisional for d in days])
    shaded = ~(np.isnan(low) | np.isnan(high))
    if shaded.any():
        axes.fill_between(xs, np.where(shaded, low, 0.0), np.where(shaded, high, 0.0), where=shaded,
                          color=colour, alpha=0.15, linewidth=0, step=None)
    axes.plot(xs, values, "-", color=colour, linewidth=width, label=label)
    solid = np.where(provisional, np.nan, values)
    hollow = np.where(provisional, values, np.nan)
    axes.plot(xs, solid, "o", color=colour, markersize=3)
    if provisional.any():
        axes.plot(xs, hollow, "o", markerfacecolor="white", markeredgecolor=colour, markersize=4.5)
    outside = np.array([d in figures and OUTSIDE_CALIBRATION in figures[d].flags for d in days])
    if outside.any():
        axes.plot(xs, np.where(outside, values, np.nan), "^", markerfacecolor="none", markeredgecolor="black",
                  markersize=7)


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _mark_alerts(axes: Any, days: list[date], slices: Index, drawn: Sequence[str],
                 alerts: Sequence[Mapping[str, Any]]) -> None:
    position = {d: i for i, d in enumerate(days)}
    for alert in alerts:
        hit = [position[d] for d in _alert_days(alert) if d in position]
        if not hit:
            continue
        name = str(alert.get("slice") or "")
        if name in drawn:
            points = [(position[d], f.value) for d, f in slices[name].items() if d in position
                      and position[d] in hit]
            if points:
                xs, ys = zip(*points, strict=True)
                axes.plot(xs, ys, "o", markerfacecolor="none", markeredgecolor=ALERT_COLOUR, markeredgewidth=1.6,
                          markersize=9)
                continue
        axes.axvspan(min(hit) - 0.5, max(hit) + 0.5, color=ALERT_COLOUR, alpha=0.12, linewidth=0)


def trend_png(metric: str, days: list[date], slices: Index, drawn: Sequence[str],
              alerts: Sequence[Mapping[str, Any]]) -> str:
    """One metric over the days, as a base64 PNG: ``all`` in black, ``drawn`` slices in colour."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=PLOT_SIZE_IN, dpi=PLOT_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.09, 0.17, 0.62, 0.72))
    xs = list(range(len(days)))
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
    if ALL in slices:
        _draw_line(axes, xs, days, slices[ALL], "black", ALL, 1.8)
    for i, name in enumerate(drawn):
        _draw_line(axes, xs, days, slices[name], colours[i % len(colours)], _label(name), 1.1)
    _mark_alerts(axes, days, slices, [ALL, *drawn] if ALL in slices else list(drawn), alerts)
    step = max(1, math.ceil(len(days) / 8))
    ticks = xs[::step]
    axes.set_xticks(ticks, [days[i].strftime("%m-%d") for i in ticks], fontsize=7)
    axes.set_xlim(-0.6, max(len(days) - 0.4, 0.6))
    axes.tick_params(axis="y", labelsize=7)
    axes.set_title(_label(metric) + (" (lower is worse)" if lower_is_worse(metric) else ""), fontsize=9, loc="left")
    axes.grid(True, color="#eee", linewidth=0.6)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.02), fontsize=7, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PLOT_DPI)
    figure.clear()
    return base64.b64encode(buffer.getvalue()).decode()


def _caption(slices: Index, drawn: Sequence[str], alerts: Sequence[Mapping[str, Any]], max_slices: int) -> str:
    left_out = sorted(name for name in slices if name != ALL and name not in drawn)
    parts = [f"Lines: <code>all</code> and the {len(drawn)} slice(s) with the most calls (at most {max_slices})."]
    if left_out:
        shown = ", ".join(f"<code>{_e(n)}</code>" for n in left_out[:8])
        parts.append(f"{len(left_out)} other slice(s) left out: {shown}{', …' if len(left_out) > 8 else ''}.")
    parts.append("Shading: interval; hollow points: provisional (window not complete).")
    figures = [f for days in slices.values() for f in days.values()]
    outside = sum(OUTSIDE_CALIBRATION in f.flags for f in figures)
    if outside:
        parts.append(f'Triangles: {outside} figure(s) <span class="flag">{_e(OUTSIDE_CALIBRATION)}</span> '
                     "(label-free estimate extrapolated).")
    if alerts:
        shown_alerts = sum(str(a.get("slice")) in ({ALL, *drawn}) for a in alerts)
        parts.append(f"Red rings: alert days on a drawn line ({shown_alerts}); red bands: alerts on a slice "
                     f"not drawn ({len(alerts) - shown_alerts}).")
    return " ".join(parts)


def _trends_section(index: Mapping[str, Index], days: list[date], alerts: Sequence[Mapping[str, Any]],
                    max_slices: int) -> str:
    by_metric: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for alert in alerts:
        by_metric[str(alert.get("metric"))].append(alert)
    parts = ['<h2 id="trends">Trends</h2>']
    for section, metrics in metric_sections(index):
        parts.append(f"<h3>{_e(section)}</h3>")
        for metric in metrics:
            slices = index[metric]
            drawn = busiest_slices(slices, max_slices)
            png = trend_png(metric, days, slices, drawn, by_metric[metric])
            parts.append(f'<figure id="trend-{_e(metric)}"><img src="data:image/png;base64,{png}" '
                         f'alt="{_e(metric)} by day"><figcaption>'
                         f"{_caption(slices, drawn, by_metric[metric], max_slices)}</figcaption></figure>")
    return "".join(parts)


# -- the page -----------------------------------------------------------------------------------------
def _header(title: str, generated_at: datetime, figures: Sequence[DailyFigure],
            alerts: Sequence[Mapping[str, Any]], notes: Sequence[str]) -> str:
    days = sorted({f.day for f in figures})
    covered = (f"{days[0].isoformat()} to {days[-1].isoformat()} ({len(days)} days with figures)" if days
               else "none yet")
    counts = {s: sum(str(a.get("severity")) == s for a in alerts) for s in SEVERITIES}
    by_severity = ", ".join(f"{c} {s}" for s, c in counts.items() if c)
    parts = [f"<h1>{_e(title)}</h1>",
             f'<p class="muted">Generated {_e(generated_at.isoformat(timespec="seconds"))}. '
             f"Days covered: {_e(covered)}. Alerts: {len(alerts)}{f' ({_e(by_severity)})' if by_severity else ''}."
             "</p>"]
    if notes:
        parts.append("<ul class=\"notes\">" + "".join(f"<li>{_e(note)}</li>" for note in notes) + "</ul>")
    return "".join(parts)


def render_report(figures: list[DailyFigure], alerts: list[dict[str, Any]], *, title: str = "voiceloop monitor",
                  generated_at: datetime | None = None, notes: Sequence[str] = (), max_slices: int = 5) -> str:
    """The monitor's page: header, alerts newest first, worst slices, a trend plot per metric, new slices."""
    generated_at = generated_at or datetime.now(UTC)
    body = [_header(title, generated_at, figures, alerts, notes)]
    if not figures and not alerts:
        body.append('<p class="empty" id="nothing">Nothing to show yet: the monitor has no figures and no '
                    "alerts.</p>")
    else:
        body.append(_alerts_section(alerts))
        plotted = [f for f in figures if f.metric != NEW_SLICE]
        if plotted:
            metrics = [m for _, members in metric_sections({f.metric for f in plotted}) for m in members]
            days = sorted({f.day for f in plotted})
            body += [_worst_section(plotted, metrics), _trends_section(_by_slice(plotted), days, alerts, max_slices)]
        else:
            body.append('<p class="muted">No figures yet, nothing to plot.</p>')
        body.append(_new_slices_section(figures))
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{PAGE_CSS}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")
