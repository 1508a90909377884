"""Load a trained intent model folder and classify text.

The folder holds only the small parts (LoRA adapter, head, labels, config); the base encoder
is resolved again from the recorded reference, so folders stay a few MB and portable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.intent.model import (
    CosineHead,
    IntentClassifier,
    length_sorted_order,
    load_encoder,
    load_tokenizer,
    pad_batch,
)

ADAPTER_DIR = "adapter"
HEAD_FILE = "head.safetensors"
LABELS_FILE = "labels.json"
CONFIG_FILE = "intent_config.json"


def tokenize(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids without padding (padding happens per batch)."""
    if not texts:  # the tokenizer raises on an empty batch
        return []
    return list(tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"])


@torch.inference_mode()
def batched_logits(
    model: IntentClassifier, seqs: list[list[int]], pad_id: int, batch_size: int = 128
) -> torch.Tensor:
    """Logits in input order, computed over length-sorted batches (little padding)."""
    order = length_sorted_order([len(s) for s in seqs])
    out: torch.Tensor | None = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, mask = pad_batch([seqs[i] for i in idx], pad_id)
        logits = model(ids, mask).float()
        if out is None:
            out = torch.empty((len(seqs), logits.shape[1]), dtype=torch.float32)
        out[torch.tensor(idx)] = logits
    if out is None:
        return torch.empty((0, model.head.weight.shape[0]))
    return out


@dataclass
class IntentModel:
    """A reloaded intent classifier: ``predict`` for labels, ``predict_proba`` for scores."""

    model: IntentClassifier
    tokenizer: Any
    labels: list[str]
    max_length: int

    @classmethod
    def load(cls, model_dir: Path) -> IntentModel:
        from peft import PeftModel
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        meta = json.loads((model_dir / CONFIG_FILE).read_text())
        labels = json.loads((model_dir / LABELS_FILE).read_text())
        base = load_encoder(meta["base_model"])
        encoder = PeftModel.from_pretrained(base, str(model_dir / ADAPTER_DIR))
        head = CosineHead(int(base.config.hidden_size), len(labels), float(meta["head_scale"]))
        head.load_state_dict(load_file(str(model_dir / HEAD_FILE)))
        model = IntentClassifier(encoder, head).eval()
        return cls(model, load_tokenizer(meta["base_model"]), labels, int(meta["max_length"]))

    def _logits(self, texts: list[str], batch_size: int) -> torch.Tensor:
        seqs = tokenize(self.tokenizer, texts, self.max_length)
        return batched_logits(self.model, seqs, int(self.tokenizer.pad_token_id or 0), batch_size)

    def predict_proba(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels)), columns in ``labels`` order."""
        return torch.softmax(self._logits(texts, batch_size), dim=-1).numpy()

    def predict(self, texts: list[str], batch_size: int = 128) -> list[str]:
        ids = self._logits(texts, batch_size).argmax(-1).tolist()
        return [self.labels[i] for i in ids]
