"""Audio files to timed transcripts, in bounded chunks: what ``voiceloop transcribe`` runs over any number of files.

Files are decoded a chunk at a time (16 kHz float32 is 64 KB per second of audio, so memory stays
bounded however many files are given), and each chunk is handed to the engine whole, so it can
sort the utterances by length and batch them. Results come back in the order the files were given;
a file that cannot be decoded gets its reason and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.asr import AsrEngine
from core.audio import SAMPLE_RATE, decode_16k, word_json

CHUNK_BATCHES = 8  # engine batches decoded per chunk: enough utterances to sort by length


@dataclass(frozen=True)
class FileTranscript:
    path: Path
    text: str = ""
    words: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    error: str | None = None  # why the file could not be transcribed (then text and words are empty)

    def record(self) -> dict[str, Any]:
        """The JSON line of this file: ``{path, text, words}``, or ``{path, error}``."""
        if self.error is not None:
            return {"path": str(self.path), "error": self.error}
        return {"path": str(self.path), "text": self.text, "words": self.words}


def decode_file(path: Path) -> np.ndarray:
    """16 kHz mono float32 samples of an audio file; ValueError with a reason a person can act on."""
    if path.is_dir():
        raise ValueError("is a folder, not an audio file")
    if not path.exists():
        raise ValueError("no such file")
    return decode_16k(str(path))


def transcribe_files(engine: AsrEngine, paths: Sequence[Path], batch_size: int, window_s: float,
                     progress: Callable[[int], None] | None = None) -> Iterator[FileTranscript]:
    """Each file's transcript, in order; ``progress(n)`` is told how many files are finished so far."""
    chunk = batch_size * CHUNK_BATCHES
    for first in range(0, len(paths), chunk):
        part = paths[first : first + chunk]
        audios: dict[int, np.ndarray] = {}
        errors: dict[int, str] = {}
        for position, path in enumerate(part):
            try:
                audios[position] = decode_file(path)
            except ValueError as err:
                errors[position] = str(err)
        order = sorted(audios)
        before = first + len(errors)  # files finished before this chunk's transcription

        def advance(done: int, _total: int, before: int = before) -> None:
            if progress is not None:
                progress(before + done)

        transcripts = engine.transcribe_words_batch(
            [audios[i] for i in order], batch_size=batch_size, window_s=window_s, progress=advance
        )
        results = dict(zip(order, transcripts, strict=True))
        for position, path in enumerate(part):
            if position in errors:
                yield FileTranscript(path, error=errors[position])
                continue
            text, words = results[position]
            duration = audios[position].size / SAMPLE_RATE
            yield FileTranscript(path, text, [word_json(w, duration) for w in words], duration)
        if progress is not None:
            progress(first + len(part))
