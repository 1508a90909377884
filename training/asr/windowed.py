"""Whisper in transformers on fixed windows shorter than 30 s, exactly as serving runs it.

Whisper pads every input to a 30 s window; for 2-5 s turns most of the encoder's work is
padding. CTranslate2 (serving) accepts shorter fixed windows and keeps the accuracy
(benchmarks/README.md#asr), but transformers' encoder insists on 3000 frames. This module runs
the same encoder layers on a shorter window (the first positions of the positional embedding,
as CTranslate2 does) so that training, the merged model's evaluation and serving all see the
same features: faster-whisper's feature extractor, zero-padded in the log-mel domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from core.asr import window_features
from core.asr import window_frames as serving_window_frames

FULL_FRAMES = 3000  # Whisper's own 30 s window


@lru_cache(maxsize=1)
def _extractor() -> Any:
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor(feature_size=80)


def window_frames(samples: int, window_s: float) -> int:
    """Mel frames of the window a clip of ``samples`` goes in: serving's rule (``core.asr.window_frames``).

    Clips over 30 s, which serving transcribes window by window, are trained on their first 30 s.
    """
    return serving_window_frames(samples, window_s) or FULL_FRAMES


def group_by_window(audios: Sequence[np.ndarray], window_s: float) -> dict[int, list[int]]:
    """Indices of ``audios`` (16 kHz) per window size in frames, shortest clip first in each group."""
    groups: dict[int, list[int]] = {}
    for index in sorted(range(len(audios)), key=lambda i: audios[i].shape[0]):
        groups.setdefault(window_frames(audios[index].shape[0], window_s), []).append(index)
    return groups


def log_mel(audio: np.ndarray, frames: int) -> np.ndarray:
    """80 x ``frames`` log-mel features of 16 kHz mono float32 audio, padded exactly as serving pads them."""
    features = _extractor()(np.asarray(audio, dtype=np.float32).reshape(-1))
    return np.asarray(window_features(features, frames), dtype=np.float32)


def embed(model: Any, features: torch.Tensor) -> torch.Tensor:
    """The encoder's input to its first layer for ``features`` [batch, 80, frames], any even frames <= 3000.

    transformers' ``WhisperEncoder.forward`` with the length check dropped and the positional
    embedding cut to the window.
    """
    encoder = model.get_encoder()
    frames = features.shape[-1]
    limit = encoder.config.max_source_positions * 2
    if frames % 2 or frames > limit:
        raise ValueError(f"features have {frames} frames; an even number up to {limit} is needed")
    hidden = nn.functional.gelu(encoder.conv1(features))
    hidden = nn.functional.gelu(encoder.conv2(hidden)).permute(0, 2, 1)
    return hidden + encoder.embed_positions.weight[: hidden.shape[1]]  # type: ignore[no-any-return]


def run_layers(model: Any, hidden: torch.Tensor, start: int, stop: int | None = None) -> torch.Tensor:
    """Encoder layers ``start``..``stop`` (LoRA layers inside take part as usual)."""
    for layer in model.get_encoder().layers[start:stop]:
        hidden = layer(hidden, None)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    return hidden


def finish(model: Any, hidden: torch.Tensor) -> torch.Tensor:
    return model.get_encoder().layer_norm(hidden)  # type: ignore[no-any-return]


def encode(model: Any, features: torch.Tensor) -> torch.Tensor:
    """Encoder hidden states of ``features`` on a window of any length (see :func:`embed`)."""
    return finish(model, run_layers(model, embed(model, features), 0))


def prompt_ids(tokenizer: Any) -> list[int]:
    """<|startoftranscript|> (+ language and task for multilingual models) + <|notimestamps|>."""
    prefix = tokenizer.prefix_tokens if hasattr(tokenizer, "prefix_tokens") else []
    ids = [int(i) for i in prefix] or [tokenizer.convert_tokens_to_ids("<|startoftranscript|>")]
    no_timestamps = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    return ids if ids[-1] == no_timestamps else [*ids, no_timestamps]


def decoder_logits(model: Any, encoder_states: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Next-token logits for every position of ``input_ids`` given encoder states."""
    out = model.model.decoder(input_ids=input_ids, encoder_hidden_states=encoder_states, use_cache=False)
    return model.proj_out(out.last_hidden_state)  # type: ignore[no-any-return]


@torch.inference_mode()
def greedy_decode(
    model: Any, encoder_states: torch.Tensor, prompt: Sequence[int], eot: int, max_new_tokens: int
) -> list[list[int]]:
    """Greedy text tokens per utterance (prompt and end-of-text left out), with the decoder's KV cache.

    Whisper's suppressed tokens (generation_config.suppress_tokens) are never chosen, as in
    CTranslate2's decoding, so the merged model and its export decode alike. Runs on the device of
    ``encoder_states``.
    """
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    batch = encoder_states.shape[0]
    suppress = list(getattr(model.generation_config, "suppress_tokens", None) or [])
    # blank and end-of-text are not allowed first (CTranslate2's suppress_blank)
    begin_suppress = list(getattr(model.generation_config, "begin_suppress_tokens", None) or [eot])
    tokens = torch.tensor([list(prompt)] * batch, dtype=torch.long, device=encoder_states.device)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    done = torch.zeros(batch, dtype=torch.bool)
    out: list[list[int]] = [[] for _ in range(batch)]
    step_input = tokens
    for step in range(max_new_tokens):
        result = model.model.decoder(
            input_ids=step_input, encoder_hidden_states=encoder_states, past_key_values=cache, use_cache=True
        )
        cache = result.past_key_values
        logits = model.proj_out(result.last_hidden_state[:, -1])
        if suppress:
            logits[:, suppress] = -torch.inf
        if step == 0:
            logits[:, begin_suppress] = -torch.inf
        chosen = logits.argmax(-1)
        for i, token in enumerate(chosen.tolist()):  # one copy off the device per step
            if not done[i]:
                if token == eot:
                    done[i] = True
                else:
                    out[i].append(token)
        if bool(done.all()):
            break
        step_input = chosen.unsqueeze(1)
    return out
