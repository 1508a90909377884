"""Dates of birth said aloud: "born on the third of march nineteen eighty four", "dob march 3rd 84".

A date is PII here only next to a birth word ("born", "birth", "birthday", "dob"): "the eighth of
the month" or "on march third" about a payment stay text. Numeric dates ("twelve oh four eighty
four", "12/04/1984") are digit runs, which the digit recognizer types by the same context.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from governance.redaction.entity_types import DOB
from governance.redaction.normalize import TEENS, TENS, UNITS, Token, nearest, tokenize

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


def _date_end(tokens: Sequence[Token], i: int) -> int | None:
    """Index after a spoken or written date starting at token i, or None."""
    j = i + (_at(tokens, i) == "the")
    if _at(tokens, j) in MONTHS:  # "march (the) third (nineteen eighty four)", "march 1984"
        k = j + 1 + (_at(tokens, j + 1) == "the")
        day_end = _day(tokens, k)
        after_day = day_end if day_end is not None else j + 1
        after_day += _at(tokens, after_day) == ","
        year_end = _year(tokens, after_day)
        end = year_end or day_end
        return end if end is not None else None
    day_end = _day(tokens, j)
    if day_end is None:
        return None
    k = day_end + (_at(tokens, day_end) == "of")
    if _at(tokens, k) not in MONTHS:
        return None
    k += 1
    k += _at(tokens, k) == ","
    return _year(tokens, k) or k


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
        tokens = tokenize(text)
        results = []
        i = 0
        while i < len(tokens):
            end = _date_end(tokens, i)
            if end is not None and nearest(tokens, i, end - 1, BIRTH_WORDS, _BEFORE, _AFTER) is not None:
                start = i + (tokens[i].low == "the")
                results.append(RecognizerResult(DOB, tokens[start].start, tokens[end - 1].end, 0.85))
                i = end
                continue
            i += 1
        return results
