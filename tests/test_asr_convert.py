"""The bundled tiny.en imported into transformers transcribes exactly like faster-whisper.

Retraining starts from the converted model and the evaluation gate compares it with the
faster-whisper baseline, so the import must be lossless: on real recordings both engines'
greedy transcripts must agree word for word once normalised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from training.asr.convert import (
    BUNDLED_MODEL,
    Ct2FormatError,
    bundled_ct2_dir,
    convert_ct2_whisper,
    ensure_bundled_converted,
    load_base_whisper,
    read_ct2_model,
)

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "sample" / "speech_fixtures"
RECORDINGS = sorted((FIXTURES / "librivox").glob("*.wav")) + [FIXTURES / "vosk_digits.wav"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("asr-cache")


@pytest.fixture(scope="module")
def converted(cache: Path) -> tuple[Any, Any]:
    torch.set_num_threads(2)
    model, processor = load_base_whisper(BUNDLED_MODEL, cache)
    return model.eval(), processor


@pytest.fixture(scope="module")
def reference() -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(str(bundled_ct2_dir()), compute_type="float32", cpu_threads=2)


@pytest.fixture(scope="module")
def normalise(converted: tuple[Any, Any]) -> Any:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer(converted[1].tokenizer.english_spelling_normalizer or {})


def _transformers_text(converted: tuple[Any, Any], audio: np.ndarray) -> str:
    model, processor = converted
    features = processor(audio, sampling_rate=16_000, return_tensors="pt").input_features
    with torch.inference_mode():
        ids = model.generate(features, num_beams=1, do_sample=False, max_new_tokens=200)
    text: str = processor.batch_decode(ids, skip_special_tokens=True)[0]
    return text


def _faster_whisper_text(reference: Any, audio: np.ndarray) -> str:
    segments, _ = reference.transcribe(
        audio,
        beam_size=1,
        temperature=0.0,
        without_timestamps=True,
        condition_on_previous_text=False,
        vad_filter=False,
    )
    return " ".join(segment.text for segment in segments)


def test_fixtures_present() -> None:
    assert len(RECORDINGS) == 6 and all(p.is_file() for p in RECORDINGS)


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda p: p.stem)
def test_converted_model_matches_faster_whisper(
    converted: tuple[Any, Any], reference: Any, normalise: Any, recording: Path
) -> None:
    from faster_whisper import decode_audio

    audio = decode_audio(str(recording), sampling_rate=16_000)
    ours = normalise(_transformers_text(converted, audio)).split()
    theirs = normalise(_faster_whisper_text(reference, audio)).split()
    assert theirs, f"faster-whisper heard nothing in {recording.name}"
    assert ours == theirs


def test_bundled_conversion_is_reused(cache: Path, converted: tuple[Any, Any]) -> None:
    """A second load from the same cache finds the marker and does not convert again."""
    target = cache / BUNDLED_MODEL
    assert (target / "voiceloop-converted.json").is_file()
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    assert ensure_bundled_converted(cache) == target
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp


def test_missing_model_bin_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(Ct2FormatError, match=r"model\.bin.*not found"):
        convert_ct2_whisper(tmp_path, tmp_path / "out")


def test_corrupt_model_bin_names_the_file(tmp_path: Path) -> None:
    source = bundled_ct2_dir() / "model.bin"
    broken = tmp_path / "model.bin"
    broken.write_bytes(source.read_bytes()[:100_000])  # header intact, variables cut short
    with pytest.raises(Ct2FormatError, match=r"model\.bin.*truncated"):
        read_ct2_model(broken)
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(Ct2FormatError, match=r"model\.bin.*not a CTranslate2 model"):
        read_ct2_model(broken)
