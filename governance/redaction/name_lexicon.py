"""Which words can be names: first and last names of many countries, and the English words.

Lowercase ASR text gives NER nothing to go on ("i spoke to priya yesterday"), so the name
recognizer reads words against two lists: names (Faker's first and last names of all its
locales, ~55,000) and English (WordNet's lemma index that spaCy's English model ships, with
inflections stripped). A word that is both ("mark", "will", "hope") is a name only where the
context says so.

Held-out names: every person name of voiceloop's evaluation sets is removed from the name list
(``held_out_names.txt``), so the benchmark measures names the recognizer has never seen.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HELD_OUT_FILE = Path(__file__).with_name("held_out_names.txt")

# Words that Faker lists as names but that a caller says as words, and fintech brands.
NEVER_NAMES = frozenset(
    {
        "app", "atm", "atms", "ok", "okay", "hi", "hey", "hello", "yeah", "yes", "yep", "nope", "pls",
        "thanks", "thank", "cheers", "bye", "sorry", "gonna", "wanna", "gotta", "dunno", "covid",
        "paypal", "venmo", "zelle", "revolut", "monzo", "wise", "google", "apple", "samsung", "amazon",
        "ebay", "uber", "netflix", "spotify", "visa", "mastercard", "amex", "maestro", "swift", "sepa",
        "iban", "bic", "pin", "cvv", "otp", "sms", "id", "uk", "usa", "us", "eu", "euro", "euros",
        "gbp", "usd", "eur", "bitcoin", "crypto", "ethereum", "online", "email", "emails", "wifi",
        "whatsapp", "internet", "website", "phone", "mobile", "contactless", "debit", "credit",
        "topup", "top", "ups", "uh", "um", "umm", "uhm", "er", "erm", "ah", "eh", "hmm", "mm", "oh",
        "ll", "ve", "re", "don", "didn", "doesn", "isn", "wasn", "aren", "won", "shouldn", "couldn",
        "st", "rd", "nd", "th", "mr", "mrs", "ms", "dr", "sir", "madam", "miss", "mister", "monday",
        "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february",
        "march", "april", "may", "june", "july", "august", "september", "october", "november",
        "december", "pounds", "dollars", "quid", "bucks", "cash", "cheque", "check", "transfer", "til",
        "till", "hae", "login", "logins", "username", "usernames", "password", "passwords", "passcode",
        "offline", "apps", "texted", "emailed", "googled", "app's", "fintech", "btw", "lol", "plz", "im", "ive",
        "dont", "didnt", "cant", "wont", "isnt", "wasnt", "thats", "dob", "ssn", "nino", "shall", "ain",
        "havent", "havnt", "hasnt", "doesnt", "arent", "werent",
        "wouldnt", "couldnt", "shouldnt",
    }
)  # fmt: skip
_SUFFIXES = ("ies", "ied", "ing", "ers", "est", "ed", "es", "er", "ly", "s", "d", "'s")


def fold(word: str) -> str:
    """Lowercase and without accents, so "Szöllösy" and "szollosy" look the same."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass(frozen=True)
class NameLexicon:
    first: frozenset[str]
    last: frozenset[str]
    english: frozenset[str]
    places: frozenset[str] = frozenset()
    descriptive: frozenset[str] = frozenset()  # verbs, adjectives and adverbs: never a surname
    nouns: frozenset[str] = frozenset()  # WordNet nouns: "bob", "mark" are nouns too, "sent" no

    def is_descriptive(self, word: str) -> bool:
        """A verb, adjective or adverb (with inflections): "said", "green", "quickly"."""
        if word in self.descriptive:
            return True
        for suffix in ("s", "ed", "d", "ing", "ly"):
            stem = word[: -len(suffix)]
            if word.endswith(suffix) and (
                stem in self.descriptive or (len(stem) >= 3 and stem + "e" in self.descriptive)
            ):
                return True  # "charged", "including" -> "include"
        return False

    def is_name(self, word: str) -> bool:
        return (word in self.first or word in self.last) and word not in self.places

    def is_english(self, word: str) -> bool:
        """A dictionary word, allowing regular inflections ("charged", "cards", "topping")."""
        if word in self.english or word in NEVER_NAMES or "'" in word:
            return True
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                stem = word[: -len(suffix)]
                if stem in self.english or stem + "e" in self.english or stem + "y" in self.english:
                    return True
                if len(stem) > 3 and stem[-1] == stem[-2] and stem[:-1] in self.english:
                    return True  # "stopped" -> "stop"
        return False


