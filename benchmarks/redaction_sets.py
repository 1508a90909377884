"""Build the redaction evaluation sets into ``data/redaction_eval/`` (deterministic: fixed seeds).

    .venv/bin/python benchmarks/redaction_sets.py [--shared ../shared/data] [--out data/redaction_eval]

Sets (JSON lines, one ``{"id", "text", "spans": [{"type", "start", "end"}]}`` per line; each
set's ``ignore_types`` are in ``sets.json``; see ``data/redaction_eval/README.md``):

1. ``presidio_synth_written.jsonl``: presidio-research's synthetic sentences as they are (MIT).
2. ``presidio_synth_spoken.jsonl``: the same sentences rendered the way an ASR engine writes
   them (lower case, digits said one by one, "at"/"dot", no punctuation), spans carried
   through the rendering by a character map.
3. ``contact_center.jsonl``: generated caller turns with every PII type of the taxonomy said
   aloud, plus sentences with no PII that are false-positive traps.
4. ``slurp_person.jsonl``: SLURP's dev sentences that name a person (CC BY 4.0).

The two ``../shared`` sources are only read here; the project ships the built files.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from faker import Faker

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from governance.redaction.normalize import luhn_ok  # noqa: E402
from governance.redaction.scoring import Example, Span, write_examples  # noqa: E402

DEFAULT_SHARED = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "data" / "redaction_eval"
SEED = 20240611

TAXONOMY = (
    "PERSON",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "DATE_OF_BIRTH",
    "PIN",
    "ACCOUNT_NUMBER",
    "EMAIL_ADDRESS",
    "STREET_ADDRESS",
    "ZIP_CODE",
)
# presidio-research labels that are not caller PII (see governance/redaction/scoring.py).
SYNTH_IGNORE = ("GPE", "ORGANIZATION", "TITLE", "NRP", "AGE", "DATE_TIME", "DOMAIN_NAME")
# contact_center: towns said with an address or a ZIP code, labelled but not caller PII.
CITY = "CITY"
# SLURP types that are caller PII, mapped to the taxonomy; every other SLURP type is ignored.
SLURP_MAP = {"person": "PERSON", "email_address": "EMAIL_ADDRESS"}

# ==============================================================================================
# 1-2. presidio-research synthetic sentences, written and spoken
# ==============================================================================================
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DOMAIN_RE = re.compile(r"(?<![\w.])(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![\w])")
_IP_RE = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")


def render_spoken(text: str) -> tuple[str, list[int]]:
    """``text`` as an ASR engine would write it, and for each output character its source index.

    Lower case; each digit as a word ("4111" -> "four one one one"); "@" -> "at"; "." inside an
    e-mail address, a domain or an IP address -> "dot", "_" and "-" inside an e-mail address ->
    "underscore"/"dash"; an apostrophe between letters is kept ("don't", as ASR writes it);
    any other punctuation becomes a space; whitespace runs collapse to one space.
    """
    said: dict[int, str] = {}
    for m in _EMAIL_RE.finditer(text):
        for i in range(m.start(), m.end()):
            said[i] = {".": "dot", "_": "underscore", "-": "dash", "@": "at"}.get(text[i], "")
    for rx in (_DOMAIN_RE, _IP_RE):
        for m in rx.finditer(text):
            for i in range(m.start(), m.end()):
                if text[i] == ".":
                    said[i] = "dot"
    pieces: list[tuple[str, int]] = []
    for i, ch in enumerate(text):
        if said.get(i):
            out = f" {said[i]} "
        elif ch.isdigit():
            out = f" {DIGIT_WORDS[unicodedata.digit(ch)]} "
        elif ch == "@":
            out = " at "
        elif ch == "'" and 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha():
            out = "'"
        elif ch.isalpha() or unicodedata.category(ch).startswith("M"):
            out = ch.lower()
        else:
            out = " "  # whitespace, punctuation, symbols
        pieces.extend((c, i) for c in out)
    chars: list[str] = []
    src: list[int] = []
    for c, i in pieces:
        if c.isspace():
            if not chars or chars[-1] == " ":
                continue
            c = " "
        chars.append(c)
        src.append(i)
    if chars and chars[-1] == " ":
        chars.pop()
        src.pop()
    return "".join(chars), src


def map_span(rendered: str, src: list[int], start: int, end: int) -> tuple[int, int] | None:
    """The rendered extent of the source span [start, end): its first to last non-space char."""
    inside = [j for j, i in enumerate(src) if start <= i < end and not rendered[j].isspace()]
    return (inside[0], inside[-1] + 1) if inside else None


def load_synth(shared: Path) -> list[Example]:
    rows = json.loads((shared / "presidio_synth" / "synth_pii_dev.json").read_text(encoding="utf-8"))
    examples = []
    for n, row in enumerate(rows):
        text = row["full_text"]
        spans = []
        for s in row["spans"]:
            start, end = s["start_position"], s["end_position"]
            assert text[start:end] == s["entity_value"], (n, s)
            spans.append(Span(s["entity_type"], start, end))
        spans.sort(key=lambda s: (s.start, s.end, s.type))
        examples.append(Example(id=f"synth-{n:04d}", text=text, spans=tuple(spans)))
    return examples


def spoken_synth(written: list[Example]) -> list[Example]:
    out = []
    for ex in written:
        rendered, src = render_spoken(ex.text)
        spans = []
        for s in ex.spans:
            mapped = map_span(rendered, src, s.start, s.end)
            assert mapped is not None, (ex.id, s)
            value = rendered[mapped[0] : mapped[1]]
            assert value and value == render_spoken(ex.text[s.start : s.end])[0], (ex.id, s, value)
            spans.append(Span(s.type, *mapped))
        out.append(Example(id=ex.id.replace("synth-", "synth-spoken-"), text=rendered, spans=tuple(spans)))
    return out


# ==============================================================================================
# 4. SLURP sentences naming a person
# ==============================================================================================
_ANNOT_RE = re.compile(r"\[(?P<type>\w+) : (?P<value>[^\]]*)\]")


def _token_offsets(sentence: str, surfaces: list[str]) -> list[tuple[int, int]]:
    """Character extent of each SLURP token; a token that differs from the sentence (a typo or a
    case change in the token list) takes the next whitespace-delimited stretch."""
    low = sentence.lower()
    pos = 0
    offsets = []
    for surface in surfaces:
        i = low.find(surface.lower(), pos)
        if i < 0 or low[pos:i].strip():
            m = re.compile(r"\s*(\S+)").match(sentence, pos)
            assert m is not None, (sentence, surfaces)
            i, j = m.start(1), m.end(1)
        else:
            j = i + len(surface)
        offsets.append((i, j))
        pos = j
    return offsets


def load_slurp_person(shared: Path) -> tuple[list[Example], set[str]]:
    examples = []
    other_types: set[str] = set()
    for line in (shared / "slurp" / "devel.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if not any(e["type"] == "person" for e in row["entities"]):
            continue
        sentence = row["sentence"]
        offsets = _token_offsets(sentence, [t["surface"] for t in row["tokens"]])
        annotated = [m.group("value") for m in _ANNOT_RE.finditer(row["sentence_annotation"])]
        spans = []
        for k, ent in enumerate(row["entities"]):
            ids = ent["span"]
            assert ids == list(range(ids[0], ids[-1] + 1)), row["slurp_id"]
            start, end = offsets[ids[0]][0], offsets[ids[-1]][1]
            value = sentence[start:end]
            # check against the bracketed annotation (same order); SLURP's annotation keeps
            # typos and capitals of its token list, so compare letters loosely
            if k < len(annotated) and value.lower() != annotated[k].lower():
                a, b = re.sub(r"\W", "", value.lower()), re.sub(r"\W", "", annotated[k].lower())
                assert len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= 2, (value, annotated[k])
            type_ = SLURP_MAP.get(ent["type"], ent["type"])
            if type_ not in SLURP_MAP.values():
                other_types.add(type_)
            spans.append(Span(type_, start, end))
        spans.sort(key=lambda s: (s.start, s.end, s.type))
        examples.append(Example(id=f"slurp-{row['slurp_id']}", text=sentence, spans=tuple(spans)))
    return examples, other_types


# ==============================================================================================
# 3. contact-center caller turns
# ==============================================================================================
_TEENS = (
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORDINALS = (
    "", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
    "eighteenth", "nineteenth", "twentieth", "twenty first", "twenty second", "twenty third",
    "twenty fourth", "twenty fifth", "twenty sixth", "twenty seventh", "twenty eighth",
    "twenty ninth", "thirtieth", "thirty first",
)  # fmt: skip
_MONTHS = (
    "", "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
_FILLERS = ("uh", "um", "er", "erm", "uh", "um")


def words_under_100(n: int) -> str:
    if n < 10:
        return DIGIT_WORDS[n]
    if n < 20:
        return _TEENS[n - 10]
    tens, unit = divmod(n, 10)
    return _TENS[tens] + (f" {DIGIT_WORDS[unit]}" if unit else "")


def number_words(n: int, rng: random.Random, *, top: bool = True) -> str:
    """A cardinal as said: 112 -> "one hundred and twelve" / "a hundred twelve"."""
    if n < 100:
        return words_under_100(n)
    if n < 1000:
        h, rest = divmod(n, 100)
        head = "a hundred" if top and h == 1 and rng.random() < 0.3 else f"{DIGIT_WORDS[h]} hundred"
        if not rest:
            return head
        return f"{head} {'and ' if rng.random() < 0.6 else ''}{words_under_100(rest)}"
    th, rest = divmod(n, 1000)
    head = f"{number_words(th, rng)} thousand"
    if not rest:
        return head
    joint = " and " if rest < 100 else " "
    return head + joint + number_words(rest, rng, top=False)


def pair_words(pair: str) -> str:
    """Two digits read as one number: "12" -> "twelve", "04" -> "oh four", "00" -> "hundred"."""
    if pair == "00":
        return "hundred"
    if pair[0] == "0":
        return f"oh {DIGIT_WORDS[int(pair[1])]}"
    return words_under_100(int(pair))


def year_words(year: int, rng: random.Random) -> str:
    if 2000 <= year <= 2009:
        return f"two thousand {'and ' if rng.random() < 0.5 else ''}{DIGIT_WORDS[year - 2000]}".replace(" zero", "")
    if year >= 2010 and rng.random() < 0.4:
        return f"two thousand and {words_under_100(year - 2000)}"
    hi, lo = divmod(year, 100)
    return f"{words_under_100(hi)} {pair_words(f'{lo:02d}')}"


def letter_words(s: str) -> str:
    return " ".join(s)


class Speaker:
    """Says digit strings the many ways callers do (seeded; one instance per set)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def group(self, digits: str, zero: str, *, allow_pairs: bool, allow_mixed: bool) -> str:
        rng = self.rng
        if allow_mixed and rng.random() < 0.06:
            return digits  # ASR wrote the group as numerals: "4111"
        if allow_pairs and len(digits) in (2, 4) and digits[0] != "0" and rng.random() < 0.2:
            return " ".join(pair_words(digits[i : i + 2]) for i in range(0, len(digits), 2))
        words: list[str] = []
        i = 0
        while i < len(digits):
            d = digits[i]
            run = 1
            while i + run < len(digits) and digits[i + run] == d and run < 3:
                run += 1
            if run >= 2 and rng.random() < 0.5:
                word = zero if d == "0" else DIGIT_WORDS[int(d)]
                words.append(f"{'double' if run == 2 else 'triple'} {word}")
                i += run
                continue
            if allow_mixed and rng.random() < 0.08:
                words.append(d)  # "4 one 5"
            else:
                words.append(zero if d == "0" else DIGIT_WORDS[int(d)])
            i += 1
        return " ".join(words)

    def digits(
        self,
        digits: str,
        sizes: Iterable[int] | None = None,
        *,
        pairs: bool = True,
        mixed: bool = True,
        pauses: bool = True,
        repeat: bool = True,
    ) -> str:
        """``digits`` said in groups of ``sizes`` (default: one random split), with fillers and
        a repeated group now and then, the way a caller reads a number off a card."""
        rng = self.rng
        if sizes is None:
            sizes = [len(digits)] if len(digits) <= 4 else _random_split(len(digits), rng)
        groups: list[str] = []
        pos = 0
        for size in sizes:
            groups.append(digits[pos : pos + size])
            pos += size
        assert pos == len(digits), (digits, sizes)
        zero = rng.choice(("oh", "zero", "oh", "zero", "nought", "o"))
        mixed_here = mixed and rng.random() < 0.25
        said = [self.group(g, zero, allow_pairs=pairs, allow_mixed=mixed_here) for g in groups]
        out: list[str] = []
        pause_rate = 0.25 if pauses and rng.random() < 0.5 else 0.0
        for k, g in enumerate(said):
            if k and rng.random() < pause_rate:
                out.append(rng.choice(_FILLERS))
            out.append(g)
            if repeat and k < len(said) - 1 and rng.random() < 0.04:
                out.append(g)  # the caller says a group again ("four one five four one five ...")
        return " ".join(out)


