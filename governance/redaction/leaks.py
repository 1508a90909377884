"""Independent second check for PII left in already-redacted text.

Deliberately shares nothing with the redactor (no Presidio, no spaCy, no code or word lists of
the recognizers): a bug in one should not hide the same leak from the other. It is a set of blunt
rules, one or more per entity type the redactor handles, each a regular expression over one of
three readings of the turn (``leak_words.py``):

* ``normal``: number words as digits, PII-shaped digit strings joined into one run, amounts,
  decimals and years (written or said) blanked, spoken e-mails written: any run of 4+ digits or
  anything e-mail shaped is a leak;
* ``spoken``: number words as digits, nothing joined: dates with a year or a birth context,
  street numbers before a street word, flats and suites, postcodes said letter by letter, short
  codes after "pin" / "cvv" / "security code", IP addresses said with "dot";
* ``names``: the spoken reading with name-like words replaced by their class (first name,
  surname, first name that is also a word, word of no English list): an introduction followed
  by a name, a first name followed by a surname, a name followed by "speaking".

Only entity types are returned, never the values, so the result can go into logs and audit
records. The rules are ``LEAK_RULES``; ``find_leaks`` applies them to one text and ``leak_gate``
runs the same rules as Great Expectations expectations over a batch of turns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from governance.redaction.leak_words import BARRIER, PLACEHOLDER_RE, name_shape, spoken_form

# Digit groups separated by spaces, hyphens, commas or brackets: "415 555-0134", "(415) 555".
_GROUP = r"\d+(?:\.\d+)*"
_RUN_RE = re.compile(rf"(?<![\w.]){_GROUP}(?:(?:\s*[-,()]\s*|\s+){_GROUP})*")
_QUANTITY_RE = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d{1,2}")
_SPOKEN_YEAR_RE = re.compile(r"(?:19|20)\s\d{2}")  # "nineteen eighty four" read as "19 84"
_SPOKEN_TIME_RE = re.compile(r"(?:[1-9]|1[0-2])\s[0-5]\d")  # "ten thirty" read as "10 30"...
_TIME_BEFORE_RE = re.compile(r"\b(?:at|around|about|by|until|till|after|before|from|between)\s*$")
_TIME_AFTER_RE = re.compile(r"^\s*(?:am|pm|a m|p m|o'clock|tonight|today|tomorrow|this morning)\b")
_CURRENCY_BEFORE_RE = re.compile(r"[£$€¥₹]\s*$")
_CURRENCY = r"(?:[£$€¥₹%]|(?:pounds?|quid|pence|p|euros?|eur|dollars?|usd|gbp|bucks|cents?|k|grand|percent)\b)"
_CURRENCY_NEXT_RE = re.compile(rf"^\s*{_CURRENCY}", re.IGNORECASE)
# "10, 20 and 30 pounds": small numbers may be listed before their currency.
_CURRENCY_AFTER_RE = re.compile(rf"^(?:\s*(?:and|or|to|,|-)\s*\d+(?:[.,]\d+)*)*\s*{_CURRENCY}", re.IGNORECASE)

_EMAIL_RE = re.compile(
    r"(?<![\w.+-])(?P<local>[a-z0-9](?:[a-z0-9._+-]*[a-z0-9])?)\s*@\s*"
    r"[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}(?![\w])",
    re.IGNORECASE,
)
# A single sentence word before a spoken "at": "I bought it at amazon dot com" is no address.
_NOT_LOCAL = frozenset(
    {
        "i", "m", "me", "is", "was", "am", "are", "be", "it", "that", "this", "them", "us", "we",
        "you", "they", "he", "she", "him", "her", "up", "out", "in", "on", "there", "here", "shop",
        "shopping", "bought", "paid", "pay", "buy", "ordered", "order", "online", "website", "site",
        "money", "card", "account",
    }
)  # fmt: skip


def _spoken_email(text: str) -> str:
    text = re.sub(r"\s+at(?:\s+(?:sign|symbol))?\s+", " @ ", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+dot\s+", ".", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+underscore\s+", "_", text, flags=re.IGNORECASE)
    return re.sub(r"\s+(?:dash|hyphen)\s+", "-", text, flags=re.IGNORECASE)


def _digit_runs(text: str) -> str:
    """Each digit string that could be PII becomes one run of digits; amounts, decimals and
    years are blanked out, so that only candidates are left for the patterns."""
    parts: list[str] = []
    pos = 0
    for m in _RUN_RE.finditer(text):
        run = m.group().strip(" ,-()")
        digits = re.sub(r"\D", "", run)
        parts.append(text[pos : m.start()])
        pos = m.end()
        if len(digits) < 4 or _QUANTITY_RE.fullmatch(run) or _SPOKEN_YEAR_RE.fullmatch(run):
            parts.append(" # ")
            continue
        if _SPOKEN_TIME_RE.fullmatch(run) and (_TIME_BEFORE_RE.search(text[: m.start()])
                                              or _TIME_AFTER_RE.match(text[m.end() :])):
            parts.append(" # ")  # ...when said as a time: "at ten thirty", "ten thirty pm"
            continue
        after = _CURRENCY_AFTER_RE if len(digits) <= 6 else _CURRENCY_NEXT_RE
        if len(digits) <= 9 and (_CURRENCY_BEFORE_RE.search(text[: m.start()]) or after.match(text[m.end() :])):
            parts.append(" # ")
            continue
        if run.isdecimal() and len(run) == 4 and 1000 <= int(run) <= 2099:
            parts.append(" # ")  # a year
            continue
        parts.append(f" {digits} ")
    parts.append(text[pos:])
    return "".join(parts)


def _emails(text: str) -> str:
    """E-mail shapes written out as ``local@domain``; "bought it at amazon dot com" is left broken."""
    spoken = _spoken_email(text)
    return _EMAIL_RE.sub(
        lambda m: re.sub(r"\s+", "", m.group()) if m.group("local").lower() not in _NOT_LOCAL else " ", spoken
    ).lower()


def normal_form(text: str) -> str:
    """The text as the digit and e-mail rules read it: placeholders as barriers, number words as digits,
    PII-shaped digit strings joined into one run, spoken e-mails written."""
    return _emails(_digit_runs(spoken_form(text)))


# -- the rules ------------------------------------------------------------------------------------
_MONTH = (r"(?:january|february|march|april|may|june|july|august|september|october|november|december|"
          r"jan|feb|sept|sep|oct|nov|dec)")
_ORDINAL = (r"(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|"
            r"fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|thirtieth)")
_DAY = rf"(?:\d{{1,2}}(?:st|nd|rd|th)?(?: {_ORDINAL})?|{_ORDINAL})"
_YEAR = r"(?:(?:19|20) ?\d{2}|\d{2}|2 thousand(?: and)?(?: \d{1,2})?|'\d{2})"
_OCTET = r"\d(?: ?\d){0,2}"
_DOT = r" ?(?:\.|dot) ?"
_STREET = (r"(?:street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|way|court|ct|place|pl|terrace|"
           r"crescent|close|square|sq|gardens|grove|mews|walk|parade|highway|hwy|parkway|pkwy|circle|cir|trail|"
           r"row|hill|park|dam|key|keys|view|rise|vale|alley|plaza|path|loop|pike|crossing|estates|heights|"
           r"junction|meadows?|ridge|springs|point|port|shores?|summit|valley|wells|lodge|manor|fields?|creek|"
           r"falls|ferry|ford|forest|fort|glen|harbou?r|haven|island|lakes?|landing|mills?|orchard|pines|plains|"
           r"ranch|river|spur|stream|trace|turnpike|village|ville|vista|bypass|causeway|expressway|freeway)")
_NOT_STREET_NUMBER = (r"(?! ?(?:pounds?|quid|dollars?|euros?|pence|cents?|percent|k|grand|days?|weeks?|months?|"
                      r"years?|hours?|minutes?|mins?|times?|transactions?|payments?|cards?|of|and|or|to|in|at|"
                      r"for|more|less|am|pm|o'clock)\b)")
# Introductions: after a strong one any name-like word is a name; after a weak one ("yes", "i am",
# "with") only a census name is (an unknown word there is more often a typo or a rare word).
_STRONG_INTRO = (r"(?:my name is|name is|name's|surname is|last name is|first name is|this is|speaking to|spoke to|"
                 r"spoken to|talking to|talked to|speak to|call me|ask for|asking for|mr|mrs|ms|miss|dr|mister|"
                 r"my (?:wife|husband|son|daughter|mother|mum|mom|father|dad|partner|brother|sister|friend|"
                 r"colleague|boss)|under the name(?: of)?|in the name of|holder is|on behalf of|dear)")
_WEAK_INTRO = r"(?:i am|i'm|im|it's|its|it is|yes|yeah|hello|hi|call|email|text|message|tell|remind)"
_NAME = r"(?:FN|LN|UW)"
PERSON_MARK = "§§"  # where the redactor put <PERSON>, in the names reading
_ANY_NAME = r"(?:FN|LN|UW|CN)"


@dataclass(frozen=True)
class LeakRule:
    """One way an entity type shows through: ``pattern`` over the turn's ``form`` (normal, spoken or names)."""

    kind: str
    form: str
    pattern: str


