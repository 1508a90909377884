"""Street addresses and the zip codes after them, spoken ("twelve thirty four oak street apartment
five") or written ("903 Dora Creek Apt. 176").

An address is found from an anchor, then grown over the parts said around it:
- anchors: a house number, up to three name words and a street word ("street", "road",
  "avenue" ...); a street word, or a street name glued to one ("puruntie", "mellemvej"), or one
  said first ("rua do arenque", "via tasso"), then the house number; a house number, a name word
  no English dictionary knows and another number ("four five zero præstevænget one five"); a
  unit or box with its number ("apt two three six", "p o box two four two", "psc zero four one
  three box ...").
- growth: house numbers and units before it ("flat nineteen ..."), and after it units with their
  numbers, numbers (zip codes) and up to four name words (town, state, country) when a number, a
  place name or the end of the text closes them.
A five-digit number after a US state is a zip code. "I live on the fourth floor", "two cards"
and "room five" are no addresses: no street word, unit or unknown street name anchors them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.lang.en.stop_words import STOP_WORDS

from governance.redaction.entity_types import ADDRESS, ZIP
from governance.redaction.name_lexicon import NameLexicon, fold
from governance.redaction.normalize import TEENS, TENS, UNITS, DigitRun, Token, digit_runs_of, tokens_of

STREET_WORDS = frozenset({
    "street", "st", "road", "rd", "avenue", "ave", "av", "lane", "ln", "drive", "dr", "boulevard",
    "blvd", "court", "ct", "way", "place", "pl", "terrace", "close", "crescent", "square", "sq",
    "parkway", "pkwy", "highway", "hwy", "circle", "cir", "trail", "trl", "row", "grove",
    "gardens", "hill", "hills", "park", "walk", "mews", "creek", "view", "ridge", "heights", "loop",
    "path", "pike", "alley", "plaza", "point", "run", "summit", "valley", "village", "vista",
    "crossing", "cove", "bend", "brook", "meadow", "meadows", "mill", "mills", "springs", "estates",
    "green", "rise", "wharf", "quay", "parade", "causeway", "expressway", "freeway", "turnpike",
    "junction", "harbor", "harbour", "island", "isle", "lake", "lakes", "landing", "manor", "oval",
    "pass", "pines", "plains", "port", "prairie", "ranch", "shore", "shores", "stream", "station",
    "track", "villa", "ville", "wells", "woods", "cliffs", "cliff", "falls", "fields", "ford",
    "forest", "fort", "glen", "haven", "knoll", "mount", "mountain", "orchard", "pine", "rest",
    "strasse", "straße", "str", "gasse", "weg", "platz", "allee", "ring", "ufer", "damm", "rua",
    "calle", "via", "viale", "avenida", "rue", "chemin", "utca", "ut", "út", "tér", "köz", "tie",
    "katu", "kuja", "gatan", "gata", "vej", "vei", "straat", "laan", "plein", "ulica", "ul",
    "ulitsa", "strada",
})  # fmt: skip


def _faker_street_suffixes() -> frozenset[str]:
    """Street-type words of Faker's English-speaking locales ("points", "skyway", "trace" ...)."""
    import importlib

    words: set[str] = set()
    for locale in ("en_US", "en_GB", "en_AU", "en_CA", "en_IE", "en_NZ", "en_IN"):
        try:
            provider = importlib.import_module(f"faker.providers.address.{locale}").Provider
        except (ImportError, AttributeError):
            continue
        for suffix in getattr(provider, "street_suffixes", ()):
            word = str(suffix).lower()
            if word.isalpha():
                words.update((word, word + "s"))
    return frozenset(words)


