"""E-mail addresses said aloud ("john dot smith at gmail dot com") or half-written."""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from governance.redaction.entity_types import EMAIL

_TLDS = (
    "com|net|org|edu|gov|mil|int|co|uk|io|ie|de|fr|es|it|nl|be|eu|us|ca|au|nz|in|info|biz|me|"
    "ai|app|dev|ac|ch|at|se|no|dk|fi|pl|pt|jp|cn|br|mx|za|sg|tv|xyz|online|email|mail|hu|cz|"
    "sk|ro|gr|ru|ua|tr|il|ar|cl|kr|tw|hk|ph|id|my|th|vn|lt|lv|ee|si|hr|rs|bg|is|lu|li|biz|name"
)
# Each pattern piece can match a given stretch in one way only, so matching stays linear.
_WORD = r"[a-z0-9]+"
_HOST = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_SPOKEN_HOST = r"[a-z0-9]+(?:(?:-|\s+(?!dot\b))[a-z0-9]+)?"  # "brown kelly dot org", said in two words
_DOT = r"(?:\s+dot\s+|\.)"
_SEP = r"(?:\s+(?:dot|underscore|dash|hyphen)\s+|[._+-])"
_AT = r"(?:\s+at(?:\s+(?:sign|symbol))?\s+|\s*@\s*)"
# A spoken local part may be several words and numbers: "sierra seventy nine at gmail dot com".
_LOCAL_WORD_RE = re.compile(r"(?<![\w'.@])([a-z0-9]+)\s+$", re.IGNORECASE)
_NOT_LOCAL_WORD = {"email", "e-mail", "mail", "address", "login", "username", "contact", "id", "write", "reach"}
_MAX_LOCAL_WORDS = 6
_EMAIL_RE = re.compile(
    rf"(?<![\w'.+-])(?P<local>{_WORD}(?:{_SEP}{_WORD})*){_AT}"
    rf"{_SPOKEN_HOST}(?:{_DOT}{_HOST})*?{_DOT}(?:{_TLDS})(?:{_DOT}(?:{_TLDS}))?(?![\w])",
    re.IGNORECASE,
)
# A one-word "local part" that is really a sentence word: "I bought it at amazon dot com".
_NOT_LOCAL = {
    "i", "m", "me", "is", "was", "am", "are", "be", "been", "it", "that", "this", "them", "us", "we",
    "you", "they", "he", "she", "him", "her", "shop", "shopping", "bought", "order", "ordered",
    "paid", "pay", "buy", "purchased", "online", "website", "site", "something", "money", "up",
    "there", "here", "card", "account", "out", "in", "on", "from", "to", "and", "or", "payment",
    "look", "looked", "check", "checked", "sold", "listed", "registered", "signed", "log", "logged",
}  # fmt: skip


class SpokenEmailRecognizer(EntityRecognizer):
    """E-mail addresses with spoken "at" / "dot" / "underscore", or written ones."""

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
            results.append(RecognizerResult(EMAIL, _local_start(text, m.start()), m.end(), 0.85))
        return results


def _local_start(text: str, start: int) -> int:
    """Extend a spoken local part back over words that belong to it ("baksu one nine nine o",
    "renee fifty nine"), and over letters spelled one by one ("h a r at ...") even where a
    letter is also a word ("a", "i")."""
    spelled = len(text[start:].split(maxsplit=1)[0]) == 1 if text[start:].strip() else False
    for _ in range(_MAX_LOCAL_WORDS):
        m = _LOCAL_WORD_RE.search(text, 0, start)
        word = m.group(1).lower() if m else ""
        letter = len(word) == 1 and spelled
        if m is None or (not letter and (word in _STOP_WORDS or word in _NOT_LOCAL or word in _NOT_LOCAL_WORD)):
            break
        spelled = len(word) == 1
        start = m.start(1)
    return start


def _load_stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    from governance.redaction.normalize import TEENS, TENS, UNITS

    return frozenset(STOP_WORDS) - set(UNITS) - set(TEENS) - set(TENS)


_STOP_WORDS = _load_stop_words()
