"""Recognizers for PII as callers *say* it, which Presidio's stock recognizers miss.

ASR transcripts spell numbers out ("four one five, double five ..."), say e-mail addresses
("john dot smith at gmail dot com") and are lowercase. These recognizers read those forms
directly on the raw text, so every result carries exact character offsets into it.

False positives matter as much as misses: a bank's callers say "four days ago", "one of my
cards" and "top up 20 pounds" all day. Hence: fewer than 4 digits is never PII; amounts
(currency next to the number), years and times said as compound words ("twenty eighteen",
"ten thirty") are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

PHONE = "PHONE_NUMBER"
CARD = "CREDIT_CARD"
ACCOUNT = "ACCOUNT_NUMBER"
DIGITS = "DIGIT_STRING"
EMAIL = "EMAIL_ADDRESS"
PERSON = "PERSON"

MIN_DIGITS = 4

# --- lexicon -------------------------------------------------------------------------------
_UNITS = {
    "zero": "0", "oh": "0", "o": "0", "nought": "0", "nil": "0",
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_TEENS = {
    "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
}  # fmt: skip
_TENS = {
    "twenty": "2", "thirty": "3", "forty": "4", "fourty": "4", "fifty": "5",
    "sixty": "6", "seventy": "7", "eighty": "8", "ninety": "9",
}  # fmt: skip
_REPEAT = {"double": 2, "triple": 3, "treble": 3}
# Tokens that may sit between two pieces of one number without ending it.
_JOINERS = {",", "-", "uh", "um", "umm", "uhm", "er", "erm", "ah", "eh", "hmm", "mm"}
_MAX_JOINERS = 3
_CURRENCY_SYMBOLS = {"£", "$", "€", "¥", "₹"}
_CURRENCY_WORDS = {
    "pound", "pounds", "quid", "pence", "p", "euro", "euros", "eur", "dollar", "dollars", "usd",
    "gbp", "bucks", "cent", "cents", "k", "grand", "percent", "%", "yen", "rupees", "francs",
} | _CURRENCY_SYMBOLS  # fmt: skip
# Words allowed between the end of a number and the currency that makes it an amount
# ("10, 20 and 30 pounds").
_AMOUNT_BRIDGE = {"and", "or", "to", ",", "-"}
_MAX_LISTED_AMOUNT = 6  # digits

_PHONE_CONTEXT = {
    "phone", "mobile", "cell", "cellphone", "telephone", "tel", "landline", "call", "calling",
    "reach", "text", "contact", "whatsapp", "ring", "dial", "extension",
}  # fmt: skip
_ACCOUNT_CONTEXT = {
    "account", "acct", "reference", "ref", "iban", "sort", "customer", "membership", "member",
    "policy", "ending", "ends", "last", "pin", "passcode", "code", "id", "sortcode",
}  # fmt: skip
_CARD_CONTEXT = {"card", "visa", "mastercard", "amex", "credit", "debit", "cvv", "expiry"}
_NUMBER_CONTEXT = {"number", "no", "num", "digits"}
_CONTEXT_BEFORE = 8
_CONTEXT_AFTER = 4

_TOKEN_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+(?:[.,]\d+)*[^\W\d_]*|\S")
_THOUSANDS_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?")
_DECIMAL_RE = re.compile(r"\d+\.\d{1,2}")


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int

    @property
    def low(self) -> str:
        return self.text.lower()


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


def tokenize(text: str) -> list[Token]:
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]


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
    if tok.low in _UNITS:
        return _UNITS[tok.low]
    return tok.text if len(tok.text) == 1 and tok.text.isdecimal() else None


def _read_piece(tokens: Sequence[Token], i: int) -> tuple[str, int, bool] | None:
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
    if low in _UNITS:
        if nxt is not None and nxt.low == "hundred" and low not in {"oh", "o"}:
            return _UNITS[low] + "00", i + 2, True
        return _UNITS[low], i + 1, False
    if low in _REPEAT and nxt is not None:
        digit = _single_digit(nxt)
        if digit is not None:
            return digit * _REPEAT[low], i + 2, False
        return None
    if low in _TEENS:
        return _TEENS[low], i + 1, True
    if low in _TENS:
        j = i + 1
        if nxt is not None and nxt.text == "-" and i + 2 < len(tokens):
            j = i + 2
        if j < len(tokens) and tokens[j].low in _UNITS and _UNITS[tokens[j].low] != "0":
            return _TENS[low] + _UNITS[tokens[j].low], j + 1, True
        return _TENS[low] + "0", i + 1, True
    return None


def find_digit_runs(tokens: Sequence[Token]) -> list[DigitRun]:
    """All maximal number runs (any length), joining pieces across commas, hyphens and fillers."""
    runs: list[DigitRun] = []
    pieces: list[tuple[str, int, int, bool]] = []  # digits, first token, last token, compound
    joiners = 0

    def flush() -> None:
        if pieces:
            digits = "".join(p[0] for p in pieces)
            first, last = pieces[0][1], pieces[-1][2]
            runs.append(
                DigitRun(
                    digits=digits,
                    start=tokens[first].start,
                    end=tokens[last].end,
                    first=first,
                    last=last,
                    only_compound=all(p[3] for p in pieces),
                    single_written=len(pieces) == 1 and tokens[first].text[0].isdecimal(),
                )
            )
            pieces.clear()

    i = 0
    while i < len(tokens):
        piece = _read_piece(tokens, i)
        if piece is not None:
            digits, nxt, compound = piece
            pieces.append((digits, i, nxt - 1, compound))
            joiners = 0
            i = nxt
            continue
        if pieces and tokens[i].low in _JOINERS and joiners < _MAX_JOINERS:
            joiners += 1
            i += 1
            continue
        flush()
        joiners = 0
        i += 1
    flush()
    return runs


def _is_amount(tokens: Sequence[Token], run: DigitRun) -> bool:
    """Currency right before or after; through other numbers ("10, 20 and 30 pounds") only for
    amount-sized runs, so "account 12345678 and 20 pounds" keeps its account number."""
    if run.first > 0 and tokens[run.first - 1].text in _CURRENCY_SYMBOLS:
        return True
    j = run.last + 1
    for _ in range(8 if len(run.digits) <= _MAX_LISTED_AMOUNT else 1):
        if j >= len(tokens):
            return False
        low = tokens[j].low
        if low in _CURRENCY_WORDS:
            return True
        if low not in _AMOUNT_BRIDGE and _read_piece(tokens, j) is None:
            return False
        j += 1
    return False


def _nearest(tokens: Sequence[Token], run: DigitRun, words: set[str]) -> int | None:
    """Distance in tokens from the run to the closest context word of a kind (None: absent)."""
    best: int | None = None
    for k in range(max(0, run.first - _CONTEXT_BEFORE), run.first):
        if tokens[k].low in words:
            best = run.first - k
    for k in range(run.last + 1, min(len(tokens), run.last + 1 + _CONTEXT_AFTER)):
        if tokens[k].low in words:
            dist = k - run.last
            best = dist if best is None else min(best, dist)
            break
    return best


def classify_run(tokens: Sequence[Token], run: DigitRun) -> tuple[str, float] | None:
    """Entity type and score for a digit run, or None when it is not PII."""
    n = len(run.digits)
    if n < MIN_DIGITS:
        return None
    if n <= 9 and _is_amount(tokens, run):
        return None
    if run.only_compound and n <= MIN_DIGITS:
        return None  # "ten thirty", "twenty eighteen": times and years said as words
    far = 10**6
    dist = {
        kind: d if (d := _nearest(tokens, run, words)) is not None else far
        for kind, words in (
            (PHONE, _PHONE_CONTEXT),
            (ACCOUNT, _ACCOUNT_CONTEXT),
            (CARD, _CARD_CONTEXT),
            ("number", _NUMBER_CONTEXT),
        )
    }
    closest = min(dist, key=lambda k: dist[k])
    has_context = dist[closest] < far
    if run.single_written and n == 4 and 1000 <= int(run.digits) <= 2099 and not has_context:
        return None  # a year: "it's 2018"
    phone_only = has_context and closest == PHONE and dist[CARD] == far
    if 13 <= n <= 19 and luhn_ok(run.digits) and not phone_only:
        return CARD, 0.95
    if has_context and closest == PHONE and n >= 6:
        return PHONE, 0.85
    if has_context and closest in (ACCOUNT, CARD):
        return ACCOUNT, 0.8
    if has_context and closest == "number":
        return (PHONE, 0.75) if 10 <= n <= 13 else (ACCOUNT, 0.75)
    if 10 <= n <= 11:
        return PHONE, 0.6
    return DIGITS, 0.5


class SpokenDigitsRecognizer(EntityRecognizer):
    """Digit strings in any mix of words and digits: phone, card, account numbers, PINs."""

    ENTITIES = [PHONE, CARD, ACCOUNT, DIGITS]

    def __init__(self) -> None:
        super().__init__(supported_entities=list(self.ENTITIES), name="SpokenDigitsRecognizer")

    def load(self) -> None:
        """Nothing to load: the lexicon is in this module."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        tokens = tokenize(text)
        results = []
        for run in find_digit_runs(tokens):
            found = classify_run(tokens, run)
            if found is not None and found[0] in entities:
                results.append(RecognizerResult(found[0], run.start, run.end, found[1]))
        return results


