"""Fine-tune the ASR challenger, export it for serving, and score it; tracked in MLflow.

One run: LoRA training (loss per epoch, WER per epoch on held-out training calls), the adapter,
the merged model exported to CTranslate2 int8 (what serving loads and the gate scores), golden
WER overall and by slice (voice, channel, SNR) with a plot, digit accuracy on a real FSDD
speaker training never hears, and word errors on real clean recordings (clean_speech.py).
Runs are keyed by dataset digests + configuration, so a re-run after a crash reuses a finished
run instead of training again. Training runs on torch's device and the transcripts on CTranslate2's
(``compute.device``, resolved by core/device.py; the CPU unless told).
"""

from __future__ import annotations

import hashlib
import random
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np

from core.compute import ShardMap, in_process
from core.device import ct2_device, resolve_device
from core.settings import AsrConfig
from training.asr.data import load_utterance
from training.asr.metrics import digit_accuracy, slice_table, utterance_errors, wer, wer_by_slice_plot
from training.datasets import ASR_TRAIN, DatasetVersion
from training.finetune import DEVICE_TAG, flat_params, reusable_run, train_key

if TYPE_CHECKING:
    from training.warm_start import WarmStart

MODEL_ARTIFACT = "asr_model"
ADAPTER_ARTIFACT = "asr_adapter"
TRAIN_KEY_TAG = "voiceloop.asr_train_key"
DATA_KEY_TAG = "voiceloop.asr_data_key"  # as training/finetune.py's, for ASR runs
SLICE_KEYS = ("voice", "channel", "snr_db")
DIGIT_EVAL_SIZE = 40


@dataclass
class AsrEvaluation:
    """One model's transcripts of the golden turns and the digit set, aligned with the references."""

    hypotheses: list[str]
    digit_hypotheses: list[str]
    clean_hypotheses: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, golden: GoldenAudio, texts: Sequence[str]) -> AsrEvaluation:
        """Split the texts of ``golden.everything()`` back into golden, digit and clean hypotheses."""
        turns, digits = len(golden.audios), len(golden.audios) + len(golden.digit_audios)
        return cls(list(texts[:turns]), list(texts[turns:digits]), list(texts[digits:]))

    def texts(self) -> list[str]:
        """Every transcript in :meth:`GoldenAudio.everything` order (what :meth:`of` splits)."""
        return [*self.hypotheses, *self.digit_hypotheses, *self.clean_hypotheses]

    def scores(self, golden: GoldenAudio) -> dict[str, Any]:
        errors = utterance_errors(golden.references, self.hypotheses)
        clean = utterance_errors(golden.clean_references, self.clean_hypotheses)
        return {
            "wer": wer(errors),
            "digit_accuracy": digit_accuracy(golden.digit_references, self.digit_hypotheses),
            "slices": slice_table(golden.rows, errors, SLICE_KEYS),
            "clean_speech_errors": sum(e.errors for e in clean),
            "clean_speech_words": sum(e.ref_words for e in clean),
        }


