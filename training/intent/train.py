"""Fine-tune the intent classifier: LoRA on a sentence encoder, cosine head, CPU-friendly.

Recipe (why each piece is there):
- linear probe first: the head is fitted on frozen embeddings before any LoRA step, so
  fine-tuning starts from the frozen-embedding baseline instead of from random logits;
- length-bucketed batches with dynamic padding: utterances are short, padding is most of
  the cost otherwise;
- LoRA only in the top layers (``lora.top_layers``): the frozen lower layers' outputs are
  computed once and cached, so each epoch only runs the adapted layers;
- warmup + linear decay, label smoothing, separate (higher) learning rate for the head;
- a lexical model (TF-IDF n-grams + logistic regression, ``lexical.py``) fitted on the same data
  and shipped alongside: predictions blend it in log-linearly (``lexical_weight``), the reported
  eval accuracy included.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.device import resolve_device
from core.settings import IntentConfig
from training.adapters import load_lora_weights
from training.evaluate import accuracy
from training.intent.lexical import LEXICAL_ARRAYS, LEXICAL_JSON, LexicalModel, blend
from training.intent.model import (
    DEFAULT_MEMBER,
    CosineHead,
    IntentClassifier,
    build_model,
    first_adapted_layer,
    length_sorted_order,
    load_tokenizer,
    lora_config,
    mean_pool,
    model_device,
    num_layers,
    pad_batch,
    portable_ref,
)
from training.intent.predict import (
    ADAPTER_DIR,
    CONFIG_FILE,
    LABELS_FILE,
    batched_logits,
    head_file,
    tokenize,
)
from training.precision import autocast, native_bf16

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]

# The weight average's horizon (1 / (1 - decay) steps) as a share of a run: the default's 500 steps are about
# 30% of a cold run on the demo corpus (about 1,650 steps). A warm start's few steps keep that share; at the
# default decay its average would stay at the champion's weights (8 steps at 0.998 left a model unchanged).
EMA_HORIZON_SHARE = 0.3


def warm_ema_decay(decay: float, total_steps: int) -> float:
    """``decay``, shortened so the average's horizon is at most :data:`EMA_HORIZON_SHARE` of ``total_steps``."""
    return decay if decay <= 0 else min(decay, 1 - 1 / max(1.0, EMA_HORIZON_SHARE * total_steps))


