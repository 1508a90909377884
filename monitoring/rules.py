"""Alert rules live in a YAML file so the people who own a metric can read and tune them without reading code.

A rule names one monitored metric (see :mod:`monitoring.figures`), the slices it watches, and a
condition: a ``threshold`` (a fixed limit: p95 latency over 500 ms) or a ``change`` (a sequential
test against the metric's own reference window: the callback rate creeping up). Each rule says how
many days to pool (``window_days``), how many calls a figure needs before it is judged (``min_n``),
how bad a firing is (``severity``) and which component owns it (``component``; the access policy
maps components to people). Loading is strict: a typo in an alert rule is a silent outage, so an
unknown metric, operator or key fails with the file, the rule and the key at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from core.yaml_text import parse_yaml
from governance.policy import Component
from monitoring.figures import ALL, METRICS, SLICE_KINDS

SHIPPED_RULES = Path(__file__).with_name("alert_rules.yaml")

Severity = Literal["warning", "critical"]
RuleName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class RuleError(ValueError):
    """The rules file is missing, unreadable or wrong; the message names the file, the rule and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Threshold(_Strict):
    """Fire when the (pooled) figure is ``op`` ``value``; with ``confidence``, only when its one-sided bound is too."""

    type: Literal["threshold"]
    op: Literal[">", "<"]
    value: float
    #: e.g. 0.95: the figure's one-sided 95% bound must also be past the limit, so sampling noise
    #: on a small day cannot fire the rule on its own (a rate uses the Wilson bound from ``n``).
    confidence: float | None = Field(default=None, gt=0.5, lt=1.0)


class Change(_Strict):
    """Fire when a sequential test says the metric moved from its reference window in ``direction``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Literal["change"]
    direction: Literal["up", "down", "both"]
    method: Literal["cusum", "ewma"] = "cusum"
    #: CUSUM reference value in standard deviations (half the smallest shift worth an alert).
    k: float = Field(default=1.5, gt=0.0, le=3.0)
    #: EWMA weight of the newest day (``lambda`` in the YAML).
    lam: float = Field(default=0.3, gt=0.0, le=1.0, alias="lambda")

    @property
    def signs(self) -> tuple[int, ...]:
        """+1 watches for a rise, -1 for a fall; ``both`` runs two one-sided tests."""
        return {"up": (1,), "down": (-1,), "both": (1, -1)}[self.direction]


Condition = Annotated[Threshold | Change, Field(discriminator="type")]


class Rule(_Strict):
    """One validated alert rule (see ``monitoring/alert_rules.yaml`` for the documented defaults)."""

    name: RuleName
    metric: str
    slices: tuple[str, ...] = (ALL,)
    condition: Condition
    window_days: int = Field(default=1, ge=1, le=7)
    min_n: int = Field(default=0, ge=0)
    severity: Severity
    component: Component
    description: str = ""

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; the monitor produces {', '.join(sorted(METRICS))}")
        return metric

    @field_validator("slices", mode="before")
    @classmethod
    def _slice_list(cls, slices: Any) -> Any:
        return (slices,) if isinstance(slices, str) else slices

    @field_validator("slices")
    @classmethod
    def _known_slices(cls, slices: tuple[str, ...]) -> tuple[str, ...]:
        if not slices:
            raise ValueError("empty; use 'all', a slice kind (channel) or a list of them")
        for selector in slices:
            kind = selector.split("=", 1)[0]
            if selector != ALL and (kind not in SLICE_KINDS or selector.endswith("=")):
                raise ValueError(
                    f"unknown slice {selector!r}; use 'all', a slice kind ({', '.join(sorted(SLICE_KINDS))}) "
                    "or one slice such as channel=telephone8k"
                )
        return slices

    @model_validator(mode="after")
    def _new_slice_is_a_threshold(self) -> Rule:
        if self.metric == "new_slice" and not isinstance(self.condition, Threshold):
            raise ValueError("new_slice is 1.0 on a slice's first day only: give it a threshold condition (> 0)")
        return self

    def applies_to(self, slice: str) -> bool:
        """Whether this rule judges figures of ``slice`` (``all``, or ``kind=value``)."""
        kind = slice.split("=", 1)[0]
        return any(sel == slice or (sel == kind and sel != ALL) for sel in self.slices)

    @property
    def is_change(self) -> bool:
        return isinstance(self.condition, Change)


class _RulesFile(_Strict):
    version: Literal[1] = 1
    rules: list[dict[str, Any]] = Field(min_length=1)


def _key(loc: Sequence[int | str]) -> str:
    parts = [str(part) for part in loc if part not in ("threshold", "change") or loc[0] != "condition"]
    return ".".join(parts) or "(rule)"


def _rule_label(raw: Any, index: int) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"rule {name!r}" if isinstance(name, str) and name else f"rule #{index + 1}"


def _parse_rule(raw: Any, index: int, source: str) -> Rule:
    label = _rule_label(raw, index)
    if not isinstance(raw, dict):
        raise RuleError(f"{source}: {label}: key '(rule)': must be a mapping of keys (name, metric, condition, ...)")
    try:
        return Rule.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"key {_key(e['loc'])!r}: {e['msg']}" for e in error.errors())
        raise RuleError(f"{source}: {label}: {problems}") from None


def parse_rules(text: str, source: str) -> list[Rule]:
    """Validate rules YAML; every problem is reported as ``source: rule 'name': key 'k': what is wrong``."""
    data = parse_yaml(text, source, RuleError)
    try:
        parsed = _RulesFile.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"key {_key(e['loc'])!r}: {e['msg']}" for e in error.errors())
        raise RuleError(f"{source}: invalid alert rules file: {problems}") from None
    rules = [_parse_rule(raw, index, source) for index, raw in enumerate(parsed.rules)]
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise RuleError(f"{source}: rule {rule.name!r}: key 'name': used by two rules; names must be unique")
        seen.add(rule.name)
    return rules


def load_rules(path: str | Path | None = None) -> list[Rule]:
    """Load the alert rules from ``path``, or the shipped ``monitoring/alert_rules.yaml`` when None."""
    file = Path(path).expanduser() if path else SHIPPED_RULES
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise RuleError(f"{file}: alert rules file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RuleError(f"{file}: alert rules file cannot be read ({type(error).__name__})") from None
    return parse_rules(text, str(file))
