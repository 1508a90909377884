"""Replace PII in transcripts with ``<TYPE>`` placeholders, keeping the spans found.

The spans are kept (types, offsets, scores; never values elsewhere) so the pipeline can count
and audit what was removed, and so ``text[e.start:e.end]`` always gives back the span.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from presidio_analyzer import BatchAnalyzerEngine, RecognizerResult
from spacy.lang.en.stop_words import STOP_WORDS

from core.redacted_text import placeholder
from core.settings import RedactionConfig
from governance.redaction import entity_types as T
from governance.redaction.engine import LANGUAGE, get_analyzer

# LOCATION, DATE_TIME and NRP are left out on purpose: on banking text they fire on "UK",
# "yesterday", "British" and would blank out the words the intent model needs.
DEFAULT_ENTITIES: tuple[str, ...] = (
    T.PERSON,
    T.PHONE,
    T.CARD,
    T.EMAIL,
    T.SSN,
    T.PIN,
    T.DOB,
    T.ACCOUNT,
    T.ADDRESS,
    T.ZIP,
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_BANK_NUMBER",
    T.DIGITS,
)
_GENERIC = {T.DIGITS}
_WORD_RE = re.compile(r"[^\W\d_]+")
_ARTICLE_BEFORE_RE = re.compile(r"\b(?:the|a|an)\s+$", re.IGNORECASE)
# Capitalised banking words that spaCy's small model takes for names ("Visa or Mastercard",
# "Russian Ruble", "Atm took my card"). A PERSON span containing one of them is dropped.
_NOT_NAME_WORDS = frozenset(
    {
        "visa", "mastercard", "matercard", "mastercards", "master", "maestro", "amex", "american",
        "express", "discover", "diners", "jcb", "unionpay", "cirrus", "atm", "atms", "card", "cards",
        "debit", "credit", "contactless", "chip", "pin", "apple", "google", "samsung", "pay", "paypal",
        "venmo", "zelle", "swift", "sepa", "iban", "bic", "bacs", "chaps", "faster", "sort", "code",
        "bank", "banking", "app", "account", "ruble", "rubles", "rouble", "roubles", "russian", "euro",
        "euros", "pound", "pounds", "sterling", "dollar", "dollars", "yen", "yuan", "franc", "francs",
        "peso", "pesos", "rupee", "rupees", "krona", "kroner", "zloty", "lira", "dirham", "real",
        "rand", "bitcoin", "crypto", "ethereum", "gbp", "usd", "eur", "chf", "jpy", "aud", "cad",
        "top", "topup", "transfer", "refund", "statement", "exchange", "landlord", "broken",
        "declined", "pending", "hello", "hi", "hey", "thanks", "thank", "please", "withdrawal",
        "withdrawals", "seller", "merchant", "transaction", "transactions", "payment", "payments",
        "cancel", "eu", "uk", "usa",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Entity:
    """One redacted span: ``text[start:end]`` of the input was replaced by ``<type>``."""

    type: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Redaction:
    text: str
    redacted: str
    entities: list[Entity]


def resolve_overlaps(entities: Iterable[Entity]) -> list[Entity]:
    """Non-overlapping spans in text order: longest first, then highest score, then specific type."""
    ranked = sorted(
        entities,
        key=lambda e: (-(e.end - e.start), -e.score, e.type in _GENERIC, e.start, e.type),
    )
    kept: list[Entity] = []
    for cand in ranked:
        if cand.end > cand.start and all(cand.end <= k.start or cand.start >= k.end for k in kept):
            kept.append(cand)
    return sorted(kept, key=lambda e: e.start)


def apply_placeholders(text: str, entities: Sequence[Entity]) -> str:
    """``text`` with each (non-overlapping, sorted) entity replaced by ``<TYPE>``."""
    parts: list[str] = []
    pos = 0
    for e in entities:
        parts.append(text[pos : e.start])
        parts.append(placeholder(e.type))
        pos = e.end
    parts.append(text[pos:])
    return "".join(parts)


class Redactor:
    """Finds and masks PII with the process-wide analyzer; cheap to create after the first one."""

    def __init__(self, config: RedactionConfig | None = None, *, entities: Sequence[str] | None = None) -> None:
        self.config = config or RedactionConfig()
        # Explicit argument, then ``config.entities``, then every type this package knows.
        self.entities = list(entities or getattr(self.config, "entities", None) or DEFAULT_ENTITIES)
        self._analyzer = get_analyzer(self.config.spacy_model, tuple(self.config.extra_names))
        self._batch = BatchAnalyzerEngine(analyzer_engine=self._analyzer)

    def redact(self, text: str) -> Redaction:
        results = self._analyzer.analyze(
            text=text,
            language=LANGUAGE,
            entities=self.entities,
            score_threshold=self.config.score_threshold,
        )
        return self._build(text, results)

    def redact_many(self, texts: Sequence[str], batch_size: int = 64) -> list[Redaction]:
        """Same results as ``redact`` on each text, with spaCy run over batches (``nlp.pipe``)."""
        texts = list(texts)
        if not texts:
            return []
        batches = self._batch.analyze_iterator(
            texts=texts,
            language=LANGUAGE,
            batch_size=batch_size,
            entities=self.entities,
            score_threshold=self.config.score_threshold,
        )
        return [self._build(text, results) for text, results in zip(texts, batches, strict=True)]

    def _build(self, text: str, results: Iterable[RecognizerResult]) -> Redaction:
        found = (
            Entity(r.entity_type, r.start, r.end, round(float(r.score), 4))
            for r in results
            if r.entity_type in self.entities and r.score >= self.config.score_threshold
        )
        kept = (_strip_banking_words(text, _trim(text, e)) for e in found)
        entities = resolve_overlaps(e for e in kept if e is not None)
        return Redaction(text=text, redacted=apply_placeholders(text, entities), entities=entities)


def _strip_banking_words(text: str, e: Entity) -> Entity | None:
    """PERSON spans lose banking words at their edges ("Hi Sarah" -> "Sarah"); None if no name is left."""
    if e.type != "PERSON":
        return e
    words = list(_WORD_RE.finditer(text, e.start, e.end))
    kept = [m for m in words if m.group().lower() not in _NOT_NAME_WORDS]
    if all(m.group().lower() in STOP_WORDS for m in kept):
        return None  # nothing name-like left: "My App", "Visa"
    if len(kept) == 1 and _ARTICLE_BEFORE_RE.search(text, 0, e.start):
        return None  # "what is the max ...", "the Seller says ...": one common noun, not a name
    start = kept[0].start() if words[0] is not kept[0] else e.start
    end = kept[-1].end() if words[-1] is not kept[-1] else e.end
    return Entity(e.type, start, end, e.score)


def _trim(text: str, e: Entity) -> Entity:
    """Clamp to the text and drop surrounding whitespace, so spans are exactly the PII."""
    start, end = max(0, e.start), min(len(text), e.end)
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Entity(e.type, start, end, e.score)
