"""The gate's statistics alone (inference excluded, predictions given): how long ``decide`` takes.

Issue 6 goal: 3,000 utterances with 10,000 bootstrap resamples in under 5 s. The evidence is
synthetic but shaped like a real golden set: intent labels over 77 intents, per-utterance ASR word
errors, 6 voices x 2 channels x 4 SNR bins of slices, 40 digit strings and 6 clean recordings.
Prints one JSON line: the median of ``--repeats`` runs and what was computed.

    .venv/bin/python benchmarks/gate_stats.py --utterances 3000 --resamples 10000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

import numpy as np
from common import emit  # benchmarks/common.py

from core.settings import GateConfig
from training.gate import AsrEvidence, GateEvidence, decide


def evidence(n: int, seed: int = 0) -> GateEvidence:
    rng = np.random.default_rng(seed)
    labels = [f"intent{i % 77}" for i in range(n)]

    def predictions(accuracy: float) -> list[str]:
        return [y if hit else "other" for y, hit in zip(labels, rng.random(n) < accuracy, strict=True)]

    ref_words = rng.integers(3, 20, n)
    slices = [{"voice": f"voice{i % 6}", "channel": ("clean16k", "telephone8k")[i % 2], "snr": f"snr{i % 4}"}
              for i in range(n)]
    asr = AsrEvidence(
        ref_words=ref_words,
        challenger_errors=rng.binomial(ref_words, 0.28),
        champion_errors=rng.binomial(ref_words, 0.30),
        slices=slices,
        challenger_digits_correct=(rng.random(40) < 0.45).astype(float),
        champion_digits_correct=(rng.random(40) < 0.40).astype(float),
        challenger_clean_errors=np.array([1, 0, 2, 0, 1, 1]),
        champion_clean_errors=np.array([1, 0, 2, 0, 1, 1]),
    )
    return GateEvidence(labels, predictions(0.93), predictions(0.92), champion_version="1", asr=asr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=3000)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = evidence(args.utterances)
    config = GateConfig(n_bootstrap=args.resamples)
    times = []
    for _ in range(args.repeats):
        fresh = replace(data)  # evidence keeps what a decision computed; each repeat starts from none
        started = time.perf_counter()
        decision = decide(fresh, config)
        times.append(time.perf_counter() - started)
    intervals = sum(1 for c in [*decision.criteria, *decision.asr_slices] if c.interval is not None)
    emit(figure="gate_statistics_seconds", utterances=args.utterances, resamples=args.resamples,
         bootstrap_intervals=intervals, median_seconds=round(statistics.median(times), 2),
         runs=[round(t, 2) for t in times], load=os.getloadavg())


if __name__ == "__main__":
    main()