STREET_WORDS = STREET_WORDS | _faker_street_suffixes()
# Street words said before the street's name (Romance, Slavic, Malay): "rua do arenque one six".
_LEADING_STREET_WORDS = frozenset({
    "rue", "rua", "rúa", "via", "viale", "vicolo", "piazza", "piazzetta", "largo", "calle",
    "avenida", "avda", "camino", "carrera", "travessa", "praça", "alameda", "rambla", "strada",
    "aleea", "bulevardul", "ul", "ulica", "aleja", "plac", "jalan", "jln", "chemin", "boulevard",
    "paseo", "avenue", "route",
})  # fmt: skip
# Street-type endings of one-word street names (Faker's Nordic, German, Dutch, Finnish, Hungarian
# and Slavic locales): "mellemvej", "kiannonkatu", "þorsteinsgata", "skogstien".
_GLUED_SUFFIXES = (
    "straat", "strasse", "straße", "gasse", "weg", "vej", "vejen", "vænget", "gade", "stræde",
    "allee", "platz", "laan", "dreef", "steeg", "singel", "katu", "kuja", "tie", "polku", "gatan",
    "gata", "vägen", "veien", "vegen", "stien", "stigen", "gränd", "torget", "utca", "braut",
    "bakken", "haugen", "skogen", "lia", "engen", "ringen",
)  # fmt: skip
# Particles inside a street name after a leading street word: "rua do arenque", "via delle coste".
_PARTICLES = frozenset({
    "de", "do", "da", "dos", "das", "del", "della", "delle", "dei", "di", "du", "des", "la", "le",
    "al", "el", "van", "von", "der", "den", "het",
})  # fmt: skip
_UNIT_WORDS = frozenset({
     "apartment", "apt", "unit", "suite", "ste", "flat", "floor", "room", "number", "no", "#",
     "building", "bldg", "box", "postbox", "psc",
})  # fmt: skip
# Units that make an address on their own, with their number: "apt two three six".
_STRONG_UNITS = frozenset({"apartment", "apt", "suite", "ste", "postbox", "psc"})
_MILITARY = frozenset({"apo", "dpo", "fpo"})
_DIRECTIONS = frozenset({
     "north", "south", "east", "west", "n", "s", "e", "w", "ne", "nw", "se", "sw", "northeast",
     "northwest", "southeast", "southwest", "old", "new", "upper", "lower", "great", "little",
})  # fmt: skip
US_STATES = frozenset({
    "alabama", "alaska", "arizona", "arkansas", "california", "colorado", "connecticut", "delaware",
    "florida", "georgia", "hawaii", "idaho", "illinois", "indiana", "iowa", "kansas", "kentucky",
    "louisiana", "maine", "maryland", "massachusetts", "michigan", "minnesota", "mississippi",
    "missouri", "montana", "nebraska", "nevada", "hampshire", "jersey", "mexico", "york",
    "carolina", "dakota", "ohio", "oklahoma", "oregon", "pennsylvania", "rhode", "tennessee",
    "texas", "utah", "vermont", "virginia", "washington", "wisconsin", "wyoming", "columbia",
    "al", "ak", "az", "ar", "ca", "co", "ct", "de", "fl", "ga", "hi", "id", "il", "in", "ia", "ks",
    "ky", "la", "me", "md", "ma", "mi", "mn", "ms", "mo", "mt", "ne", "nv", "nh", "nj", "nm", "ny",
    "nc", "nd", "oh", "ok", "or", "pa", "ri", "sc", "sd", "tn", "tx", "ut", "vt", "va", "wa", "wv",
    "wi", "wy", "dc", "ae", "ap", "aa",
})  # fmt: skip
_MAX_NAME_WORDS = 3
_MAX_TOWN_WORDS = 4
_MAX_ADDRESS_NUMBER = 9  # digits: a longer run is a phone or card number, not part of an address
_SEPARATORS = frozenset({",", ".", "-"})


@functools.cache
def _places(lexicon_places: frozenset[str]) -> frozenset[str]:
    """Words that close an address: the lexicon's countries and states, state codes, military posts."""
    return lexicon_places | US_STATES | _MILITARY


_NUMBER_WORDS = frozenset(UNITS) | frozenset(TEENS) | frozenset(TENS) | {"hundred", "thousand", "double", "triple"}