def _random_split(n: int, rng: random.Random) -> list[int]:
    if rng.random() < 0.3:
        return [n]
    sizes = []
    left = n
    while left > 0:
        size = min(left, rng.choice((2, 3, 3, 4, 4)))
        sizes.append(size)
        left -= size
    return sizes


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


_FOLD = str.maketrans({"ł": "l", "ø": "o", "ß": "ss", "æ": "ae", "œ": "oe", "đ": "d", "ı": "i", "þ": "th", "ð": "d"})
NAME_LOCALES = (
    "en_US", "en_GB", "en_IN", "en_IE", "en_NG", "es_ES", "it_IT", "pl_PL", "de_DE", "fr_FR",
    "nl_NL", "pt_BR", "tr_TR", "yo_NG", "zu_ZA", "sw",
)  # fmt: skip


def ascii_name(name: str) -> str | None:
    """A name as a lowercase ASR transcript writes it ("José-María" -> "jose maria"); None if it
    cannot be written in plain letters."""
    folded = unicodedata.normalize("NFKD", name.lower().translate(_FOLD))
    folded = "".join(c for c in folded if not unicodedata.combining(c)).replace("-", " ").replace(".", "")
    folded = re.sub(r"\s+", " ", folded).strip()
    return folded if re.fullmatch(r"[a-z]+(?:'[a-z]+)?(?: [a-z]+(?:'[a-z]+)?)*", folded) else None


_STREETS = (
    "oak street", "maple avenue", "high street", "church road", "station road", "elm drive",
    "park lane", "main street", "victoria road", "mill lane", "cedar court", "pine street",
    "washington boulevard", "london road", "king street", "queens road", "green lane",
    "lincoln avenue", "sunset drive", "riverside way", "north street", "harbour view",
    "chestnut close", "willow crescent", "forest hill road", "bridge street", "orchard way",
)  # fmt: skip
_EMAIL_DOMAINS = (
    "gmail dot com", "gmail dot com", "gmail dot com", "yahoo dot com", "yahoo dot co dot uk",
    "hotmail dot com", "hotmail dot co dot uk", "outlook dot com", "icloud dot com", "aol dot com",
    "btinternet dot com", "live dot com", "protonmail dot com", "sky dot com", "yahoo dot co dot in",
    "gmail dot co dot uk", "me dot com", "comcast dot net", "verizon dot net", "bigpond dot com dot au",
)  # fmt: skip


