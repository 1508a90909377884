"""Score PII redaction against labelled spans by character overlap (pure Python, no Presidio).

A compliance user can score any redactor on their own labelled transcripts with this module.

Data
----
An *example* is ``{"id": ..., "text": ..., "spans": [{"type", "start", "end"}, ...]}`` with
character offsets into ``text`` (end exclusive). A *set* of examples also names its
``ignore_types``: labelled entities that are not caller PII (presidio-research's ``GPE``,
``ORGANIZATION``, ``TITLE``, ``NRP``, ``AGE``, ``DATE_TIME``, ``DOMAIN_NAME``; SLURP's places,
dates, events ...). Spans of those types are neither gold nor background: a prediction over them
is neither right nor wrong, and they are never recalled.

Why characters, and which ones
------------------------------
Redaction masks characters, so a figure over characters is what matters to a reader of the
redacted text: half a card number masked leaks the other half. Only non-whitespace characters
count, so spacing ("four one one one" vs "4111"), a span boundary that takes or leaves a
trailing blank, and the newlines of a written address do not move the figures.

Figures
-------
* recall of gold type T: non-space characters of the gold-T spans that lie under ANY predicted
  span, over all non-space characters of the gold-T spans. Type-agnostic on purpose: a card
  number masked as ``<ACCOUNT_NUMBER>`` is still masked.
* spans fully masked of type T: the share of gold-T spans with every non-space character under
  some prediction (the stricter figure: a span masked all but one digit does not count).
* precision of predicted type P: non-space characters of the predicted-P spans that lie inside
  any gold span, over all non-space characters of the predicted-P spans. Characters inside an
  ignore span (and not inside a gold span) are removed from both.
* overall recall and precision: the same over the union of all gold / all predicted spans.
* F2 = 5PR / (4P + R): recall weighs four times as much as precision, as fits redaction.
* confusion: for each gold span, the predicted type covering most of its characters
  (``"-"`` when nothing covers it), counted per gold type. For diagnosis only.

Counts are summed over examples (micro averages), and ``combine`` sums them over sets.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

NOTHING = "-"  # the "predicted type" of a gold span that nothing covers, in the confusion counts


class SpanLike(Protocol):
    """Anything with a type and character offsets: ``Span``, or the redactor's ``Entity``."""

    @property
    def type(self) -> str: ...

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...


@dataclass(frozen=True)
class Span:
    type: str
    start: int
    end: int


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    spans: tuple[Span, ...]

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Example:
        spans = tuple(Span(str(s["type"]), int(s["start"]), int(s["end"])) for s in row.get("spans", ()))
        return cls(id=str(row["id"]), text=str(row["text"]), spans=spans)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "spans": [{"type": s.type, "start": s.start, "end": s.end} for s in self.spans],
        }


@dataclass(frozen=True)
class EvalSet:
    """Labelled examples plus the span types that are ignored (neither gold nor background)."""

    name: str
    examples: tuple[Example, ...]
    ignore_types: frozenset[str] = frozenset()

    def gold_counts(self) -> Counter[str]:
        """Number of gold (not ignored) spans per type."""
        return Counter(s.type for ex in self.examples for s in ex.spans if s.type not in self.ignore_types)


def load_examples(path: str | Path) -> list[Example]:
    """Examples from a JSON-lines file, one example object per line."""
    with open(path, encoding="utf-8") as fh:
        return [Example.from_dict(json.loads(line)) for line in fh if line.strip()]


