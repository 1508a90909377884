"""Independent second check for PII left in already-redacted text.

Deliberately shares nothing with the redactor (no Presidio, no spaCy, no code from
``spoken.py``): a bug in one should not hide the same leak from the other. It is a small set
of blunt patterns over a normalised copy of the text: number words become digits, spoken
"at" / "dot" become "@" / ".", and then any run of 4+ digits or anything e-mail shaped is a
leak. Amounts ("1,000 dollars", "$100"), decimals and bare years are not. Only entity types
are returned, never the values, so the result can go into logs and audit records.

The rule is ``LEAK_PATTERNS`` over ``normal_form(text)``; ``leak_gate`` runs the same patterns as
Great Expectations expectations over a batch of turns.
"""

from __future__ import annotations

import re

_PLACEHOLDER_RE = re.compile(r"<[A-Z][A-Z0-9_]*>")
_BARRIER = " \x00 "  # where a placeholder was: nothing may match across it

_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "nought": "0", "one": "1", "two": "2", "three": "3",
    "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_DIGIT_WORD = "|".join(_DIGIT_WORDS)
_REPEAT_RE = re.compile(rf"\b(double|triple|treble)\s+({_DIGIT_WORD}|\d)\b", re.IGNORECASE)
_DIGIT_WORD_RE = re.compile(rf"\b({_DIGIT_WORD})\b", re.IGNORECASE)
_FILLER_RE = re.compile(r"\b(?:uh|um|umm|uhm|er|erm|ah|eh|hmm|mm)\b", re.IGNORECASE)

# Digit groups separated by spaces, hyphens, commas or brackets: "415 555-0134", "(415) 555".
_GROUP = r"\d+(?:\.\d+)*"
_RUN_RE = re.compile(rf"(?<![\w.]){_GROUP}(?:(?:\s*[-,()]\s*|\s+){_GROUP})*")
_QUANTITY_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d{1,2}")
_CURRENCY_BEFORE_RE = re.compile(r"[£$€¥₹]\s*$")
_CURRENCY = r"(?:[£$€¥₹%]|(?:pounds?|quid|pence|p|euros?|eur|dollars?|usd|gbp|bucks|cents?|k|grand|percent)\b)"
_CURRENCY_NEXT_RE = re.compile(rf"^\s*{_CURRENCY}", re.IGNORECASE)
# "10, 20 and 30 pounds": small numbers may be listed before their currency.
_CURRENCY_AFTER_RE = re.compile(rf"^(?:\s*(?:and|or|to|,|-)\s*\d+(?:[.,]\d+)*)*\s*{_CURRENCY}", re.IGNORECASE)

_EMAIL_RE = re.compile(
    r"(?<![\w.+-])(?P<local>[a-z0-9](?:[a-z0-9._+-]*[a-z0-9])?)\s*@\s*"
    r"[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}(?![\w])",
    re.IGNORECASE,
)
# A single sentence word before a spoken "at": "I bought it at amazon dot com" is no address.
_NOT_LOCAL = frozenset(
    {
        "i", "m", "me", "is", "was", "am", "are", "be", "it", "that", "this", "them", "us", "we",
        "you", "they", "he", "she", "him", "her", "up", "out", "in", "on", "there", "here", "shop",
        "shopping", "bought", "paid", "pay", "buy", "ordered", "order", "online", "website", "site",
        "money", "card", "account",
    }
)  # fmt: skip


def _spoken_numbers(text: str) -> str:
    text = _FILLER_RE.sub(" ", text)
    text = _REPEAT_RE.sub(
        lambda m: _DIGIT_WORDS.get(m.group(2).lower(), m.group(2)) * (2 if m.group(1).lower() == "double" else 3),
        text,
    )
    return _DIGIT_WORD_RE.sub(lambda m: _DIGIT_WORDS[m.group(1).lower()], text)


def _spoken_email(text: str) -> str:
    text = re.sub(r"\s+at(?:\s+(?:sign|symbol))?\s+", " @ ", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+dot\s+", ".", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+underscore\s+", "_", text, flags=re.IGNORECASE)
    return re.sub(r"\s+(?:dash|hyphen)\s+", "-", text, flags=re.IGNORECASE)


# The leak rule: patterns over the normal form, one per entity type. The same patterns run as
# Python regexes (``find_leaks``, one text) and as Great Expectations expectations
# (``leak_gate``, a batch), so both give the same answer by construction.
LEAK_PATTERNS: dict[str, str] = {
    "CREDIT_CARD": r"(?<!\d)\d{13,19}(?!\d)",
    "PHONE_NUMBER": r"(?<!\d)\d{10,12}(?!\d)",
    "DIGIT_STRING": r"(?<!\d)\d{4,9}(?!\d)",
    "EMAIL_ADDRESS": r"[a-z0-9][a-z0-9._+-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}",
}
_COMPILED = {kind: re.compile(pattern) for kind, pattern in LEAK_PATTERNS.items()}


def _digit_runs(text: str) -> str:
    """Each digit string that could be PII becomes one run of digits; amounts, decimals and
    years are blanked out, so that only candidates are left for the patterns."""
    parts: list[str] = []
    pos = 0
    for m in _RUN_RE.finditer(text):
        run = m.group().strip(" ,-()")
        digits = re.sub(r"\D", "", run)
        parts.append(text[pos : m.start()])
        pos = m.end()
        if len(digits) < 4 or _QUANTITY_RE.fullmatch(run):
            parts.append(" # ")
            continue
        after = _CURRENCY_AFTER_RE if len(digits) <= 6 else _CURRENCY_NEXT_RE
        if len(digits) <= 9 and (_CURRENCY_BEFORE_RE.search(text[: m.start()]) or after.match(text[m.end() :])):
            parts.append(" # ")
            continue
        if run.isdecimal() and len(run) == 4 and 1000 <= int(run) <= 2099:
            parts.append(" # ")  # a year
            continue
        parts.append(f" {digits} ")
    parts.append(text[pos:])
    return "".join(parts)


def _emails(text: str) -> str:
    """E-mail shapes written out as ``local@domain``; "bought it at amazon dot com" is left broken."""
    spoken = _spoken_email(text)
    return _EMAIL_RE.sub(
        lambda m: re.sub(r"\s+", "", m.group()) if m.group("local").lower() not in _NOT_LOCAL else " ", spoken
    ).lower()


def normal_form(text: str) -> str:
    """The text as the leak patterns read it: placeholders as barriers, number words as digits,
    PII-shaped digit strings joined into one run, spoken e-mails written."""
    cleaned = _PLACEHOLDER_RE.sub(_BARRIER, text)
    return _emails(_digit_runs(_spoken_numbers(cleaned)))


def leak_types(normalised: str) -> list[str]:
    """Sorted entity types whose pattern matches an already normalised text."""
    return sorted(kind for kind, pattern in _COMPILED.items() if pattern.search(normalised))


def find_leaks(text: str) -> list[str]:
    """Sorted entity types that still look like PII in ``text`` (empty list: clean)."""
    return leak_types(normal_form(text))
