"""How often the gate passes an equally good challenger, and a worse one, at a given golden-set size.

Issue 19, part 5: the gate must know its power. Three steps, one JSON line per figure:

1. **Discordance between two seeds of the shipped intent recipe** (``params.yaml`` section ``intent``):
   trained twice (seeds 0 and 1) on the BANKING77 train text of data/sample (10,003 utterances) and
   scored on its test text (3,080). Text, not ASR transcripts. The share of test utterances that one
   model gets right and the other wrong is the discordance the gate sees between two equally good
   models. Training takes minutes, so the result is kept in ``--discordance`` (read back when there).
2. **Simulated pairs**: per golden turn, both right / only the champion / only the challenger / both
   wrong, drawn with the measured accuracy and discordance (an equal challenger), or with ``--worse``
   more turns that only the champion gets right (a worse one); labels spread over the 77 intents. Each
   pair goes through :func:`training.gate.decide` with params.yaml's gate: the intent criterion's
   status (the gate's own ``intent_accuracy``, paired bootstrap) and the verdict of every criterion
   intent evidence supports (``intent_accuracy`` and the intent-group slice tests; the ASR criteria
   need audio and are not simulated) are counted.
3. **The recommended golden-set size**: the margin's size at ``power`` (training/power.py) for the upper
   95% bound of the measured discordance, rounded up to a hundred, then a hundred more at a time until
   the bar is met with 95% confidence (Wilson bounds over the pairs): an equal challenger passes the
   intent criterion >= 90% of the time, one 2 points worse <= 5%. Then the demo's size, for comparison.
   ``--assumed 0.06`` does the same for a discordance assumed instead of measured (the issue's 6%).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gate_power.py --assumed 0.06
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see benchmarks/intent_accuracy.py

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from statistics import NormalDist  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from common import emit, scratch  # noqa: E402  # benchmarks/common.py
from intent_accuracy import DEFAULT_DATA, label_names, read_split  # noqa: E402

from core.corpus import intent_names  # noqa: E402
from core.settings import GateConfig, IntentConfig  # noqa: E402
from training.gate import GateEvidence, decide  # noqa: E402
from training.power import recommended_size, wilson  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEMO_SIZE = 850  # the demo's labelled golden turns (issue 19)
MAX_STEPS = 10  # hundreds of turns added to the formula's size, at most, looking for the bar


@dataclass(frozen=True)
class SeedPair:
    """Right (1) or wrong (0) per BANKING77 test utterance, for two seeds of the shipped recipe."""

    seeds: tuple[int, int]
    first: np.ndarray
    second: np.ndarray
    train_seconds: tuple[float, float]

    @property
    def accuracy(self) -> float:
        return float((self.first.mean() + self.second.mean()) / 2)

    @property
    def discordance(self) -> float:
        return float(np.mean(self.first != self.second))

    def to_json(self) -> dict[str, object]:
        def bits(right: np.ndarray) -> str:
            return "".join(map(str, right.astype(int)))

        return {"seeds": list(self.seeds), "train_seconds": list(self.train_seconds),
                "first": bits(self.first), "second": bits(self.second)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SeedPair:
        def bits(key: str) -> np.ndarray:
            return np.frombuffer(str(data[key]).encode(), dtype=np.uint8) - ord("0")

        seeds, seconds = data["seeds"], data["train_seconds"]
        assert isinstance(seeds, list) and isinstance(seconds, list)
        return cls((int(seeds[0]), int(seeds[1])), bits("first"), bits("second"),
                   (float(seconds[0]), float(seconds[1])))


def shipped_intent_config() -> IntentConfig:
    """The intent recipe the retrain trains: IntentConfig's defaults under params.yaml's ``intent`` section."""
    return IntentConfig(**yaml.safe_load((REPO / "params.yaml").read_text())["intent"])


def measure(seeds: tuple[int, int], threads: int) -> SeedPair:
    """Train the shipped recipe once per seed on BANKING77 train text; right or wrong on its test text."""
    import torch

    from training.intent.predict import IntentModel
    from training.intent.train import train_intent_model

    torch.set_num_threads(threads)
    train, test = read_split(DEFAULT_DATA / "train.csv"), read_split(DEFAULT_DATA / "test.csv")
    names = label_names(DEFAULT_DATA, train[1])
    truth = np.asarray(test[1])
    right, seconds = [], []
    with scratch("gate-power-") as folder:
        for seed in seeds:
            config = shipped_intent_config().model_copy(update={"seed": seed})
            result = train_intent_model(train[0], train[1], names, config, folder / f"seed{seed}")
            right.append((np.asarray(IntentModel.load(result.out_dir).predict(test[0])) == truth).astype(np.uint8))
            seconds.append(round(result.train_seconds, 1))
    return SeedPair(seeds, right[0], right[1], (seconds[0], seconds[1]))


def seed_pair(path: Path, seeds: tuple[int, int], threads: int) -> SeedPair:
    """The measured pair kept in ``path``, measured and written there first when it is not."""
    if path.exists():
        return SeedPair.from_json(json.loads(path.read_text()))
    pair = measure(seeds, threads)
    path.write_text(json.dumps(pair.to_json()) + "\n")
    return pair


def upper_discordance(pair: SeedPair) -> float:
    """The upper 95% bound of the measured discordance (one seed pair on 3,080 texts)."""
    return wilson(int(np.sum(pair.first != pair.second)), pair.first.size, 0.95)[1]


def golden_size(discordance: float, config: GateConfig) -> int:
    """Golden turns for ``config.power`` at ``config.margin`` against an equal challenger, up to a hundred."""
    return math.ceil(recommended_size(discordance, config.margin, config.confidence, config.power) / 100) * 100


def simulated_pair(n: int, accuracy: float, discordance: float, worse: float, rng: np.random.Generator) -> GateEvidence:
    """``n`` golden turns over the 77 intents in turn; per turn, both right, only the champion, only the challenger
    or both wrong. The champion is right on ``accuracy`` of turns; an equal challenger differs from it on
    ``discordance`` of them, half each way, and a worse one is also wrong on ``worse`` more of the champion's."""
    cells = np.array([accuracy - discordance / 2 - worse, discordance / 2 + worse, discordance / 2,
                      1 - accuracy - discordance / 2])
    drawn = rng.choice(4, size=n, p=cells)
    names = list(intent_names())
    labels = [names[i % len(names)] for i in range(n)]
    wrong = [names[(i + 1) % len(names)] for i in range(n)]
    champion = [y if c in (0, 1) else w for y, w, c in zip(labels, wrong, drawn, strict=True)]
    challenger = [y if c in (0, 2) else w for y, w, c in zip(labels, wrong, drawn, strict=True)]
    return GateEvidence(labels, challenger, champion, champion_version="1")


