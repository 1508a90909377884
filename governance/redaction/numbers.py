"""Digit strings as PII: which kind a number is, from its length, checksum and the words near it.

False positives matter as much as misses: a bank's callers say "four days ago", "one of my
cards" and "top up 20 pounds" all day. Hence: fewer than 4 digits is PII only right after a
security-code word ("cvv one two three"); amounts (currency next to the number), years and times
said as compound words ("twenty eighteen", "ten thirty") are skipped unless a PII word is next to
them ("my pin is twelve thirty four").
"""

from __future__ import annotations

from collections.abc import Sequence

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from governance.redaction import entity_types as T
from governance.redaction.normalize import (
    DigitRun,
    Token,
    find_digit_runs,
    luhn_ok,
    nearest,
    read_piece,
    spelled_words,
    tokenize,
)

MIN_DIGITS = 4

_CURRENCY_SYMBOLS = {"£", "$", "€", "¥", "₹"}
CURRENCY_WORDS = frozenset(
    {
        "pound", "pounds", "quid", "pence", "p", "euro", "euros", "eur", "dollar", "dollars", "usd",
        "gbp", "bucks", "cent", "cents", "k", "grand", "percent", "%", "yen", "rupees", "francs",
    }
    | _CURRENCY_SYMBOLS
)  # fmt: skip
# Words allowed between the end of a number and the currency that makes it an amount
# ("10, 20 and 30 pounds").
_AMOUNT_BRIDGE = {"and", "or", "to", ",", "-"}
_MAX_LISTED_AMOUNT = 6  # digits

# Context words per kind. "code" belongs to whichever word precedes it ("zip code", "sort code").
CONTEXT: dict[str, frozenset[str]] = {
    T.PHONE: frozenset({
        "phone", "mobile", "cell", "cellphone", "telephone", "tel", "landline", "call", "calling",
        "reach", "text", "contact", "whatsapp", "ring", "dial", "extension", "callback",
    }),
    T.SSN: frozenset({"social", "ssn", "ss"}),
    T.PIN: frozenset({
        "pin", "passcode", "password", "cvv", "cvc", "cv2", "otp", "verification", "security",
        "code", "passnumber", "one-time", "onetime", "2fa", "authentication", "access",
    }),
    T.ACCOUNT: frozenset({
        "account", "acct", "reference", "ref", "customer", "membership", "member", "policy", "order",
        "claim", "case", "ticket", "invoice", "confirmation", "tracking", "booking", "sort", "iban",
        "id", "routing", "loan", "contract", "subscriber", "transaction", "payee", "mortgage",
        "ending", "ends", "last", "sortcode", "shipment", "parcel", "receipt",
    }),
    T.CARD: frozenset({"card", "visa", "mastercard", "amex", "credit", "debit", "expiry"}),
    T.DOB: frozenset({"born", "birth", "birthday", "dob", "birthdate", "bday"}),
    T.ZIP: frozenset({"zip", "zipcode", "postcode", "postal", "post"}),
}  # fmt: skip
_NUMBER_WORDS = frozenset({"number", "no", "num", "digits", "numbers"})
_CODE_OWNERS = {"zip": T.ZIP, "post": T.ZIP, "postal": T.ZIP, "sort": T.ACCOUNT, "area": T.PHONE}
_BEFORE = 8
_AFTER = 4


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
        if low in CURRENCY_WORDS:
            return True
        if low not in _AMOUNT_BRIDGE and read_piece(tokens, j) is None:
            return False
        j += 1
    return False


def _context(tokens: Sequence[Token], run: DigitRun, lows: Sequence[str]) -> dict[str, int]:
    """Distance to the nearest context word of each kind that has one nearby."""
    found: dict[str, int] = {}
    for kind, words in CONTEXT.items():
        dist = nearest(tokens, run.first, run.last, words, _BEFORE, _AFTER, lows)
        if dist is not None:
            found[kind] = dist
    code_at = found.get(T.PIN)
    if code_at is not None:
        k = run.first - code_at
        owner = _CODE_OWNERS.get(tokens[k - 1].low) if 0 < k < len(tokens) and tokens[k].low == "code" else None
        if owner is not None:  # "zip code", "sort code": not a PIN
            del found[T.PIN]
            found[owner] = min(found.get(owner, code_at), code_at)
    return found


