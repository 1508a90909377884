"""LoRA fine-tuning of Whisper on short fixed windows, with the frozen encoder layers cached.

The encoder layers below the LoRA ones never change, so their outputs are computed once per
utterance and reused every epoch (``lora.encoder_layers`` = 0 caches the whole encoder: only the
decoder learns). Targets are the text tokens after Whisper's <|startoftranscript|><|notimestamps|>
prompt, ended by <|endoftext|>; the loss is plain token cross-entropy.

The model and each batch go to the training device (``compute.device``, core/device.py); the cached
states stay in memory on the CPU and travel to the device a batch at a time.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.asr import token_cap
from core.audio import SAMPLE_RATE
from core.device import resolve_device
from core.settings import AsrConfig
from training.adapters import load_lora_weights
from training.asr import windowed
from training.precision import autocast, native_bf16

ADAPTER_DIR = "adapter"
_CACHE_BATCH = 16


@dataclass(frozen=True)
class Utterance:
    audio: np.ndarray  # float32 mono 16 kHz
    text: str


def lora_target_regex(modules: Sequence[str], encoder_layers: int, total_encoder_layers: int) -> str:
    """PEFT ``target_modules`` regex: the named Linear layers of the decoder and the top encoder layers."""
    names = "|".join(re.escape(m) for m in modules)
    scopes = [r".*decoder\..*"]
    if encoder_layers > 0:
        first = total_encoder_layers - min(encoder_layers, total_encoder_layers)
        layers = "|".join(str(i) for i in range(first, total_encoder_layers))
        scopes.append(rf".*encoder\.layers\.({layers})\..*")
    return rf"({'|'.join(scopes)})\.({names})$"


class _Batches:
    """Utterances grouped by window size with the frozen encoder layers' outputs cached (on the CPU)."""

    def __init__(self, model: Any, utterances: Sequence[Utterance], window_s: float, frozen_layers: int,
                 bf16: bool = False, device: str = "cpu") -> None:
        self.frozen_layers = frozen_layers
        self.device = device
        self.groups = windowed.group_by_window([u.audio for u in utterances], window_s)
        self.cache: dict[int, torch.Tensor] = {}
        with torch.inference_mode(), autocast(bf16, device):
            for frames, members in self.groups.items():
                for start in range(0, len(members), _CACHE_BATCH):
                    chunk = members[start : start + _CACHE_BATCH]
                    mels = [windowed.log_mel(utterances[i].audio, frames) for i in chunk]
                    features = torch.from_numpy(np.stack(mels)).to(device)
                    hidden = windowed.run_layers(model, windowed.embed(model, features), 0, frozen_layers)
                    for i, h in zip(chunk, hidden, strict=True):
                        self.cache[i] = h.float().to("cpu", copy=True)  # a copy: not a view holding the batch

    def epoch(self, batch_size: int, rng: random.Random) -> list[list[int]]:
        batches = []
        for members in self.groups.values():
            order = list(members)
            rng.shuffle(order)
            batches += [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        rng.shuffle(batches)
        return batches

    def encoder_states(self, model: Any, batch: list[int]) -> torch.Tensor:
        hidden = torch.stack([self.cache[i] for i in batch]).to(self.device)
        return windowed.finish(model, windowed.run_layers(model, hidden, self.frozen_layers))


def _teacher_forcing(token_lists: list[list[int]], prompt: list[int], eot: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs (prompt + text) and targets (text + end-of-text), -100 where nothing is learnt."""
    length = len(prompt) + max(len(t) for t in token_lists)
    inputs = torch.full((len(token_lists), length), eot, dtype=torch.long)
    targets = torch.full((len(token_lists), length), -100, dtype=torch.long)
    for row, tokens in enumerate(token_lists):
        sequence = [*prompt, *tokens, eot]
        inputs[row, : len(sequence) - 1] = torch.tensor(sequence[:-1])
        targets[row, len(prompt) - 1 : len(sequence) - 1] = torch.tensor(sequence[len(prompt) :])
    return inputs, targets


def served_cap(samples: int, prompt_length: int) -> int:
    """New tokens serving lets greedy decoding write for a clip: CTranslate2 4.8's Whisper ``generate``
    stops after max_length / 2 new tokens (measured: 46 -> 23, 100 -> 50, 448 -> 224), and serving
    passes max_length = prompt + ``token_cap``. Decoding the merged model with the same cap makes a
    looping utterance cost the same words in both, so their WERs compare."""
    return (prompt_length + token_cap(samples / SAMPLE_RATE)) // 2


def transcribe_hf(
    model: Any, tokenizer: Any, audios: Sequence[np.ndarray], window_s: float, batch_size: int = 16,
    max_new_tokens: int = 440,
) -> list[str]:
    """Greedy transcripts from a transformers Whisper on the same windows and token caps as serving
    (on the model's device)."""
    prompt, eot = windowed.prompt_ids(tokenizer), tokenizer.eos_token_id
    device = next(model.parameters()).device
    texts = [""] * len(audios)
    model.eval()
    with torch.inference_mode():
        for frames, members in sorted(windowed.group_by_window(audios, window_s).items()):
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                features = torch.from_numpy(np.stack([windowed.log_mel(audios[i], frames) for i in chunk]))
                states = windowed.encode(model, features.to(device))
                caps = [min(max_new_tokens, served_cap(audios[i].shape[0], len(prompt))) for i in chunk]
                decoded = windowed.greedy_decode(model, states, prompt, eot, max(caps))
                for i, tokens, cap in zip(chunk, decoded, caps, strict=True):
                    texts[i] = tokenizer.decode(tokens[:cap]).strip()
    return texts


def train_whisper_lora(
    model: Any,
    tokenizer: Any,
    train: Sequence[Utterance],
    config: AsrConfig,
    *,
    on_epoch: Callable[[int, dict[str, float], Any], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    device: str = "cpu",
    init_adapter: Path | None = None,
) -> Any:
    """Wrap ``model`` with LoRA, train it on ``train`` and return the PEFT model (not merged).

    ``init_adapter``: a saved adapter folder (the champion's, unmerged) whose LoRA weights the training
    starts from instead of PEFT's initialisation (a warm start, training/warm_start.py).

    ``on_epoch(epoch, metrics, model)`` is called after each epoch with the LoRA-injected transformers
    model in eval mode. ``device``: cpu, cuda or auto (core/device.py); ``model`` is moved there and
    the returned model stays there.
    """
    from peft import LoraConfig, get_peft_model

    device = resolve_device(device)
    if not train:
        raise ValueError("no training utterances: the ASR training set is empty")
    model.to(device)
    torch.manual_seed(config.seed)
    total_layers = int(model.config.encoder_layers)
    trainable_layers = min(config.lora.encoder_layers, total_layers)
    lora = LoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=lora_target_regex(config.lora.target_modules, trainable_layers, total_layers),
    )  # task_type left unset: SEQ_2_SEQ_LM breaks Whisper (STACK_NOTES)
    peft_model = get_peft_model(model, lora)
    if init_adapter is not None:
        load_lora_weights(peft_model, init_adapter)
    base = peft_model.base_model.model
    prompt, eot = windowed.prompt_ids(tokenizer), tokenizer.eos_token_id
    labels = [tokenizer.encode(" " + u.text.strip(), add_special_tokens=False)[: config.max_target_tokens]
              for u in train]
    bf16 = config.bf16 and native_bf16(device)
    batches = _Batches(base, train, config.window_s, total_layers - trainable_layers, bf16, device)
    steps_per_epoch = sum(math.ceil(len(g) / config.batch_size) for g in batches.groups.values())
    total_steps = max(1, steps_per_epoch * config.epochs)
    warmup = max(1, int(total_steps * config.warmup_ratio))
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad],
                                  lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total_steps - s) / total_steps)
    )
    rng = random.Random(config.seed)
    done = 0
    for epoch in range(config.epochs):
        peft_model.train()
        losses = []
        for batch in batches.epoch(config.batch_size, rng):
            inputs, targets = (t.to(device) for t in _teacher_forcing([labels[i] for i in batch], prompt, eot))
            with autocast(bf16, device):
                logits = windowed.decoder_logits(base, batches.encoder_states(base, batch), inputs)
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                     targets.reshape(-1))
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            done += 1
            if progress:
                progress(done, total_steps)
        if on_epoch:
            peft_model.eval()
            on_epoch(epoch, {"train_loss": float(np.mean(losses))}, base)
    peft_model.eval()
    return peft_model


def scale_adapter(peft_model: Any, scale: float) -> None:
    """Multiply every LoRA update of ``peft_model`` by ``scale`` (in place; 1: unchanged, 0: the base model).

    Merging a scaled update is weight-space interpolation between the base and the fine-tuned
    model (WiSE-FT, Wortsman et al. 2022): the update is low-rank and added to frozen weights, so
    ``W + scale * dW`` is exactly the point ``scale`` of the way from base to fine-tuned.
    """
    from peft.tuners.lora import LoraLayer

    if not 0 <= scale <= 1:
        raise ValueError(f"merge scale must be between 0 and 1, got {scale}")
    for module in peft_model.modules():
        if isinstance(module, LoraLayer):
            module.scale_layer(scale)


def save_merged(peft_model: Any, processor: Any, out_dir: Path, scale: float = 1.0) -> Path:
    """Merge the LoRA weights (scaled by ``scale``: :func:`scale_adapter`) into the base model and save it
    with its processor (transformers format)."""
    if scale != 1:
        scale_adapter(peft_model, scale)
    merged = peft_model.merge_and_unload()
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out_dir))
    processor.save_pretrained(str(out_dir))
    return out_dir