# --- e-mail addresses, spoken or written -------------------------------------------------------
_TLDS = (
    "com|net|org|edu|gov|mil|int|co|uk|io|ie|de|fr|es|it|nl|be|eu|us|ca|au|nz|in|info|biz|me|"
    "ai|app|dev|ac|ch|at|se|no|dk|fi|pl|pt|jp|cn|br|mx|za|sg|tv|xyz|online|email|mail"
)
# Each pattern piece can match a given stretch in one way only, so matching stays linear.
_WORD = r"[a-z0-9]+"
_HOST = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_DOT = r"(?:\s+dot\s+|\.)"
_SEP = r"(?:\s+(?:dot|underscore|dash|hyphen)\s+|[._+-])"
_AT = r"(?:\s+at(?:\s+(?:sign|symbol))?\s+|\s*@\s*)"
_EMAIL_RE = re.compile(
    rf"(?<![\w'.+-])(?P<local>{_WORD}(?:{_SEP}{_WORD})*){_AT}"
    rf"{_HOST}(?:{_DOT}{_HOST})*?{_DOT}(?:{_TLDS})(?:{_DOT}(?:{_TLDS}))?(?![\w])",
    re.IGNORECASE,
)
# A one-word "local part" that is really a sentence word: "I bought it at amazon dot com".
_NOT_LOCAL = {
    "i", "m", "me", "is", "was", "am", "are", "be", "been", "it", "that", "this", "them", "us", "we",
    "you", "they", "he", "she", "him", "her", "shop", "shopping", "bought", "order", "ordered",
    "paid", "pay", "buy", "purchased", "online", "website", "site", "something", "money", "up",
    "there", "here", "card", "account", "out", "in", "on", "from", "to", "and", "or", "payment",
}  # fmt: skip