@dataclass
class Slot:
    """What fills one ``{NAME}`` of a template: the gold type (None: not PII) and a generator of
    ``(before, value, after)``, where only ``value`` is the labelled span."""

    type: str | None
    make: Callable[[], tuple[str, str, str]]


class ContactCenter:
    """Generates caller turns (lower case, no punctuation, numbers in words) with gold spans."""

    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.say = Speaker(self.rng)
        self.fakers = []
        for k, loc in enumerate(NAME_LOCALES):
            f = Faker(loc)
            f.seed_instance(seed + k)
            self.fakers.append(f)
        self.us = Faker("en_US")
        self.us.seed_instance(seed + 100)
        self.gb = Faker("en_GB")
        self.gb.seed_instance(seed + 101)
        self.slots: dict[str, Slot] = {
            "NAME": Slot("PERSON", lambda: ("", self.full_name(), "")),
            "FIRST": Slot("PERSON", lambda: ("", self.first_name(), "")),
            "LAST": Slot("PERSON", lambda: ("", self.last_name(), "")),
            "SPELLED": Slot("PERSON", self.spelled_name),
            "PHONE": Slot("PHONE_NUMBER", lambda: ("", self.phone(), "")),
            "CARD": Slot("CREDIT_CARD", lambda: ("", self.card(), "")),
            "SSN": Slot("US_SSN", lambda: ("", self.ssn(), "")),
            "DOB": Slot("DATE_OF_BIRTH", self.dob),
            "PIN": Slot("PIN", lambda: ("", self.pin(4 if self.rng.random() < 0.7 else 6), "")),
            "OTP": Slot("PIN", lambda: ("", self.pin(self.rng.choice((6, 6, 6, 5, 8))), "")),
            "CVV": Slot("PIN", lambda: ("", self.pin(3), "")),
            "PASSCODE": Slot("PIN", lambda: ("", self.pin(self.rng.choice((4, 5, 6))), "")),
            "ACCT": Slot("ACCOUNT_NUMBER", lambda: ("", self.account(), "")),
            "ORDER": Slot("ACCOUNT_NUMBER", lambda: ("", self.alnum_ref(), "")),
            "POLICY": Slot("ACCOUNT_NUMBER", lambda: ("", self.alnum_ref(digits=(6, 10)), "")),
            "REF": Slot("ACCOUNT_NUMBER", lambda: ("", self.alnum_ref(digits=(6, 9), letters=0.4), "")),
            "CUST": Slot("ACCOUNT_NUMBER", lambda: ("", self.account(lengths=(7, 8, 9, 10)), "")),
            "EMAIL": Slot("EMAIL_ADDRESS", lambda: ("", self.email(), "")),
            "ADDRESS": Slot("STREET_ADDRESS", self.street),
            "ZIP": Slot("ZIP_CODE", lambda: ("", self.zip_code(), "")),
            "POSTCODE": Slot("ZIP_CODE", lambda: ("", self.postcode(), "")),
            # not PII
            "CITY": Slot(CITY, lambda: ("", self.city(), "")),  # ignored: a town is not PII
        }

    # --- values ------------------------------------------------------------------------------
    def _name_part(self, first: bool) -> str:
        for _ in range(50):
            f = self.rng.choice(self.fakers)
            name = ascii_name(f.first_name() if first else f.last_name())
            if name and len(name) >= 2:
                return name
        raise RuntimeError("no name")

    def first_name(self) -> str:
        return self._name_part(True)

    def last_name(self) -> str:
        return self._name_part(False)

    def full_name(self) -> str:
        return f"{self.first_name()} {self.last_name()}"

    def spelled_name(self) -> tuple[str, str, str]:
        name = self.last_name().replace(" ", "").replace("'", "")
        return "", letter_words(name), ""

    def phone(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.4:  # US: 3-3-4
            digits = f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
            return self.say.digits(digits, (3, 3, 4))
        if kind < 0.7:  # UK mobile 07xxx xxxxxx
            digits = f"07{rng.randint(100, 999)}{rng.randint(0, 999999):06d}"
            sizes = rng.choice(((5, 6), (5, 3, 3), (4, 3, 4), (11,)))
            return self.say.digits(digits, sizes)
        if kind < 0.8:  # with a country code
            cc, rest, sizes = rng.choice(
                (
                    ("44", f"7{rng.randint(100, 999)}{rng.randint(0, 999999):06d}", (4, 6)),
                    ("1", f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}", (3, 3, 4)),
                    ("91", f"{rng.randint(70000, 99999)}{rng.randint(0, 99999):05d}", (5, 5)),
                )
            )
            return f"plus {self.say.digits(cc, pairs=False, mixed=False)} {self.say.digits(rest, sizes)}"
        if kind < 0.9:  # India 10 digits
            digits = f"{rng.randint(70000, 99999)}{rng.randint(0, 99999):05d}"
            return self.say.digits(digits, (5, 5))
        # UK landline 01xxx / 020
        digits = f"020{rng.randint(7000, 8999)}{rng.randint(0, 9999):04d}"
        return self.say.digits(digits, (3, 4, 4))

    def card(self) -> str:
        rng = self.rng
        kind = rng.random()
        sizes: tuple[int, ...]
        if kind < 0.45:
            number, sizes = luhn_complete("4", 16, rng), (4, 4, 4, 4)
        elif kind < 0.8:
            number, sizes = luhn_complete(rng.choice(("51", "52", "53", "54", "55", "2221")), 16, rng), (4, 4, 4, 4)
        elif kind < 0.9:
            number, sizes = luhn_complete(rng.choice(("34", "37")), 15, rng), (4, 6, 5)
        else:
            number = self.us.credit_card_number(card_type=rng.choice(("visa16", "mastercard", "discover")))
            sizes = (4,) * (len(number) // 4) + ((len(number) % 4,) if len(number) % 4 else ())
        assert luhn_ok(number), number
        if rng.random() < 0.15:
            sizes = (len(number),)
        return self.say.digits(number, sizes, pairs=rng.random() < 0.3)

    def ssn(self) -> str:
        rng = self.rng
        digits = f"{rng.randint(1, 899):03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
        sizes = (3, 2, 4) if rng.random() < 0.7 else (9,)
        return self.say.digits(digits, sizes, pairs=rng.random() < 0.3)

    def dob(self) -> tuple[str, str, str]:
        rng = self.rng
        year = rng.randint(1938, 2006)
        month = rng.randint(1, 12)
        day = rng.randint(1, 28)
        y = year_words(year, rng)
        yy = pair_words(f"{year % 100:02d}")
        style = rng.randrange(10)
        if style == 0:
            return "the ", f"{_ORDINALS[day]} of {_MONTHS[month]} {y}", ""
        if style == 1:
            return "", f"{_MONTHS[month]} {_ORDINALS[day]} {y}", ""
        if style == 2:
            return "", f"{_MONTHS[month]} the {_ORDINALS[day]} {y}", ""
        if style == 3:  # "twelve oh four eighty four"
            return "", f"{words_under_100(month)} {pair_words(f'{day:02d}')} {yy}", ""
        if style == 4:  # "oh three oh four nineteen eighty four"
            return "", f"{pair_words(f'{month:02d}')} {pair_words(f'{day:02d}')} {y}", ""
        if style == 5:  # digits one by one, dd mm yyyy
            return "", self.say.digits(f"{day:02d}{month:02d}{year}", (2, 2, 4), pairs=False, repeat=False), ""
        if style == 6:  # "three four eighty four"
            return "", f"{words_under_100(month)} {words_under_100(day)} {yy}", ""
        if style == 7:  # "fourth july ninety two"
            return "", f"{_ORDINALS[day]} {_MONTHS[month]} {yy}", ""
        if style == 8:  # "eleven march nineteen ninety eight"
            return "", f"{words_under_100(day)} {_MONTHS[month]} {y}", ""
        return "", f"{_MONTHS[month]} {words_under_100(day)} {y}", ""

    def pin(self, length: int) -> str:
        rng = self.rng
        digits = "".join(str(rng.randrange(10)) for _ in range(length))
        sizes = (length,) if length <= 4 or rng.random() < 0.6 else (length // 2, length - length // 2)
        return self.say.digits(digits, sizes, pairs=length == 4, repeat=False)

    def account(self, lengths: tuple[int, ...] = (8, 8, 8, 10, 11, 12)) -> str:
        rng = self.rng
        n = rng.choice(lengths)
        digits = str(rng.randint(1, 9)) + "".join(str(rng.randrange(10)) for _ in range(n - 1))
        return self.say.digits(digits)

    def alnum_ref(self, digits: tuple[int, int] = (5, 9), letters: float = 0.6) -> str:
        rng = self.rng
        n = rng.randint(*digits)
        number = "".join(str(rng.randrange(10)) for _ in range(n))
        said = self.say.digits(number)
        if rng.random() < letters:
            prefix = "".join(rng.choice("abcdefghjkmnprstuvwxyz") for _ in range(rng.choice((1, 2, 2, 3))))
            return f"{letter_words(prefix)} {said}"
        return said

    def email(self) -> str:
        rng = self.rng
        first, last = self.first_name().split()[0], self.last_name().split()[0]
        style = rng.randrange(9)
        if style == 0:
            local = f"{first} dot {last}"
        elif style == 1:
            local = f"{first[0]} underscore {last}"
        elif style == 2:
            local = f"{first}{last}"
        elif style == 3:
            local = f"{first} {last}"  # ASR splits "johnsmith" into the two names
        elif style == 4:
            local = f"{first} {number_words(rng.randint(1, 99), rng)}"
        elif style == 5:
            local = f"{first[0]}{last} {self.say.digits(str(rng.randint(1960, 2005)), pairs=True, repeat=False)}"
        elif style == 6:
            local = letter_words(first[: rng.randint(3, 5)])  # spelled out
        elif style == 7:
            local = f"{last} dash {first}"
        else:
            local = f"{first}{last[0]}"
        domain = rng.choice(_EMAIL_DOMAINS)
        if rng.random() < 0.12:
            word = ascii_name(self.us.domain_word()) or "mail"
            domain = f"{word} dot {rng.choice(('com', 'co dot uk', 'net', 'org'))}"
        at = "at sign" if rng.random() < 0.05 else "at"
        return f"{local} {at} {domain}"

    def house_number(self) -> str:
        rng = self.rng
        n = rng.choice((rng.randint(1, 99), rng.randint(1, 99), rng.randint(100, 999), rng.randint(1000, 9999)))
        s = str(n)
        style = rng.random()
        if n >= 1000 and style < 0.6:
            out = f"{pair_words(s[:2])} {pair_words(s[2:])}"  # "twelve thirty four"
        elif 100 <= n < 1000 and style < 0.5:
            out = f"{DIGIT_WORDS[int(s[0])]} {pair_words(s[1:])}"  # "four fifty six"
        elif style < 0.8:
            out = number_words(n, rng)
        else:
            out = self.say.digits(s, pairs=False, repeat=False)
        if rng.random() < 0.08:
            out += f" {rng.choice('abcd')}"
        return out

    def street_name(self) -> str:
        rng = self.rng
        if rng.random() < 0.5:
            return rng.choice(_STREETS)
        f = rng.choice((self.us, self.gb))
        name = ascii_name(f.street_name())
        return name or rng.choice(_STREETS)

    def street(self) -> tuple[str, str, str]:
        """House number and street (and flat or apartment); now and then the town after it, as
        a separate ``CITY`` span (ignored, like presidio-research's GPE)."""
        rng = self.rng
        out = f"{self.house_number()} {self.street_name()}"
        r = rng.random()
        if r < 0.12:
            out += f" apartment {number_words(rng.randint(1, 40), rng)}{rng.choice(('', '', ' b', ' a'))}"
        elif r < 0.2:
            out = f"flat {number_words(rng.randint(1, 30), rng)} {out}"
        elif r < 0.3:
            return "", out, " {CITY}"
        return "", out, ""

    def city(self) -> str:
        f = self.rng.choice((self.us, self.gb))
        return ascii_name(f.city()) or "springfield"

    def zip_code(self) -> str:
        rng = self.rng
        digits = f"{rng.randint(501, 99950):05d}"
        said = self.say.digits(digits, (5,) if rng.random() < 0.7 else (3, 2), pairs=False, repeat=False)
        if rng.random() < 0.1:
            said += f" dash {self.say.digits(f'{rng.randint(0, 9999):04d}', pairs=False, repeat=False)}"
        return said

    def postcode(self) -> str:
        code = self.gb.postcode().lower()
        words = []
        for ch in code.replace(" ", ""):
            words.append(DIGIT_WORDS[int(ch)] if ch.isdigit() else ch)
        return " ".join(words)

    # --- sentences -----------------------------------------------------------------------------
    def fill(self, template: str) -> tuple[str, list[Span]]:
        """The template with each ``{SLOT}`` filled; spans of the PII slots."""
        parts = re.split(r"\{(\w+)\}", template)
        text = ""
        spans: list[Span] = []
        for k, part in enumerate(parts):
            if k % 2 == 0:
                text += part
                continue
            slot = self.slots[part]
            before, value, after = slot.make()
            text += before
            if slot.type is not None:
                spans.append(Span(slot.type, len(text), len(text) + len(value)))
            text += value
            if after:  # may hold slots of its own: "{ADDRESS}" -> "twelve oak street {CITY}"
                rest, rest_spans = self.fill(after)
                spans += [Span(x.type, x.start + len(text), x.end + len(text)) for x in rest_spans]
                text += rest
        return text, spans

    def sentence(self, template: str) -> tuple[str, list[Span]]:
        rng = self.rng
        if rng.random() < 0.3:
            template = rng.choice(_OPENERS) + " " + template
        text, spans = self.fill(template)
        # collapse spaces the template left (openers, empty pieces), keeping spans in place
        out = ""
        remap = {}
        for i, ch in enumerate(text):
            if ch == " " and (not out or out.endswith(" ")):
                remap[i] = len(out)
                continue
            remap[i] = len(out)
            out += ch
        remap[len(text)] = len(out)
        spans = [Span(s.type, remap[s.start], remap[s.start] + len(text[s.start : s.end])) for s in spans]
        out = out.rstrip()
        for s in spans:
            assert out[s.start : s.end].strip() == out[s.start : s.end] and s.end > s.start, (out, s)
        return out, spans


_OPENERS = ("yeah", "yes", "um", "uh", "okay so", "right so", "sure", "yeah so", "oh", "hi", "hello", "so")

TEMPLATES: dict[str, list[str]] = {
    "PERSON": [
        "my name is {NAME}",
        "my name's {NAME}",
        "hi my name is {NAME} and i'm calling about my card",
        "yes this is {NAME}",
        "this is {FIRST} calling about a payment",
        "it's {NAME} here",
        "{NAME} speaking",
        "hello {FIRST} speaking how can i help",
        "the account holder is {NAME}",
        "the account is in my husband's name {NAME}",
        "the account is under my wife {FIRST}",
        "my first name is {FIRST} and my surname is {LAST}",
        "my surname is {LAST}",
        "the last name is {LAST} {SPELLED}",
        "that's {LAST} spelled {SPELLED}",
        "i spoke to {FIRST} yesterday",
        "can you put me through to {FIRST}",
        "i was talking to {FIRST} earlier and she said it would be sorted",
        "{FIRST} from your fraud team called me this morning",
        "my husband {FIRST} set up the direct debit",
        "my daughter {FIRST} uses the card as well",
        "is {FIRST} there please",
        "the agent was called {FIRST} i think",
        "i sent money to {NAME} last week and it never arrived",
        "the transfer to {NAME} didn't go through",
        "i want to add {NAME} as a payee",
        "can you tell {FIRST} i called",
        "thanks {FIRST} that's really helpful",
        "it's mister {LAST}",
        "can i speak to miss {LAST} please",
        "i'm calling on behalf of my mother {NAME}",
        "my son {FIRST} has a card on my account",
        "{NAME} is the second card holder",
        "it should say {NAME} on the card",
        "the payment to {FIRST} {LAST} was taken twice",
        "i'm {FIRST} by the way",
        "yeah it's {FIRST}",
        "i was helped by {FIRST} last time",
        "please make the cheque out to {NAME}",
        "my late father {NAME} had an account with you",
        "my landlord {NAME} hasn't received the rent",
        "i'm trying to pay {FIRST} back for dinner",
    ],
    "PHONE_NUMBER": [
        "my phone number is {PHONE}",
        "my number is {PHONE}",
        "you can reach me on {PHONE}",
        "call me back on {PHONE}",
        "my mobile is {PHONE}",
        "my mobile number is {PHONE}",
        "the number on the account is {PHONE}",
        "the best number to call is {PHONE}",
        "my cell is {PHONE}",
        "my home phone is {PHONE} but i'm rarely in",
        "text me on {PHONE}",
        "the old number was {PHONE}",
        "i changed my number to {PHONE}",
        "it's {PHONE}",
        "it's {PHONE} that's my mobile",
        "{PHONE} is my work number",
        "you can call me at {PHONE} after five",
        "the contact number should be {PHONE}",
        "they rang me from {PHONE} and said they were the bank",
        "a number {PHONE} keeps calling me",
        "my wife's number is {PHONE}",
        "the phone number they have is {PHONE} but that's wrong",
        "please update my telephone number to {PHONE}",
        "i got a text from {PHONE} asking for my details",
        "my landline is {PHONE}",
        "whatsapp me on {PHONE}",
        "it's {PHONE} for the mobile",
        "my daytime number is {PHONE}",
    ],
    "CREDIT_CARD": [
        "my card number is {CARD}",
        "the card number is {CARD}",
        "the long number on the card is {CARD}",
        "yeah it's a visa {CARD}",
        "card number {CARD}",
        "the sixteen digits are {CARD}",
        "the number on the front is {CARD}",
        "i want to block card {CARD}",
        "it's {CARD}",
        "my new card is {CARD}",
        "the old card was {CARD}",
        "my debit card number is {CARD}",
        "the credit card is {CARD}",
        "it's the mastercard {CARD}",
        "the amex number is {CARD}",
        "i'd like to pay with {CARD}",
        "can you take the payment from {CARD}",
        "the number's {CARD}",
        "i'm reading it off the card {CARD}",
        "{CARD} that's the card that was stolen",
        "the card that got declined is {CARD}",
        "okay the full number is {CARD}",
        "use my other card {CARD}",
        "the replacement card number is {CARD} and it hasn't arrived",
    ],
    "US_SSN": [
        "my social is {SSN}",
        "my social security number is {SSN}",
        "social security number {SSN}",
        "my ssn is {SSN}",
        "the social on file should be {SSN}",
        "it's {SSN} that's my social",
        "s s n {SSN}",
        "my social security is {SSN}",
        "do you need my social it's {SSN}",
        "social is {SSN}",
        "the last one you have is wrong it should be {SSN}",
        "my husband's social is {SSN}",
        "for the social it's {SSN}",
        "my tax id is {SSN}",
        "i'll give you my social {SSN}",
        "yeah the social security number {SSN}",
        "the social security on the form is {SSN}",
        "it's {SSN}",
        "my s s n is {SSN}",
        "socials {SSN}",
        "social security {SSN} and that's it",
        "you asked for the social right {SSN}",
    ],
    "DATE_OF_BIRTH": [
        "i was born on {DOB}",
        "my date of birth is {DOB}",
        "date of birth {DOB}",
        "d o b is {DOB}",
        "my birthday is {DOB}",
        "born {DOB}",
        "it's {DOB} that's my birthday",
        "my son's date of birth is {DOB}",
        "the date of birth on the account should be {DOB}",
        "i'm born on {DOB}",
        "my dob is {DOB}",
        "date of birth is {DOB}",
        "she was born {DOB}",
        "my birth date is {DOB}",
        "the birthday is {DOB}",
        "birthday {DOB}",
        "it's {DOB}",
        "i think you have my date of birth wrong it's {DOB}",
        "my mother's date of birth is {DOB}",
        "date of birth yeah {DOB}",
        "my wife was born on {DOB}",
        "for security my birthday is {DOB}",
    ],
    "PIN": [
        "my pin is {PIN}",
        "the pin is {PIN}",
        "my pin number is {PIN} i think",
        "i changed my pin to {PIN}",
        "my old pin was {PIN}",
        "the verification code is {OTP}",
        "the code you just sent me is {OTP}",
        "the one time passcode is {OTP}",
        "the o t p is {OTP}",
        "i got a text with {OTP}",
        "the code was {OTP} but it expired",
        "my passcode is {PASSCODE}",
        "my telephone banking passcode is {PASSCODE}",
        "security number {PASSCODE}",
        "the security code on the back is {CVV}",
        "the cvv is {CVV}",
        "the three digits on the back are {CVV}",
        "c v v {CVV}",
        "the security code is {CVV}",
        "the code is {OTP}",
        "it's {PIN} for the pin",
        "the passcode for the app is {PASSCODE}",
        "my security pin is {PIN}",
        "the activation code is {OTP}",
        "i typed in {OTP} and it said invalid",
        "my voice banking pin is {PIN}",
        "the confirmation code is {OTP}",
        "my access code is {PASSCODE}",
    ],
    "ACCOUNT_NUMBER": [
        "my account number is {ACCT}",
        "account number {ACCT}",
        "the account number is {ACCT}",
        "it's account {ACCT}",
        "the order number is {ORDER}",
        "my order number is {ORDER}",
        "order {ORDER}",
        "policy number {POLICY}",
        "my policy number is {POLICY}",
        "the reference number is {REF}",
        "the reference is {REF}",
        "my customer number is {CUST}",
        "customer id {CUST}",
        "membership number {CUST}",
        "my member id is {CUST}",
        "the case number is {REF}",
        "the claim number is {REF}",
        "i was given a reference {REF}",
        "my savings account is {ACCT}",
        "please send it to account {ACCT}",
        "the account it came from is {ACCT}",
        "the loan account number is {ACCT}",
        "the ticket number is {REF}",
        "my membership number is {CUST} and i can't log in",
        "the tracking number is {ORDER}",
        "my policy is {POLICY}",
        "the booking reference is {REF}",
        "my customer reference is {CUST}",
    ],
    "EMAIL_ADDRESS": [
        "my email is {EMAIL}",
        "my email address is {EMAIL}",
        "it's {EMAIL}",
        "send it to {EMAIL}",
        "you can email me at {EMAIL}",
        "the email on the account is {EMAIL}",
        "my new email is {EMAIL}",
        "it should go to {EMAIL}",
        "{EMAIL} that's my email",
        "the email address is {EMAIL}",
        "email {EMAIL}",
        "please update my email to {EMAIL}",
        "i got an email from {EMAIL} saying my account was locked",
        "my work email is {EMAIL}",
        "the old email was {EMAIL}",
        "can you send the statement to {EMAIL}",
        "it's {EMAIL} all lower case",
        "my wife's email is {EMAIL}",
        "the receipt went to {EMAIL}",
        "my login is {EMAIL}",
    ],
    "STREET_ADDRESS": [
        "i live at {ADDRESS}",
        "my address is {ADDRESS}",
        "it's {ADDRESS}",
        "the billing address is {ADDRESS}",
        "i've moved to {ADDRESS}",
        "send it to {ADDRESS}",
        "the delivery address should be {ADDRESS}",
        "my old address was {ADDRESS}",
        "first line of the address is {ADDRESS}",
        "{ADDRESS} that's where i live",
        "the card was sent to {ADDRESS} but i don't live there",
        "my home address is {ADDRESS}",
        "we're at {ADDRESS}",
        "address {ADDRESS}",
        "i'm at {ADDRESS} now",
        "the new address is {ADDRESS} in {CITY}",
        "it's {ADDRESS} and the zip is {ZIP}",
        "my address is {ADDRESS} {POSTCODE}",
        "the house is {ADDRESS}",
        "please update the address to {ADDRESS}",
        "the property address is {ADDRESS}",
        "my mailing address is {ADDRESS}",
    ],
    "ZIP_CODE": [
        "my zip is {ZIP}",
        "zip code {ZIP}",
        "the zip code is {ZIP}",
        "my zip code is {ZIP}",
        "postcode is {POSTCODE}",
        "my post code is {POSTCODE}",
        "the postcode is {POSTCODE}",
        "it's {ZIP}",
        "and the zip is {ZIP}",
        "the zip on the card is {ZIP}",
        "billing zip {ZIP}",
        "the post code on the account is {POSTCODE}",
        "it's {POSTCODE}",
        "zip {ZIP}",
        "my postal code is {POSTCODE}",
        "i'm in {CITY} zip code {ZIP}",
        "we moved so the zip is now {ZIP}",
        "the postcode should be {POSTCODE} not the old one",
        "and postcode {POSTCODE}",
        "the zip code for billing is {ZIP}",
    ],
}
MIXED_TEMPLATES = [
    "my name is {NAME} and my date of birth is {DOB}",
    "it's {NAME} and my account number is {ACCT}",
    "my name is {NAME} and my phone number is {PHONE}",
    "{NAME} {DOB}",
    "i live at {ADDRESS} and my zip is {ZIP}",
    "my email is {EMAIL} and my number is {PHONE}",
    "card number {CARD} and the security code is {CVV}",
    "my social is {SSN} and my date of birth is {DOB}",
    "the account number is {ACCT} and the pin is {PIN}",
    "yes it's {FIRST} {LAST} at {ADDRESS}",
    "my postcode is {POSTCODE} and it's {ADDRESS}",
    "{FIRST} {LAST} date of birth {DOB} policy number {POLICY}",
]

# ----- negatives: no PII, but numbers, dates, times, amounts and name-like words -------------
_NEG_TEMPLATES = [
    "i made the payment {SMALL} days ago",
    "one of my cards was declined",
    "one of my cards isn't working",
    "i topped up {AMOUNT}",
    "i tried to top up {AMOUNT} and it failed",
    "it was {YEAR}",
    "i opened the account back in {YEAR}",
    "i've been with you since {YEAR}",
    "can you call me back at {TIME}",
    "i'll call back at {HOUR}",
    "the branch shuts at {TIME} doesn't it",
    "two factor authentication isn't working",
    "the two factor code never arrives",
    "i have {SMALL} cards with you",
    "i was charged {AMOUNT} twice",
    "there's a payment of {AMOUNT} i don't recognise",
    "i tried {SMALL} or {SMALL2} times",
    "the money goes out on the {ORD} of the month",
    "my rent goes out on the {ORD} every month",
    "it usually takes {SMALL} to {SMALL2} working days",
    "i've been on hold for {MINUTES} minutes",
    "i've been a customer for {SMALL} years",
    "it was about {AMOUNT}",
    "i withdrew {AMOUNT} from the cash machine",
    "the exchange rate was terrible i lost about {AMOUNT}",
    "i paid by {BRAND} and it didn't go through",
    "does {BRAND} work abroad",
    "i want to add my card to {BRAND}",
    "my {BRAND} card was declined at the shop",
    "is it {BRAND} or {BRAND2}",
    "i {WILL} need a new card",
    "{WORDNAME_SENTENCE}",
    "the transfer was {AMOUNT} on {WEEKDAY}",
    "i got paid on {WEEKDAY} and the money isn't there",
    "it's been {SMALL} weeks and nothing",
    "the card expired last month",
    "the atm swallowed my card at {TIME}",
    "i need {AMOUNT} for the deposit",
    "why is there a fee of {AMOUNT}",
    "i sent {AMOUNT} to my sister",
    "my salary of {BIGAMOUNT} hasn't come in",
    "the limit is {BIGAMOUNT} a day right",
    "it happened around {TIME} yesterday",
    "i'm {AGE} years old and i want a credit card",
    "i need it by the {ORD}",
    "the {ORD} payment bounced",
    "can i have {SMALL} more days to pay",
    "i pressed option {SMALL} like it said",
    "page {SMALL} of the statement",
    "the app keeps saying error {SMALL_NUM}",
    "between {HOUR} and {HOUR2} is fine",
    "i was there from {TIME} to {TIME2}",
    "about {PERCENT} percent interest",
    "the interest went up from {SMALL} to {SMALL2} percent",
    "a year ago in {MONTH}",
    "my statement for {MONTH} is missing",
    "i paid it off in {MONTH} {YEAR}",
    "since {MONTH} i've been charged twice",
    "the card arrived on the {ORD} of {MONTH}",
    "my card expires in {YEAR}",
    "twenty four seven support my foot",
    "{SMALL} transactions are pending",
    "i bought {SMALL} tickets for {AMOUNT}",
    "the last {SMALL} payments failed",
    "i've called {SMALL} times this week",
    "the cash machine gave me {AMOUNT} instead of {AMOUNT2}",
    "i used my card at {TIME} in the morning",
    "i'm calling about the {BRAND} charge",
    "i got a refund of {AMOUNT} but it was {AMOUNT2}",
    "can i pay {AMOUNT} now and the rest on the {ORD}",
]
_WORDNAME_SENTENCES = [
    "i will pay the bill in may",
    "can you mark it as fraud please",
    "i hope you can help me",
    "to be frank i'm not happy",
    "i got a grant payment from the council",
    "i have faith it will be sorted",
    "the rich get richer i suppose",
    "i want to sue the shop",
    "i keep having to chase this up",
    "it's a joy dealing with you lot",
    "is there a grace period",
    "i paid the gas bill twice",
    "may i ask why it was blocked",
    "it may take a while",
    "i will do that now",
    "the penny finally dropped",
    "i want pound sterling",
    "i'm going away for the summer",
    "we'll see what the bank says",
    "i have to bill my client",
    "will that affect my credit score",
    "i'd like to grant my son access",
    "i drew some cash out",
    "can you mark the card as lost",
    "i lost my wallet at the art gallery",
    "the rose gold card looks nice",
    "i hope that's alright",
    "i was in a bit of a state",
    "i'm going to chase the seller",
    "the bill came to more than i thought",
    "that's a fair point",
    "i'll wait for the post",
    "i don't want to pay the fee",
    "is that the best you can do",
    "i'd like to speak to a manager",
    "it's my daughter's card",
    "my husband will call you later",
    "can you send me a new card",
    "i don't know my pin",
    "i forgot my pin",
    "i need to reset my password",
    "what's my balance",
    "why was my card declined",
    "how do i change my address",
    "i want to update my phone number",
    "can i change the name on the card",
    "do you need my date of birth",
    "shall i give you my account number",
    "i'll read you the card number in a second",
    "hang on let me find my card",
    "sorry can you repeat that",
    "i can't hear you very well",
    "it's a joint account with my wife",
    "my mum is the account holder",
    "i'm the second card holder",
    "the security code didn't work",
    "i never got the verification code",
    "the one time passcode never came through",
    "my email is the same as before",
    "i haven't changed my phone number",
    "do you have my current address",
    "we moved house last month",
    "my zip code hasn't changed",
    "what's your postcode for the branch",
    "my social security card is lost",
    "i don't want to give my social over the phone",
]
_BRANDS = (
    "visa", "mastercard", "apple pay", "google pay", "amex", "paypal", "Visa", "Mastercard",
    "Apple Pay", "Google Pay", "American Express", "PayPal", "Visa Debit", "Maestro",
)  # fmt: skip
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Negatives:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def amount(self) -> str:
        rng = self.rng
        cur = rng.choice(("pounds", "dollars", "euros", "quid", "bucks", "pounds"))
        r = rng.random()
        if r < 0.3:
            return f"{number_words(rng.choice((5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 80, 100)), rng)} {cur}"
        if r < 0.55:
            return f"{number_words(rng.randint(101, 999), rng)} {cur}"
        if r < 0.7:
            return f"{number_words(rng.randint(1000, 9999), rng)} {cur}"
        if r < 0.8:
            return f"{rng.randint(5, 2500)} {cur}"
        if r < 0.9:
            pence = rng.randint(1, 99)
            return f"{number_words(rng.randint(2, 300), rng)} {cur} {words_under_100(pence)}"
        return f"{number_words(rng.randint(1, 20), rng)} {cur} {rng.choice(('fifty', 'ninety nine', 'twenty'))}"

    def fill(self, template: str) -> str:
        rng = self.rng

        def value(slot: str) -> str:
            if slot in ("SMALL", "SMALL2"):
                return number_words(rng.randint(2, 12), rng)
            if slot == "SMALL_NUM":
                return self_say_small(rng)
            if slot in ("AMOUNT", "AMOUNT2"):
                return self.amount()
            if slot == "BIGAMOUNT":
                big = number_words(rng.choice((1500, 2000, 2500, 3000, 5000, 32000, 45000)), rng)
                return f"{big} {rng.choice(('pounds', 'dollars'))}"
            if slot == "YEAR":
                return year_words(rng.randint(1995, 2024), rng)
            if slot in ("TIME", "TIME2"):
                h, m = rng.randint(1, 12), rng.choice((0, 15, 30, 45, 10, 20, 40, 50, 5))
                if m == 0:
                    suffix = rng.choice(("o'clock", "am", "pm", "in the morning"))
                    return f"{number_words(h, rng)} {suffix}"
                return f"{number_words(h, rng)} {pair_words(f'{m:02d}')}"
            if slot in ("HOUR", "HOUR2"):
                return number_words(rng.randint(1, 12), rng)
            if slot == "MINUTES":
                return number_words(rng.choice((10, 15, 20, 25, 30, 40, 45, 50, 55)), rng)
            if slot == "ORD":
                return _ORDINALS[rng.randint(1, 28)]
            if slot in ("BRAND", "BRAND2"):
                return rng.choice(_BRANDS)
            if slot == "WILL":
                return rng.choice(("will", "may", "might"))
            if slot == "WORDNAME_SENTENCE":
                return rng.choice(_WORDNAME_SENTENCES)
            if slot == "WEEKDAY":
                return rng.choice(_WEEKDAYS)
            if slot == "AGE":
                return number_words(rng.randint(18, 90), rng)
            if slot == "PERCENT":
                return number_words(rng.randint(2, 30), rng)
            if slot == "MONTH":
                return rng.choice(_MONTHS[1:])
            raise KeyError(slot)

        return re.sub(r"\{(\w+)\}", lambda m: value(m.group(1)), template)

    def sentence(self) -> str:
        rng = self.rng
        text = self.fill(rng.choice(_NEG_TEMPLATES))
        if rng.random() < 0.3:
            text = f"{rng.choice(_OPENERS)} {text}"
        return text


def self_say_small(rng: random.Random) -> str:
    return " ".join(DIGIT_WORDS[int(d)] for d in str(rng.randint(100, 599)))


def build_contact_center(seed: int = SEED, per_type: int = 150, negatives: int = 360) -> list[Example]:
    cc = ContactCenter(seed)
    rng = cc.rng
    counts: Counter[str] = Counter()
    seen: set[str] = set()
    examples: list[Example] = []

    def add(text: str, spans: list[Span]) -> bool:
        if text in seen:
            return False
        seen.add(text)
        examples.append(Example(id=f"cc-{len(examples):05d}", text=text, spans=tuple(spans)))
        counts.update(s.type for s in spans)
        return True

    for _ in range(60):  # a few mixed turns first
        add(*cc.sentence(rng.choice(MIXED_TEMPLATES)))
    for type_ in TAXONOMY:
        templates = TEMPLATES[type_]
        k = 0
        while counts[type_] < per_type:
            add(*cc.sentence(templates[k % len(templates)]))  # every template in turn
            k += 1
    neg = Negatives(rng)
    made = 0
    for template in _WORDNAME_SENTENCES:  # each word-name trap once, then random ones
        if add(template, []):
            made += 1
    while made < negatives:
        if add(neg.sentence(), []):
            made += 1
    order = list(range(len(examples)))
    rng.shuffle(order)
    return [Example(id=f"cc-{n:05d}", text=examples[i].text, spans=examples[i].spans) for n, i in enumerate(order)]


# ==============================================================================================
# writing
# ==============================================================================================
SETS_MANIFEST = "sets.json"


def person_name_tokens(sets: Iterable[list[Example]]) -> list[str]:
    tokens: set[str] = set()
    for examples in sets:
        for ex in examples:
            for s in ex.spans:
                if s.type == "PERSON":
                    for tok in re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", ex.text[s.start : s.end].lower()):
                        if len(tok) < 2:
                            continue  # a spelled-out letter ("s m i t h"), an initial
                        tokens.add(tok)
                        if tok.endswith("'s"):
                            tokens.add(tok[:-2])
    return sorted(tokens)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data folder (read only)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    written = load_synth(args.shared)
    spoken = spoken_synth(written)
    contact = build_contact_center()
    slurp, slurp_other = load_slurp_person(args.shared)

    files = {
        "presidio_synth_written": written,
        "presidio_synth_spoken": spoken,
        "contact_center": contact,
        "slurp_person": slurp,
    }
    for name, examples in files.items():
        write_examples(out / f"{name}.jsonl", examples)
    shutil.copyfile(args.shared / "presidio_synth" / "LICENSE", out / "LICENSE.presidio-research")
    shutil.copyfile(args.shared / "slurp" / "LICENSE.txt", out / "LICENSE.slurp.txt")

    manifest = {
        "presidio_synth_written": {
            "file": "presidio_synth_written.jsonl",
            "form": "written",
            "ignore_types": sorted(SYNTH_IGNORE),
            "source": "microsoft/presidio-research data/synth_dataset_v2.json (subset), MIT",
        },
        "presidio_synth_spoken": {
            "file": "presidio_synth_spoken.jsonl",
            "form": "spoken",
            "ignore_types": sorted(SYNTH_IGNORE),
            "source": "presidio_synth_written rendered by benchmarks/redaction_sets.py, MIT",
        },
        "contact_center": {
            "file": "contact_center.jsonl",
            "form": "spoken",
            "ignore_types": [CITY],
            "source": f"generated by benchmarks/redaction_sets.py (seed {SEED}, Faker)",
        },
        "slurp_person": {
            "file": "slurp_person.jsonl",
            "form": "spoken",
            "ignore_types": sorted(slurp_other),
            "source": "pswietojanski/slurp devel.jsonl, sentences with a person entity, CC BY 4.0",
        },
    }
    (out / SETS_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    names = person_name_tokens([contact, slurp])
    (out / "eval_person_names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")

    stats = {}
    for name, examples in files.items():
        ignore = set(manifest[name]["ignore_types"])
        counts = Counter(s.type for ex in examples for s in ex.spans if s.type not in ignore)
        empty = sum(1 for ex in examples if not any(s.type not in ignore for s in ex.spans))
        stats[name] = {"examples": len(examples), "no_pii": empty, "spans": dict(sorted(counts.items()))}
        print(json.dumps({"set": name, **stats[name]}), flush=True)
    (out / "README.md").write_text(readme(stats, manifest, len(names)), encoding="utf-8")
    print(json.dumps({"person_name_tokens": len(names)}))
    return 0


def readme(stats: dict[str, dict], manifest: dict[str, dict], n_names: int) -> str:
    """``data/redaction_eval/README.md``: what each set is, its counts, sources and licenses."""
    types = sorted({t for st in stats.values() for t in st["spans"]})
    head = "| type | " + " | ".join(f"`{n}`" for n in stats) + " |"
    rows = [head, "| --- |" + " ---: |" * len(stats)]
    for t in types:
        rows.append(f"| {t} | " + " | ".join(str(st["spans"].get(t, "")) for st in stats.values()) + " |")
    rows.append("| sentences | " + " | ".join(str(st["examples"]) for st in stats.values()) + " |")
    rows.append("| of which no PII | " + " | ".join(str(st["no_pii"]) for st in stats.values()) + " |")
    ignore = "\n".join(f"- `{n}`: {', '.join(m['ignore_types']) or '(none)'}" for n, m in manifest.items())
    sets = ["| set | what | form |", "| --- | --- | --- |"]
    sets += [f"| `{n}` | {SET_DESCRIPTIONS[n]} | {m['form']} |" for n, m in manifest.items()]
    return README_TEMPLATE.format(
        sets="\n".join(sets), counts="\n".join(rows), ignore=ignore, n_names=n_names, seed=SEED
    )


SET_DESCRIPTIONS = {
    "presidio_synth_written": (
        "presidio-research's synthetic PII sentences (1,004: bios, addresses, chat requests), spans as published"
    ),
    "presidio_synth_spoken": (
        "the same sentences as an ASR engine writes them: lower case, every digit as a word "
        '("4111" -> "four one one one"), "@" -> "at", "." inside e-mail addresses, domains and IP '
        'addresses -> "dot" ("_"/"-" in e-mails -> "underscore"/"dash"), other punctuation removed '
        "(an apostrophe inside a word is kept), whitespace collapsed. Spans are carried through a "
        "character map and checked to equal the rendering of the original value"
    ),
    "contact_center": (
        "generated caller turns (lower case, no punctuation, numbers in words) with every PII type "
        'of voiceloop\'s taxonomy said aloud: digit strings with "oh"/"zero"/"nought", '
        '"double"/"triple", pairs ("twelve thirty four"), mixed digits and words ("4 one 5"), '
        'fillers ("uh", "um") and repeated groups inside numbers; Luhn-valid card numbers; spoken '
        "e-mail addresses; names from Faker in 16 locales, with and without an introduction. Plus "
        "sentences with no PII that are false-positive traps: amounts, years, times, counts, "
        "ordinals, card brands (some capitalised), words that are also names "
        '("will", "may", "mark", "bill", "grant", "frank" ...)'
    ),
    "slurp_person": (
        "every SLURP dev sentence with a `person` entity: real, spoken-style voice-assistant "
        "commands. `person` -> PERSON, `email_address` -> EMAIL_ADDRESS; every other SLURP type is "
        "ignored"
    ),
}


README_TEMPLATE = """# Redaction evaluation sets

Labelled sentences for measuring PII redaction (recall, precision, F2 per entity type, by
character overlap): `benchmarks/redaction_eval.py` runs plain Presidio and voiceloop on them,
`governance/redaction/scoring.py` scores. Built by `benchmarks/redaction_sets.py` (deterministic,
seed {seed}); do not edit by hand, rebuild.

Each `*.jsonl` holds one example per line: `{{"id", "text", "spans": [{{"type", "start", "end"}}]}}`,
character offsets into `text`, end exclusive. `sets.json` names each set's file and its
`ignore_types`: labelled entities that are not caller PII. A prediction over an ignored span
is neither right nor wrong, and ignored spans are not recalled.

{sets}

Spans per type (ignored types left out):

{counts}

Ignored types per set:

{ignore}

Taxonomy of `contact_center` (voiceloop's): PERSON, PHONE_NUMBER, CREDIT_CARD, US_SSN,
DATE_OF_BIRTH, PIN (PINs, verification / security / one-time codes, passcodes, CVV),
ACCOUNT_NUMBER (account, order, policy, reference, customer, member, case, ticket numbers),
EMAIL_ADDRESS, STREET_ADDRESS (house number and street, with the flat or apartment), ZIP_CODE
(US ZIP codes and UK postcodes). A town said with an address or a ZIP code is labelled CITY and
ignored, as presidio-research's GPE is. A date of birth span
leaves out a leading "the"; a number's span runs from its first to its last digit word, fillers
inside included.

## Names in these sets must never reach a recognizer

`eval_person_names.txt` lists the {n_names} lowercase name tokens of the PERSON spans of
`contact_center` and `slurp_person`. No name list, gazetteer or allow list used by a recognizer
may be built from these sets or tuned on their names: recall on them would then measure
memory, not recognition. A test asserts that recognizer name lists do not contain them.

## Sources, licenses, credits

- `presidio_synth_*`: Microsoft presidio-research, `data/synth_dataset_v2.json` (a subset of
  its templates), MIT License, Copyright (c) Microsoft Corporation; full text in
  `LICENSE.presidio-research`. The spoken rendering is a derived work under the same license.
- `slurp_person`: SLURP, Bastianelli et al., "SLURP: A Spoken Language Understanding Resource
  Package", EMNLP 2020, github.com/pswietojanski/slurp. Text released under CC BY 4.0
  (`LICENSE.slurp.txt`); sentences and entity labels copied unchanged, character offsets
  computed from its token spans.
- `contact_center`: generated by this project (`benchmarks/redaction_sets.py`, Faker for names,
  streets and towns); same license as the project. Every value in it is synthetic.
"""


if __name__ == "__main__":
    raise SystemExit(main())
