"""The normalisation pass: read numbers as callers say them, keeping exact character offsets.

ASR text spells numbers out ("four one five, double five, oh one"), mixes words and digits
("4 one 5"), and splits a string across pauses ("four one five uh five five five"). This module
turns the text into tokens with offsets and reads every maximal run of number pieces as one digit
string, so recognizers can reason on digits while reporting spans of the original text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

UNITS = {
    "zero": "0", "oh": "0", "o": "0", "nought": "0", "nil": "0",
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
TEENS = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}  # fmt: skip
TENS = {
    "twenty": "2", "thirty": "3", "forty": "4", "fourty": "4", "fifty": "5",
    "sixty": "6", "seventy": "7", "eighty": "8", "ninety": "9",
}  # fmt: skip
REPEAT = {"double": 2, "triple": 3, "treble": 3}
FILLERS = frozenset({"uh", "um", "umm", "uhm", "er", "erm", "ah", "eh", "hmm", "mm"})
# Tokens that may sit between two pieces of one number without ending it.
_JOINERS = FILLERS | {",", "-", "/"}
# A full stop or "..." ends a number unless both sides are single spoken digits: ASR writes a
# pause in "four one five. five five five" as a sentence end.
_PAUSES = frozenset({".", "…", "?", "!"})
_MAX_JOINERS = 3
_MAX_LETTERS = 4

_TOKEN_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+(?:[.,]\d+)*[^\W\d_]*|\S")
_THOUSANDS_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?")
_DECIMAL_RE = re.compile(r"\d+\.\d{1,2}")


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int
    low: str


@dataclass(frozen=True)
class DigitRun:
    """Consecutive number pieces read as one digit string; token indices are inclusive."""

    digits: str
    start: int
    end: int
    first: int
    last: int
    only_compound: bool  # every piece was a word like "twenty" / "eighteen" / "ten thirty"
    single_written: bool  # one written token such as "2018"
    pieces: int
    letters: int = 0  # spelled letters inside the run ("m e s eight four nine")


# Tokens after which the next word starts a sentence (so its capital letter says nothing).
SENTENCE_END = frozenset({".", "!", "?", ":", ";", '"'})


def capitalised(tok: Token) -> bool:
    """Capitalised like a name: "Mark", not "I", "UK" or "mark"."""
    text = tok.text
    return text[0].isupper() and not (len(text) > 1 and text.isupper()) and text != "I"


def tokenize(text: str) -> list[Token]:
    return [Token(m.group(), m.start(), m.end(), m.group().lower()) for m in _TOKEN_RE.finditer(text)]


@functools.lru_cache(maxsize=512)
def tokens_of(text: str) -> tuple[Token, ...]:
    """``tokenize(text)``, read once per text however many recognizers ask (tokens are frozen)."""
    return tuple(tokenize(text))


@functools.lru_cache(maxsize=512)
def digit_runs_of(text: str) -> tuple[DigitRun, ...]:
    """``find_digit_runs`` of the text's tokens, read once per text."""
    return tuple(find_digit_runs(tokens_of(text)))


