"""How the customer feels, turn by turn: the sentiment score the monitor's "sentiment progression" uses.

The scorer is VADER 3.3.2 (Hutto and Gilbert, ICWSM 2014; the ``vaderSentiment`` wheel carries its
lexicon, nothing is downloaded) with a contact-centre lexicon laid over it
(``core/sentiment_lexicon.tsv``): idioms VADER reads the wrong way round ("no problem", "no
complaints", "no thank you"), complaints it scores neutral ("speak to a person", "you're not
listening", "third time I'm calling") and bank words it mistakes for feelings ("credit", "interest",
"yes"). Transcripts arrive redacted and as ASR output: PII placeholders such as ``<PERSON>`` and
non-speech tags such as ``[noise]`` are removed before scoring, and lower-case text without
punctuation is what the scorer expects.

``progression`` turns a call's customer turns into start, end and change; ``core.harpervalley``
checks the scores against real callers' ratings of their calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

LEXICON_PATH = Path(__file__).with_name("sentiment_lexicon.tsv")

# A turn counts towards the opening or closing sentiment when it has at least this many words:
# "hi", "bye", "yes" and "my savings account" carry no feeling, and averaging them in would pull
# every call towards zero. Each end of the call averages up to WINDOW such turns.
MIN_WORDS = 3
WINDOW = 2

# What the redactor leaves (``<PERSON>``, ``<PHONE_NUMBER>``) and what transcribers and ASR mark
# that nobody said: ``<unk>``, ``[noise]``, ``[laughter]``, and cut-off words such as ``wou~``.
_PLACEHOLDER = re.compile(r"<[A-Za-z0-9_]+>")
_TAG = re.compile(r"\[[^\]]*\]")
_CUT_WORD = re.compile(r"\b\w+~")
_WORD = re.compile(r"[A-Za-z0-9]")

# "no" / "nope" opening a turn answers the agent ("anything else?" "no that's great, thanks"); VADER
# reads it as negating the next words and scores that close -0.67. Such an answer becomes a token
# VADER neither scores nor counts as a negation. Fillers may come first ("uh no that's it").
_ANSWER_NO = re.compile(r"^((?:(?:uh|um|uhm|er|ah|oh|well|hmm|mmm)\s+)*)(?:no|nope|nah)\b(?=\s+\S)")
_ANSWER_TOKEN = "vlno"

# Contractions spelt out before the contact-centre phrases are matched, so one pattern covers
# "you're not listening" and "you are not listening". "'s" only after pronouns: "my husband's card"
# is a possessive, not "husband is".
_CONTRACTIONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), repl)
    for pattern, repl in (
        (r"\bcan't\b", "can not"),
        (r"\bwon't\b", "will not"),
        (r"\bain't\b", "is not"),
        (r"n't\b", " not"),
        (r"'re\b", " are"),
        (r"'ve\b", " have"),
        (r"'m\b", " am"),
        (r"'ll\b", " will"),
        (r"'d\b", " would"),
        (r"\b(that|it|what|there|here|he|she|who)'s\b", r"\1 is"),
    )
)


@dataclass(frozen=True)
class LexiconEntry:
    """One line of the contact-centre lexicon: a word or phrase pattern, its valence, and why."""

    pattern: str
    valence: float
    reason: str

    @property
    def is_word(self) -> bool:
        """A single plain word: it overrides VADER's own valence instead of being substituted."""
        return re.fullmatch(r"[a-z']+", self.pattern) is not None


@dataclass(frozen=True)
class SentimentProgression:
    """The customer's sentiment at the opening and the close of a call, and how it moved.

    ``start`` and ``end`` are compound scores in [-1, 1], ``change`` is ``end - start``, and
    ``turns`` is the number of customer turns that had words in them.
    """

    start: float
    end: float
    change: float
    turns: int


def load_lexicon(path: Path = LEXICON_PATH) -> tuple[LexiconEntry, ...]:
    """The contact-centre lexicon: every entry with the comment line above it as its reason."""
    entries: list[LexiconEntry] = []
    reason = ""
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.rstrip()
        if not line:
            reason = ""
            continue
        if line.startswith("#"):
            reason = line.lstrip("#").strip()
            continue
        pattern, _, valence = line.partition("\t")
        if not valence:
            raise ValueError(f"{path}:{number}: expected 'pattern<TAB>valence', got {line!r}")
        if not reason:
            raise ValueError(f"{path}:{number}: entry {pattern!r} has no comment line saying why")
        entries.append(LexiconEntry(pattern.strip(), float(valence), reason))
        reason = ""
    return tuple(entries)