@dataclass
class IntentTrainingResult:
    out_dir: Path
    epochs: int
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    device: str = "cpu"  # where it trained (core/device.py)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def bucketed_batches(lengths: list[int], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of similar length: shuffle, sort within chunks of 50 batches, cut,
    shuffle the batch order. Random enough for SGD, nearly padding-free."""
    perm = rng.permutation(len(lengths)).tolist()
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(perm), chunk):
        part = sorted(perm[start : start + chunk], key=lengths.__getitem__)
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    order = rng.permutation(len(batches)).tolist()
    return [batches[i] for i in order]


class LayerCache:
    """Frozen lower-layer outputs per sentence, so training only runs the adapted layers.

    Built in one inference pass, which also yields the frozen sentence embeddings used to
    fit the head (LoRA's B matrices start at zero, so the model equals the base model then).
    The states stay on the model's device.
    """

    def __init__(
        self, model: IntentClassifier, seqs: list[list[int]], pad_id: int, start: int, bf16: bool = False
    ) -> None:
        self.start = start
        self.states: list[torch.Tensor] = [torch.empty(0)] * len(seqs)
        device = model_device(model)
        pooled = torch.empty((len(seqs), int(model.head.weight.shape[1])), device=device)
        model.eval()
        with torch.inference_mode(), autocast(bf16, device.type):
            for idx in _chunks(length_sorted_order([len(s) for s in seqs]), 256):
                ids, mask = pad_batch([seqs[i] for i in idx], pad_id, device)
                out = model.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True)
                lower = out.hidden_states[start].float()
                for row, i in enumerate(idx):
                    self.states[i] = lower[row, : len(seqs[i])].clone()
                pooled[torch.tensor(idx)] = mean_pool(out.last_hidden_state.float(), mask)
        self.frozen_embeddings = pooled

    def batch(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        states = [self.states[i] for i in idx]
        hidden = nn.utils.rnn.pad_sequence(states, batch_first=True)
        mask = torch.zeros(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        for row, s in enumerate(states):
            mask[row, : s.shape[0]] = 1
        return hidden, mask


class WeightAverage:
    """Exponential moving average of the trainable weights. Averaging along the end of the
    trajectory lands in a flatter spot than the last step, which generalises better."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = decay

    @torch.no_grad()
    def update(self) -> None:
        for avg, p in zip(self.shadow, self.params, strict=True):
            avg.lerp_(p.detach(), 1.0 - self.decay)

    @torch.no_grad()
    def swap(self) -> None:
        for avg, p in zip(self.shadow, self.params, strict=True):
            tmp = p.detach().clone()
            p.copy_(avg)
            avg.copy_(tmp)

    @contextmanager
    def applied(self) -> Iterator[None]:
        self.swap()
        try:
            yield
        finally:
            self.swap()


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def split_works(model: IntentClassifier, seqs: list[list[int]], pad_id: int, start: int) -> bool:
    """Whether running layers ``start..`` from cached states reproduces the full forward pass
    (true for BERT-style encoders); otherwise training falls back to full passes."""
    try:
        model.eval()
        with torch.inference_mode():
            ids, mask = pad_batch(seqs[:8], pad_id, model_device(model))
            full = model.embed(ids, mask)
            split = model.embed_from(model.hidden_at(ids, mask, start), mask, start)
        return bool(torch.allclose(full, split, atol=1e-4))
    except (AttributeError, TypeError, IndexError):
        return False


@torch.no_grad()
def _init_head_prototypes(model: IntentClassifier, emb: torch.Tensor, y: torch.Tensor) -> None:
    unit = nn.functional.normalize(emb, dim=-1)
    for k in range(model.head.weight.shape[0]):
        rows = unit[y == k]
        if len(rows):
            model.head.weight[k] = rows.mean(0)


def fit_head(model: IntentClassifier, emb: torch.Tensor, y: torch.Tensor, config: IntentConfig) -> None:
    """Linear probe on frozen embeddings: class centroids, then full-batch Adam steps."""
    _init_head_prototypes(model, emb, y)
    if config.probe_steps <= 0:
        return
    opt = torch.optim.Adam(model.head.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    for _ in range(config.probe_steps):
        opt.zero_grad()
        loss_fn(model.head(emb), y).backward()
        opt.step()


@torch.no_grad()
def start_head(model: IntentClassifier, init_dir: Path, label_names: list[str], emb: torch.Tensor,
               y: torch.Tensor) -> int:
    """A warm start's head: the saved model's rows for the labels it knows, class centroids for labels new to
    it (no probe: the head already fits the adapter it came with); returns how many labels it knew."""
    from safetensors.torch import load_file

    _init_head_prototypes(model, emb, y)
    known = {name: i for i, name in enumerate(json.loads((init_dir / LABELS_FILE).read_text()))}
    saved = load_file(str(init_dir / head_file(DEFAULT_MEMBER)))
    carried = [(k, known[name]) for k, name in enumerate(label_names) if name in known]
    for k, row in carried:
        model.head.weight[k].copy_(saved["weight"][row])
        model.head.bias[k].copy_(saved["bias"][row])
    return len(carried)


def _train_logits(
    model: IntentClassifier, cache: LayerCache | None, seqs: list[list[int]], idx: list[int], pad_id: int
) -> torch.Tensor:
    """Training forward pass (from the layer cache when there is one)."""
    if cache is not None:
        hidden, mask = cache.batch(idx)
        return model.forward_from(hidden, mask, cache.start)
    ids, mask = pad_batch([seqs[i] for i in idx], pad_id, model_device(model))
    return model(ids, mask)


def _optimizer(model: IntentClassifier, config: IntentConfig) -> torch.optim.Optimizer:
    head = list(model.head.parameters())
    head_ids = {id(p) for p in head}
    adapter = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    return torch.optim.AdamW(
        [
            {"params": adapter, "lr": config.learning_rate, "weight_decay": config.weight_decay},
            {"params": head, "lr": config.head_learning_rate, "weight_decay": 0.0},
        ]
    )


def _schedule(total: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = max(1, int(total * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, leave=False)


@dataclass
class _Batches:
    """What every member trains on: token ids, labels (on the model's device), the layer cache and the eval set."""

    seqs: list[list[int]]
    y: torch.Tensor
    pad_id: int
    cache: LayerCache | None
    bf16: bool
    device: str = "cpu"  # the model's: autocast follows it
    eval_seqs: list[list[int]] | None = None
    eval_y: list[int] | None = None
    eval_cache: LayerCache | None = None
    eval_lexical: np.ndarray | None = None  # the lexical model's log-probabilities of the eval texts
    lexical_weight: float = 0.0


def member_name(k: int) -> str:
    return DEFAULT_MEMBER if k == 0 else f"member{k}"


def _train_member(
    model: IntentClassifier,
    data: _Batches,
    config: IntentConfig,
    seed: int,
    report: Callable[[int, dict[str, float]], None],
    progress: bool,
    label: str,
) -> None:
    """Train the active member (its adapter and head) for ``config.epochs``."""
    opt = _optimizer(model, config)
    rng = np.random.default_rng(seed)
    lengths = [len(s) for s in data.seqs]
    steps_per_epoch = math.ceil(len(data.seqs) / config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(steps_per_epoch * config.epochs, config.warmup_ratio))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    ema = WeightAverage(model, config.ema_decay) if config.ema_decay > 0 else None
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, count = 0.0, 0
        bar = _progress(steps_per_epoch, progress, f"intent {label}epoch {epoch}/{config.epochs}")
        for idx in bucketed_batches(lengths, config.batch_size, rng):
            with autocast(data.bf16, data.device):
                logits = _train_logits(model, data.cache, data.seqs, idx, data.pad_id)
            loss = loss_fn(logits.float(), data.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            bar.update(1)
            bar.set_postfix(loss=f"{total / count:.3f}")
        bar.close()
        metrics = {"train_loss": total / count}
        if data.eval_seqs is not None and data.eval_y is not None:
            with ema.applied() if ema is not None else nullcontext():
                metrics["eval_accuracy"] = _accuracy(
                    model,
                    data.eval_seqs,
                    data.eval_y,
                    data.pad_id,
                    data.eval_cache,
                    data.eval_lexical,
                    data.lexical_weight,
                )
        report(epoch, metrics)
    if ema is not None:
        ema.swap()  # keep the averaged weights


def train_intent_model(
    texts: list[str],
    labels: list[str],
    label_names: list[str],
    config: IntentConfig,
    out_dir: Path,
    *,
    eval_texts: list[str] | None = None,
    eval_labels: list[str] | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = False,
    callers: Sequence[str | None] | None = None,
    device: str = "cpu",
    init_dir: Path | None = None,
    train_rows: Sequence[int] | None = None,
) -> IntentTrainingResult:
    """Train, save everything needed to reload into ``out_dir``, and report per-epoch figures.

    With ``config.members`` > 1, further members (fresh adapter + head, seeds ``seed + 1000 k``)
    are trained the same way on the same cached lower layers; predictions average their
    probabilities. Epochs are reported in one sequence (member k's epoch e is step
    ``k * epochs + e``). Deterministic for ``config.seed`` on a given machine and thread count.
    ``callers``: each text's caller pseudonym (None: public text), for the lexical vocabularies.
    ``device``: where the model and its batches go (cpu, cuda or auto: core/device.py); the saved
    folder is the same either way and loads on the CPU.
    ``init_dir``: a saved model folder to start from (a warm start, training/warm_start.py): its adapter, and
    its head for the labels it knows (:func:`start_head`). ``train_rows``: the indices of ``texts`` the
    encoder and head train on (None: all); the lexical model is always fitted on every text.
    """
    device = resolve_device(device)
    if len(texts) != len(labels) or not texts:
        raise ValueError("texts and labels must be non-empty and of equal length")
    index = {name: i for i, name in enumerate(label_names)}
    unknown = sorted(set(labels) - index.keys())
    if unknown:
        raise ValueError(f"labels not in label_names: {unknown[:5]}")
    started = time.perf_counter()
    lexical = (LexicalModel.fit(texts, labels, label_names, config.lexical_c, callers, config.lexical_min_callers)
               if config.lexical_weight > 0 else None)
    if lexical is not None:
        log.info("lexical model: %d features, %.1f s", lexical.n_features, time.perf_counter() - started)
    seed_everything(config.seed)
    tokenizer = load_tokenizer(config.base_model)
    pad_id = int(tokenizer.pad_token_id or 0)
    rows = list(range(len(texts))) if train_rows is None else list(train_rows)
    if not rows:
        raise ValueError("no rows to train the encoder on (train_rows is empty)")
    seqs = tokenize(tokenizer, [texts[i] for i in rows], config.max_length)
    y = torch.tensor([index[labels[i]] for i in rows], device=device)
    model = build_model(config.base_model, len(label_names), config.lora, config.head_scale).to(device)
    if init_dir is not None:  # before the layer cache: its pooled embeddings are then the saved model's
        load_lora_weights(model.encoder, init_dir / ADAPTER_DIR)
    n_layers = num_layers(model.encoder)
    start = first_adapted_layer(config.lora, n_layers)
    bf16 = config.bf16 and native_bf16(device)
    if start and not config.lora.modules_to_save and split_works(model, seqs, pad_id, start):
        cache: LayerCache | None = LayerCache(model, seqs, pad_id, start, bf16)
        frozen = cache.frozen_embeddings  # type: ignore[union-attr]
    else:
        cache = None
        with autocast(bf16, device):
            frozen = _frozen_embeddings(model, seqs, pad_id).float()
    log.info(
        "frozen pass: %.1f s (cache from layer %s, bf16 %s)",
        time.perf_counter() - started,
        cache.start if cache else None,
        bf16,
    )
    if init_dir is not None:
        carried = start_head(model, init_dir, label_names, frozen, y)
        log.info("warm start from %s: %d of %d labels carried over", init_dir, carried, len(label_names))
    else:
        fit_head(model, frozen, y, config)
    probed = {k: v.detach().clone() for k, v in model.head.state_dict().items()}
    log.info("head probe done at %.1f s", time.perf_counter() - started)

    data = _Batches(seqs, y, pad_id, cache, bf16, device)
    if init_dir is not None:
        steps = math.ceil(len(seqs) / config.batch_size) * config.epochs
        config = config.model_copy(update={"ema_decay": warm_ema_decay(config.ema_decay, steps)})
    if eval_texts:
        data.eval_seqs = tokenize(tokenizer, eval_texts, config.max_length)
        data.eval_y = [index.get(label, -1) for label in eval_labels or []]
        if lexical is not None:
            data.eval_lexical, data.lexical_weight = lexical.log_proba(list(eval_texts)), config.lexical_weight
        if cache is not None:
            data.eval_cache = LayerCache(model, data.eval_seqs, pad_id, cache.start)  # float32, like predict
    history: list[dict[str, float]] = []
    for k in range(config.members):
        if k:
            torch.manual_seed(config.seed + 1000 * k)
            model.add_member(
                member_name(k),
                lora_config(config.lora, n_layers),
                CosineHead(frozen.shape[1], len(label_names), config.head_scale).to(device),
            )
            model.head.load_state_dict(probed)  # the probe is deterministic: fit once, start every member there

        def report(epoch: int, metrics: dict[str, float], k: int = k) -> None:
            history.append(metrics)
            if on_epoch is not None:
                on_epoch(k * config.epochs + epoch, metrics)

        label = f"member {k + 1}/{config.members} " if config.members > 1 else ""
        _train_member(model, data, config, config.seed + 1000 * k, report, progress, label)

    model.eval()
    model.use(DEFAULT_MEMBER)
    save_model(model, out_dir, config, label_names, start, lexical)
    return IntentTrainingResult(
        out_dir=Path(out_dir),
        epochs=config.epochs,
        history=history,
        train_seconds=time.perf_counter() - started,
        device=device,
    )


def _accuracy(
    model: IntentClassifier,
    seqs: list[list[int]],
    y: list[int],
    pad_id: int,
    cache: LayerCache | None,
    lexical: np.ndarray | None = None,
    weight: float = 0.0,
) -> float:
    """Accuracy on held-out text, blended with the lexical log-probabilities as predictions are;
    through the layer cache when there is one (much cheaper)."""
    model.eval()
    if cache is None:
        logits = batched_logits(model, seqs, pad_id)
    else:
        logits = torch.empty((len(seqs), int(model.head.weight.shape[0])))
        with torch.inference_mode():
            for idx in _chunks(length_sorted_order([len(s) for s in seqs]), 128):
                hidden, mask = cache.batch(idx)
                logits[torch.tensor(idx)] = model.forward_from(hidden, mask, cache.start).float().cpu()
    if lexical is not None and weight > 0:
        logits = blend(logits, lexical, weight)
    return accuracy(y, logits.argmax(-1).tolist())


def _frozen_embeddings(model: IntentClassifier, seqs: list[list[int]], pad_id: int) -> torch.Tensor:
    model.eval()
    device = model_device(model)
    pooled = torch.empty((len(seqs), int(model.head.weight.shape[1])), device=device)
    with torch.inference_mode():
        for idx in _chunks(length_sorted_order([len(s) for s in seqs]), 256):
            ids, mask = pad_batch([seqs[i] for i in idx], pad_id, device)
            pooled[torch.tensor(idx)] = model.embed(ids, mask)
    return pooled


def save_model(
    model: IntentClassifier,
    out_dir: Path,
    config: IntentConfig,
    label_names: list[str],
    start: int = 0,
    lexical: LexicalModel | None = None,
) -> None:
    """Adapter folder(s) + head weights + labels + the config needed to rebuild the model.

    PEFT saves the first member's adapter in ``adapter/`` and the others in ``adapter/<name>/``;
    heads go to ``head.safetensors`` and ``head.<name>.safetensors``; the lexical model, if any,
    to ``lexical.json`` + ``lexical.npz`` (no pickle).
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(str(out_dir / ADAPTER_DIR))  # type: ignore[operator]
    for name, head in model.heads.items():
        save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()},
                  str(out_dir / head_file(name)))
    (out_dir / LABELS_FILE).write_text(json.dumps(list(label_names), indent=1))
    if lexical is not None:
        lexical.save(out_dir)
    else:  # a folder reused from an earlier run must not keep a stale lexical model
        for name in (LEXICAL_JSON, LEXICAL_ARRAYS):
            (out_dir / name).unlink(missing_ok=True)
    meta = {
        "format": "voiceloop-intent/1",
        "base_model": portable_ref(config.base_model),
        "max_length": config.max_length,
        "pooling": "mean",
        "head": "cosine",
        "head_scale": config.head_scale,
        "n_labels": len(label_names),
        "members": model.members,
        "first_adapted_layer": start,
        "lexical_weight": config.lexical_weight if lexical is not None else 0.0,
        "config": config.model_dump(),
    }
    (out_dir / CONFIG_FILE).write_text(json.dumps(meta, indent=1))
