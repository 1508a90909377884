"""The leak gate: the leak rules, run over a batch of redacted turns with Great Expectations.

Each turn is read the three ways the rules need (``leaks.readings``: normal, spoken, names), one
column each, and every rule of ``leaks.LEAK_RULES`` becomes an ``ExpectColumnValuesToNotMatchRegex``
expectation on its column. A turn that fails one leaks that entity type. Reports name the call,
turn and types, never the text. ``find_leaks`` applies the same rules to one text, so the gate and
the per-text check agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import great_expectations.expectations as gxe
import pandas as pd

from governance.redaction.leaks import LEAK_RULES, readings
from governance.validation import ROW_ID, run_expectations

FORMS = ("normal", "spoken", "names")  # the columns: one per reading of the turn


@dataclass(frozen=True)
class TurnText:
    """One text of one turn to check (a turn may have several: ASR text and reference transcript)."""

    call_id: str
    turn: int
    text: str


@dataclass(frozen=True)
class Leak:
    call_id: str
    turn: int
    types: tuple[str, ...]


def leak_expectations() -> list[gxe.ExpectColumnValuesToNotMatchRegex]:
    return [
        gxe.ExpectColumnValuesToNotMatchRegex(column=rule.form, regex=rule.pattern, meta={"label": rule.kind})
        for rule in LEAK_RULES
    ]


def leak_gate(texts: Sequence[TurnText]) -> list[Leak]:
    """The turns in which PII survived, one entry per (call, turn), in input order."""
    if not texts:
        return []
    read = [readings(t.text) for t in texts]
    frame = pd.DataFrame({"call_id": [t.call_id for t in texts], "turn": [t.turn for t in texts],
                          **{form: [r[form] for r in read] for form in FORMS}})
    frame[ROW_ID] = range(len(frame))
    failures = run_expectations(frame, list(leak_expectations()), "voiceloop_leak_gate")
    by_turn: dict[tuple[str, int], set[str]] = {}
    for row_id in sorted(failures):
        text = texts[row_id]
        by_turn.setdefault((text.call_id, text.turn), set()).update(failures[row_id])
    return [Leak(call_id, turn, tuple(sorted(types))) for (call_id, turn), types in by_turn.items()]
