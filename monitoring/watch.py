"""From the per-call records to the days' figures and their records: what ``voiceloop monitor`` keeps per day.

Every run recomputes every day from the per-call records (numbers only, cheap), because later calls
change earlier days' repeat figures until their windows close; a day's record holds its figures and
the ids of its calls, no text. The reference window that change tests compare against is fixed by
the stream itself: it starts ``repeat_window_days`` after the first monitored day (earlier days
cannot see repeats of calls made before monitoring began) and spans ``reference_days`` days; see
:class:`Window` for the metrics whose reference starts earlier.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from governance.store import GovernedStore
from monitoring.daily import daily_figures, intent_mix_shift, new_slices
from monitoring.estimates import estimate_figures
from monitoring.figures import DailyFigure
from monitoring.input_drift import input_drift_figures
from monitoring.signals import CallSignals

if TYPE_CHECKING:
    from core.settings import MonitorConfig
    from monitoring.calibration import Calibration


#: Figures that look forward from each call: their first days cannot see calls made before monitoring began.
WEEK_WINDOW = frozenset({"repeat_7d_rate", "resolution_rate", "false_containment_rate"})
DAY_WINDOW = frozenset({"callback_24h_rate", "false_containment_24h_rate"})


@dataclass(frozen=True)
class Window:
    """The days monitored, and each metric's reference days within them.

    A metric's reference starts once its own look-ahead window could see every earlier call: after
    ``repeat_window_days`` for the 7-day repeat figures, after the callback window for the 24-hour
    ones, on the first day for everything else; it lasts ``reference_days`` days.
    """

    first: date
    last: date
    days: frozenset[date]
    reference_days: int
    repeat_window_days: int
    callback_days: int

    def skipped(self, metric: str) -> int:
        if metric in WEEK_WINDOW:
            return self.repeat_window_days
        return self.callback_days if metric in DAY_WINDOW else 0

    def reference_for(self, metric: str) -> frozenset[date]:
        start = self.first + timedelta(days=self.skipped(metric))
        end = start + timedelta(days=self.reference_days)
        return frozenset(d for d in self.days if start <= d < end)

    @property
    def reference(self) -> frozenset[date]:
        """The reference of the metrics without a look-ahead (the days new slices are compared with)."""
        return self.reference_for("")

    @property
    def reference_span(self) -> tuple[date, date] | None:
        return (min(self.reference), max(self.reference)) if self.reference else None


def reference_window(days: list[date], config: MonitorConfig) -> Window:
    return Window(min(days), max(days), frozenset(days), config.reference_days, config.repeat_window_days,
                  math.ceil(config.callback_hours / 24))


def load_calls(store: GovernedStore) -> list[CallSignals]:
    """Every per-call record (``store`` acts for monitoring), oldest first."""
    records = store.read_monitoring("calls")
    return sorted((CallSignals.from_record(r) for r in records.values()), key=lambda c: c.started_at)


def compute_figures(calls: list[CallSignals], config: MonitorConfig,
                    calibration: Calibration | None) -> tuple[list[DailyFigure], Window | None]:
    """Every day's figures, with the estimates, the new-slice markers and the inputs' drift tests, and the window
    they were judged in."""
    if not calls:
        return [], None
    figures = daily_figures(calls, config.callback_hours, config.repeat_window_days,
                            extra=lambda day, name, group: estimate_figures(calibration, day, name, group))
    window = reference_window(sorted({date.fromisoformat(c.day) for c in calls}), config)
    reference = set(window.reference)
    return (figures + new_slices(figures, reference) + intent_mix_shift(calls, reference)
            + input_drift_figures(calls, reference), window)


def write_days(store: GovernedStore, calls: list[CallSignals], figures: list[DailyFigure],
               window: Window | None) -> list[str]:
    """One ``days/<date>`` record per day: its figures and its calls' ids; returns the days written."""
    by_day: dict[str, list[dict[str, object]]] = defaultdict(list)
    for figure in figures:
        by_day[figure.day.isoformat()].append(figure.to_dict())
    ids: dict[str, list[str]] = defaultdict(list)
    for call in calls:
        ids[call.day].append(call.call_id)
    reference = window.reference if window else frozenset()
    records = {day: {"day": day, "reference": date.fromisoformat(day) in reference, "figures": rows,
                     "call_ids": sorted(ids[day])} for day, rows in sorted(by_day.items())}
    store.write_monitoring("days", records)
    return list(records)


def load_figures(store: GovernedStore) -> list[DailyFigure]:
    """Every figure of every stored day (``store`` acts for monitoring)."""
    return [DailyFigure.from_dict(row) for record in store.read_monitoring("days").values()
            for row in record["figures"]]