def faker_names() -> tuple[set[str], set[str]]:
    """First and last names from every Faker locale, folded to lowercase ASCII-ish words."""
    import faker.providers.person as person

    first: set[str] = set()
    last: set[str] = set()
    for module_info in pkgutil.iter_modules(person.__path__):
        try:
            provider = importlib.import_module(f"{person.__name__}.{module_info.name}").Provider
        except (ImportError, AttributeError):
            continue
        for attr, dest in (
            ("first_names", first),
            ("first_names_male", first),
            ("first_names_female", first),
            ("last_names", last),
        ):
            names = getattr(provider, attr, None)
            if names is None or isinstance(names, property):
                continue
            for name in names:
                for part in str(name).replace("-", " ").split():
                    word = fold(part)
                    if len(word) >= 2 and word.isalpha() and word.isascii():
                        dest.add(word)
    return first, last


def place_words() -> set[str]:
    """Countries and US states (Faker's English lists): "Spain", "China", "Georgia" are no names
    without context that says so."""
    from faker.providers.address.en import Provider as English
    from faker.providers.address.en_US import Provider as UnitedStates

    words: set[str] = set()
    for place in [*English.countries, *UnitedStates.states]:
        words.update(fold(part) for part in place.replace("-", " ").split())
    return words


def held_out_names() -> set[str]:
    if not HELD_OUT_FILE.exists():
        return set()
    lines = HELD_OUT_FILE.read_text(encoding="utf-8").splitlines()
    return {fold(w) for line in lines if not line.startswith("#") for w in line.split()}


def english_words(lookups: object | None = None) -> tuple[set[str], set[str]]:
    """WordNet lemmas (spaCy's English lemmatizer tables) plus spaCy's stop words, and the subset
    that are verbs, adjectives or adverbs."""
    words, descriptive, _ = english_word_classes(lookups)
    return words, descriptive


def english_word_classes(lookups: object | None = None) -> tuple[set[str], set[str], set[str]]:
    """``english_words`` and the WordNet nouns."""
    from spacy.lang.en.stop_words import STOP_WORDS

    words = set(STOP_WORDS)
    descriptive: set[str] = set()
    nouns: set[str] = set()
    if lookups is not None:
        index = lookups.get_table("lemma_index") if lookups.has_table("lemma_index") else {}  # type: ignore[attr-defined]
        if "noun" in index:
            nouns.update(fold(w) for w in index["noun"] if "_" not in w)
        exceptions = lookups.get_table("lemma_exc") if lookups.has_table("lemma_exc") else {}  # type: ignore[attr-defined]
        for pos in ("verb", "adj", "adv"):
            if pos in index:
                descriptive.update(fold(w) for w in index[pos] if "_" not in w)
            if pos == "verb" and pos in exceptions:  # irregular verb forms: "flew", "began"
                descriptive.update(fold(w) for w in exceptions[pos] if "_" not in w)
        for table_name in ("lemma_index", "lemma_exc"):
            if lookups.has_table(table_name):  # type: ignore[attr-defined]
                table = lookups.get_table(table_name)  # type: ignore[attr-defined]
                for pos in table:
                    entries = table[pos]
                    words.update(w for w in entries if "_" not in w)
                    if isinstance(entries, dict):
                        for forms in entries.values():
                            words.update(forms)
    return {fold(w) for w in words}, descriptive, nouns


@functools.cache
def load_lexicon(spacy_model: str, extra_names: tuple[str, ...] = ()) -> NameLexicon:
    """The lexicon for a spaCy model's English word list; ``extra_names`` are added names."""
    import spacy

    nlp = spacy.load(spacy_model, exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "ner", "senter"])
    lemmatizer: Any = nlp.get_pipe("lemmatizer") if "lemmatizer" in nlp.pipe_names else None
    lookups = lemmatizer.lookups if lemmatizer is not None else None
    english, descriptive, nouns = english_word_classes(lookups)
    return build_lexicon(english, descriptive, extra_names, nouns)


def build_lexicon(
    english: set[str], descriptive: set[str], extra_names: Iterable[str] = (), nouns: Iterable[str] = ()
) -> NameLexicon:
    first, last = faker_names()
    held_out = held_out_names()
    extra = {fold(n) for n in extra_names}
    return NameLexicon(
        first=frozenset((first - held_out - NEVER_NAMES) | extra),
        last=frozenset(last - held_out - NEVER_NAMES),
        english=frozenset(english),
        places=frozenset(place_words()),
        descriptive=frozenset(descriptive),
        nouns=frozenset(nouns),
    )