def luhn_ok(digits: str) -> bool:
    """Card-number checksum; keeps random 16-digit strings from being called cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _single_digit(tok: Token) -> str | None:
    if tok.low in UNITS:
        return UNITS[tok.low]
    return tok.text if len(tok.text) == 1 and tok.text.isdecimal() else None


def read_piece(tokens: Sequence[Token], i: int) -> tuple[str, int, bool] | None:
    """Digits of the number piece starting at token i, index after it, and whether compound."""
    tok = tokens[i]
    low = tok.low
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    if tok.text[0].isdecimal():
        if tok.text.isdecimal():
            return tok.text, i + 1, False
        if tok.text[-1].isalpha() or _THOUSANDS_RE.fullmatch(tok.text) or _DECIMAL_RE.fullmatch(tok.text):
            return None  # "1st", "3ds", "1,000", "20.50": ordinals and quantities
        return re.sub(r"\D", "", tok.text), i + 1, False
    if nxt is not None and nxt.low in ("hundred", "thousand") and (low in UNITS or low in TEENS or low in TENS):
        cardinal = _cardinal(tokens, i)
        if cardinal is not None:
            return str(cardinal[0]), cardinal[1], True
    if low in UNITS:
        if low == "o" and not _next_is_digit(tokens, i):
            return None  # a lone letter "o" is a digit only inside a number
        return UNITS[low], i + 1, False
    if low in REPEAT and nxt is not None:
        digit = _single_digit(nxt)
        if digit is not None:
            return digit * REPEAT[low], i + 2, False
        return None
    if low in TEENS:
        return TEENS[low], i + 1, True
    if low in TENS:
        j = i + 1
        if nxt is not None and nxt.text == "-" and i + 2 < len(tokens):
            j = i + 2
        if j < len(tokens) and tokens[j].low in UNITS and UNITS[tokens[j].low] != "0":
            return TENS[low] + UNITS[tokens[j].low], j + 1, True
        return TENS[low] + "0", i + 1, True
    return None


def _small(tokens: Sequence[Token], i: int) -> tuple[int, int] | None:
    """A number below 100 said as words ("seven", "seventeen", "seventy seven") and the index after."""
    low = tokens[i].low if i < len(tokens) else ""
    if low in UNITS and low not in ("oh", "o", "nil", "nought"):
        return int(UNITS[low]), i + 1
    if low in TEENS:
        return int(TEENS[low]), i + 1
    if low in TENS:
        j = i + 1 + (i + 1 < len(tokens) and tokens[i + 1].text == "-")
        if j < len(tokens) and tokens[j].low in UNITS and UNITS[tokens[j].low] != "0":
            return int(TENS[low] + UNITS[tokens[j].low]), j + 1
        return int(TENS[low]) * 10, i + 1
    return None


def _cardinal(tokens: Sequence[Token], i: int) -> tuple[int, int] | None:
    """ "nine thousand seven hundred (and) thirty six" -> (9736, index after)."""
    total, j = 0, i
    for scale in ("thousand", "hundred"):
        head = _small(tokens, j)
        if head is not None and head[1] < len(tokens) and tokens[head[1]].low == scale:
            total += head[0] * (1000 if scale == "thousand" else 100)
            j = head[1] + 1
    if j == i:
        return None
    k = j + (j < len(tokens) and tokens[j].low == "and")
    tail = _small(tokens, k)
    if tail is not None:
        total, j = total + tail[0], tail[1]
    return total, j


def _next_is_digit(tokens: Sequence[Token], i: int) -> bool:
    for k in (i - 1, i + 1):
        if 0 <= k < len(tokens) and (tokens[k].low in UNITS and tokens[k].low != "o" or tokens[k].text.isdecimal()):
            return True
    return False


def _is_spoken_digit(tokens: Sequence[Token], i: int) -> bool:
    return 0 <= i < len(tokens) and tokens[i].low in UNITS


def find_digit_runs(tokens: Sequence[Token]) -> list[DigitRun]:
    """All maximal number runs (any length), joining pieces across commas, hyphens and fillers."""
    runs: list[DigitRun] = []
    pieces: list[tuple[str, int, int, bool]] = []  # digits, first token, last token, compound
    joiners = 0

    def flush() -> None:
        if pieces:
            while pieces and not pieces[-1][0]:
                pieces.pop()  # letters at the end are added back by _with_letters
            first, last = pieces[0][1], pieces[-1][2]
            runs.append(
                DigitRun(
                    digits="".join(p[0] for p in pieces),
                    start=tokens[first].start,
                    end=tokens[last].end,
                    first=first,
                    last=last,
                    only_compound=all(p[3] for p in pieces),
                    single_written=len(pieces) == 1 and tokens[first].text[0].isdecimal(),
                    pieces=len(pieces),
                    letters=sum(1 for p in pieces if not p[0]),
                )
            )
            pieces.clear()

    i = 0
    while i < len(tokens):
        piece = read_piece(tokens, i)
        if piece is not None:
            digits, nxt, compound = piece
            pieces.append((digits, i, nxt - 1, compound))
            joiners = 0
            i = nxt
            continue
        if pieces and _is_letter(tokens[i]) and _letters_then_number(tokens, i):
            pieces.append(("", i, i, False))  # a spelled letter inside a code: "one e nine"
            joiners = 0
            i += 1
            continue
        low = tokens[i].low
        joins = low in _JOINERS or (
            low in _PAUSES and _is_spoken_digit(tokens, i - 1) and _is_spoken_digit(tokens, i + 1)
        )
        if pieces and joins and joiners < _MAX_JOINERS:
            joiners += 1
            i += 1
            continue
        flush()
        joiners = 0
        i += 1
    flush()
    return [_with_letters(tokens, run) for run in runs]


# Spelled words that are context for a number, never part of it: "c v v one two three".
_SPELLED_CONTEXT = frozenset({"cvv", "cvc", "dob", "ssn", "pin", "otp", "id", "uk", "us", "usa", "po"})


def _is_letter(tok: Token) -> bool:
    return len(tok.text) == 1 and tok.text.isalpha() and tok.low not in ("a", "i")


def _letters_then_number(tokens: Sequence[Token], i: int) -> bool:
    """Whether the letters from token i on are followed by a number piece within 3 tokens."""
    for k in range(i, min(len(tokens), i + _MAX_LETTERS)):
        if not _is_letter(tokens[k]):
            return read_piece(tokens, k) is not None
    return False


def _with_letters(tokens: Sequence[Token], run: DigitRun) -> DigitRun:
    """Grow a run over spelled letters around it ("m e s eight four nine", "l one eight zero p a")
    and a leading "plus" (international phone numbers)."""
    first, last = run.first, run.last
    while first > 0 and run.first - first < _MAX_LETTERS and _is_letter(tokens[first - 1]):
        first -= 1
    lead = "".join(t.low for t in tokens[first : run.first])
    if any(lead.startswith(word) for word in _SPELLED_CONTEXT):
        first = run.first
    while last + 1 < len(tokens) and last - run.last < _MAX_LETTERS and _is_letter(tokens[last + 1]):
        last += 1
    letters = run.letters + (run.first - first) + (last - run.last)
    if first > 0 and tokens[first - 1].low in ("plus", "+") and len(run.digits) >= 7:
        first -= 1
    if first == run.first and last == run.last:
        return run
    return replace(run, start=tokens[first].start, end=tokens[last].end, first=first, last=last, letters=letters)


def spelled_words(tokens: Sequence[Token]) -> list[str]:
    """Each token's lowercase text, where letters spelled one by one read as the word they spell:
    "c v v" -> "cvv" at each of the three tokens, "d o b" -> "dob"."""
    words = [t.low for t in tokens]
    i = 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and len(tokens[j].text) == 1 and tokens[j].text.isalpha():
            j += 1
        if j - i >= 2:
            joined = "".join(t.low for t in tokens[i:j])
            words[i:j] = [joined] * (j - i)
        i = max(j, i + 1)
    return words


def nearest(
    tokens: Sequence[Token],
    first: int,
    last: int,
    words: Iterable[str],
    before: int,
    after: int,
    lows: Sequence[str] | None = None,
) -> int | None:
    """Distance in tokens from tokens[first..last] to the closest of ``words`` (None: absent).

    ``lows``, if given, replaces the tokens' lowercase text (``spelled_words``)."""
    wanted = words if isinstance(words, (set, frozenset)) else set(words)
    lows = lows if lows is not None else [t.low for t in tokens]
    best: int | None = None
    for k in range(max(0, first - before), first):
        if lows[k] in wanted:
            best = first - k
    for k in range(last + 1, min(len(tokens), last + 1 + after)):
        if lows[k] in wanted:
            dist = k - last
            return dist if best is None else min(best, dist)
    return best