def _is_name_word(tok: Token) -> bool:
    low = tok.low
    return tok.text[0].isalpha() and (low not in STOP_WORDS or low in _DIRECTIONS) and low not in _NUMBER_WORDS


def _skip(tokens: Sequence[Token], k: int, skippable: frozenset[str]) -> int:
    while k < len(tokens) and tokens[k].low in skippable:
        k += 1
    return k


class _Reader:
    """One text's tokens, digit runs and word lists, for the address rules."""

    def __init__(self, text: str, lexicon: NameLexicon) -> None:
        self.tokens = tokens_of(text)
        self.lexicon = lexicon
        self.places = _places(lexicon.places)
        self.runs = {run.first: run for run in digit_runs_of(text)}
        self.run_ending = {run.last: run for run in self.runs.values()}

    def low(self, k: int) -> str:
        return self.tokens[k].low if 0 <= k < len(self.tokens) else ""

    def number_at(self, k: int) -> DigitRun | None:
        run = self.runs.get(k)
        return run if run is not None and len(run.digits) <= _MAX_ADDRESS_NUMBER else None

    def foreign(self, k: int) -> bool:
        """A word no English dictionary or name list knows: "præstevænget", "allika"."""
        word = fold(self.low(k))
        return (
            _is_name_word(self.tokens[k])
            and len(word) > 2
            and not self.lexicon.is_english(word)
            and not self.lexicon.is_name(word)
        )

    def unknown(self, k: int) -> bool:
        """A name word that is no English word (a name or a foreign word): "tasso", "arenque"."""
        return _is_name_word(self.tokens[k]) and len(self.low(k)) > 2 and not self.lexicon.is_english(fold(self.low(k)))

    def glued_street(self, k: int) -> bool:
        """A one-word street name with a street-type ending: "mellemvej", "tawastintie"."""
        word = fold(self.low(k))
        return any(word.endswith(fold(s)) and len(word) >= len(s) + 3 for s in _GLUED_SUFFIXES) and self.foreign(k)

    def street_word(self, k: int) -> bool:
        if self.low(k) == "u":  # Hungarian "utca", said short: "király u one five"
            return k > 0 and self.foreign(k - 1)
        return self.low(k) in STREET_WORDS or self.glued_street(k)

    def unit_number(self, k: int) -> int | None:
        """Index of the last token of a unit and its number at k: "apt 5", "p o box 12", "# 4"."""
        j = k
        if self.low(j) in ("p", "po") and self.low(j + 1 + (self.low(j) == "p")) == "box":
            j += 1 + (self.low(j) == "p")
        if self.low(j) not in _UNIT_WORDS:
            return None
        j = _skip(self.tokens, j + 1, _SEPARATORS | {"#", "number", "no"})
        run = self.number_at(j)
        return run.last if run is not None else None


def _street_end(r: _Reader, k: int) -> int | None:
    """Index of the street word closing 1-3 name words that start at k, or of the last word of a
    street named after a leading street word ("rue de la hulotais") (None: not a street)."""
    k += len(r.low(k)) == 1 and r.low(k).isalpha() and r.low(k + 1) != ""  # "thirty two a high street"
    if r.low(k) in _LEADING_STREET_WORDS:
        return _leading_street_end(r, k)
    for n in range(_MAX_NAME_WORDS + 1):
        idx = k + n
        if idx >= len(r.tokens):
            return None
        if n > 0 and r.street_word(idx):
            return idx
        if not _is_name_word(r.tokens[idx]):
            return None
    return None


def _leading_street_end(r: _Reader, k: int) -> int | None:
    """Last word of the name after a leading street word at k, if one of its words is no English
    word: "rue de pologne", "avenue du golf arabe"; not "via paypal", "via bank transfer"."""
    j = k + 1
    while j < len(r.tokens) and j - k <= _MAX_NAME_WORDS + 1 and (_is_name_word(r.tokens[j]) or r.low(j) in _PARTICLES):
        j += 1
    if j == k + 1 or not any(r.unknown(m) for m in range(k + 1, j)):
        return None
    return j - 1


