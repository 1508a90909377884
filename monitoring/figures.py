"""One monitored number for one day and one slice: the unit the monitor stores, exports and alerts on.

Every figure carries how many calls or turns it was computed from (``n``) and, where the metric
has one, its standard error, so a change test can weigh a quiet day with few calls less than a
busy one, and a reader can see how sure a figure is. Figures hold numbers only, never call text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

#: The slice every call belongs to: the whole day's traffic.
ALL = "all"
#: The slice kinds the monitor cuts traffic by (``channel=telephone8k``), beside ``all``.
SLICE_KINDS = ("channel", "voice", "intent", "bundle")
#: Every metric the monitor produces (a rule on any other name would never fire).
METRICS: frozenset[str] = frozenset({
    "latency_p50_ms", "latency_p95_ms",  # end of the customer's speech to the start of the bot's answer
    "callback_24h_rate", "repeat_7d_rate",  # the same caller again within 24 h / the repeat window
    "containment_rate", "escalation_rate",
    "resolution_rate", "false_containment_rate",  # contained and not repeated / contained but repeated (window)
    "false_containment_24h_rate",  # contained but called back within 24 h: the early signal
    "sentiment_start", "sentiment_end", "sentiment_change",
    "handoff_complete_rate", "handoff_repeat_rate",
    "est_intent_accuracy", "est_wer",  # label-free estimates, with intervals
    "intent_confidence_mean", "asr_logprob_mean", "no_speech_prob_mean", "audio_dbfs_mean", "snr_db_mean",
    "duration_s_mean", "intent_mix_shift",  # drift inputs
    "input_drift_share",  # share of the inputs' columns whose distribution drifted (Evidently's column tests)
    "new_slice",  # a slice value the reference never saw appears
})
#: Metrics where the lower value is the worse one (everything else: higher is worse).
LOWER_IS_WORSE: frozenset[str] = frozenset({
    "containment_rate", "resolution_rate", "handoff_complete_rate", "est_intent_accuracy",
    "intent_confidence_mean", "asr_logprob_mean", "snr_db_mean", "sentiment_start", "sentiment_end",
    "sentiment_change",
})
#: A label-free estimate extrapolated beyond what the golden set covered (monitoring.estimation.domain_check).
OUTSIDE_CALIBRATION = "outside-calibration-domain"
#: A label-free estimate calibrated on fewer golden turns than monitoring.estimates.RELIABLE_TURNS.
SMALL_CALIBRATION = "small-calibration"


def lower_is_worse(metric: str) -> bool:
    """Whether a lower ``metric`` is the worse one (accuracy, containment, sentiment, ...); else higher is."""
    return metric in LOWER_IS_WORSE


def slice_key(kind: str, value: str) -> str:
    """A slice name as figures, alerts and metrics spell it: ``channel=telephone8k``; ``all`` for all calls."""
    return ALL if kind == ALL else f"{kind}={value}"


@dataclass(frozen=True)
class DailyFigure:
    """``metric`` over ``slice`` on ``day``, from ``n`` calls or turns.

    ``se``: the figure's standard error where the metric has one (a rate, a mean); ``low``/``high``:
    an interval where the figure is an estimate (label-free accuracy); ``provisional``: the figure's
    window is not complete yet (7-day repeat calls of a call made 3 days ago); ``flags``: notes a
    reader must see beside the number (``outside-calibration-domain``, ``new-slice``).
    """

    day: date
    metric: str
    slice: str
    value: float
    n: int
    se: float | None = None
    low: float | None = None
    high: float | None = None
    provisional: bool = False
    flags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["day"] = self.day.isoformat()
        record["flags"] = list(self.flags)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> DailyFigure:
        fields = dict(record)
        fields["day"] = date.fromisoformat(fields["day"])
        fields["flags"] = tuple(fields.get("flags", ()))
        return cls(**fields)
