"""compute.device (auto | cpu | cuda) resolved for torch and CTranslate2, the error when cuda is absent, and
training and transcription on the resolved device; all on the CPU, with or without a GPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import core.device as device_module  # noqa: E402
from core.device import CT2_COMPUTE_TYPES, Ct2Device, DeviceUnavailable, ct2_device, resolve_device  # noqa: E402
from core.settings import AsrConfig, AsrLoraSettings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NO_GPU = "no GPU in this test"


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither library sees a GPU, whatever machine runs the test: the tests stay on the CPU."""
    monkeypatch.setattr(device_module, "torch_cuda_problem", lambda: NO_GPU)
    monkeypatch.setattr(device_module, "ct2_cuda_problem", lambda: NO_GPU)


def pinned_torch() -> str:
    """torch's version in constraints.txt, without its local label (2.13.0+cpu -> 2.13.0)."""
    line = next(line for line in (REPO / "constraints.txt").read_text().splitlines() if line.startswith("torch=="))
    return line.removeprefix("torch==").split("+")[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU for torch")
def test_here_auto_is_the_cpu_and_cuda_says_what_was_checked_and_how_to_fix_it() -> None:
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(DeviceUnavailable) as raised:
        resolve_device("cuda")
    message = str(raised.value)
    assert "compute.device is cuda but torch cannot use a GPU" in message
    assert "built without CUDA" in message or "sees no GPU" in message
    assert "compute.device: cpu" in message


def test_torch_built_without_cuda_names_the_install_of_the_pinned_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    with pytest.raises(DeviceUnavailable) as raised:
        resolve_device("cuda")
    message = str(raised.value)
    assert "built without CUDA" in message
    assert f"pip install torch=={pinned_torch()} --index-url https://download.pytorch.org/whl/cu12" in message
    assert resolve_device("auto") == "cpu"


def test_torch_with_cuda_but_no_visible_gpu_points_at_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(DeviceUnavailable, match="sees no GPU") as raised:
        resolve_device("cuda")
    assert "CUDA_VISIBLE_DEVICES='' hides every GPU" in str(raised.value)
    assert "built without CUDA" not in str(raised.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == resolve_device("cuda") == "cuda"


def test_cpu_asks_neither_library_and_a_wrong_setting_names_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    def asked() -> str:
        raise AssertionError("cpu must not probe for a GPU")

    monkeypatch.setattr(device_module, "torch_cuda_problem", asked)
    monkeypatch.setattr(device_module, "ct2_cuda_problem", asked)
    assert resolve_device("cpu") == "cpu"
    assert ct2_device("cpu") == Ct2Device("cpu", "int8")
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("gpu")


def test_ctranslate2_device_and_compute_type(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctranslate2

    assert CT2_COMPUTE_TYPES == {"cpu": "int8", "cuda": "float16"}
    assert ct2_device("cpu", "float32") == Ct2Device("cpu", "float32")  # a given compute type wins
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)
    assert ct2_device("auto") == Ct2Device("cpu", "int8")
    with pytest.raises(DeviceUnavailable, match="CTranslate2 cannot use a GPU") as raised:
        ct2_device("cuda")
    assert "get_cuda_device_count() is 0" in str(raised.value) and "CUDA 12" in str(raised.value)
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 1)
    assert ct2_device("auto") == ct2_device("cuda") == Ct2Device("cuda", "float16")
    assert ct2_device("cuda", "int8_float16") == Ct2Device("cuda", "int8_float16")


def test_the_speech_engine_loads_on_the_resolved_device(no_gpu: None) -> None:
    from core.asr import AsrEngine

    engine = AsrEngine(device="auto", cpu_threads=1)
    assert (engine.device, engine.compute_type) == ("cpu", "int8")
    loaded = engine._model.model  # CTranslate2's own report of where it runs
    assert loaded.device == "cpu" and loaded.compute_type.startswith("int8")
    with pytest.raises(DeviceUnavailable, match=NO_GPU):
        AsrEngine(device="cuda")
    with pytest.raises(DeviceUnavailable, match=NO_GPU):
        AsrEngine.for_throughput(device="cuda")


def test_the_gate_refuses_transcripts_made_on_two_devices() -> None:
    from training.asr.finetune import AsrChallengerRun, AsrEvaluation, GoldenAudio
    from training.promotion import AsrCandidate, ChampionAsr, asr_evidence

    golden = GoldenAudio([], [], [])
    run = AsrChallengerRun("run", Path("asr_model"), golden, 10.0, 8, reused=True, device="cuda")
    with pytest.raises(ValueError, match="made on cuda and the champion's on cpu"):
        asr_evidence(AsrCandidate(run, golden, 10.0), ChampionAsr("base", AsrEvaluation([], []), device="cpu"))


class _Tokenizer:
    """What Whisper training asks of a tokenizer, over a 64-token vocabulary (0 starts, 1 ends, 2: no timestamps)."""

    eos_token_id = 1

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [3 + ord(c) % 61 for c in text]

    def convert_tokens_to_ids(self, token: str) -> int:
        return {"<|startoftranscript|>": 0, "<|notimestamps|>": 2}[token]


def _tiny_whisper() -> Any:
    """A Whisper of random weights, small enough to train a step in a blink."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    return WhisperForConditionalGeneration(WhisperConfig(
        vocab_size=64, d_model=16, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_target_positions=64,
        decoder_start_token_id=0, pad_token_id=1, bos_token_id=0, eos_token_id=1,
        suppress_tokens=None, begin_suppress_tokens=None))


def test_a_whisper_lora_step_trains_on_the_resolved_device(no_gpu: None) -> None:
    from training.asr import windowed
    from training.asr.train import Utterance, train_whisper_lora

    rng = np.random.default_rng(0)
    clips = [Utterance(rng.normal(0, 0.1, 16_000).astype(np.float32), text) for text in ("one two", "three")]
    fed: set[str] = set()
    model = _tiny_whisper()
    model.model.decoder.register_forward_pre_hook(
        lambda _module, _args, kwargs: fed.add(kwargs["input_ids"].device.type), with_kwargs=True)
    seen: list[tuple[str, float]] = []
    config = AsrConfig(epochs=1, batch_size=2, lora=AsrLoraSettings(r=2, alpha=4, encoder_layers=1))
    trained = train_whisper_lora(model, _Tokenizer(), clips, config, device="auto",
                                 on_epoch=lambda _e, metrics, base: seen.append(
                                     (next(base.parameters()).device.type, metrics["train_loss"])))
    assert {p.device.type for p in trained.parameters()} == {"cpu"} and fed == {"cpu"}
    assert len(seen) == 1 and seen[0][0] == "cpu" and np.isfinite(seen[0][1])
    lora_b = [p for name, p in trained.named_parameters() if "lora_B" in name]
    assert lora_b and any(float(p.detach().abs().sum()) > 0 for p in lora_b)  # a step was taken
    features = torch.from_numpy(windowed.log_mel(clips[0].audio, 1000))[None]
    assert windowed.greedy_decode(trained.base_model.model, windowed.encode(trained.base_model.model, features),
                                  [0, 2], 1, 3)  # decodes where it trained
    with pytest.raises(DeviceUnavailable, match=NO_GPU):
        train_whisper_lora(_tiny_whisper(), _Tokenizer(), clips, config, device="cuda")


def test_an_intent_training_step_runs_on_the_resolved_device(no_gpu: None, tmp_path: Path) -> None:
    import training.intent.train as intent_train
    from core.settings import IntentConfig, LoraSettings
    from training.intent.model import build_model
    from training.intent.train import train_intent_model

    texts = ["where is my card", "my card has not arrived", "what is the exchange rate", "euro to dollar rate"]
    labels = ["card_arrival", "card_arrival", "exchange_rate", "exchange_rate"]
    config = IntentConfig(epochs=1, batch_size=4, max_length=16, probe_steps=2, seed=0, members=1,
                          lexical_weight=0.0, lora=LoraSettings(r=2, alpha=4, top_layers=1))
    fed: set[str] = set()

    def watched(*args: Any) -> Any:  # the model the run builds reports where its head's input is
        model = build_model(*args)
        model.head.register_forward_pre_hook(lambda _module, inputs: fed.add(inputs[0].device.type))
        return model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(intent_train, "build_model", watched)
        result = train_intent_model(texts, labels, sorted(set(labels)), config, tmp_path / "model", device="auto")
    assert result.device == "cpu" and fed == {"cpu"} and result.history
    with pytest.raises(DeviceUnavailable, match=NO_GPU):
        train_intent_model(texts, labels, sorted(set(labels)), config, tmp_path / "never", device="cuda")
    assert not (tmp_path / "never").exists()  # stopped before any work
