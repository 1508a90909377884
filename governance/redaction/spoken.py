"""The recognizers voiceloop adds to Presidio, for PII as callers say it and ASR writes it.

Each lives in a module of its own: digit strings (``numbers``), e-mail addresses (``emails``),
names (``names``), dates of birth (``dates``), street addresses and zip codes (``addresses``),
all reading the text through one normalisation pass (``normalize``) that keeps exact offsets.
"""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer

from governance.redaction.addresses import AddressRecognizer
from governance.redaction.dates import DateOfBirthRecognizer
from governance.redaction.emails import SpokenEmailRecognizer
from governance.redaction.name_lexicon import NameLexicon
from governance.redaction.names import SpokenNameRecognizer
from governance.redaction.numbers import SpokenDigitsRecognizer


def spoken_recognizers(lexicon: NameLexicon) -> list[EntityRecognizer]:
    """Fresh instances of every voiceloop recognizer, for one analyzer's registry."""
    return [
        SpokenDigitsRecognizer(),
        SpokenEmailRecognizer(),
        SpokenNameRecognizer(lexicon),
        DateOfBirthRecognizer(),
        AddressRecognizer(lexicon),
    ]
