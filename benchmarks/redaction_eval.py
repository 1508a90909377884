"""Redaction recall, precision and F2 per entity type: plain Presidio defaults vs voiceloop.

    .venv/bin/python benchmarks/redaction_eval.py [--sets NAME ...] [--markdown] [--errors N]

Runs on the sets shipped in ``data/redaction_eval/`` (built by ``benchmarks/redaction_sets.py``)
and scores with ``governance/redaction/scoring.py`` (character overlap, non-space characters,
type-agnostic: see that module's docstring). Prints one JSON line per (dataset, system, type)
and per (dataset, system) overall (``type`` "ALL"), an aggregate dataset "spoken" over the
spoken sets, and one line per quality bar of issue item 5. ``--markdown`` adds side-by-side
tables, ``--errors N`` up to N missed gold spans and N false positives per type for voiceloop,
with their sentences (synthetic and public data).

Systems:
* ``presidio``: ``presidio_analyzer.AnalyzerEngine`` with the same offline spaCy model, every
  default recognizer, default entities and default score threshold (``BatchAnalyzerEngine``).
* ``voiceloop``: ``Redactor().redact_many`` with the project's default ``RedactionConfig``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import emit  # noqa: E402

import governance.redaction  # noqa: E402,F401  (tldextract offline settings before Presidio)
from governance.redaction.scoring import (  # noqa: E402
    EvalSet,
    Score,
    Span,
    SpanLike,
    combine,
    confusion_table,
    load_examples,
    markdown_table,
    score_set,
)

DATA = REPO / "data" / "redaction_eval"
SPOKEN_SETS = ("presidio_synth_spoken", "contact_center", "slurp_person")
WRITTEN_SET = "presidio_synth_written"
SYSTEMS = ("presidio", "voiceloop")
CHUNK = 128

Predictor = Callable[[Sequence[str]], list[list[SpanLike]]]


def load_sets(names: Sequence[str] | None = None, data: Path = DATA) -> dict[str, EvalSet]:
    manifest = json.loads((data / "sets.json").read_text(encoding="utf-8"))
    chosen = list(names) if names else list(manifest)
    unknown = [n for n in chosen if n not in manifest]
    if unknown:
        raise SystemExit(f"unknown set(s) {unknown}; shipped: {list(manifest)}")
    return {
        n: EvalSet(
            name=n,
            examples=tuple(load_examples(data / manifest[n]["file"])),
            ignore_types=frozenset(manifest[n]["ignore_types"]),
        )
        for n in chosen
    }


def presidio_predictor(spacy_model: str) -> Predictor:
    from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": spacy_model}]}
    )
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    batch = BatchAnalyzerEngine(analyzer_engine=analyzer)

    def predict(texts: Sequence[str]) -> list[list[SpanLike]]:
        results = batch.analyze_iterator(texts=list(texts), language="en", batch_size=64)
        return [[Span(r.entity_type, r.start, r.end) for r in rs] for rs in results]

    return predict


def voiceloop_predictor() -> Predictor:
    from governance.redaction.redactor import Redactor

    redactor = Redactor()

    def predict(texts: Sequence[str]) -> list[list[SpanLike]]:
        return [list(r.entities) for r in redactor.redact_many(texts)]

    return predict


def run_system(name: str, predict: Predictor, sets: dict[str, EvalSet]) -> dict[str, list[list[SpanLike]]]:
    """Predictions per set, with progress on stderr."""
    total = sum(len(s.examples) for s in sets.values())
    done = 0
    started = time.perf_counter()
    tty = sys.stderr.isatty()
    out: dict[str, list[list[SpanLike]]] = {}
    for set_name, eval_set in sets.items():
        texts = [ex.text for ex in eval_set.examples]
        preds: list[list[SpanLike]] = []
        for i in range(0, len(texts), CHUNK):
            preds.extend(predict(texts[i : i + CHUNK]))
            done += len(texts[i : i + CHUNK])
            if tty:
                elapsed = time.perf_counter() - started
                print(
                    f"\r{name}: {set_name} {done}/{total} texts, {elapsed:.0f} s", end="", file=sys.stderr, flush=True
                )
        out[set_name] = preds
        if not tty:
            print(f"{name}: {set_name} {done}/{total} texts, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if tty:
        print(file=sys.stderr)
    return out


def emit_score(dataset: str, system: str, sc: Score) -> None:
    for t in sorted(sc.per_type):
        emit(benchmark="redaction", dataset=dataset, system=system, type=t, **sc.per_type[t].figures())
    emit(
        benchmark="redaction", dataset=dataset, system=system, type="ALL", examples=sc.examples, **sc.overall.figures()
    )


def bars(scores: dict[str, dict[str, Score]]) -> None:
    """Issue item 5's quality bars for voiceloop, one line each (``met`` true/false/null)."""
    spoken = scores.get("spoken", {}).get("voiceloop")
    if spoken is not None:
        r, p = spoken.overall.recall, spoken.overall.precision
        emit(bar="spoken recall >= 0.97", value=_r(r), met=None if r is None else r >= 0.97)
        emit(bar="spoken precision >= 0.85", value=_r(p), met=None if p is None else p >= 0.85)
        recalls = {t: spoken.per_type[t].recall for t in spoken.gold_types()}
        worst = min(recalls, key=lambda t: recalls[t] or 0.0) if recalls else None
        value = recalls[worst] if worst else None
        emit(
            bar="spoken recall per type >= 0.9",
            worst_type=worst,
            value=_r(value),
            met=None if value is None else value >= 0.9,
        )
    written = scores.get(WRITTEN_SET, {})
    if "voiceloop" in written and "presidio" in written:
        v, b = written["voiceloop"].overall, written["presidio"].overall
        for measure in ("recall", "precision"):
            mine, base = getattr(v, measure), getattr(b, measure)
            met = None if mine is None or base is None else mine >= base
            emit(bar=f"written {measure} >= plain Presidio", value=_r(mine), presidio=_r(base), met=met)


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _show(text: str, start: int, end: int) -> str:
    return f"{text[:start]}[[{text[start:end]}]]{text[end:]}"


