"""Load a trained intent model folder and classify text.

The folder holds only the small parts (LoRA adapter, head, labels, config, and the lexical
model when trained with one); the base encoder is resolved again from the recorded reference,
so folders stay small and portable. With a lexical model the encoder's (member-averaged)
probabilities are blended with it log-linearly; folders without one predict from the encoder alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.intent.lexical import LexicalModel, blend
from training.intent.model import (
    DEFAULT_MEMBER,
    CosineHead,
    IntentClassifier,
    length_sorted_order,
    load_encoder,
    load_tokenizer,
    model_device,
    pad_batch,
)

ADAPTER_DIR = "adapter"
HEAD_FILE = "head.safetensors"
LABELS_FILE = "labels.json"
CONFIG_FILE = "intent_config.json"


def head_file(member: str) -> str:
    """``head.safetensors`` for the first member (the single-model layout), ``head.<name>...`` after."""
    return HEAD_FILE if member == DEFAULT_MEMBER else f"head.{member}.safetensors"


def tokenize(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids without padding (padding happens per batch)."""
    if not texts:  # the tokenizer raises on an empty batch
        return []
    return list(tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"])


def _member_logits(model: IntentClassifier, ids: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
    """One member: its logits. Several: the log of their mean probabilities (softmax of the
    result is the ensemble's distribution). Layers below ``start`` run once for all members."""
    members = model.members
    if len(members) == 1:
        return model(ids, mask).float()
    hidden = model.lower(ids, mask, start) if start else None
    total: torch.Tensor | None = None
    active = model.active
    for name in members:
        model.use(name)
        logits = model.forward_from(hidden, mask, start) if hidden is not None else model(ids, mask)
        probs = torch.softmax(logits.float(), dim=-1)
        total = probs if total is None else total + probs
    model.use(active)
    assert total is not None
    return torch.log(total / len(members))


@torch.inference_mode()
def batched_logits(
    model: IntentClassifier, seqs: list[list[int]], pad_id: int, batch_size: int = 128, start: int = 0
) -> torch.Tensor:
    """Logits in input order, on the CPU: length-sorted batches (little padding) on the model's device."""
    order = length_sorted_order([len(s) for s in seqs])
    device = model_device(model)
    out: torch.Tensor | None = None
    for begin in range(0, len(order), batch_size):
        idx = order[begin : begin + batch_size]
        ids, mask = pad_batch([seqs[i] for i in idx], pad_id, device)
        logits = _member_logits(model, ids, mask, start).cpu()
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
    first_adapted_layer: int = 0
    lexical: LexicalModel | None = None
    lexical_weight: float = 0.0  # 0: the encoder alone (also when there is no lexical model)

    @classmethod
    def load(cls, model_dir: Path) -> IntentModel:
        from peft import PeftModel
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        meta = json.loads((model_dir / CONFIG_FILE).read_text())
        labels = json.loads((model_dir / LABELS_FILE).read_text())
        base = load_encoder(meta["base_model"])
        encoder = PeftModel.from_pretrained(base, str(model_dir / ADAPTER_DIR))

        def head(member: str) -> CosineHead:
            loaded = CosineHead(int(base.config.hidden_size), len(labels), float(meta["head_scale"]))
            loaded.load_state_dict(load_file(str(model_dir / head_file(member))))
            return loaded

        model = IntentClassifier(encoder, head(DEFAULT_MEMBER))
        for member in meta.get("members", [DEFAULT_MEMBER])[1:]:
            encoder.load_adapter(str(model_dir / ADAPTER_DIR / member), adapter_name=member)
            model.heads[member] = head(member)
        model.use(DEFAULT_MEMBER)
        weight = float(meta.get("lexical_weight", 0.0))  # older folders: no key, no lexical files
        lexical = LexicalModel.load(model_dir) if weight > 0 and LexicalModel.exists(model_dir) else None
        if lexical is not None and lexical.labels != labels:
            raise ValueError(f"{model_dir}: the lexical model's labels differ from {LABELS_FILE}")
        return cls(
            model.eval(),
            load_tokenizer(meta["base_model"]),
            labels,
            int(meta["max_length"]),
            int(meta.get("first_adapted_layer", 0)),
            lexical,
            weight if lexical is not None else 0.0,
        )

    def _logits(self, texts: list[str], batch_size: int) -> torch.Tensor:
        """Scores whose softmax is the prediction's distribution: the encoder's logits, or the
        log of its blend with the lexical model."""
        seqs = tokenize(self.tokenizer, texts, self.max_length)
        logits = batched_logits(
            self.model, seqs, int(self.tokenizer.pad_token_id or 0), batch_size, self.first_adapted_layer
        )
        if self.lexical is None or self.lexical_weight <= 0 or not texts:
            return logits
        return blend(logits, self.lexical.log_proba(list(texts)), self.lexical_weight)

    def predict_proba(self, texts: list[str], batch_size: int = 128) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels)), columns in ``labels`` order."""
        return torch.softmax(self._logits(texts, batch_size), dim=-1).numpy()

    def predict(self, texts: list[str], batch_size: int = 128) -> list[str]:
        ids = self._logits(texts, batch_size).argmax(-1).tolist()
        return [self.labels[i] for i in ids]
