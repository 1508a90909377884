"""The leak gate's recall per entity type, on planted leaks and on the redactor's own misses, and its false alarms.

    .venv/bin/python benchmarks/leak_gate.py [--false-alarm-turns 5000] [--errors N]

The leak gate (governance/redaction/leak_gate.py) is the second, independent detector that stops
redacted turns still holding PII. Three figures, one JSON line each:

* ``leak_gate_planted``: per entity type, turns with exactly one leak. Every labelled span of the
  spoken evaluation sets (``data/redaction_eval``) is planted alone: the turn's other spans become
  the redactor's ``<TYPE>`` placeholders, as if redaction had missed just this one. Types the sets
  hold fewer than 100 of are topped up with generated turns (seeded; numbers said as words, as
  ASR writes them). Recall = share of those turns the gate flags (a flagged turn is quarantined,
  whatever type it names). Goal: >= 0.9 per type.
* ``leak_gate_redactor_misses``: the evaluation sentences through voiceloop's redactor; a gold
  span whose value is still in the redacted text verbatim is a real miss; recall = share of those
  turns the gate flags (reported, no goal: these are the hardest cases by construction).
* ``leak_gate_false_alarms``: BANKING77 training utterances (odd rows; even rows are left for
  anyone tuning word lists) redacted by voiceloop's redactor, then gated; rate = share flagged.
  Goal: <= 1% on >= 5,000 turns.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import emit  # noqa: E402
from redaction_eval import SPOKEN_SETS, load_sets  # noqa: E402

import governance.redaction  # noqa: E402,F401  (tldextract offline settings before Presidio)
from governance.redaction.leak_gate import TurnText, leak_gate  # noqa: E402
from governance.redaction.scoring import Example  # noqa: E402

MIN_PER_TYPE = 100
SEED = 20261206
# Types the redactor handles (governance/redaction/redactor.py DEFAULT_ENTITIES).
GATED_TYPES = ("PERSON", "PHONE_NUMBER", "CREDIT_CARD", "EMAIL_ADDRESS", "US_SSN", "PIN", "DATE_OF_BIRTH",
               "ACCOUNT_NUMBER", "STREET_ADDRESS", "ZIP_CODE", "IBAN_CODE", "IP_ADDRESS", "US_BANK_NUMBER",
               "DIGIT_STRING")
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def planted_turns(examples: Sequence[Example], ignore: frozenset[str]) -> list[tuple[str, str]]:
    """(type, turn text) for every gold span, alone in clear: the other spans become placeholders."""
    out = []
    for example in examples:
        spans = [s for s in example.spans if s.type not in ignore]
        for kept in spans:
            text = example.text
            for other in sorted((s for s in example.spans if s is not kept), key=lambda s: s.start, reverse=True):
                if other.start >= kept.end or other.end <= kept.start:
                    text = text[:other.start] + f"<{other.type}>" + text[other.end:]
            out.append((kept.type, text))
    return out


def _said(digits: str) -> str:
    return " ".join(_DIGITS[int(d)] if d.isdigit() else d for d in digits)


def generated_turns(kind: str, n: int, rng: random.Random) -> list[str]:
    """``n`` caller turns holding one value of ``kind``, said the way ASR writes speech."""
    def digits(k: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(k))

    turns = []
    for _ in range(n):
        if kind == "IBAN_CODE":
            country = rng.choice(["g b", "d e", "f r", "n l", "i e", "e s"])
            bank = " ".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(4))
            value = f"{country} {_said(digits(2))} {bank} {_said(digits(14))}"
            frame = rng.choice(["my iban is {}", "the iban is {} please", "send it to iban {}", "it's {}"])
        elif kind == "IP_ADDRESS":
            value = " dot ".join(_said(str(rng.randint(1, 255))) for _ in range(4))
            frame = rng.choice(["my ip address is {}", "the login came from {}", "it says ip {} on the alert"])
        elif kind == "US_BANK_NUMBER":
            value = _said(digits(rng.randint(8, 12)))
            frame = rng.choice(["my bank account number is {}", "the checking account is {}", "account {} please"])
        elif kind == "DIGIT_STRING":
            value = _said(digits(rng.randint(5, 12)))
            frame = rng.choice(["the number is {}", "it's {}", "yes {}", "reference {} thanks"])
        else:
            raise ValueError(f"no generator for {kind}")
        turns.append(frame.format(value))
    return turns


def planted_by_type(rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    sets = load_sets(SPOKEN_SETS)
    by_type: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for eval_set in sets.values():
        for kind, text in planted_turns(eval_set.examples, eval_set.ignore_types):
            if kind in GATED_TYPES:
                by_type[kind].append((eval_set.name, text))
    for kind in GATED_TYPES:
        missing = MIN_PER_TYPE - len(by_type[kind])
        if missing > 0:
            by_type[kind] += [("generated", t) for t in generated_turns(kind, missing, rng)]
    return by_type


def flagged(texts: Sequence[str]) -> list[bool]:
    leaks = {leak.call_id for leak in leak_gate([TurnText(str(i), 0, t) for i, t in enumerate(texts)])}
    return [str(i) in leaks for i in range(len(texts))]


def redactor_misses() -> dict[str, list[str]]:
    """Per type, the redacted sentences in which the redactor left that gold value in clear."""
    from governance.redaction.redactor import Redactor

    redactor = Redactor()
    out: dict[str, list[str]] = defaultdict(list)
    for eval_set in load_sets(SPOKEN_SETS).values():
        results = redactor.redact_many([ex.text for ex in eval_set.examples])
        for example, result in zip(eval_set.examples, results, strict=True):
            for span in example.spans:
                value = example.text[span.start:span.end]
                if span.type in GATED_TYPES and len(value.strip()) >= 3 and value in result.redacted:
                    out[span.type].append(result.redacted)
    return out


def false_alarm_turns(n: int) -> list[str]:
    from core.corpus import load_banking77
    from governance.redaction.redactor import Redactor

    texts = [u.text for u in load_banking77("train")][1::2][:n]
    return [r.redacted for r in Redactor().redact_many(texts)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--false-alarm-turns", type=int, default=5000)
    parser.add_argument("--errors", type=int, default=0, help="print up to N missed turns per type to stderr")
    args = parser.parse_args(argv)
    rng = random.Random(SEED)

    for kind, turns in sorted(planted_by_type(rng).items()):
        hits = flagged([t for _, t in turns])
        by_source: dict[str, list[bool]] = defaultdict(list)
        for (source, _), hit in zip(turns, hits, strict=True):
            by_source[source].append(hit)
        emit(figure="leak_gate_planted", type=kind, turns=len(turns), caught=sum(hits),
             recall=round(sum(hits) / len(turns), 4),
             by_source={source: {"turns": len(h), "recall": round(sum(h) / len(h), 4)}
                        for source, h in sorted(by_source.items())})
        missed = [text for (_, text), hit in zip(turns, hits, strict=True) if not hit]
        for text in missed[:args.errors]:
            print(f"missed {kind}: {text}", file=sys.stderr)
    for kind, turns in sorted(redactor_misses().items()):
        hits = flagged(turns)
        emit(figure="leak_gate_redactor_misses", type=kind, turns=len(turns), caught=sum(hits),
             recall=round(sum(hits) / len(turns), 4))
    turns = false_alarm_turns(args.false_alarm_turns)
    alarms = flagged(turns)
    emit(figure="leak_gate_false_alarms", turns=len(turns), flagged=sum(alarms),
         rate=round(sum(alarms) / len(turns), 4))
    if args.errors:
        for text, alarm in zip(turns, alarms, strict=True):
            if alarm:
                print(f"false alarm: {text}", file=sys.stderr)


if __name__ == "__main__":
    main()