def print_errors(eval_set: EvalSet, preds: list[list[SpanLike]], n: int, seed: int = 0) -> None:
    """Up to ``n`` missed gold spans and ``n`` false positives per type, with their sentences."""
    ignore = eval_set.ignore_types
    missed: dict[str, list[str]] = {}
    false_pos: dict[str, list[str]] = {}
    for ex, ps in zip(eval_set.examples, preds, strict=True):
        covered = {i for p in ps for i in range(p.start, p.end)}
        gold = {i for s in ex.spans if s.type not in ignore for i in range(s.start, s.end)}
        ignored = {i for s in ex.spans if s.type in ignore for i in range(s.start, s.end)}
        for s in ex.spans:
            if s.type in ignore:
                continue
            left = [i for i in range(s.start, s.end) if not ex.text[i].isspace() and i not in covered]
            if left:
                got = ", ".join(
                    f"{p.type}:{ex.text[p.start : p.end]!r}" for p in ps if p.start < s.end and p.end > s.start
                )
                missed.setdefault(s.type, []).append(
                    f"{ex.id} missed {len(left)}/{len(ex.text[s.start : s.end].replace(' ', ''))} chars"
                    f"{' (partly masked by ' + got + ')' if got else ''}: {_show(ex.text, s.start, s.end)}"
                )
        for p in ps:
            wrong = [
                i for i in range(p.start, p.end) if not ex.text[i].isspace() and i not in gold and i not in ignored
            ]
            if wrong:
                false_pos.setdefault(p.type, []).append(
                    f"{ex.id} {len(wrong)} chars outside gold (score {getattr(p, 'score', '?')}): "
                    f"{_show(ex.text, p.start, p.end)}"
                )
    rng = random.Random(seed)
    print(f"\n### voiceloop errors on `{eval_set.name}`\n")
    for title, found in (("missed (gold type)", missed), ("false positives (predicted type)", false_pos)):
        for t in sorted(found):
            items = found[t]
            shown = items if len(items) <= n else sorted(rng.sample(items, n))
            print(f"- {title} {t}: {len(items)} in all, {len(shown)} shown")
            for line in shown:
                print(f"    - {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", help="sets to run (default: all in data/redaction_eval/sets.json)")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--markdown", action="store_true", help="print the side-by-side tables")
    parser.add_argument("--errors", type=int, default=0, metavar="N", help="print N voiceloop errors per type")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)

    sets = load_sets(args.sets, args.data)
    predictions: dict[str, dict[str, list[list[SpanLike]]]] = {}
    for system in args.systems:
        started = time.perf_counter()
        if system == "presidio":
            from core.settings import RedactionConfig

            predict = presidio_predictor(RedactionConfig().spacy_model)
        else:
            predict = voiceloop_predictor()
        print(f"{system}: loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        predictions[system] = run_system(system, predict, sets)

    scores: dict[str, dict[str, Score]] = {}
    for set_name, eval_set in sets.items():
        for system in args.systems:
            scores.setdefault(set_name, {})[system] = score_set(eval_set, predictions[system][set_name])
    spoken = [n for n in SPOKEN_SETS if n in sets]
    if len(spoken) > 1:
        scores["spoken"] = {sys_: combine(scores[n][sys_] for n in spoken) for sys_ in args.systems}
    for dataset, by_system in scores.items():
        for system, sc in by_system.items():
            emit_score(dataset, system, sc)
    bars(scores)

    if args.markdown:
        for dataset, by_system in scores.items():
            title = dataset if dataset != "spoken" else f"spoken ({' + '.join(spoken)})"
            print()
            print(markdown_table(by_system, title=title))
            if "voiceloop" in by_system:
                print(f"\nvoiceloop on {dataset}: gold type -> predicted type covering most of each span\n")
                print(confusion_table(by_system["voiceloop"]))
    if args.errors and "voiceloop" in predictions:
        for set_name, eval_set in sets.items():
            print_errors(eval_set, predictions["voiceloop"][set_name], args.errors)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
