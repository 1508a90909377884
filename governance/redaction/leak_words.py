"""The leak check's second reading of a turn: spoken numbers as digits, and words as the classes names come in.

``leaks.py`` joins PII-shaped digit strings into runs for its digit and e-mail patterns. Names,
street addresses, dates said in words, postcodes and short codes need the words around them, so
this module gives two more forms of a redacted turn, each read by its own patterns:

* :func:`spoken_form`: lower case, placeholders as barriers, every number word as digits
  ("seventy eight" -> "78", "double oh" -> "00"), nothing joined or blanked;
* :func:`name_shape`: the spoken form with each word that could be part of a person's name
  replaced by its class: ``FN`` (a first name), ``LN`` (a surname), ``CN`` (a first name that is
  also an everyday word: "will", "grace"), ``UW`` (a word of no English word list), so that
  patterns can say "an introduction, then a name".

Word lists, shipped in ``leak_lists/`` and deliberately not the redactor's (which uses Faker's
names and WordNet): US Census 1990 first names and surnames, and wordfreq's English words.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

LISTS = Path(__file__).with_name("leak_lists")
PLACEHOLDER_RE = re.compile(r"<[A-Z][A-Z0-9_]*>")
BARRIER = " \x00 "  # where a placeholder was: nothing may match across it

DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "nought": "0", "one": "1", "two": "2", "three": "3",
    "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_UNITS = {w: d for w, d in DIGIT_WORDS.items() if d != "0"}
_TEENS = {"ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15",
          "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19"}
_TENS = {"twenty": "2", "thirty": "3", "forty": "4", "fourty": "4", "fifty": "5", "sixty": "6", "seventy": "7",
         "eighty": "8", "ninety": "9"}
_DIGIT_WORD = "|".join(DIGIT_WORDS)
_FILLER_RE = re.compile(r"\b(?:uh|um|umm|uhm|er|erm|ah|eh|hmm|mm)\b")
_REPEAT_RE = re.compile(rf"\b(double|triple|treble)\s+({_DIGIT_WORD}|\d)\b")
_TENS_RE = re.compile(rf"\b({'|'.join(_TENS)})(?:[\s-]+({'|'.join(_UNITS)}))?\b")
_TEENS_RE = re.compile(rf"\b({'|'.join(_TEENS)})\b")
_DIGIT_WORD_RE = re.compile(rf"\b({_DIGIT_WORD})\b(?!')")  # "o'neill" keeps its o
_WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")  # letters of any script: "krisztián", "o'neill"


def spoken_form(text: str) -> str:
    """Lower case, placeholders as barriers, fillers out, every number word as digits (not joined)."""
    text = PLACEHOLDER_RE.sub(BARRIER, text).lower()
    text = _FILLER_RE.sub(" ", text)
    text = _REPEAT_RE.sub(lambda m: DIGIT_WORDS.get(m.group(2), m.group(2)) * (2 if m.group(1) == "double" else 3),
                          text)
    text = _TENS_RE.sub(lambda m: _TENS[m.group(1)] + (_UNITS[m.group(2)] if m.group(2) else "0"), text)
    text = _TEENS_RE.sub(lambda m: _TEENS[m.group(1)], text)
    text = _DIGIT_WORD_RE.sub(lambda m: DIGIT_WORDS[m.group(1)], text)
    return re.sub(r"\s+", " ", text).strip()


def _read(name: str) -> list[str]:
    lines = (LISTS / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@functools.cache
def _lists() -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Word -> frequency rank (0: most frequent) in each list: first names, surnames, English words."""
    return tuple({word: rank for rank, word in enumerate(_read(name))}  # type: ignore[return-value]
                 for name in ("census_first_names.txt", "census_last_names.txt", "english_words.txt"))


FUNCTION_WORD_RANK = 300  # "in", "many": never a name in a caller's turn
WORD_RANK = 1000  # English words this frequent are words ("white", "king", "bill"), whatever else they are
EVERYDAY_RANK = 5000  # ...and these too, unless they are among the most frequent names:
FAMOUS_NAME_RANK = 400  # first names ("mary", "grace") that English text uses as often as words
TOP_NAME_RANK = 50  # and the top first names ("john", "james") are names even among the most frequent words
COMMON_SURNAME_RANK = 2000  # surnames ("taylor", "wilson"); "angry" and "holiday" are rarer surnames than words
_NEVER = frozenset({
    "ok", "okay", "yes", "no", "hi", "hello", "thanks", "please", "sorry", "bye", "yeah", "yep", "nope", "hey", "pls",
    "thx", "my", "app", "atm", "pin", "cvv", "dob", "iban", "swift", "visa", "paypal", "apple", "google", "amazon",
    "uber", "id", "uk", "us", "eu", "usa", "gbp", "usd", "eur", "dot", "at", "underscore", "dash", "hyphen", "slash",
    "pound", "pounds", "dollar", "dollars", "euro", "euros", "cent", "cents", "penny", "pence", "quid", "grand",
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
})  # fmt: skip


# First names that a bank's callers say as words: "grace period", "bill", "chase", "sterling".
_EVERYDAY_NAMES = frozenset({"grace", "bill", "chase", "sterling", "penny", "frank", "mark", "will", "rich", "cash",
                             "price", "joy", "hope", "faith", "sunny", "summer", "dawn", "rusty", "sandy", "chip",
                             "chuck", "buck", "art", "ray", "guy", "max", "jack", "sue", "rob", "pat", "page", "star"})


def word_class(word: str) -> str | None:
    """``FN``, ``LN``, ``CN`` or ``UW`` for a word that can be (part of) a name; None for an everyday word."""
    first, last, english = _lists()
    if word in _NEVER or len(word) < 2:
        return None
    bare = word.replace("'", "")
    rank = english.get(word, english.get(bare))
    if rank is not None and rank < FUNCTION_WORD_RANK:
        return None
    everyday = rank is not None and rank < EVERYDAY_RANK
    first_rank, last_rank = first.get(bare), last.get(bare)
    if first_rank is not None:
        if bare in _EVERYDAY_NAMES:
            return "CN"
        word_first = rank is not None and ((rank < WORD_RANK and first_rank >= TOP_NAME_RANK)
                                           or first_rank >= FAMOUS_NAME_RANK)
        return "CN" if everyday and word_first else "FN"
    if last_rank is not None:
        if not everyday:
            return "LN"
        return "LN" if rank >= WORD_RANK and last_rank < COMMON_SURNAME_RANK else None  # type: ignore[operator]
    if rank is None and len(word) >= 3:
        return "UW"
    return None


def name_shape(spoken: str) -> str:
    """The spoken form with every name-like word replaced by its class (see :func:`word_class`)."""
    return _WORD_RE.sub(lambda m: word_class(m.group()) or m.group(), spoken)
