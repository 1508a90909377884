"""Every random number a production call needs, named and derived from (seed, call id), so no draw shifts another.

A shared generator would make a call's draws depend on how many numbers earlier calls took: a
drift that lengthens one call would then change every call after it. Here each number is a hash
of (seed, call id, name), so a call's draws are the same whatever else the stream holds, and a
drift changes only what it reads them for. Where a library wants a generator (Faker, ``choice``),
:meth:`Draws.rng` gives one seeded the same way.
"""

from __future__ import annotations

import hashlib
import random
from statistics import NormalDist

_UNIT = NormalDist()


class Draws:
    """The named random numbers of one call of one stream."""

    def __init__(self, seed: int, call_id: str) -> None:
        self.key = f"voiceloop-production:{seed}:{call_id}"

    def uniform(self, name: str) -> float:
        """A number in (0, 1), the same for the same seed, call and name."""
        digest = hashlib.blake2b(f"{self.key}:{name}".encode(), digest_size=8).digest()
        return (int.from_bytes(digest, "big") + 0.5) / 2**64

    def between(self, name: str, low: float, high: float) -> float:
        return low + (high - low) * self.uniform(name)

    def normal(self, name: str) -> float:
        """A standard normal number (through the inverse CDF, so one hash per number)."""
        return _UNIT.inv_cdf(self.uniform(name))

    def pick(self, name: str, options: tuple[str, ...] | list[str]) -> str:
        return options[min(int(self.uniform(name) * len(options)), len(options) - 1)]

    def chance(self, name: str, probability: float) -> bool:
        return self.uniform(name) < probability

    def integer(self, name: str, bits: int = 32) -> int:
        return int(self.uniform(name) * 2**bits)

    def hex(self, name: str) -> str:
        return hashlib.blake2b(f"{self.key}:{name}".encode(), digest_size=8).hexdigest()

    def rng(self, name: str) -> random.Random:
        """A generator of its own for ``name``: for code that takes one (Faker seeding, ``rng.choice``)."""
        return random.Random(f"{self.key}:{name}")
