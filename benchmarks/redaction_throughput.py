"""Redaction throughput: voiceloop's batch path against a plain Presidio ``AnalyzerEngine.analyze`` loop.

    .venv/bin/python benchmarks/redaction_throughput.py [--n 1000] [--repeats 3]

Transcripts are distinct and about 40 words: two or three BANKING77 test utterances followed by
a contact-center sentence with spoken PII (data/redaction_eval/contact_center.jsonl), in two
forms: as a lowercase, unpunctuated ASR engine writes them ("spoken") and as written
("cased", the way Whisper writes). The baseline is what a user of Presidio would write: the
default ``AnalyzerEngine`` on the same spaCy model, ``analyze`` on one text at a time. voiceloop
runs ``Redactor.redact_many`` (its batch path) and ``Redactor.redact`` (one at a time); the script
checks that both give identical results. Figures are medians of ``--repeats`` runs, one JSON
line each; threads are pinned to the 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import emit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def transcripts(n: int, seed: int = 0) -> dict[str, list[str]]:
    """``n`` distinct ~40-word transcripts per form (spoken and cased)."""
    import pandas as pd

    utterances = pd.read_csv(ROOT / "data/sample/banking77/test.csv").text.tolist()
    pii = [json.loads(line)["text"] for line in (ROOT / "data/redaction_eval/contact_center.jsonl").open()]
    rng = random.Random(seed)
    cased: list[str] = []
    seen: set[str] = set()
    while len(cased) < n:
        text = " ".join([*rng.sample(utterances, rng.choice((2, 3))), rng.choice(pii).capitalize() + "."])
        if text not in seen:
            seen.add(text)
            cased.append(text)
    spoken = [re.sub(r"\s+", " ", re.sub(r"[^\w\s']", " ", t.lower())).strip() for t in cased]
    return {"spoken": spoken, "cased": cased}


def rate(run: Callable[[], object], count: int, repeats: int) -> float:
    """Median texts per second over ``repeats`` runs."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="distinct transcripts per form")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    import governance.redaction  # noqa: F401, I001  (offline settings before Presidio is imported)
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from governance.redaction.engine import DEFAULT_SPACY_MODEL
    from governance.redaction.redactor import Redactor

    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": DEFAULT_SPACY_MODEL}],
        }
    )
    presidio = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    redactor = Redactor()
    sets = transcripts(args.n)
    words = statistics.mean(len(t.split()) for t in sets["spoken"])
    emit(benchmark="redaction_throughput", figure="words_per_transcript", value=round(words, 1))
    for form, texts in sets.items():
        redactor.redact_many(texts[:50])
        presidio.analyze(texts[0], language="en")

        def presidio_loop(texts: list[str] = texts) -> object:
            return [presidio.analyze(t, language="en") for t in texts]

        def batch_path(texts: list[str] = texts) -> object:
            return redactor.redact_many(texts)

        def one_at_a_time(texts: list[str] = texts) -> object:
            return [redactor.redact(t) for t in texts]

        baseline = rate(presidio_loop, len(texts), args.repeats)
        batch = rate(batch_path, len(texts), args.repeats)
        single = rate(one_at_a_time, len(texts), 1)
        identical = batch_path() == one_at_a_time()
        for figure, value in (
            ("presidio_analyze_loop", baseline),
            ("voiceloop_redact_many", batch),
            ("voiceloop_redact_loop", single),
        ):
            emit(benchmark="redaction_throughput", form=form, figure=figure, transcripts_per_s=round(value, 1))
        emit(
            benchmark="redaction_throughput",
            form=form,
            figure="speedup_vs_presidio_loop",
            value=round(batch / baseline, 2),
            identical_to_one_at_a_time=identical,
        )


if __name__ == "__main__":
    main()
