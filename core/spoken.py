"""How callers say digits: one word per digit, sometimes "oh" for zero or "double five".

The call simulator's callers and the ASR digit corpus read numbers the same way, so the
recogniser is trained on the forms the simulated production calls contain.
"""

from __future__ import annotations

import random

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def spoken_digits(digits: str, rng: random.Random, *, oh_rate: float = 0.0, double_rate: float = 0.0) -> str:
    """Digits read one by one: "4150" -> "four one five zero" (or "... oh", "double ...")."""
    words: list[str] = []
    i = 0
    while i < len(digits):
        d = int(digits[i])
        word = "oh" if d == 0 and rng.random() < oh_rate else DIGIT_WORDS[d]
        if i + 1 < len(digits) and digits[i + 1] == digits[i] and rng.random() < double_rate:
            words.append(f"double {word}")
            i += 2
            continue
        words.append(word)
        i += 1
    return " ".join(words)