@dataclass
class GoldenAudio:
    """The golden customer turns (redacted audio), the held-out digit set and the clean recordings, decoded once."""

    audios: list[np.ndarray]
    references: list[str]
    rows: list[dict[str, Any]]  # per utterance: slice keys, and call_id + turn (joins the intent labels)
    digit_audios: list[np.ndarray] = field(default_factory=list)
    digit_references: list[str] = field(default_factory=list)
    clean_audios: list[np.ndarray] = field(default_factory=list)
    clean_references: list[str] = field(default_factory=list)
    key: str = ""  # names this evaluation set (golden digest + digit and clean sets); "" = unnamed
    version: DatasetVersion | None = None  # the golden version it was loaded from (a reference, no rows)

    @classmethod
    def load(cls, golden: DatasetVersion, digit_eval: int = DIGIT_EVAL_SIZE, clean_speech: bool = True) -> GoldenAudio:
        from training.asr.clean_speech import clean_speech_set
        from training.asr.digits import digit_eval_set

        data = golden.load()
        digits = digit_eval_set(digit_eval) if digit_eval else []
        clean = clean_speech_set() if clean_speech else []
        return cls(
            audios=[load_utterance(a) for a in data["audio"]] if golden.rows else [],
            references=list(data["text"]) if golden.rows else [],
            rows=[{**{k: data[k][i] for k in SLICE_KEYS}, "call_id": data["call_id"][i], "turn": data["turn"][i]}
                  for i in range(golden.rows)],
            digit_audios=[d.audio for d in digits],
            digit_references=[d.text for d in digits],
            clean_audios=[c.audio for c in clean],
            clean_references=[c.text for c in clean],
            key=hashlib.sha256(f"{golden.digest}|digits={digit_eval}|clean={clean_speech}".encode()).hexdigest()[:24],
            version=golden.reference(),
        )

    def transcribe(self, model: str | Path | None, window_s: float, batch_size: int,
                   progress: Callable[[int, int], None] | None = None, compute_type: str | None = None,
                   cores: int | None = None, device: str = "cpu", shards: ShardMap = in_process) -> AsrEvaluation:
        """Transcribe everything with a CTranslate2 model (None: the bundled base model) as serving would,
        on ``cores`` one-thread workers (None: every core up to 4), or on a GPU (``device``). ``compute_type``:
        None for the device's own (int8 on the CPU, float16 on a GPU; core/device.py). ``shards``: the run's
        Dask workers (flows/fan_out.py); on the CPU the batches go to them when they are a cluster elsewhere,
        with the same texts (core/asr_shards.py)."""
        from core.asr import AsrEngine
        from core.asr_shards import on_workers, transcribe_shards

        placement = ct2_device(device, compute_type)
        if on_workers(shards, placement.device):
            heard = transcribe_shards(shards, str(model) if model else None, self.everything(), batch_size,
                                      window_s, placement.compute_type, progress)
            return AsrEvaluation.of(self, [h.text for h in heard])
        engine = AsrEngine.for_throughput(str(model) if model else None, cores, compute_type=compute_type,
                                          window_s=window_s, device=device)
        return AsrEvaluation.of(self, engine.transcribe_batch(self.everything(), batch_size=batch_size,
                                                              progress=progress))

    def everything(self) -> list[np.ndarray]:
        """Golden turns, digit strings and clean recordings in one list (:meth:`AsrEvaluation.of` splits texts)."""
        return [*self.audios, *self.digit_audios, *self.clean_audios]


# The headline scores and the MLflow metrics a run logs them as (_log_scores).
HEADLINE_METRICS = {"wer": "golden_wer", "digit_accuracy": "golden_digit_accuracy",
                    "clean_speech_errors": "clean_speech_word_errors"}


@dataclass
class AsrChallengerRun:
    """A trained (or reused) ASR challenger: its export and its golden transcripts.

    A reused run transcribes the golden audio only when something asks for the transcripts: a
    re-run whose bundle was gated already replays the recorded decision and never does.
    """

    run_id: str
    model_dir: Path  # the CTranslate2 export
    golden: GoldenAudio
    window_s: float
    batch_size: int
    reused: bool
    device: str = "cpu"  # CTranslate2's device for its golden transcripts (core/device.py)
    progress: Callable[[int, int], None] | None = field(default=None, repr=False)
    shards: ShardMap = field(default=in_process, repr=False)  # where the golden transcripts are made
    logged: dict[str, float] = field(default_factory=dict, repr=False)  # the run's MLflow metrics
    _evaluation: AsrEvaluation | None = field(default=None, repr=False)

    @property
    def transcribed(self) -> bool:
        """Whether the golden transcripts exist (made by this run, or asked for since)."""
        return self._evaluation is not None

    @property
    def evaluation(self) -> AsrEvaluation:
        if self._evaluation is None:
            self._evaluation = self.golden.transcribe(self.model_dir, self.window_s, self.batch_size, self.progress,
                                                      device=self.device, shards=self.shards)
        return self._evaluation

    @cached_property
    def scores(self) -> dict[str, Any]:
        return self.evaluation.scores(self.golden)

    def headline(self) -> dict[str, Any]:
        """Golden WER, digit-string accuracy and clean-recording word errors: as the run logged them, else scored."""
        if self._evaluation is None and all(metric in self.logged for metric in HEADLINE_METRICS.values()):
            values = {key: self.logged[metric] for key, metric in HEADLINE_METRICS.items()}
        else:
            values = {key: self.scores[key] for key in HEADLINE_METRICS}
        return {**values, "clean_speech_errors": int(values["clean_speech_errors"])}