def _street_before(r: _Reader, first: int) -> int | None:
    """Start of a street named before the house number at ``first``: "puruntie | eight two",
    "rua do arenque | one six", "via franscini | seven one" (None: no street there)."""
    if first >= 2 and r.street_word(first - 1) and _is_name_word(r.tokens[first - 2]):
        start = first - 1
        while start > first - 1 - _MAX_NAME_WORDS and start > 0 and _is_name_word(r.tokens[start - 1]):
            start -= 1
        return start if r.low(first - 1) in STREET_WORDS else first - 1
    if first >= 1 and r.glued_street(first - 1):
        return first - 1
    for k in range(max(0, first - 2 - _MAX_NAME_WORDS), first - 1):
        if r.low(k) in _LEADING_STREET_WORDS and _leading_street_end(r, k) == first - 1:
            return k
    return None


def _between_numbers(r: _Reader, run: DigitRun) -> int | None:
    """Last token of "house number, unknown street name, number": "four five zero præstevænget
    one five" (None: the words between are English, or there is no second number)."""
    k = run.last + 1
    words = 0
    while k < len(r.tokens) and words < _MAX_NAME_WORDS and _is_name_word(r.tokens[k]):
        k += 1
        words += 1
    after = r.number_at(k)
    if words == 0 or after is None or len(after.digits) > 4:
        return None
    if not any(r.unknown(m) for m in range(run.last + 1, k)):
        return None
    return after.last


def _anchors(r: _Reader) -> list[tuple[int, int]]:
    """Token ranges (inclusive) that are surely part of an address."""
    found: list[tuple[int, int]] = []
    for first, run in r.runs.items():
        if len(run.digits) <= 8:
            street = _street_end(r, run.last + 1)
            if street is not None:
                found.append((first, street))
                continue
        if len(run.digits) <= 4:
            start = _street_before(r, first)
            if start is not None:
                found.append((start, run.last))
                continue
        if len(run.digits) <= 8:
            last = _between_numbers(r, run)
            if last is not None:
                found.append((first, last))
    for k, tok in enumerate(r.tokens):
        if tok.low in _STRONG_UNITS or tok.low in ("p", "po", "unit"):
            last = r.unit_number(k)
            strong = tok.low != "unit" or (last is not None and r.low(last + 1) == "box")
            if last is not None and strong:
                found.append((k, last))
    for k, tok in enumerate(r.tokens):
        if tok.low in _MILITARY:
            last = _skip(r.tokens, k + 1, US_STATES | _SEPARATORS)
            if r.number_at(last) is not None:
                found.append((_ship_start(r, k), last))
    return found


_SHIPS = frozenset({"uss", "usns", "usnv", "usnsv", "uscgc"})


def _ship_start(r: _Reader, k: int) -> int:
    """Start of a military address before "fpo": "usns møller | fpo aa ..." (k when no ship)."""
    for m in range(k - 1, max(-1, k - 4), -1):
        if r.low(m) in _SHIPS:
            return m
    return k


def _corner(r: _Reader, first: int, last: int) -> tuple[int, int]:
    """An intersection: "the corner of | three five pentelis str | and waechter turnpike"."""
    lead = first - 2 - (r.low(first - 3) == "the")
    if r.low(first - 1) != "of" or r.low(first - 2) != "corner":
        return first, last
    if r.low(last + 1) == "and":
        j = last + 2
        while j < len(r.tokens) and j - last - 2 < _MAX_NAME_WORDS and _is_name_word(r.tokens[j]):
            j += 1
        last = max(last, j - 1)
    return lead, last


def _grow_left(r: _Reader, first: int) -> int:
    """Take in a house number and units said before: "flat nineteen | eight thirty three main street"."""
    for _ in range(3):
        run = r.run_ending.get(first - 1)
        if run is not None and len(run.digits) <= _MAX_ADDRESS_NUMBER:
            first = run.first
            continue
        if r.low(first - 1) in _UNIT_WORDS and r.low(first - 1) not in ("number", "no", "#"):
            first -= 1
            if r.low(first - 1) == "po":
                first -= 1
            elif r.low(first - 1) == "o" and r.low(first - 2) == "p":
                first -= 2
            continue
        break
    return first


