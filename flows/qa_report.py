"""``voiceloop qa report``: the week's reviewed figures from the store, as one page beside the monitor's estimates.

:func:`week_report` acts for ``labelling`` (it reads the labels zone and the monitor's day records,
both audited): the week's sample, the reviews of its calls and the ``days/<date>`` records of the
week's seven dates, handed to :func:`qa.week_report.build_report`. :func:`render_html` draws the
report as one self-contained page (the monitor's page helpers, monitoring/report.py): a table per
metric and, where the monitor has the metric, a plot of both estimates per slice with their
intervals. The page holds numbers and slice names only, no call text.
"""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from core.settings import Settings
from flows.qa_sample import PURPOSE, stored_sample
from governance.session import open_store
from governance.store import GovernedStore
from monitoring.report import PAGE_CSS, fmt, html_table
from qa.labels_zone import REVIEW_KIND
from qa.week_report import ALL, Agreement, MetricTable, SliceRow, WeekReport, build_report
from qa.weeks import parse_week

DAYS_KIND = "days"  # the monitor's day records (monitoring/watch.py write_days)
PLOT_DPI = 80
REVIEWED_COLOUR, MONITOR_COLOUR = "#1f77b4", "#ff7f0e"


def _week_figures(store: GovernedStore, week: str) -> list[dict[str, Any]]:
    monday, _ = parse_week(week)
    days = store.read_monitoring(DAYS_KIND, [(monday + timedelta(days=i)).isoformat() for i in range(7)])
    return [row for record in days.values() for row in record.get("figures", [])]


def week_report(settings: Settings, role: str, week: str) -> WeekReport:
    """``week``'s report: BadWeek for a malformed week, LookupError naming `voiceloop qa sample` without a sample."""
    parse_week(week)
    store = open_store(settings, role, PURPOSE)
    sample = stored_sample(store, week)
    reviews = store.read_labels(REVIEW_KIND, sample.call_ids)
    return build_report(sample, reviews, _week_figures(store, week))


# -- text for the command line ------------------------------------------------------------------------
def number(value: float | None) -> str:
    """A number for a cell (the monitor's format); "–" for none or NaN (a slice without reviewed calls)."""
    return "–" if value is None or math.isnan(value) else fmt(value)


def interval_text(low: float | None, high: float | None) -> str:
    """``[low, high]``; "unbounded" for a one-call domain; "–" for none."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return "–"
    return "unbounded" if math.isinf(low) or math.isinf(high) else f"[{fmt(low)}, {fmt(high)}]"


def _covered(row: SliceRow) -> str:
    return "–" if row.covered is None else ("yes" if row.covered else "no")


def summary_rows(report: WeekReport) -> list[list[str]]:
    """One line per metric over all calls: estimate, interval, reviewed/sampled, monitor, difference, covered."""
    rows = []
    for table in report.metrics:
        row = table.row(ALL)
        rows.append([table.title, number(row.estimate.value), interval_text(row.estimate.low, row.estimate.high),
                     f"{row.reviewed}/{row.sampled}", number(row.monitor.value) if row.monitor else "–",
                     number(row.difference), _covered(row)])
    return rows


def agreement_text(agreement: Agreement) -> str:
    """Reviewer agreement in one sentence."""
    if not agreement.calls:
        return "No double-reviewed call yet: reviewer agreement unknown."
    return (f"Reviewer agreement over {agreement.calls} double-reviewed calls ({agreement.turns} turns): "
            f"kappa {number(agreement.kappa)}, raw agreement {number(agreement.raw_agreement)}, WER between "
            f"reviewers {number(agreement.reviewer_wer)} ({agreement.reference_words} words); "
            f"{agreement.adjudicated} adjudicated.")


# -- the page -----------------------------------------------------------------------------------------
def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PLOT_DPI)
    figure.clear()
    return base64.b64encode(buffer.getvalue()).decode()


def _error_bars(value: float, low: float | None, high: float | None) -> tuple[float, float]:
    """Distances from ``value`` to the interval's ends; 0 where an end is unknown or unbounded."""
    def gap(end: float | None) -> float:
        return abs(value - end) if end is not None and math.isfinite(end) else 0.0

    return gap(low), gap(high)


def _draw(axes: Any, ys: list[float], points: list[tuple[float, float | None, float | None]], colour: str,
          label: str) -> None:
    shown = [(y, p) for y, p in zip(ys, points, strict=True) if math.isfinite(p[0])]
    if not shown:
        return
    bars = [_error_bars(*p) for _, p in shown]
    axes.errorbar([p[0] for _, p in shown], [y for y, _ in shown], xerr=[[b[0] for b in bars], [b[1] for b in bars]],
                  fmt="o", color=colour, capsize=3, markersize=4, label=label)


