"""Street addresses and the zip codes after them, spoken ("twelve thirty four oak street apartment
five") or written ("903 Dora Creek Apt. 176").

An address is a house number, up to three name words and a street word ("street", "road",
"avenue", "straße", "rua" ...), then optionally a unit ("apartment five") and a town before a
state or zip. A five-digit number after a US state is a zip code. "I live on the fourth floor"
and "two cards" are no addresses: a street word must close the name.
"""

from __future__ import annotations

from collections.abc import Sequence

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.lang.en.stop_words import STOP_WORDS

from governance.redaction.entity_types import ADDRESS, ZIP
from governance.redaction.normalize import DigitRun, Token, find_digit_runs, tokenize

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
    "calle", "via", "viale", "avenida", "rue", "chemin", "utca", "ut", "tie", "katu", "kuja",
    "gatan", "gata", "vej", "vei", "straat", "laan", "plein", "ulica", "ul", "ulitsa", "strada",
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
_UNIT_WORDS = frozenset({
     "apartment", "apt", "unit", "suite", "ste", "flat", "floor", "room", "number", "no", "#",
     "building", "bldg", "box",
})  # fmt: skip
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
_MAX_TOWN_WORDS = 3
_SEPARATORS = frozenset({",", ".", "-"})


def _is_name_word(tok: Token) -> bool:
    return tok.text[0].isalpha() and (tok.low not in STOP_WORDS or tok.low in _DIRECTIONS)


def _skip(tokens: Sequence[Token], k: int, skippable: frozenset[str]) -> int:
    while k < len(tokens) and tokens[k].low in skippable:
        k += 1
    return k


def _run_at(runs: dict[int, DigitRun], k: int) -> DigitRun | None:
    return runs.get(k)


def _street_end(tokens: Sequence[Token], k: int) -> int | None:
    """Index of the street word closing 1-3 name words that start at k (None: not a street)."""
    for n in range(_MAX_NAME_WORDS + 1):
        idx = k + n
        if idx >= len(tokens):
            return None
        if n > 0 and tokens[idx].low in STREET_WORDS:
            return idx
        if not _is_name_word(tokens[idx]):
            return None
    return None


def find_addresses(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Character spans of street addresses and of zip codes after a state or town."""
    tokens = tokenize(text)
    runs = {run.first: run for run in find_digit_runs(tokens)}
    addresses: list[tuple[int, int]] = []
    zips: list[tuple[int, int]] = []
    for first, run in runs.items():
        street = _street_end(tokens, run.last + 1) if len(run.digits) <= 6 else None
        if street is None and first >= 2 and tokens[first - 1].low in STREET_WORDS:
            street = first - 1  # "puruntie 82", "rua do arenque 1634": number after the street
            start_tok = max(0, first - 1 - _MAX_NAME_WORDS)
            while start_tok < first - 1 and not _is_name_word(tokens[start_tok]):
                start_tok += 1
            addresses.append((tokens[start_tok].start, run.end))
            continue
        if street is None:
            continue
        end = street
        k = _skip(tokens, street + 1, _SEPARATORS)
        if k < len(tokens) and tokens[k].low in _UNIT_WORDS:
            unit = _skip(tokens, k + 1, _SEPARATORS | {"#", "number", "no"})
            unit_run = _run_at(runs, unit)
            if unit_run is not None:
                end = unit_run.last
            elif unit < len(tokens) and len(tokens[unit].text) == 1 and tokens[unit].text.isalpha():
                end = unit
        end = _town_and_state(tokens, runs, end, zips)
        addresses.append((run.start, tokens[end].end))
    for first, run in runs.items():
        if len(run.digits) in (5, 9) and first > 0 and tokens[first - 1].low in US_STATES:
            zips.append((run.start, run.end))
    return addresses, sorted(set(zips))


def _town_and_state(tokens: Sequence[Token], runs: dict[int, DigitRun], end: int, zips: list[tuple[int, int]]) -> int:
    """Extend an address over "springfield illinois" when a state or zip code closes it."""
    k = _skip(tokens, end + 1, _SEPARATORS)
    words = 0
    while k < len(tokens) and words < _MAX_TOWN_WORDS and _is_name_word(tokens[k]):
        k += 1
        words += 1
        if tokens[k - 1].low in US_STATES:
            zip_at = _skip(tokens, k, _SEPARATORS)
            run = _run_at(runs, zip_at)
            if run is not None and len(run.digits) in (5, 9):
                zips.append((run.start, run.end))
            return k - 1
        k = _skip(tokens, k, _SEPARATORS)
    run = _run_at(runs, k)
    if words and run is not None and len(run.digits) in (5, 9):
        zips.append((run.start, run.end))
        return k - 1 if tokens[k - 1].low not in _SEPARATORS else k - 2
    return end


class AddressRecognizer(EntityRecognizer):
    """Street addresses (house number + street) and zip codes after a state or town."""

    def __init__(self) -> None:
        super().__init__(supported_entities=[ADDRESS, ZIP], name="AddressRecognizer")

    def load(self) -> None:
        """Nothing to load."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        addresses, zips = find_addresses(text)
        results = []
        if ADDRESS in entities:
            results += [RecognizerResult(ADDRESS, s, e, 0.8) for s, e in addresses]
        if ZIP in entities:
            results += [RecognizerResult(ZIP, s, e, 0.8) for s, e in zips]
        return results
