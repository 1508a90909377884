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
from spacy.lang.en.stop_words import STOP_WORDS

from governance.redaction import entity_types as T
from governance.redaction.normalize import (
    DigitRun,
    Token,
    digit_runs_of,
    luhn_ok,
    nearest,
    read_piece,
    spelled_words,
    tokens_of,
)

MIN_DIGITS = 4
IBAN = "IBAN_CODE"  # Presidio's names, for IBANs and IP addresses said aloud
IP = "IP_ADDRESS"

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

    ENTITIES = [T.PHONE, T.CARD, T.ACCOUNT, T.SSN, T.PIN, T.ZIP, T.DOB, T.DIGITS, IBAN, IP]

    def __init__(self) -> None:
        super().__init__(supported_entities=list(self.ENTITIES), name="SpokenDigitsRecognizer")

    def load(self) -> None:
        """Nothing to load: the lexicon is in code."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        tokens = tokens_of(text)
        lows = spelled_words(tokens)
        runs = digit_runs_of(text)
        results = []
        for run in runs:
            found = classify_run(tokens, run, lows)
            if found is not None and found[0] in entities:
                results.append(RecognizerResult(found[0], run.start, run.end, found[1]))
        for kind, spans in ((IBAN, find_ibans(tokens)), (IP, find_spoken_ips(tokens, runs))):
            if kind in entities:
                results += [RecognizerResult(kind, tokens[a].start, tokens[b].end, 0.9) for a, b in spans]
        return results


# IBAN length per issuing country (ISO 3166 code): with the mod-97 check, one candidate per
# country code, so a random digit string passes about once in a hundred country-code hits.
_IBAN_LENGTHS = {
    "ad": 24, "ae": 23, "al": 28, "at": 20, "az": 28, "ba": 20, "be": 16, "bg": 22, "bh": 22,
    "br": 29, "by": 28, "ch": 21, "cr": 22, "cy": 28, "cz": 24, "de": 22, "dk": 18, "do": 28,
    "ee": 20, "eg": 29, "es": 24, "fi": 18, "fo": 18, "fr": 27, "gb": 22, "ge": 22, "gi": 23,
    "gl": 18, "gr": 27, "gt": 28, "hr": 21, "hu": 28, "ie": 22, "il": 23, "iq": 23, "is": 26,
    "it": 27, "jo": 30, "kw": 30, "kz": 20, "lb": 28, "lc": 32, "li": 21, "lt": 20, "lu": 20,
    "lv": 21, "ly": 25, "mc": 27, "md": 24, "me": 22, "mk": 19, "mr": 27, "mt": 31, "mu": 30,
    "nl": 18, "no": 15, "pk": 24, "pl": 28, "ps": 29, "pt": 25, "qa": 29, "ro": 24, "rs": 22,
    "sa": 24, "sc": 31, "se": 24, "si": 19, "sk": 24, "sm": 27, "st": 25, "sv": 28, "tl": 23,
    "tn": 24, "tr": 26, "ua": 29, "va": 22, "vg": 24, "xk": 20,
}  # fmt: skip
_IP_DOTS = frozenset({"dot", "point", "."})


def iban_ok(code: str) -> bool:
    """The IBAN mod-97 check: country and check digits moved to the end, letters as 10..35."""
    moved = code[4:] + code[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def find_ibans(tokens: Sequence[Token]) -> list[tuple[int, int]]:
    """Token ranges (inclusive) of IBANs said in any mix of words, digits and letters ("g b five
    nine i f u e four zero ..."); a span counts only when its mod-97 check holds."""
    found: list[tuple[int, int]] = []
    i = 0
    while i < len(tokens):
        end = _iban_at(tokens, i)
        if end is None:
            i += 1
            continue
        found.append((i, end))
        i = end + 1
    return found


def _iban_at(tokens: Sequence[Token], i: int) -> int | None:
    """Last token of the longest valid IBAN starting at token i, or None."""
    k = i + 1
    country = tokens[i].low
    if len(country) == 1 and i + 1 < len(tokens) and len(tokens[i + 1].low) == 1:
        country, k = country + tokens[i + 1].low, i + 2
    length = _IBAN_LENGTHS.get(country)
    if length is None or not tokens[i].text.isalpha() or not _iban_country_said(tokens, i, k):
        return None
    chars = country.upper()
    while k < len(tokens) and len(chars) < length:
        piece = read_piece(tokens, k)
        if piece is not None:
            chars, k = chars + piece[0], piece[1]
        elif tokens[k].text.isascii() and tokens[k].text.isalnum() and len(tokens[k].text) <= 4 and len(chars) >= 4:
            chars, k = chars + tokens[k].text.upper(), k + 1  # bank code: "hxdo", "i f u e"
        else:
            break
    if len(chars) == length and chars[2:4].isdecimal() and iban_ok(chars):
        return k - 1
    return None


def _iban_country_said(tokens: Sequence[Token], i: int, k: int) -> bool:
    """A country code that is also an English word ("is", "it", "no") counts only when spelled
    ("i s"), written in capitals, or after the word "iban"."""
    if k == i + 2 or tokens[i].text.isupper() or tokens[i].low not in STOP_WORDS:
        return True
    return any(t.low == "iban" for t in tokens[max(0, i - 6) : i])


def find_spoken_ips(tokens: Sequence[Token], runs: Sequence[DigitRun]) -> list[tuple[int, int]]:
    """Token ranges of IPv4 addresses said with "dot": "one nine two dot one six eight dot ...".

    Four numbers of up to three digits (0-255) joined by "dot"; a run of single digits before
    the first dot or after the last keeps only its three digits nearest the dot."""
    by_first = {run.first: run for run in runs}
    found = []
    for run in runs:
        groups = [run]
        while len(groups) < 4:
            dot = groups[-1].last + 1
            nxt = by_first.get(dot + 1)
            if dot >= len(tokens) or tokens[dot].low not in _IP_DOTS or nxt is None:
                break
            groups.append(nxt)
        middle_ok = all(len(g.digits) <= 3 and int(g.digits) <= 255 for g in groups[1:3])
        if len(groups) == 4 and middle_ok:
            found.append((_edge(tokens, groups[0], last=True), _edge(tokens, groups[3], last=False)))
    return found


def _edge(tokens: Sequence[Token], run: DigitRun, last: bool) -> int:
    """First (``last``) or last token of the up to three digit words of a run nearest the dot."""
    if len(run.digits) <= 3 or run.last - run.first + 1 != len(run.digits):
        return run.first if last else run.last
    return run.last - 2 if last else run.first + 2