@lru_cache(maxsize=1)
def _vader() -> Any:
    """VADER with its own lexicon untouched: the baseline."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@lru_cache(maxsize=1)
def _contact_centre() -> tuple[Any, tuple[tuple[re.Pattern[str], str], ...]]:
    """VADER with the contact-centre lexicon laid over its own, and the phrase substitutions.

    Each multi-word entry becomes a token (``vlcc0``, ``vlcc1``, ...) that carries the entry's
    valence in this analyzer's lexicon; a match of the phrase in a turn is replaced by its token.
    """
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    phrases: list[tuple[re.Pattern[str], str]] = []
    for index, entry in enumerate(load_lexicon()):
        if entry.is_word:
            analyzer.lexicon[entry.pattern] = entry.valence
            continue
        token = f"vlcc{index}"
        analyzer.lexicon[token] = entry.valence
        phrases.append((re.compile(rf"\b(?:{entry.pattern})\b"), f" {token} "))
    return analyzer, tuple(phrases)


def clean(text: str) -> str:
    """``text`` without PII placeholders, non-speech tags and cut-off words, spaces collapsed."""
    text = _PLACEHOLDER.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = _CUT_WORD.sub(" ", text)
    return " ".join(text.split())


def word_count(text: str) -> int:
    """Words left in ``text`` once placeholders and tags are removed."""
    return sum(1 for word in clean(text).split() if _WORD.search(word))


def _normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    for pattern, repl in _CONTRACTIONS:
        text = pattern.sub(repl, text)
    text = re.sub(r"[^\w\s']", " ", text)
    return " ".join(text.split())


def sentiment(text: str) -> float:
    """The compound sentiment of one turn in [-1, 1]: VADER after the contact-centre adjustments.

    The adjustments: the lexicon's phrases become tokens carrying their valence, its words replace
    VADER's valence, and a "no" / "nope" opening the turn is an answer, not a negation of what
    follows. Placeholders (``<PERSON>``), non-speech tags and cut-off words are removed first; a turn with
    no words left scores 0.0.
    """
    cleaned = clean(text)
    if not _WORD.search(cleaned):
        return 0.0
    analyzer, phrases = _contact_centre()
    normalised = _normalise(cleaned)
    for pattern, token in phrases:
        normalised = pattern.sub(token, normalised)
    normalised = _ANSWER_NO.sub(rf"\1{_ANSWER_TOKEN}", normalised.strip())
    return float(analyzer.polarity_scores(normalised)["compound"])


def vader_sentiment(text: str) -> float:
    """Plain VADER's compound score of the same cleaned turn: the baseline the lexicon is judged against."""
    cleaned = clean(text)
    if not _WORD.search(cleaned):
        return 0.0
    return float(_vader().polarity_scores(cleaned)["compound"])


def _window(turns: Sequence[str]) -> list[str]:
    """The turns an end of the call is scored on: those with MIN_WORDS words, else any with words."""
    substantive = [turn for turn in turns if word_count(turn) >= MIN_WORDS]
    return substantive or [turn for turn in turns if word_count(turn) > 0]


def progression(
    customer_texts: Sequence[str], scorer: Callable[[str], float] = sentiment
) -> SentimentProgression | None:
    """Opening and closing sentiment of the customer's turns, in call order; None with no words at all.

    Rule: the turns with at least ``MIN_WORDS`` (3) words are the substantive ones ("hi", "yes",
    "bye" are not). ``start`` is the mean score of the first ``WINDOW`` (2) substantive turns, ``end``
    the mean of the last two, ``change`` = ``end - start``. A call with one substantive turn has
    start = end; a call with none falls back to every turn with words. ``scorer`` is ``sentiment``
    unless a baseline is being measured.
    """
    spoken = [text for text in customer_texts if word_count(text) > 0]
    if not spoken:
        return None
    window = _window(spoken)
    start = sum(scorer(turn) for turn in window[:WINDOW]) / len(window[:WINDOW])
    end = sum(scorer(turn) for turn in window[-WINDOW:]) / len(window[-WINDOW:])
    return SentimentProgression(start=start, end=end, change=end - start, turns=len(spoken))
