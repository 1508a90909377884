"""Dates of birth said aloud: "born on the third of march nineteen eighty four", "dob march 3rd 84".

A date is PII here next to a birth word ("born", "birth", "birthday", "dob", "d o b"), or when it
is a full date (day, month and year) in a year a caller can be born in, 1900-2010: "august the
fifth nineteen sixty eight". "the eighth of the month", "on march third" or "march third twenty
twenty three" about a payment stay text. Numeric dates ("twelve oh four eighty
four", "12/04/1984") are digit runs, which the digit recognizer types by the same context.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from governance.redaction.entity_types import DOB
from governance.redaction.normalize import TEENS, TENS, UNITS, Token, nearest, read_piece, spelled_words, tokens_of

MONTHS = frozenset({
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec",
})  # fmt: skip
BIRTH_WORDS = frozenset({"born", "birth", "birthday", "dob", "birthdate", "bday"})
_ORDINAL_UNITS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9,
}  # fmt: skip
_ORDINALS = {
    **_ORDINAL_UNITS, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_WRITTEN_ORDINAL_RE = re.compile(r"(?:[1-9]|[12]\d|3[01])(?:st|nd|rd|th)")
_SMALL_NUMBER_RE = re.compile(r"(?:0?[1-9]|[12]\d|3[01])")
_YEAR_RE = re.compile(r"(?:19|20)\d\d|'?\d\d")
_BEFORE = 10
_BIRTH_YEARS = (1900, 2010)
_AFTER = 3


def _at(tokens: Sequence[Token], i: int) -> str:
    return tokens[i].low if i < len(tokens) else ""


def _day(tokens: Sequence[Token], i: int) -> int | None:
    """Index after a day of the month ("third", "twenty first", "3rd", "3", "three")."""
    low = _at(tokens, i)
    if low in ("twenty", "thirty"):
        nxt = _at(tokens, i + 1 + (_at(tokens, i + 1) == "-"))
        if nxt in _ORDINAL_UNITS or nxt in UNITS:
            return i + 2 + (_at(tokens, i + 1) == "-")
    if low in _ORDINALS or low in UNITS or low in TEENS or low in ("twenty", "thirty"):
        return i + 1
    if _WRITTEN_ORDINAL_RE.fullmatch(low) or _SMALL_NUMBER_RE.fullmatch(low):
        return i + 1
    return None


def _year(tokens: Sequence[Token], i: int) -> int | None:
    """Index after a year ("nineteen eighty four", "two thousand and three", "84", "1984")."""
    low = _at(tokens, i)
    if _YEAR_RE.fullmatch(low):
        return i + 1
    if low in ("nineteen", "twenty") and _at(tokens, i + 1) in TENS:
        return i + 3 if _at(tokens, i + 2) in UNITS else i + 2
    if low in ("nineteen", "twenty") and _at(tokens, i + 1) in ("oh", "o") and _at(tokens, i + 2) in UNITS:
        return i + 3
    if low in ("nineteen", "twenty") and _at(tokens, i + 1) in TEENS:
        return i + 2
    if low == "two" and _at(tokens, i + 1) == "thousand":
        j = i + 2 + (_at(tokens, i + 2) == "and")
        if _at(tokens, j) in TEENS or _at(tokens, j) in UNITS:
            return j + 1
        return i + 2
    if low in TENS:
        return i + 2 if _at(tokens, i + 1) in UNITS else i + 1
    if low in ("oh", "o") and _at(tokens, i + 1) in UNITS:
        return i + 2
    return None


@dataclass(frozen=True)
class _Date:
    end: int  # index after the date
    day: bool  # a day of the month was said
    year: int | None  # the year said, as a four-digit number


def _date_end(tokens: Sequence[Token], i: int) -> _Date | None:
    """A spoken or written date starting at token i, or None."""
    j = i + (_at(tokens, i) == "the")
    if _at(tokens, j) in MONTHS:  # "march (the) third (nineteen eighty four)", "march 1984"
        k = j + 1 + (_at(tokens, j + 1) == "the")
        day_end = _day(tokens, k)
        after_day = day_end if day_end is not None else j + 1
        after_day += _at(tokens, after_day) == ","
        year_end = _year(tokens, after_day)
        end = year_end or day_end
        if end is None:
            return None
        year = _year_value(tokens, after_day, year_end) if year_end else None
        return _Date(end, day_end is not None, year)
    day_end = _day(tokens, j)
    if day_end is None:
        return None
    k = day_end + (_at(tokens, day_end) == "of")
    if _at(tokens, k) not in MONTHS:
        return None
    k += 1
    k += _at(tokens, k) == ","
    year_end = _year(tokens, k)
    return _Date(year_end or k, True, _year_value(tokens, k, year_end) if year_end else None)


def _year_value(tokens: Sequence[Token], start: int, end: int) -> int | None:
    """The year said by tokens[start:end]: "nineteen eighty four" 1984, "oh one" 2001, "79" 1979.
    A two-digit year up to 10 is read as 20xx, from 30 on as 19xx; 11-29 could be either (and
    "march twenty twenty two" is a day and a year, or a year alone), so it gives None."""
    digits = ""
    k = start
    while k < end:
        if tokens[k].low == "and":
            k += 1
            continue
        piece = read_piece(tokens, k)
        if piece is None:
            digits += "".join(ch for ch in tokens[k].text if ch.isdecimal())
            k += 1
            continue
        digits, k = digits + piece[0], piece[1]
    if len(digits) == 2:
        short = int(digits)
        return 2000 + short if short <= 10 else 1900 + short if short >= 30 else None
    return int(digits) if len(digits) == 4 else None


def _birth_score(tokens: Sequence[Token], lows: Sequence[str], i: int, date: _Date) -> float | None:
    """0.85 next to a birth word ("born", "d o b"); 0.6 for a full date with a year a caller can
    be born in (1900-2010) and no birth word: callers read their date of birth out when asked,
    while the dates of payments are recent; None otherwise."""
    if nearest(tokens, i, date.end - 1, BIRTH_WORDS, _BEFORE, _AFTER, lows) is not None:
        return 0.85
    if date.day and date.year is not None and _BIRTH_YEARS[0] <= date.year <= _BIRTH_YEARS[1]:
        return 0.6
    return None


class DateOfBirthRecognizer(EntityRecognizer):
    """Spoken and written calendar dates next to a birth word."""

    def __init__(self) -> None:
        super().__init__(supported_entities=[DOB], name="DateOfBirthRecognizer")

    def load(self) -> None:
        """Nothing to load."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if DOB not in entities:
            return []
        tokens = tokens_of(text)
        lows = spelled_words(tokens)
        results = []
        i = 0
        while i < len(tokens):
            date = _date_end(tokens, i)
            score = _birth_score(tokens, lows, i, date) if date is not None else None
            if date is not None and score is not None:
                start = i + (tokens[i].low == "the")
                results.append(RecognizerResult(DOB, tokens[start].start, tokens[date.end - 1].end, score))
                i = date.end
                continue
            i += 1
        return results
