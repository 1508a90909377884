"""Independent second check for PII left in already-redacted text.

Deliberately shares nothing with the redactor (no Presidio, no spaCy, no code from
``spoken.py``): a bug in one should not hide the same leak from the other. It is a small set
of blunt patterns over a normalised copy of the text: number words become digits, spoken
"at" / "dot" become "@" / ".", and then any run of 4+ digits or anything e-mail shaped is a
leak. Amounts ("1,000 dollars", "$100"), decimals and bare years are not. Only entity types
are returned, never the values, so the result can go into logs and audit records.
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


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _digit_leaks(text: str) -> set[str]:
    found: set[str] = set()
    for m in _RUN_RE.finditer(text):
        run = m.group().strip(" ,-()")
        digits = re.sub(r"\D", "", run)
        if len(digits) < 4 or _QUANTITY_RE.fullmatch(run):
            continue
        after = _CURRENCY_AFTER_RE if len(digits) <= 6 else _CURRENCY_NEXT_RE
        if len(digits) <= 9 and (_CURRENCY_BEFORE_RE.search(text[: m.start()]) or after.match(text[m.end() :])):
            continue
        if run.isdecimal() and len(run) == 4 and 1000 <= int(run) <= 2099:
            continue  # a year
        if 13 <= len(digits) <= 19 and _luhn(digits):
            found.add("CREDIT_CARD")
        elif 10 <= len(digits) <= 13:
            found.add("PHONE_NUMBER")
        else:
            found.add("DIGIT_STRING")
    return found


def _email_leaks(text: str) -> set[str]:
    for m in _EMAIL_RE.finditer(text):
        if m.group("local").lower() not in _NOT_LOCAL:
            return {"EMAIL_ADDRESS"}
    return set()


def find_leaks(text: str) -> list[str]:
    """Sorted entity types that still look like PII in ``text`` (empty list: clean)."""
    cleaned = _PLACEHOLDER_RE.sub(_BARRIER, text)
    return sorted(_digit_leaks(_spoken_numbers(cleaned)) | _email_leaks(_spoken_email(cleaned)))