def write_examples(path: str | Path, examples: Iterable[Example]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")


@dataclass
class TypeScore:
    """Character counts for one type (or ``ALL``) and the figures derived from them.

    The recall side comes from gold spans of this type, the precision side from predicted spans
    of this type; either side is empty (None figures) when the type occurs on one side only.
    """

    type: str
    gold_spans: int = 0
    fully_masked: int = 0
    gold_chars: int = 0
    gold_chars_masked: int = 0
    pred_spans: int = 0
    pred_chars: int = 0
    pred_chars_correct: int = 0

    @property
    def recall(self) -> float | None:
        return self.gold_chars_masked / self.gold_chars if self.gold_chars else None

    @property
    def precision(self) -> float | None:
        return self.pred_chars_correct / self.pred_chars if self.pred_chars else None

    @property
    def fully_masked_share(self) -> float | None:
        return self.fully_masked / self.gold_spans if self.gold_spans else None

    @property
    def f2(self) -> float | None:
        return f_beta(self.precision, self.recall, 2.0)

    def add(self, other: TypeScore) -> None:
        self.gold_spans += other.gold_spans
        self.fully_masked += other.fully_masked
        self.gold_chars += other.gold_chars
        self.gold_chars_masked += other.gold_chars_masked
        self.pred_spans += other.pred_spans
        self.pred_chars += other.pred_chars
        self.pred_chars_correct += other.pred_chars_correct

    def figures(self) -> dict[str, Any]:
        """The figures as plain JSON-able values (rounded to 4 places)."""
        return {
            "recall": _round(self.recall),
            "precision": _round(self.precision),
            "f2": _round(self.f2),
            "spans": self.gold_spans,
            "fully_masked": _round(self.fully_masked_share),
            "pred_spans": self.pred_spans,
        }


@dataclass
class Score:
    """Per-type and overall figures of one system on one set (or several, combined)."""

    overall: TypeScore = field(default_factory=lambda: TypeScore("ALL"))
    per_type: dict[str, TypeScore] = field(default_factory=dict)
    confusion: dict[str, Counter[str]] = field(default_factory=dict)
    examples: int = 0

    def type_score(self, type_: str) -> TypeScore:
        if type_ not in self.per_type:
            self.per_type[type_] = TypeScore(type_)
        return self.per_type[type_]

    def add(self, other: Score) -> None:
        self.overall.add(other.overall)
        for t, ts in other.per_type.items():
            self.type_score(t).add(ts)
        for t, counts in other.confusion.items():
            self.confusion.setdefault(t, Counter()).update(counts)
        self.examples += other.examples

    def gold_types(self) -> list[str]:
        return sorted(t for t, ts in self.per_type.items() if ts.gold_spans)

    def pred_only_types(self) -> list[str]:
        return sorted(t for t, ts in self.per_type.items() if not ts.gold_spans and ts.pred_spans)


def f_beta(precision: float | None, recall: float | None, beta: float = 2.0) -> float | None:
    """(1 + b^2) P R / (b^2 P + R); 0 when nothing was recalled (even with no predictions at
    all), otherwise None when either figure is undefined."""
    if recall is None:
        return None
    if recall == 0:
        return 0.0
    if precision is None:
        return None
    b2 = beta * beta
    denom = b2 * precision + recall
    return (1 + b2) * precision * recall / denom if denom else 0.0


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _mask(text: str, spans: Iterable[SpanLike]) -> set[int]:
    """Positions of the non-space characters under any of ``spans`` (clamped to the text)."""
    out: set[int] = set()
    n = len(text)
    for s in spans:
        for i in range(max(0, s.start), min(n, s.end)):
            if not text[i].isspace():
                out.add(i)
    return out


def score_example(example: Example, predicted: Iterable[SpanLike], ignore_types: Iterable[str] = ()) -> Score:
    """Figures for one example; see the module docstring for the definitions."""
    ignore = frozenset(ignore_types)
    text = example.text
    gold = [s for s in example.spans if s.type not in ignore]
    preds = [p for p in predicted if p.end > p.start]
    gold_all = _mask(text, gold)
    ignored = _mask(text, (s for s in example.spans if s.type in ignore)) - gold_all
    pred_all = _mask(text, preds)
    result = Score(examples=1)

    by_gold: dict[str, list[Span]] = defaultdict(list)
    for s in gold:
        by_gold[s.type].append(s)
    for t, spans in by_gold.items():
        ts = result.type_score(t)
        chars = _mask(text, spans)
        ts.gold_chars += len(chars)
        ts.gold_chars_masked += len(chars & pred_all)
        for s in spans:
            own = _mask(text, [s])
            if not own:
                continue  # a blank span has nothing to mask
            ts.gold_spans += 1
            ts.fully_masked += own <= pred_all
            cover: Counter[str] = Counter()
            for p in preds:
                cover[p.type] += len(own & _mask(text, [p]))
            best = max(sorted(cover), key=lambda k: cover[k], default=None)
            top = best if best is not None and cover[best] > 0 else NOTHING
            result.confusion.setdefault(t, Counter())[top] += 1

    by_pred: dict[str, list[SpanLike]] = defaultdict(list)
    for p in preds:
        by_pred[p.type].append(p)
    for t, pspans in by_pred.items():
        ts = result.type_score(t)
        ts.pred_spans += len(pspans)
        chars = _mask(text, pspans) - ignored
        ts.pred_chars += len(chars)
        ts.pred_chars_correct += len(chars & gold_all)

    o = result.overall
    o.gold_spans = sum(ts.gold_spans for ts in result.per_type.values())
    o.fully_masked = sum(ts.fully_masked for ts in result.per_type.values())
    o.gold_chars = len(gold_all)
    o.gold_chars_masked = len(gold_all & pred_all)
    o.pred_spans = len(preds)
    scored_pred = pred_all - ignored
    o.pred_chars = len(scored_pred)
    o.pred_chars_correct = len(scored_pred & gold_all)
    return result


def score(
    examples: Sequence[Example],
    predictions: Sequence[Iterable[SpanLike]],
    ignore_types: Iterable[str] = (),
) -> Score:
    """Figures of one system over a set: ``predictions[i]`` are the spans found in ``examples[i]``."""
    if len(examples) != len(predictions):
        raise ValueError(f"{len(examples)} examples but {len(predictions)} prediction lists")
    ignore = frozenset(ignore_types)
    total = Score()
    for ex, preds in zip(examples, predictions, strict=True):
        total.add(score_example(ex, preds, ignore))
    return total


def score_set(eval_set: EvalSet, predictions: Sequence[Iterable[SpanLike]]) -> Score:
    return score(eval_set.examples, predictions, eval_set.ignore_types)


def combine(scores: Iterable[Score]) -> Score:
    """Counts summed over several scores (micro average over the union of their examples)."""
    total = Score()
    for s in scores:
        total.add(s)
    return total


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def markdown_table(scores: Mapping[str, Score], title: str | None = None) -> str:
    """Side-by-side figures of several systems on one set, one row per type, then ``ALL``.

    Gold types first (recall, spans fully masked, precision of the same-named predicted type,
    F2), then types only predicted (precision only), then the overall row.
    """
    systems = list(scores)
    gold_types = sorted({t for s in scores.values() for t in s.gold_types()})
    pred_types = sorted({t for s in scores.values() for t in s.pred_only_types()} - set(gold_types))
    header = ["type", "spans"]
    for name in systems:
        header += [f"{name} R", f"{name} full", f"{name} P", f"{name} F2"]
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |")

    def row(label: str, pick: Any) -> None:
        spans = max((pick(s).gold_spans for s in scores.values()), default=0)
        cells = [label, str(spans) if spans else ""]
        for name in systems:
            ts = pick(scores[name])
            cells += [_fmt(ts.recall), _fmt(ts.fully_masked_share), _fmt(ts.precision), _fmt(ts.f2)]
        lines.append("| " + " | ".join(cells) + " |")

    for t in gold_types + pred_types:
        row(t, lambda s, t=t: s.per_type.get(t, TypeScore(t)))
    row("**ALL**", lambda s: s.overall)
    return "\n".join(lines)


def confusion_table(score_: Score) -> str:
    """Markdown: for each gold type, how many spans each predicted type covered most of."""
    lines = ["| gold type | covered mostly by (spans) |", "| --- | --- |"]
    for t in sorted(score_.confusion):
        counts = score_.confusion[t]
        cells = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"| {t} | {cells} |")
    return "\n".join(lines)