def classify_run(tokens: Sequence[Token], run: DigitRun, lows: Sequence[str] | None = None) -> tuple[str, float] | None:
    """Entity type and score for a digit run, or None when it is not PII.

    ``lows``: the tokens' words with spelled letters joined (``spelled_words``), for context."""
    lows = lows if lows is not None else spelled_words(tokens)
    n = len(run.digits) + run.letters
    if len(run.digits) < 2 or n < 3:
        return None
    if n <= 9 and not run.letters and _is_amount(tokens, run):
        return None
    ctx = _context(tokens, run, lows)
    if run.letters and (T.ZIP in ctx or _postcode_shaped(run)):
        return T.ZIP, 0.8
    if n == 3:  # "cvv one two three", "the three digits on the back are ..."
        on_back = nearest(tokens, run.first, run.last, {"back"}, 3, 0, lows) is not None
        return (T.PIN, 0.7) if ctx.get(T.PIN, 99) <= 3 or on_back else None
    near = {kind: d for kind, d in ctx.items() if d <= 3}
    if run.only_compound and n <= MIN_DIGITS and not near:
        return None  # "ten thirty", "twenty eighteen": times and years said as words
    if run.single_written and n == 4 and 1000 <= int(run.digits) <= 2099 and not ctx:
        return None  # a year: "it's 2018"
    if T.SSN in ctx and 7 <= n <= 9:
        return T.SSN, 0.85
    phone_only = T.PHONE in ctx and T.CARD not in ctx
    if 13 <= n <= 19 and luhn_ok(run.digits) and not phone_only:
        return T.CARD, 0.95
    if ctx:
        kind = min(ctx, key=lambda k: (ctx[k], _PRIORITY.index(k)))
        if kind == T.PHONE and n >= 6:
            return T.PHONE, 0.85
        if kind == T.DOB:
            return T.DOB, 0.8
        if kind == T.ZIP and (n in (5, 9) or run.letters):
            return T.ZIP, 0.8
        if kind == T.PIN and n <= 8:
            return T.PIN, 0.8
        if kind in (T.ACCOUNT, T.CARD, T.PIN, T.ZIP):
            return T.ACCOUNT, 0.8
    if nearest(tokens, run.first, run.last, _NUMBER_WORDS, _BEFORE, _AFTER, lows) is not None:
        return (T.PHONE, 0.75) if 10 <= n <= 13 else (T.ACCOUNT, 0.75)
    if 10 <= n <= 11:
        return T.PHONE, 0.6
    return T.DIGITS, 0.5


def _postcode_shaped(run: DigitRun) -> bool:
    """UK postcode shape: letters, one or two digits, a digit, two letters ("e c one e nine h n")."""
    return run.letters >= 3 and 1 <= len(run.digits) <= 3


_PRIORITY = [T.SSN, T.DOB, T.ZIP, T.PIN, T.CARD, T.ACCOUNT, T.PHONE]


class SpokenDigitsRecognizer(EntityRecognizer):
    """Digit strings in any mix of words and digits: phone, card, account numbers, PINs, SSNs."""

    ENTITIES = [T.PHONE, T.CARD, T.ACCOUNT, T.SSN, T.PIN, T.ZIP, T.DOB, T.DIGITS]

    def __init__(self) -> None:
        super().__init__(supported_entities=list(self.ENTITIES), name="SpokenDigitsRecognizer")

    def load(self) -> None:
        """Nothing to load: the lexicon is in code."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        tokens = tokenize(text)
        lows = spelled_words(tokens)
        results = []
        for run in find_digit_runs(tokens):
            found = classify_run(tokens, run, lows)
            if found is not None and found[0] in entities:
                results.append(RecognizerResult(found[0], run.start, run.end, found[1]))
        return results