class SpokenEmailRecognizer(EntityRecognizer):
    """E-mail addresses said aloud ("john dot smith at gmail dot com") or half-written."""

    def __init__(self) -> None:
        super().__init__(supported_entities=[EMAIL], name="SpokenEmailRecognizer")

    def load(self) -> None:
        """Nothing to load: one compiled regex."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if EMAIL not in entities:
            return []
        results = []
        for m in _EMAIL_RE.finditer(text):
            if m.group("local").lower() in _NOT_LOCAL:
                continue
            results.append(RecognizerResult(EMAIL, m.start(), m.end(), 0.85))
        return results


# --- names after "my name is" ------------------------------------------------------------------
_INTRO_RE = re.compile(
    r"\b(?:(?P<strong>my\s+(?:full\s+|first\s+|last\s+)?name\s+is|my\s+name's|the\s+name\s+is|name's"
    r"|(?:the\s+)?name\s+on\s+(?:the|my)\s+(?:account|card)\s+is|(?:the\s+)?account\s+holder\s+is"
    r"|(?:my\s+)?surname\s+is)"
    r"|(?P<weak>this\s+is|it's|it\s+is|i\s+am|i'm))\s+",
    re.IGNORECASE,
)
_NAME_WORD_RE = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)?")
_GAP_RE = re.compile(r"[ \t]+")
# After a weak intro ("this is ...", "i'm ...") only a proper noun followed by one of these counts.
_WEAK_FOLLOWERS = {"calling", "speaking", "here", "from", "and", ",", ".", ""}
_NAME_POS = {"PROPN", "NOUN", "X", "INTJ"}
_WEAK_NAME_POS = {"PROPN"}
_NOT_NAMES = {
    "wrong", "spelled", "spelt", "misspelled", "incorrect", "correct", "changed", "different",
    "missing", "listed", "shown", "printed", "showing", "displayed", "still", "not", "already",
    "sir", "madam", "mister", "mr", "mrs", "ms", "miss", "dr", "card", "account", "bank", "name",
    "customer", "calling", "speaking", "here", "from", "regarding", "about", "and", "the", "a",
}  # fmt: skip
_MAX_NAME_WORDS = 3


class SpokenNameRecognizer(EntityRecognizer):
    """Names right after a self-introduction, which lowercase ASR text hides from NER.

    Uses spaCy's part-of-speech tags from the shared NLP pass to accept only noun-like words,
    so "my name is wrong on the card" is left alone.
    """

    def __init__(self) -> None:
        super().__init__(supported_entities=[PERSON], name="SpokenNameRecognizer")

    def load(self) -> None:
        """Nothing to load: the NLP pass is shared with Presidio."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if PERSON not in entities:
            return []
        doc = getattr(nlp_artifacts, "tokens", None)
        pos_at: dict[int, str] = {}
        if doc is not None:
            pos_at = {tok.idx: tok.pos_ for tok in doc}
        results = []
        for intro in _INTRO_RE.finditer(text):
            weak = bool(intro.group("weak"))
            span = self._name_after(text, intro.end(), pos_at, _WEAK_NAME_POS if weak else _NAME_POS)
            if span is None:
                continue
            start, end = span
            if weak:
                follower = re.match(r"\s*([^\W\d_]+|[,.]|$)", text[end:])
                if follower is None or follower.group(1).lower() not in _WEAK_FOLLOWERS:
                    continue
            results.append(RecognizerResult(PERSON, start, end, 0.7 if weak else 0.75))
        return results

    @staticmethod
    def _name_after(text: str, pos: int, pos_at: dict[int, str], allowed_pos: set[str]) -> tuple[int, int] | None:
        start = end = -1
        for _ in range(_MAX_NAME_WORDS):
            m = _NAME_WORD_RE.match(text, pos)
            if m is None:
                break
            word = m.group().lower()
            if word in _NOT_NAMES or word in _STOP_WORDS or word in _UNITS or word in _TEENS:
                break
            if pos_at and pos_at.get(m.start(), "PROPN") not in allowed_pos:
                break
            if start < 0:
                start = m.start()
            end = m.end()
            gap = _GAP_RE.match(text, end)
            if gap is None:
                break
            pos = gap.end()
        return (start, end) if start >= 0 else None


def _load_stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


_STOP_WORDS = _load_stop_words()


def spoken_recognizers() -> list[EntityRecognizer]:
    """Fresh instances of every recognizer in this module, for one analyzer's registry."""
    return [SpokenDigitsRecognizer(), SpokenEmailRecognizer(), SpokenNameRecognizer()]
