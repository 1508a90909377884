"""Rendered calls and what Whisper heard in them, kept by the digest of the rendering inputs, for scenarios to share.

Rendering (espeak-ng, sox) and recognition (Whisper on every turn) are nearly all of a stream's
cost, and scenarios of one seed share most calls: a drift touches a share of the calls and leaves
the rest exactly as planned. The digest covers everything the audio and the recognised text
depend on (call id, voice, channel, SNR, noise seed, pauses, every turn's words and FSDD takes,
the ASR model, :data:`VERSION`) and nothing they do not (start time, caller id, consent, the
outcome), so an untouched call is a hit in any scenario. Entries are ``<digest>.wav`` with
``<digest>.json`` (turn bounds, sample rate, per-turn text and ASR confidence); the JSON is
written last, so an entry with a JSON is complete. Writes are atomic: scenarios may share a cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

from core.asr import Heard
from voiceloop.simulate.plan import CallPlan
from voiceloop.simulate.render import Rendered

VERSION = 1  # bump when rendering or recognition changes what the same inputs give
CACHE_FOLDER = ".voiceloop-render-cache"  # the default: beside the output folder, shared by sibling scenarios


def default_cache(out: Path) -> Path:
    """``<out>/../.voiceloop-render-cache``: scenarios written side by side share one cache."""
    return Path(out).resolve().parent / CACHE_FOLDER


def rendering_digest(plan: CallPlan, asr_name: str) -> str:
    """The digest of everything a call's audio and its recognised text depend on."""
    inputs = {
        "version": VERSION,
        "asr": asr_name,
        "call_id": plan.call_id,  # seeds the pauses inside digit strings
        "voice": [plan.voice, plan.rate_wpm, plan.pitch, plan.digit_speaker],
        "channel": [plan.channel, plan.snr_db, plan.noise_seed],
        "gaps_s": plan.gaps_s,
        "turns": [[t.speaker, t.transcript, [dataclasses.astuple(s) for s in t.segments]] for t in plan.turns],
    }
    return hashlib.blake2b(json.dumps(inputs, sort_keys=True).encode(), digest_size=20).hexdigest()


def _atomic_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


class RenderCache:
    """One cache folder, for one ASR model."""

    def __init__(self, folder: Path, asr_name: str) -> None:
        self.folder = Path(folder)
        self.asr_name = asr_name

    def _paths(self, plan: CallPlan) -> tuple[Path, Path]:
        digest = rendering_digest(plan, self.asr_name)
        return self.folder / f"{digest}.wav", self.folder / f"{digest}.json"

    def fetch(self, plan: CallPlan, audio_path: Path) -> tuple[Rendered, list[Heard]] | None:
        """The cached rendering of ``plan``, its audio copied to ``audio_path``; None when not cached."""
        wav, entry = self._paths(plan)
        try:
            saved = json.loads(entry.read_text(encoding="utf-8"))
            _atomic_copy(wav, audio_path)
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        bounds = tuple((int(a), int(b)) for a, b in saved["bounds"])
        rendered = Rendered(plan.call_id, int(saved["sample_rate"]), int(saved["frames"]), bounds)
        return rendered, [Heard(text, float(logprob), float(no_speech)) for text, logprob, no_speech in saved["heard"]]

    def store(self, plan: CallPlan, audio_path: Path, rendered: Rendered, heard: list[Heard]) -> None:
        """Keep the rendering of ``plan`` (its audio at ``audio_path``) and what was heard in each turn."""
        wav, entry = self._paths(plan)
        _atomic_copy(audio_path, wav)
        saved = {
            "call_id": plan.call_id,
            "sample_rate": rendered.sample_rate,
            "frames": rendered.frames,
            "bounds": [list(b) for b in rendered.bounds],
            "heard": [[h.text, h.avg_logprob, h.no_speech_prob] for h in heard],
        }
        partial = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(saved, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(partial, entry)