def normal_power(n: int, discordance: float, worse: float, config: GateConfig) -> float:
    """The normal approximation of the chance the intent criterion passes: P(upper bound < margin)."""
    sd = math.sqrt(discordance + worse - worse**2)  # per-turn difference: +1 on d/2 + worse, -1 on d/2
    z = NormalDist().inv_cdf(1 - (1 - config.confidence) / 2)
    return NormalDist().cdf((config.margin - worse) * math.sqrt(n) / sd - z)


def simulate(n: int, accuracy: float, discordance: float, worse: float, pairs: int, config: GateConfig,
             seed: int) -> dict[str, Any]:
    """Pass rates of the intent criterion and of the whole gate (every criterion intent evidence supports)."""
    rng = np.random.default_rng(seed)
    intent: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    started = time.perf_counter()
    for _ in range(pairs):
        decision = decide(simulated_pair(n, accuracy, discordance, worse, rng), config)
        intent[next(c.status for c in decision.criteria if c.name == "intent_accuracy")] += 1
        verdicts[decision.verdict] += 1

    def rate(count: int) -> dict[str, object]:
        low, high = wilson(count, pairs, 0.95)
        return {"rate": round(count / pairs, 4), "ci95": [round(low, 4), round(high, 4)]}

    return {"golden_turns": n, "discordance": round(discordance, 4), "worse": worse, "pairs": pairs,
            "intent_passes": rate(intent["passed"]), "intent_statuses": dict(intent),
            "normal_approximation": round(normal_power(n, discordance, worse, config), 4),
            "gate_passes": rate(verdicts["promote"]), "gate_verdicts": dict(verdicts),
            "seconds": round(time.perf_counter() - started, 1)}