def comparison_png(table: MetricTable) -> str:
    """The reviewed and the monitor's estimate per slice, each with its interval, as a base64 PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = table.rows
    figure = Figure(figsize=(7.0, max(1.6, 0.32 * len(rows) + 0.9)), dpi=PLOT_DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.34, 0.12 if len(rows) > 3 else 0.25, 0.62, 0.78 if len(rows) > 3 else 0.6))
    ys = [float(i) for i in range(len(rows))]
    _draw(axes, [y - 0.15 for y in ys], [(r.estimate.value, r.estimate.low, r.estimate.high) for r in rows],
          REVIEWED_COLOUR, "reviewed")
    _draw(axes, [y + 0.15 for y in ys],
          [(r.monitor.value, r.monitor.low, r.monitor.high) if r.monitor else (math.nan, None, None) for r in rows],
          MONITOR_COLOUR, "monitor (label-free)")
    axes.set_yticks(ys, [r.slice for r in rows], fontsize=7)
    axes.invert_yaxis()
    axes.tick_params(axis="x", labelsize=7)
    axes.set_title(table.title, fontsize=9, loc="left")
    axes.grid(True, color="#eee", linewidth=0.6)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(loc="best", fontsize=7, frameon=False)
    return _png(figure)


def _monitor_cells(row: SliceRow) -> list[str]:
    if row.monitor is None:
        return ["–", "–"]
    flags = "".join(f' <span class="flag">{html.escape(f)}</span>' for f in row.monitor.flags)
    counts = f'<span class="muted">({row.monitor.days} d, n={row.monitor.n})</span>'
    return [f"{number(row.monitor.value)} {counts}{flags}", interval_text(row.monitor.low, row.monitor.high)]


def _covered_cell(row: SliceRow) -> str:
    return '<span class="flag">no</span>' if row.covered is False else _covered(row)


def _metric_rows(table: MetricTable) -> list[list[str]]:
    return [[html.escape(r.slice), number(r.estimate.value), interval_text(r.estimate.low, r.estimate.high),
             f"{r.reviewed} / {r.sampled}", f"{r.units:g}", *_monitor_cells(r), number(r.difference), _covered_cell(r)]
            for r in table.rows]


def _metric_section(table: MetricTable, level: float) -> str:
    headers = ["slice", "estimate", f"{level:.0%} interval", "reviewed / sampled calls", table.unit,
               f"monitor {table.monitor_metric or ''}".strip(), "monitor interval", "difference", "covered?"]
    parts = [f'<h2 id="{html.escape(table.metric)}">{html.escape(table.title)}</h2>']
    if table.monitor_metric and any(r.monitor for r in table.rows):
        parts.append(f'<figure><img src="data:image/png;base64,{comparison_png(table)}" '
                     f'alt="{html.escape(table.title)}: reviewed and monitor by slice"><figcaption>Blue: the reviewed '
                     "estimate and its interval; orange: the monitor's label-free estimate, its daily values and "
                     "interval ends averaged over the week. A point without a bar: an interval unbounded (one reviewed "
                     "call) or unknown.</figcaption></figure>")
    parts.append(html_table(headers, _metric_rows(table), "No slice in this week's sample.", f"table-{table.metric}"))
    return "".join(parts)


def _agreement_section(agreement: Agreement) -> str:
    rows = [["double-reviewed calls", str(agreement.calls)], ["turn pairs", str(agreement.turns)],
            ["Cohen's kappa (intents)", number(agreement.kappa)],
            ["raw agreement (intents)", number(agreement.raw_agreement)],
            ["WER between reviewers", number(agreement.reviewer_wer)],
            ["reference words (first reviewer)", str(agreement.reference_words)],
            ["adjudicated calls", str(agreement.adjudicated)]]
    return '<h2 id="agreement">Reviewer agreement</h2>' + html_table(["measure", "value"], rows, "", "table-agreement")


def _header(report: WeekReport, generated_at: datetime) -> str:
    facts = (f"Generated {generated_at.isoformat(timespec='seconds')}. Frame {report.frame} calls; sampled "
             f"{report.sampled} (expected {fmt(report.expected_size)}), reviewed {report.reviewed}; blind "
             f"{report.blind_reviewed} of {report.blind_sampled} reviewed (probability "
             f"{fmt(report.blind_probability)}). Monitor: {report.monitor_days} day(s) with label-free estimates.")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    return (f"<h1>voiceloop QA review, {html.escape(report.week)}</h1><p class=\"muted\">{html.escape(facts)}</p>"
            f'<ul class="notes">{notes}</ul>')


def render_html(report: WeekReport, generated_at: datetime | None = None) -> str:
    """The report as one self-contained HTML page: header and notes, a section per metric, reviewer agreement."""
    title = f"voiceloop QA review {report.week}"
    body = [_header(report, generated_at or datetime.now(UTC)),
            *(_metric_section(table, report.level) for table in report.metrics),
            _agreement_section(report.agreement)]
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{PAGE_CSS}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")
