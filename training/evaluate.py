"""Evaluation helpers: accuracy and a confusion-matrix plot people can look at."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np


def correct(predictions: Sequence[Hashable], labels: Sequence[Hashable]) -> np.ndarray:
    """1.0 where a prediction equals its label, else 0.0, utterance by utterance (the gate's paired evidence)."""
    return np.asarray([p == y for p, y in zip(predictions, labels, strict=True)], dtype=float)


def accuracy(labels: Sequence[Hashable], predictions: Sequence[Hashable]) -> float:
    """The share of predictions equal to their labels: the one accuracy voiceloop reports."""
    if not labels:
        raise ValueError("no labelled utterances to evaluate")
    return float(correct(predictions, labels).mean())


def confusion_matrix_plot(labels: list[str], predictions: list[str], names: list[str], path: Path) -> Path:
    """Row-normalised confusion matrix; off-diagonal cells are the confusions to read."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(names), len(names)))
    for y, p in zip(labels, predictions, strict=True):
        if y in index and p in index:
            matrix[index[y], index[p]] += 1
    matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(6.0, len(names) * 0.16)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=5)
    ax.set_yticks(range(len(names)), names, fontsize=5)
    ax.set_xlabel("predicted intent")
    ax.set_ylabel("true intent")
    ax.set_title(f"Intent confusion on the golden set (accuracy {accuracy(labels, predictions):.3f})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
