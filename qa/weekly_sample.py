"""One week's QA sample as the labels zone keeps it: who was drawn, with what probability, and why.

The record (``labels/samples/<week>.json``) is what makes the week's figures design-based: every
selected call's inclusion probability, fixed before the draw from the design, the thresholds of the
week before and the slices the monitor had alerted on. Nothing in it is call text: ids, caller
pseudonyms (the production golden set is split by them), slice names and numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from qa.sampling import (
    CallRisk,
    RiskThresholds,
    SamplingDesign,
    blind_probability,
    draw_sample,
    inclusion_probabilities,
)


@dataclass(frozen=True)
class SampledCall:
    """One selected call: its probability, whether it is reviewed blind and by two reviewers."""

    call_id: str
    caller_ref: str
    probability: float
    blind: bool
    double: bool
    slices: tuple[str, ...]
    alerted: bool


@dataclass(frozen=True)
class WeeklySample:
    """A week's drawn sample and its design: enough to estimate the week's accuracy from the reviews."""

    week: str
    calls: tuple[SampledCall, ...]
    frame: int  # calls of the week that could be drawn (consented, in the redacted zone)
    expected_size: float
    blind_probability: float
    seed: int
    design: dict[str, Any]
    thresholds: dict[str, float | None]
    alerted_slices: tuple[str, ...]
    drawn_at: str

    @property
    def call_ids(self) -> list[str]:
        return [c.call_id for c in self.calls]

    def by_id(self) -> dict[str, SampledCall]:
        return {c.call_id: c for c in self.calls}

    def to_record(self) -> dict[str, Any]:
        """The labels-zone record: ``call_ids`` (erasure finds it by them) and a ``calls`` map it scrubs."""
        body = asdict(self)
        body["calls"] = {c.call_id: {k: v for k, v in asdict(c).items() if k != "call_id"} for c in self.calls}
        return {**body, "call_ids": self.call_ids}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> WeeklySample:
        calls = tuple(SampledCall(call_id=cid, **{**entry, "slices": tuple(entry["slices"])})
                      for cid, entry in sorted(record["calls"].items()))
        fields = {k: v for k, v in record.items() if k not in ("call_ids", "calls")}
        return cls(calls=calls, **{**fields, "alerted_slices": tuple(fields["alerted_slices"])})


def week_seed(seed: int, week: str) -> int:
    """The draw's seed: the configured seed with the week mixed in, so weeks draw independently."""
    return int.from_bytes(hashlib.blake2b(f"{seed}|{week}".encode(), digest_size=4).digest(), "big")


def draw_week(week: str, calls: Sequence[CallRisk], caller_refs: dict[str, str], thresholds: RiskThresholds,
              design: SamplingDesign, alerted_slices: Collection[str], seed: int,
              now: datetime | None = None) -> WeeklySample:
    """Fix every call's probability from the design, draw the Poisson sample, and say which calls are blind."""
    probabilities = inclusion_probabilities(calls, design, thresholds, alerted_slices)
    blind = blind_probability(probabilities, design.random_share)
    drawn = draw_sample(probabilities, week_seed(seed, week), design.double_review_share, blind)
    alerted = frozenset(alerted_slices)
    slices = {c.call_id: c.slices for c in calls}
    chosen = tuple(SampledCall(call_id=cid, caller_ref=caller_refs[cid], probability=p, blind=cid in drawn.blind,
                               double=cid in drawn.double_review, slices=slices[cid],
                               alerted=not alerted.isdisjoint(slices[cid]))
                   for cid, p in drawn.probabilities.items())
    return WeeklySample(week=week, calls=chosen, frame=len(calls), expected_size=drawn.expected_size,
                        blind_probability=blind, seed=drawn.seed, design=asdict(design),
                        thresholds=asdict(thresholds), alerted_slices=tuple(sorted(alerted)),
                        drawn_at=(now or datetime.now(UTC)).isoformat())
