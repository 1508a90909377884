"""Named degradations to inject into a production stream, so a monitor can be shown the changes it must catch.

The ``--drift`` grammar, which calls each drift touches, and what it changes in them.

A drift is written ``NAME@DAY[-DAY][:SHARE]``: from ``DAY`` (days count from 1) to the second
``DAY`` (default: the end of the stream), on ``SHARE`` of the calls (0 < SHARE <= 1, default per
drift below). Whether a call is touched is a hash of (seed, call id, drift name): the same calls
for the same seed whatever the other drifts, and a larger share touches a superset of a smaller
one. A drift changes the call's :class:`Setting` only; the dialogue is then composed from the
changed setting with the call's own draws (``dialogue``), so an untouched call stays exactly as
the base stream had it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from core.synthesis import Channel
from voiceloop.simulate.draws import Draws

NOISY_CHANNEL: Channel = "gsm-noisy8k"
NOISY_SNR_DB = (0.0, 5.0)
# espeak-ng accents no training call and no golden call uses (core.corpus TRAIN_VOICES, GOLDEN_VOICE)
NEW_ACCENT_VOICES = ("en-us-nyc+m2", "en-gb-x-gbcwmd+f3", "en-gb-x-gbclan+m6")
HOT_INTENTS = 5  # how many intents an intent shift concentrates calls on


@dataclass(frozen=True)
class Setting:
    """What a call happens in, and what a drift may change: the line, the voice, the ask, the back end."""

    channel: Channel
    snr_db: float | None
    voice: str
    intent: str
    outage: bool = False  # the task cannot be completed (bot understanding unchanged)
    slow: bool = False  # the bot answers after 1.2-2.5 s instead of ~0.35 s


Transform = Callable[[Setting, Draws, Sequence[str]], Setting]


@dataclass(frozen=True)
class DriftKind:
    name: str
    default_share: float
    summary: str
    transform: Transform


KINDS: dict[str, DriftKind] = {
    kind.name: kind
    for kind in (
        DriftKind(
            "noisy-channel", 0.3, f"a new channel, {NOISY_CHANNEL}: GSM full-rate codec, SNR 0-5 dB",
            lambda s, d, _hot: replace(s, channel=NOISY_CHANNEL, snr_db=round(d.between("snr", *NOISY_SNR_DB), 1)),
        ),
        DriftKind(
            "new-accent", 0.3, f"callers with an accent training never heard ({', '.join(NEW_ACCENT_VOICES)})",
            lambda s, d, _hot: replace(s, voice=d.pick("new-accent-voice", NEW_ACCENT_VOICES)),
        ),
        DriftKind(
            "intent-shift", 0.5, f"the asks concentrate on {HOT_INTENTS} intents that were rare",
            lambda s, d, hot: replace(s, intent=d.pick("hot-intent", list(hot))),
        ),
        DriftKind(
            "outage", 1.0, "the back end is down: no task completes (escalations, callbacks, angry endings)",
            lambda s, _d, _hot: replace(s, outage=True),
        ),
        DriftKind("slow", 0.5, "slow bot responses: 1.2-2.5 s latency", lambda s, _d, _hot: replace(s, slow=True)),
    )
}  # fmt: skip

GRAMMAR = "NAME@DAY[-DAY][:SHARE]"
_SPEC = re.compile(r"(?P<name>[a-z][a-z-]*)@(?P<first>\d+)(?:-(?P<last>\d+))?(?::(?P<share>\d*\.?\d+))?")


class DriftSpecError(ValueError):
    """A ``--drift`` value that does not follow the grammar; the message says what to write."""


@dataclass(frozen=True)
class DriftSpec:
    """One parsed ``--drift``: which degradation, on which days, on what share of the calls."""

    name: str
    first_day: int
    last_day: int | None  # None: to the end of the stream
    share: float

    def __str__(self) -> str:
        days = f"{self.first_day}" + (f"-{self.last_day}" if self.last_day is not None else "")
        return f"{self.name}@{days}:{self.share:g}"

    def active(self, day: int) -> bool:
        return self.first_day <= day and (self.last_day is None or day <= self.last_day)

    def touches(self, draws: Draws, day: int) -> bool:
        """Whether this drift changes the call: a function of (seed, call id, drift name) and the day."""
        return self.active(day) and draws.chance(f"drift:{self.name}", self.share)


def parse_drift(text: str) -> DriftSpec:
    """``noisy-channel@15:0.3`` -> DriftSpec; a clear :class:`DriftSpecError` for anything else."""
    names = ", ".join(KINDS)
    match = _SPEC.fullmatch(text.strip())
    if match is None:
        raise DriftSpecError(
            f"drift {text!r} does not read as {GRAMMAR} (e.g. noisy-channel@15:0.3, outage@20-22); names: {names}"
        )
    name = match["name"]
    if name not in KINDS:
        raise DriftSpecError(f"drift {text!r}: no drift named {name!r}; names: {names}")
    first = int(match["first"])
    last = int(match["last"]) if match["last"] is not None else None
    if first < 1:
        raise DriftSpecError(f"drift {text!r}: days count from 1")
    if last is not None and last < first:
        raise DriftSpecError(f"drift {text!r}: the last day ({last}) is before the first ({first})")
    share = float(match["share"]) if match["share"] is not None else KINDS[name].default_share
    if not 0 < share <= 1:
        raise DriftSpecError(f"drift {text!r}: the share must be more than 0 and at most 1, got {share:g}")
    return DriftSpec(name, first, last, share)


def hot_intents(seed: int, ranked: Sequence[str]) -> tuple[str, ...]:
    """The intents an intent shift concentrates on: from the rarer half of the base mix (``ranked``: common first)."""
    rarer = list(ranked[len(ranked) // 2 :])
    return tuple(random.Random(f"voiceloop-production:{seed}:intent-shift").sample(rarer, min(HOT_INTENTS, len(rarer))))


def apply_drifts(
    setting: Setting, specs: Sequence[DriftSpec], draws: Draws, day: int, hot: Sequence[str]
) -> tuple[Setting, tuple[str, ...]]:
    """The call's setting with every drift that touches it applied, and those drifts (as written canonically)."""
    applied: list[str] = []
    for spec in specs:
        if spec.touches(draws, day):
            setting = KINDS[spec.name].transform(setting, draws, hot)
            applied.append(str(spec))
    return setting, tuple(applied)