def meets_bar(equal: dict[str, Any], worse: dict[str, Any]) -> bool:
    """The bar with 95% confidence: an equal challenger passes >= 90% of the time, a worse one <= 5%."""
    return bool(equal["intent_passes"]["ci95"][0] >= 0.9 and worse["intent_passes"]["ci95"][1] <= 0.05)


def scenario(name: str, accuracy: float, discordance: float, size: int, args: argparse.Namespace,
             config: GateConfig) -> int:
    """Simulated pairs (an equal challenger and a worse one) from ``size`` up, a hundred turns at a time, until
    the bar is met with 95% confidence, then at the demo's size; returns the size that met it."""

    def both(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
        runs = [simulate(n, accuracy, discordance, worse, args.pairs, config, seed=int(n + 1000 * worse))
                for worse in (0.0, args.worse)]
        for run in runs:
            emit(figure="gate_power_simulated", scenario=name, margin=config.margin, n_bootstrap=config.n_bootstrap,
                 **run)
        return runs[0], runs[1]

    for step in range(MAX_STEPS):
        if meets_bar(*both(size + 100 * step)):
            break
    found = size + 100 * step
    emit(figure="gate_recommended_golden_turns", scenario=name, golden_turns=found, formula_size=size)
    both(DEMO_SIZE)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--discordance", type=Path, default=REPO / "benchmarks" / "gate_power_discordance.json",
                        help="the measured seed pair: read when there, else measured (minutes) and written there")
    parser.add_argument("--threads", type=int, default=1, help="torch threads when training")
    parser.add_argument("--pairs", type=int, default=1000, help="simulated pairs per size and challenger")
    parser.add_argument("--n-bootstrap", type=int, default=None, help="the gate's resamples (default: params.yaml's)")
    parser.add_argument("--worse", type=float, default=0.02, help="how much worse the worse challenger is")
    parser.add_argument("--assumed", type=float, nargs="*", default=[],
                        help="also simulate at these discordances (sized for each), e.g. the issue's 0.06")
    args = parser.parse_args()
    config = GateConfig(**yaml.safe_load((REPO / "params.yaml").read_text())["gate"])
    if args.n_bootstrap:
        config = config.model_copy(update={"n_bootstrap": args.n_bootstrap})
    pair = seed_pair(args.discordance, (0, 1), args.threads)
    emit(figure="seed_pair_discordance", source="BANKING77 test text (3,080), not ASR transcripts",
         seeds=list(pair.seeds), accuracy=[round(float(pair.first.mean()), 4), round(float(pair.second.mean()), 4)],
         discordance=round(pair.discordance, 4), first_only_right=int(np.sum(pair.first > pair.second)),
         second_only_right=int(np.sum(pair.second > pair.first)), train_seconds=list(pair.train_seconds))
    upper = upper_discordance(pair)
    size = golden_size(upper, config)
    emit(figure="gate_formula_golden_turns", golden_turns=size, discordance_sized_for=round(upper, 4),
         at_measured_discordance=recommended_size(pair.discordance, config.margin, config.confidence, config.power),
         margin=config.margin, one_sided_alpha=round((1 - config.confidence) / 2, 4), power=config.power)
    scenario("measured", pair.accuracy, pair.discordance, size, args, config)
    for assumed in args.assumed:
        scenario(f"assumed {assumed}", pair.accuracy, assumed, golden_size(assumed, config), args, config)


if __name__ == "__main__":
    main()
