"""The monitor's page (monitoring/report.py): one self-contained HTML file a person can trust at a glance.

Ten synthetic days, five slices (one named with a ``<script>`` tag), four plotted metrics and a
new slice, two alerts. The worst slices were checked by hand against the values below.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from monitoring.figures import ALL, METRICS, DailyFigure, lower_is_worse
from monitoring.report import SECTIONS, SliceValue, render_report, worst_slices

DAYS = [date(2026, 11, 11) + timedelta(days=i) for i in range(10)]
NEWEST = DAYS[-1]
EVIL = "channel=<script>alert(1)</script>"
# slice -> calls per day
SLICES = {ALL: 550, "channel=telephone8k": 300, "channel=gsm-noisy8k": 120, "voice=en-gb+f4": 80,
          "intent=card_arrival": 40, EVIL: 10}
# metric -> slice -> value (a small daily drift is added); the worst slice is marked with the comment
VALUES = {
    "est_intent_accuracy": {ALL: 0.86, "channel=telephone8k": 0.90, "channel=gsm-noisy8k": 0.71,  # worst (lowest)
                            "voice=en-gb+f4": 0.84, "intent=card_arrival": 0.78, EVIL: 0.88},
    "est_wer": {ALL: 0.20, "channel=telephone8k": 0.15, "channel=gsm-noisy8k": 0.28, "voice=en-gb+f4": 0.19,
                "intent=card_arrival": 0.35, EVIL: 0.10},  # worst (highest): intent=card_arrival
    "containment_rate": {ALL: 0.62, "channel=telephone8k": 0.66, "channel=gsm-noisy8k": 0.55,
                         "voice=en-gb+f4": 0.61, "intent=card_arrival": 0.49, EVIL: 0.70},  # worst: card_arrival
    "latency_p95_ms": {ALL: 900.0, "channel=telephone8k": 850.0, "channel=gsm-noisy8k": 1400.0,  # worst: gsm
                       "voice=en-gb+f4": 950.0, "intent=card_arrival": 880.0, EVIL: 800.0},
}
ALERTS = [
    {"alert_id": "al-20261118-3fa2c9d1e0", "rule": "wer_up", "metric": "est_wer", "slice": "channel=gsm-noisy8k",
     "day": "2026-11-18", "last_day": "2026-11-19", "severity": "warning", "owner": "speech-team",
     "component": "asr", "value": 0.41, "reference_mean": 0.22, "statistic": 6.3,
     "raised_at": "2026-11-19T06:00:00+00:00"},
    {"alert_id": "al-20261120-77b0e41a2c", "rule": "accuracy_down", "metric": "est_intent_accuracy",
     "slice": "intent=card_arrival", "day": "2026-11-20", "last_day": "2026-11-20", "severity": "critical",
     "owner": "nlu-team", "component": "intent", "value": 0.78, "reference_mean": 0.88, "statistic": 4.1,
     "raised_at": "2026-11-21T06:00:00+00:00"},
]


def _figures() -> list[DailyFigure]:
    figures = []
    for i, day in enumerate(DAYS):
        for metric, by_slice in VALUES.items():
            for name, base in by_slice.items():
                value = base + 0.001 * i
                estimate = metric.startswith("est_")
                flags = (("outside-calibration-domain",) if estimate and name == "channel=gsm-noisy8k"
                         and day == NEWEST else ())
                figures.append(DailyFigure(
                    day, metric, name, value, SLICES[name], se=0.01 if not estimate else None,
                    low=value - 0.03 if estimate else None, high=value + 0.03 if estimate else None,
                    provisional=metric == "containment_rate" and i >= 8, flags=flags))
    figures.append(DailyFigure(DAYS[6], "new_slice", EVIL, 1.0, 10, flags=("new-slice",)))
    return figures


@pytest.fixture(scope="module")
def page() -> str:
    return render_report(_figures(), ALERTS, generated_at=datetime(2026, 11, 21, 7, 0, tzinfo=UTC),
                         notes=["reference: 2026-10-01 to 2026-10-28", "<b>not bold</b>"])


def _table(page: str, table_id: str) -> list[list[str]]:
    """The rows of one table, as the text of their cells."""
    start = page.index(f'id="{table_id}"')
    table = page[start:page.index("</table>", start)]
    rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td>(.*?)</td>", r, flags=re.S)]
            for r in rows if "<td>" in r]


def _worst(rows: list[list[str]], metric: str) -> str:
    return next(r[3] for r in rows if r[0] == metric and r[2] == "1")


def test_page_is_one_self_contained_html_file(page: str) -> None:
    assert page.startswith("<!doctype html>")
    assert page.rstrip().endswith("</html>")
    assert page.count('<img src="data:image/png;base64,') == len(VALUES)  # one per plotted metric
    assert "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page  # no external assets
    assert "2026-11-11 to 2026-11-20 (10 days" in page
    assert "Alerts: 2 (1 critical, 1 warning)" in page
    assert "reference: 2026-10-01 to 2026-10-28" in page and "&lt;b&gt;not bold&lt;/b&gt;" in page


def test_alerts_newest_first(page: str) -> None:
    rows = _table(page, "alerts-table")
    assert [r[0] for r in rows] == ["al-20261120-77b0e41a2c", "al-20261118-3fa2c9d1e0"]
    assert rows[1][1] == "2026-11-18 to 2026-11-19"
    assert rows[1][7] == "0.41 vs 0.22 (statistic 6.30)"


def test_worst_slices_hand_checked(page: str) -> None:
    newest = _table(page, "worst-newest")
    assert _worst(newest, "est_intent_accuracy") == "channel=gsm-noisy8k"  # lower is worse: 0.719
    assert _worst(newest, "est_wer") == "intent=card_arrival"  # higher is worse: 0.359
    assert _worst(newest, "containment_rate") == "intent=card_arrival"
    assert _worst(newest, "latency_p95_ms") == "channel=gsm-noisy8k"
    row = next(r for r in newest if r[0] == "est_intent_accuracy" and r[2] == "1")
    assert row[4:7] == ["0.719", "120", "[0.689, 0.749]"]
    assert "outside-calibration-domain" in row[8]
    assert next(r for r in newest if r[0] == "containment_rate" and r[2] == "1")[8] == "provisional"
    pooled = _table(page, "worst-pooled")
    assert _worst(pooled, "est_wer") == "intent=card_arrival"
    assert next(r for r in pooled if r[0] == "est_wer" and r[2] == "1")[5:7] == ["280", "7"]  # 7 days x 40 calls


def test_flags_and_new_slices_are_shown_and_escaped(page: str) -> None:
    assert "outside-calibration-domain" in page
    assert "<script>" not in page
    assert html.escape(EVIL) in page
    assert 'id="new-slices"' in page and f"2026-11-17: <code>{html.escape(EVIL)}</code>" in page
    assert 'id="trend-new_slice"' not in page  # listed, not plotted


def test_left_out_slices_are_named_in_the_caption() -> None:
    page = render_report(_figures(), ALERTS, max_slices=2)
    assert "the 2 slice(s) with the most calls" in page
    assert "3 other slice(s) left out" in page


def test_empty_input_says_nothing_to_show() -> None:
    page = render_report([], [])
    assert page.startswith("<!doctype html>")
    assert "Nothing to show yet" in page
    assert "data:image/png" not in page


def test_direction_and_sections() -> None:
    assert lower_is_worse("containment_rate") and lower_is_worse("est_intent_accuracy")
    assert lower_is_worse("snr_db_mean") and lower_is_worse("sentiment_change")
    assert not lower_is_worse("false_containment_rate") and not lower_is_worse("est_wer")
    assert not lower_is_worse("latency_p95_ms")
    sectioned = [m for _, members in SECTIONS for m in members]
    assert sorted(sectioned) == sorted(METRICS - {"new_slice"})
    values = [SliceValue("est_wer", s, v, 10) for s, v in (("a", 0.3), ("b", 0.5), (ALL, 0.9), ("c", float("nan")))]
    assert [v.slice for v in worst_slices(values, "est_wer")] == ["b", "a"]
