"""Turn one call plan into one mono WAV: the turns in order, pauses between them, then the channel.

Runs in worker threads beside the ASR (it only needs the plan, the sample folder and a path) and
shares no state between calls. It returns where each turn sits, in samples of the
written file, so the caller can cut exactly those samples out for recognition.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from core import synthesis
from core.audio import SAMPLE_RATE, TELEPHONE_RATE
from core.corpus import fsdd_path
from voiceloop.simulate.plan import (
    AGENT_PITCH,
    AGENT_RATE_WPM,
    AGENT_VOICE,
    BOT_PITCH,
    BOT_RATE_WPM,
    BOT_VOICE,
    CallPlan,
    TurnPlan,
)


@dataclass(frozen=True)
class Rendered:
    call_id: str
    sample_rate: int
    frames: int
    bounds: tuple[tuple[int, int], ...]  # per turn: [start, end) in samples of the written file

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def _even(n: int) -> int:
    return n + (n % 2)  # 16 kHz offsets stay exact at 8 kHz


def _turn_audio(plan: CallPlan, turn: TurnPlan, folder: Path, workdir: Path) -> np.ndarray:
    rng = random.Random(f"{plan.call_id}:{turn.transcript}")  # pauses inside a digit string
    parts: list[np.ndarray] = []
    for segment in turn.segments:
        if parts:
            parts.append(np.zeros(int(rng.uniform(0.15, 0.3) * SAMPLE_RATE), dtype=np.float32))
        if segment.digits:
            paths = [
                fsdd_path(folder, d, plan.digit_speaker, t)
                for d, t in zip(segment.digits, segment.takes, strict=True)
            ]
            parts.append(synthesis.fsdd_digits(paths, [rng.uniform(0.08, 0.25) for _ in paths]))
        elif turn.speaker == "bot":
            parts.append(synthesis.tts(segment.text, BOT_VOICE, BOT_RATE_WPM, BOT_PITCH, workdir))
        elif turn.speaker == "agent":
            parts.append(synthesis.tts(segment.text, AGENT_VOICE, AGENT_RATE_WPM, AGENT_PITCH, workdir))
        else:
            parts.append(synthesis.tts(segment.text, plan.voice, plan.rate_wpm, plan.pitch, workdir))
    audio = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    if audio.size == 0:
        raise RuntimeError(f"{plan.call_id}: a {turn.speaker} turn rendered to no audio")
    return synthesis.level(audio)


def render_call(plan: CallPlan, audio_path: Path, folder: Path) -> Rendered:
    """Synthesise, lay out and pass one call through its channel; write ``audio_path`` atomically."""
    with synthesis.scratch() as tmp:
        workdir = Path(tmp)
        pieces: list[np.ndarray] = []
        bounds16: list[tuple[int, int]] = []
        cursor = 0
        for turn, gap in zip(plan.turns, plan.gaps_s, strict=False):
            silence = _even(int(gap * SAMPLE_RATE))
            audio = _turn_audio(plan, turn, folder, workdir)
            audio = np.pad(audio, (0, audio.size % 2))
            pieces += [np.zeros(silence, dtype=np.float32), audio]
            cursor += silence
            bounds16.append((cursor, cursor + audio.size))
            cursor += audio.size
        pieces.append(np.zeros(_even(int(plan.gaps_s[-1] * SAMPLE_RATE)), dtype=np.float32))
        timeline = np.concatenate(pieces)
        if plan.channel != "clean16k":
            assert plan.snr_db is not None
            codec = synthesis.CODECS[plan.channel]
            signal = synthesis.telephone(timeline, bounds16, plan.snr_db, plan.noise_seed, workdir, codec)
            rate, bounds = TELEPHONE_RATE, [(a // 2, b // 2) for a, b in bounds16]
        else:
            signal, rate, bounds = timeline, SAMPLE_RATE, bounds16
        audio_path.parent.mkdir(parents=True, exist_ok=True)
        partial = audio_path.with_name(f".{audio_path.name}.{os.getpid()}.tmp")  # call ids are unique
        sf.write(partial, signal, rate, subtype="PCM_16", format="WAV")
        os.replace(partial, audio_path)
    return Rendered(plan.call_id, rate, int(signal.size), tuple(bounds))
