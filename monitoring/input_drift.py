"""Evidently's per-column drift tests of the customer turns' inputs: shifts of distribution that daily means miss.

The change tests on daily means (``snr_db_mean`` ...) see a level move; a day whose inputs spread out,
split in two or grow a tail can keep its mean. Here each day's customer turns are compared, column by
column, with the reference window's turns of the same slice by Evidently's column drift test: the one
Evidently picks for a numerical column with a reference of up to 1000 values (two-sample
Kolmogorov-Smirnov, drifted at p <= 0.05; chi-square or z for a column of five distinct values or
fewer), whatever the reference's size. Above 1000 Evidently would pick the normed Wasserstein
distance (drifted at >= 0.1), which suits large batches: for a day's hundred-odd turns sampling noise
alone crosses 0.1 (on a stable synthetic stream two thirds of the ``all`` figures "drifted"), while
a p-value test holds its 5 % false-alarm rate at any size. The figure is the share of the tested
columns that drifted; its flags name them.

Only Evidently's statistical tests run (``evidently.legacy.calculations.stattests``, what its
``ValueDrift`` metric calls): a ``Report`` per day and slice also draws plotly widgets nobody reads
(25 s against 0.4 s for 28 days of 120 turns in four slices), too slow for a monitor that recomputes
every day on every run. No text
descriptor is used (they download NLTK data); telemetry is off (``DO_NOT_TRACK``); nothing is fetched.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from datetime import date
from typing import Any

from monitoring.daily import slices_of
from monitoring.figures import ALL, DailyFigure
from monitoring.signals import CallSignals

METRIC = "input_drift_share"
#: The customer turn's inputs tested (fields of ``monitoring.signals.TurnSignal``).
COLUMNS = ("confidence", "avg_logprob", "no_speech_prob", "dbfs", "snr_db", "duration_s")
#: A column is tested only with at least this many known values on each side.
MIN_VALUES = 5
#: A day's slice with fewer customer turns gets no figure: too small to test.
MIN_TURNS = 10
#: The flag of a figure whose slice the reference never saw: it was compared with every reference turn.
AGAINST_ALL = "reference:all"

Values = dict[str, list[float]]


def _known(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _gather(calls: list[CallSignals]) -> tuple[dict[tuple[date, str], Values], dict[tuple[date, str], int]]:
    """Per (day, slice): each column's known values, and the number of customer turns."""
    values: dict[tuple[date, str], Values] = defaultdict(lambda: {c: [] for c in COLUMNS})
    turns: dict[tuple[date, str], int] = defaultdict(int)
    for call in calls:
        day = date.fromisoformat(call.day)
        for slice_name in slices_of(call):
            if slice_name != ALL and not slice_name.startswith("channel="):
                continue  # all and the channels only: the cost grows with every slice tested
            key = (day, slice_name)
            turns[key] += len(call.turns)
            columns = values[key]
            for turn in call.turns:
                for column in COLUMNS:
                    value = getattr(turn, column)
                    if _known(value):
                        columns[column].append(float(value))
    return values, turns


def _pool(values: dict[tuple[date, str], Values], slice_name: str, days: set[date]) -> Values:
    pooled: Values = {c: [] for c in COLUMNS}
    for day in days:
        for column, found in values.get((day, slice_name), {}).items():
            pooled[column].extend(found)
    return pooled


def _evidently() -> tuple[Any, Any, Any]:
    """Evidently's column drift test for a column, its numerical column type and pandas (imported here: slow)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")  # before evidently is imported: no usage telemetry
    import pandas as pd
    import pandas.core.dtypes.common as dtypes_common

    if not hasattr(dtypes_common, "infer_dtype_from_object"):
        # evidently 0.7.23 imports this helper, which pandas 3 removed, from a legacy test it never runs
        # here; without it ``import evidently`` fails. Gone once evidently supports pandas 3.
        dtypes_common.infer_dtype_from_object = lambda dtype: pd.api.types.pandas_dtype(dtype).type
    from evidently.legacy.calculations.stattests import chi_stat_test, ks_stat_test, z_stat_test
    from evidently.legacy.core import ColumnType

    def choose(distinct: int) -> Any:
        """Evidently's default for a numerical column with a reference of up to 1000 values, at any size."""
        return ks_stat_test if distinct > 5 else chi_stat_test if distinct > 2 else z_stat_test

    return choose, ColumnType.Numerical, pd


def input_drift_figures(calls: list[CallSignals], reference_days: set[date]) -> list[DailyFigure]:
    """Per day, for ``all`` and each ``channel=`` slice: the share of the tested input columns that drifted.

    A day's customer turns are compared with the reference days' turns of the same slice (a reference
    day with the other reference days, so it is judged like any other day); a slice the reference never
    saw is compared with every reference turn (flag ``reference:all``). A column is tested when both
    sides have at least ``MIN_VALUES`` known values (missing values are left out, never read as zero);
    a day's slice with fewer than ``MIN_TURNS`` customer turns, or no column to test, gets no figure.
    ``n`` counts the day's customer turns in the slice; the flags name the drifted columns
    (``drifted:snr_db``). Numbers only: no text, no call ids.
    """
    if not calls or not reference_days:
        return []
    values, turns = _gather(calls)
    reference = set(reference_days)
    choose, numerical, pd = _evidently()
    out = []
    for (day, slice_name), current in sorted(values.items()):
        n = turns[(day, slice_name)]
        if n < MIN_TURNS:
            continue
        others = reference - {day}
        flags: list[str] = []
        against = _pool(values, slice_name, others)
        if slice_name != ALL and not any(against.values()):  # a slice the reference never saw
            against = _pool(values, ALL, others)
            flags.append(AGAINST_ALL)
        tested, drifted = 0, []
        for column in COLUMNS:
            cur, ref = current[column], against[column]
            if len(cur) < MIN_VALUES or len(ref) < MIN_VALUES:
                continue
            test = choose(len(set(ref) | set(cur)))
            tested += 1
            if test(pd.Series(ref, dtype=float), pd.Series(cur, dtype=float), numerical, None).drifted:
                drifted.append(column)  # at the test's default threshold (K-S: p <= 0.05)
        if not tested:
            continue
        flags = [f"drifted:{c}" for c in drifted] + flags
        out.append(DailyFigure(day, METRIC, slice_name, round(len(drifted) / tested, 5), n, flags=tuple(flags)))
    return out
