"""Fake personal data, in the form callers *say* it.

Callers do not say "415-555-0192"; they say "four one five, five five five, zero one nine two".
Names come from Faker, numbers are spelled out digit by digit (sometimes "oh" or "double five"),
e-mail addresses are read out ("john dot smith at gmail dot com"). Every value is marked with its
entity type so a label can point at it: that is what redaction recall is measured against.
Account numbers may be left for real FSDD recordings to say (``Said.digits``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from faker import Faker

from core.spoken import DIGIT_WORDS, spoken_digits

PERSON = "PERSON"
PHONE = "PHONE_NUMBER"
CARD = "CREDIT_CARD"
ACCOUNT = "ACCOUNT_NUMBER"
EMAIL = "EMAIL_ADDRESS"



@dataclass(frozen=True)
class Said:
    """A fragment of what a caller says; consecutive fragments are joined by ``join``."""

    text: str
    entity: str | None = None  # the PII type, when this fragment is a PII value
    digits: str = ""  # set: real FSDD recordings say these digits instead of the TTS voice
    join: str = " "


def spoken_groups(
    groups: list[str], rng: random.Random, *, oh_rate: float = 0.0, double_rate: float = 0.0
) -> str:
    """Digit groups with a pause between them, as people read phone and card numbers."""
    return ", ".join(spoken_digits(g, rng, oh_rate=oh_rate, double_rate=double_rate) for g in groups)


def spoken_email(local_parts: list[str], separator: str, domain: str) -> str:
    """An e-mail address read aloud: "john dot smith at gmail dot com"."""
    local = f" {separator} ".join(local_parts)
    return f"{local} at {domain.replace('.', ' dot ')}"


class PiiFactory:
    """Fake PII sentences, deterministic for a seed."""

    def __init__(self, seed: int) -> None:
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)

    def name(self, rng: random.Random) -> list[Said]:
        full = f"{self.fake.first_name()} {self.fake.last_name()}"
        lead = rng.choice(["my name is", "this is", "the account holder is", "my full name is"])
        return [Said(lead), Said(full, PERSON)]

    def phone(self, rng: random.Random) -> list[Said]:
        number = self.fake.numerify("%##%######")
        spoken = spoken_groups([number[:3], number[3:6], number[6:]], rng, oh_rate=0.2, double_rate=0.15)
        lead = rng.choice(["my phone number is", "you can reach me on", "my mobile number is"])
        return [Said(lead), Said(spoken, PHONE)]

    def card(self, rng: random.Random) -> list[Said]:
        number = self.fake.credit_card_number(card_type=rng.choice(["visa16", "mastercard"]))
        if rng.random() < 0.3:
            return [Said("my card number ends in"), Said(spoken_digits(number[-4:], rng), CARD)]
        groups = [number[i : i + 4] for i in range(0, len(number), 4)]
        lead = rng.choice(["my card number is", "the long number on my card is"])
        return [Said(lead), Said(spoken_groups(groups, rng), CARD)]

    def account(self, rng: random.Random, *, recorded: bool) -> list[Said]:
        number = self.fake.numerify("%#######")
        lead = rng.choice(["my account number is", "the account number is"])
        if recorded:  # FSDD speakers say "zero", digit by digit
            return [Said(lead), Said(" ".join(DIGIT_WORDS[int(d)] for d in number), ACCOUNT, digits=number)]
        return [Said(lead), Said(spoken_groups([number[:4], number[4:]], rng, oh_rate=0.2), ACCOUNT)]

    def email(self, rng: random.Random) -> list[Said]:
        first, last = self.fake.first_name().lower(), self.fake.last_name().lower()
        separator = rng.choice(["dot", "dot", "underscore"])
        domain = self.fake.free_email_domain()
        lead = rng.choice(["my email is", "my email address is"])
        return [Said(lead), Said(spoken_email([first, last], separator, domain), EMAIL)]

    def sentence(self, rng: random.Random, *, items: int, recorded_digits: bool) -> list[Said]:
        """One sentence with ``items`` PII values: "My name is Ann Lee and my phone number is ..."."""
        makers: dict[str, Callable[[random.Random], list[Said]]] = {
            PERSON: self.name,
            PHONE: self.phone,
            CARD: self.card,
            ACCOUNT: lambda r: self.account(r, recorded=recorded_digits and r.random() < 0.7),
            EMAIL: self.email,
        }
        kinds = rng.sample(list(makers), k=items)
        said: list[Said] = []
        for i, kind in enumerate(kinds):
            if i:
                said.append(Said("and"))
            said.extend(makers[kind](rng))
        said[0] = Said(said[0].text[:1].upper() + said[0].text[1:], said[0].entity, said[0].digits)
        said.append(Said(".", join=""))
        return said