def _grow_right(r: _Reader, last: int) -> int:
    """Take in units, numbers and a town, state or country after an address part."""
    while True:
        k = _skip(r.tokens, last + 1, _SEPARATORS)
        unit_end = r.unit_number(k)
        if unit_end is not None:
            last = unit_end
            continue
        run = r.number_at(k)
        if run is not None:
            last = run.last
            continue
        if _letter_after_number(r, last, k):
            last = k  # "apartment ten a"
            continue
        town_end = _town(r, k)
        if town_end is None:
            return last
        last = town_end


def _letter_after_number(r: _Reader, last: int, k: int) -> bool:
    """A house or flat letter right after its number: "apartment ten a", "thirty two a"."""
    if not (len(r.low(k)) == 1 and r.low(k).isalpha() and r.run_ending.get(last) is not None):
        return False
    return k + 1 >= len(r.tokens) or not _is_name_word(r.tokens[k + 1]) or r.street_word(k + 1)


def _town(r: _Reader, k: int) -> int | None:
    """Last token of up to four name words at k that a number, a place name or the end of the
    text closes: "bashall town united kingdom | eight nine", "pärnu estonia", "valderice trapani"."""
    j = k
    last_place = None
    while j < len(r.tokens) and j - k < _MAX_TOWN_WORDS and (_is_name_word(r.tokens[j]) or r.low(j) in _PARTICLES):
        if r.low(j) in r.places:
            last_place = j
        j = _skip(r.tokens, j + 1, _SEPARATORS)
    if j == k:
        return None
    end = j - 1
    while end > k and r.low(end) in _SEPARATORS:
        end -= 1
    if r.number_at(j) is not None or r.unit_number(j) is not None:
        return end
    if j >= len(r.tokens) and all(
        r.foreign(m) or r.low(m) in r.places for m in range(k, j) if _is_name_word(r.tokens[m])
    ):
        return end
    return last_place


def find_addresses(text: str, lexicon: NameLexicon) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Character spans of street addresses and of zip codes after a state or town."""
    r = _Reader(text, lexicon)
    ranges = sorted(_corner(r, _grow_left(r, first), _grow_right(r, last)) for first, last in _anchors(r))
    merged: list[tuple[int, int]] = []
    for first, last in ranges:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    addresses = [(r.tokens[first].start, r.tokens[last].end) for first, last in merged]
    return addresses, _zips(r)


def _zips(r: _Reader) -> list[tuple[int, int]]:
    """Five- or nine-digit numbers after a US state, or after a town that follows a street."""
    zips = set()
    for first, run in r.runs.items():
        if len(run.digits) in (5, 9) and first > 0 and r.low(_before_separators(r, first)) in US_STATES:
            zips.add((run.start, run.end))
    return sorted(zips)


def _before_separators(r: _Reader, k: int) -> int:
    k -= 1
    while k > 0 and r.low(k) in _SEPARATORS:
        k -= 1
    return k


class AddressRecognizer(EntityRecognizer):
    """Street addresses (house number + street, units, town) and zip codes after a state."""

    def __init__(self, lexicon: NameLexicon) -> None:
        self._lexicon = lexicon
        super().__init__(supported_entities=[ADDRESS, ZIP], name="AddressRecognizer")

    def load(self) -> None:
        """Nothing to load: the lexicon is the one the name recognizer uses."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        addresses, zips = find_addresses(text, self._lexicon)
        results = []
        if ADDRESS in entities:
            results += [RecognizerResult(ADDRESS, s, e, 0.8) for s, e in addresses]
        if ZIP in entities:
            results += [RecognizerResult(ZIP, s, e, 0.8) for s, e in zips]
        return results