def _split_dev(rows: list[dict[str, Any]], share: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out whole calls (never digit rows) for the per-epoch WER."""
    calls = sorted({r["call_id"] for r in rows if r["call_id"]})
    random.Random(seed).shuffle(calls)
    dev_calls = set(calls[: int(round(len(calls) * share))]) if len(calls) >= 10 else set()
    train = [i for i, r in enumerate(rows) if r["call_id"] not in dev_calls]
    return train, [i for i, r in enumerate(rows) if r["call_id"] in dev_calls]


def _training_rows(train_sets: Sequence[DatasetVersion], limit: int | None,
                   warm: WarmStart | None = None) -> list[dict[str, Any]]:
    """The rows to train on: every row (a warm run: its picked ones), the customer turns capped at ``limit``."""
    rows: list[dict[str, Any]] = []
    for dataset in train_sets:
        data = dataset.load()
        taken = [data[i] for i in (warm.rows_of(dataset.name) if warm else range(dataset.rows))]
        if limit is not None and dataset.name == ASR_TRAIN:
            taken = taken[-limit:]
        rows += taken
    return rows


def metric_name(slice_name: str) -> str:
    """An MLflow-safe metric name for a slice ("snr=<10 dB" -> "snr_lt10dB", "voice=en-gb+f3" -> "voice_en-gb_f3")."""
    name = slice_name.replace(">=", "ge").replace("<", "lt").replace("=", "_").replace(" ", "")
    return re.sub(r"[^A-Za-z0-9_\-.:/]", "_", name)


def _log_scores(prefix: str, scores: dict[str, Any]) -> None:
    mlflow.log_metric(f"{prefix}_wer", scores["wer"])
    mlflow.log_metric(f"{prefix}_digit_accuracy", scores["digit_accuracy"])
    if scores["clean_speech_words"]:
        mlflow.log_metric("clean_speech_word_errors", scores["clean_speech_errors"])
    for row in scores["slices"]:
        if row["n"] and row["ref_words"]:
            mlflow.log_metric(f"{prefix}_wer.{metric_name(row['slice'])}"[:250], row["wer"])


def warm_config(config: AsrConfig, warm: WarmStart | None) -> AsrConfig:
    """The configuration a run trains with: a warm run's epochs and learning rate are the warm start's."""
    return warm.tuned(config, ("learning_rate",)) if warm is not None else config


def asr_train_key(train_sets: Sequence[DatasetVersion], golden: DatasetVersion, config: AsrConfig,
                  warm: WarmStart | None = None) -> str:
    """The identity of an ASR challenger run: its datasets, its configuration and where a warm run starts."""
    return train_key([*train_sets, golden], warm_config(config, warm), warm)


def finished_asr_run(train_sets: Sequence[DatasetVersion], golden: DatasetVersion, config: AsrConfig,
                     warm: WarmStart | None = None) -> str | None:
    """The finished run :func:`finetune_asr` would reuse for these inputs, if any (training/finetune.py
    ``reusable_run``)."""
    return reusable_run(asr_train_key(train_sets, golden, config, warm), asr_train_key(train_sets, golden, config),
                        TRAIN_KEY_TAG, DATA_KEY_TAG)


def finetune_asr(
    train_sets: Sequence[DatasetVersion],
    golden: DatasetVersion,
    config: AsrConfig,
    work_dir: Path,
    cache_dir: Path,
    *,
    golden_audio: GoldenAudio | None = None,
    tags: dict[str, str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    device: str = "cpu",
    transcribe_device: str = "cpu",
    warm: WarmStart | None = None,
    shards: ShardMap = in_process,
) -> AsrChallengerRun:
    """Train (or reuse) the ASR challenger, export it and transcribe the golden set with it.

    ``device``: torch's device for training (:func:`core.device.resolve_device`); ``transcribe_device``:
    CTranslate2's for the golden transcripts (:func:`core.device.ct2_device`; the champion's must match).
    ``warm``: start from the champion's adapter and train on its picked rows for its epochs
    (training/warm_start.py). ``shards``: the run's Dask workers, which transcribe the golden set when they are
    a cluster elsewhere.
    """
    from training.asr.convert import load_base_whisper
    from training.asr.export import export_ctranslate2
    from training.asr.train import Utterance, save_merged, train_whisper_lora, transcribe_hf

    key, data_key = asr_train_key(train_sets, golden, config, warm), asr_train_key(train_sets, golden, config)
    reused_run = reusable_run(key, data_key, TRAIN_KEY_TAG, DATA_KEY_TAG)
    config = warm_config(config, warm)
    transcribe_device = ct2_device(transcribe_device).device  # cuda without a GPU stops here, before any work
    golden_audio = golden_audio or GoldenAudio.load(golden)

    def tick(stage: str) -> Callable[[int, int], None] | None:
        return (lambda done, total: progress(stage, done, total)) if progress else None

    if reused_run:
        model_dir = Path(mlflow.artifacts.download_artifacts(run_id=reused_run, artifact_path=MODEL_ARTIFACT,
                                                             dst_path=str(work_dir / key)))
        return AsrChallengerRun(reused_run, model_dir, golden_audio, config.window_s, config.batch_transcribe,
                                reused=True, device=transcribe_device, progress=tick("evaluate"),
                                logged=mlflow.get_run(reused_run).data.metrics, shards=shards)

    device = resolve_device(device)
    rows = _training_rows(train_sets, config.max_train_turns, warm)
    train_idx, dev_idx = _split_dev(rows, config.dev_share, config.seed)
    utterances = [Utterance(load_utterance(rows[i]["audio"]), rows[i]["text"]) for i in range(len(rows))]
    run_tags = {TRAIN_KEY_TAG: key, DATA_KEY_TAG: data_key, **(tags or {}), DEVICE_TAG: device}
    with mlflow.start_run(run_name="retrain-asr", tags=run_tags) as run:
        mlflow.log_params(flat_params("asr", config.model_dump()))
        mlflow.log_params({f"dataset.{d.name}": d.digest for d in [*train_sets, golden]})
        mlflow.log_params({"asr.train_utterances": len(train_idx), "asr.dev_utterances": len(dev_idx)})
        if warm is not None:
            mlflow.log_params(warm.params())
        model, processor = load_base_whisper(config.base_model, cache_dir)
        dev = [utterances[i] for i in dev_idx]

        def on_epoch(epoch: int, metrics: dict[str, float], trained: Any) -> None:
            if dev:
                texts = transcribe_hf(trained, processor.tokenizer, [u.audio for u in dev], config.window_s)
                metrics = {**metrics, "dev_wer": wer(utterance_errors([u.text for u in dev], texts))}
            mlflow.log_metrics(metrics, step=epoch)

        started = time.perf_counter()
        peft_model = train_whisper_lora(model, processor.tokenizer, [utterances[i] for i in train_idx], config,
                                        on_epoch=on_epoch, progress=tick("train"), device=device,
                                        init_adapter=warm.init_dir if warm else None)
        mlflow.log_metric("train_seconds", time.perf_counter() - started)  # per-epoch dev WER included
        out = work_dir / key
        peft_model.save_pretrained(str(out / ADAPTER_ARTIFACT))
        mlflow.log_artifacts(str(out / ADAPTER_ARTIFACT), ADAPTER_ARTIFACT)
        merged = save_merged(peft_model, processor, out / "merged", config.lora.merge_scale)
        model_dir = export_ctranslate2(merged, out / MODEL_ARTIFACT, "int8", config.window_s)
        challenger = AsrChallengerRun(run.info.run_id, model_dir, golden_audio, config.window_s,
                                      config.batch_transcribe, reused=False, device=transcribe_device,
                                      progress=tick("evaluate"), shards=shards)
        scores = challenger.scores
        _log_scores("golden", scores)
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_dict({"slices": scores["slices"]}, "evaluation/asr_slices.json")
            plot = wer_by_slice_plot({"challenger": scores["slices"]}, Path(tmp) / "asr_wer_by_slice.png")
            mlflow.log_artifact(str(plot), "plots")
        mlflow.log_artifacts(str(model_dir), MODEL_ARTIFACT)
        return challenger