LEAK_RULES: tuple[LeakRule, ...] = (
    LeakRule("CREDIT_CARD", "normal", r"(?<!\d)\d{13,19}(?!\d)"),
    LeakRule("PHONE_NUMBER", "normal", r"(?<!\d)\d{10,12}(?!\d)"),
    LeakRule("DIGIT_STRING", "normal", r"(?<!\d)\d{4,9}(?!\d)"),
    LeakRule("EMAIL_ADDRESS", "normal", r"[a-z0-9][a-z0-9._+-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}"),
    # a spoken address whose local part ends in a number ("sierra seventy nine at gmail dot com"): the normal
    # reading blanks the short number as an amount before it writes the address
    LeakRule("EMAIL_ADDRESS", "spoken", r"\b[a-z][a-z0-9._+-]*(?: \d{1,4}){1,2} (?:at|@) [a-z0-9-]+(?: [a-z0-9-]+)?"
                                        r" ?(?:dot|\.) ?[a-z]{2,6}\b"),
    LeakRule("IP_ADDRESS", "spoken", rf"(?<![\d.]){_OCTET}{_DOT}{_OCTET}{_DOT}{_OCTET}{_DOT}{_OCTET}(?![\d])"),
    LeakRule("PIN", "spoken", r"\b(?:pin|cvv|cvc|c v v|c v c|passcode|pass code|password|security (?:code|number)|"
                              r"verification code|confirmation code|otp|digits on the back)\b"
                              r"(?: (?:number|code|is|was|are|it's|its|to|now|then|of|on|the|back|my|new|old|:))*"
                              r" \d(?: ?\d){2,}"),
    LeakRule("DATE_OF_BIRTH", "spoken", rf"\b(?:born|birth|birthday|dob|d o b)\b(?: \S+){{0,4}}? (?:the )?"
                                        rf"(?:\d|{_MONTH}\b|{_ORDINAL})"),
    LeakRule("DATE_OF_BIRTH", "spoken", rf"\b{_MONTH},? (?:the )?{_DAY},? (?:of )?{_YEAR}\b"),
    LeakRule("DATE_OF_BIRTH", "spoken", rf"\b{_DAY} (?:of )?{_MONTH},? {_YEAR}\b"),
    LeakRule("STREET_ADDRESS", "spoken", rf"(?<![\d.])\d+(?: ?\d)*(?: [a-z])?{_NOT_STREET_NUMBER}"
                                         rf" (?:[a-z']+ ){{1,3}}{_STREET}\b"),
    LeakRule("STREET_ADDRESS", "spoken", r"\b(?:flat|apartment|apt|unit|suite|ste)(?: number)? \d"),
    LeakRule("STREET_ADDRESS", "spoken", r"\b(?:address|live at|living at|lives at)\b(?: (?:is|was|it's|its|of|the|"
                                         r"my|his|her|their|new|old|billing|mailing|home|first|line|:))*"
                                         r"(?: [^\s\d\x00]+){0,3} \d"),
    LeakRule("ZIP_CODE", "spoken", r"(?<![a-z0-9'])[a-z0](?: [a-z0])? \d(?: [a-z0-9])? \d [a-z0] [a-z0](?![a-z0-9'])"),
    LeakRule("ZIP_CODE", "spoken", r"\b[a-z]{1,2}\d[a-z\d]? ?\d[a-z]{2}\b"),
    LeakRule("ZIP_CODE", "spoken", r"\b(?:post ?code|postal code|zip(?: code)?)\b(?: (?:is|was|it's|its|of|the|my|"
                                   r"number|:))* (?:[a-z0-9](?: |$)){3,}"),
    LeakRule("PERSON", "names", rf"\b{_STRONG_INTRO} {_NAME}\b"),
    LeakRule("PERSON", "names", rf"\b{_WEAK_INTRO} (?:FN|LN)\b"),
    LeakRule("PERSON", "names", rf"\b(?:{_STRONG_INTRO}|{_WEAK_INTRO}) CN {_ANY_NAME}\b"),
    LeakRule("PERSON", "names", r"\b(?:FN|CN|UW|LN) (?:LN|UW)\b"),
    LeakRule("PERSON", "names", rf"\b{_ANY_NAME} (?:speaking|here)\b"),
    # a census name that is no everyday word, after words that introduce a person ("helped by", "pay FN back")
    LeakRule("PERSON", "names", r"\bFN\b"),  # a census first name that is no everyday word, anywhere
    LeakRule("PERSON", "names", r"\b(?:helped by|through to|pay|meet|email to|reply to|message|call|named|called)"
                                r" UW\b"),
    # the other half of a name the redactor masked: "<PERSON> smith", "maria <PERSON>"
    LeakRule("PERSON", "names", rf"{PERSON_MARK} {_NAME}\b|\b(?:FN|UW) {PERSON_MARK}"),
    # a name spelt out letter by letter
    LeakRule("PERSON", "spoken", r"\b(?:name|surname|spelled|spelt|spell(?: it)?)(?: is| it's)?(?: \x00)?"
                                 r"(?: [a-z]){3,}\b"),
)

_COMPILED = [(rule, re.compile(rule.pattern)) for rule in LEAK_RULES]


def readings(text: str) -> dict[str, str]:
    """The turn in every form the rules read (the names reading keeps where a person was masked)."""
    marked = spoken_form(text.replace("<PERSON>", f" {PERSON_MARK} "))  # one pass for both readings:
    spoken = marked.replace(PERSON_MARK, BARRIER.strip())  # the mark stands where any placeholder's barrier would
    return {"normal": _emails(_digit_runs(spoken)), "spoken": spoken, "names": name_shape(marked)}


def leak_types_of(forms: dict[str, str]) -> list[str]:
    """Sorted entity types some rule finds in a turn's readings."""
    return sorted({rule.kind for rule, pattern in _COMPILED if pattern.search(forms[rule.form])})


def find_leaks(text: str) -> list[str]:
    """Sorted entity types that still look like PII in ``text`` (empty list: clean)."""
    return leak_types_of(readings(text))


__all__ = ["BARRIER", "LEAK_RULES", "PLACEHOLDER_RE", "LeakRule", "find_leaks", "normal_form", "readings"]
