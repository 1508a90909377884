"""Person names in lowercase, unpunctuated ASR text, where NER has no capital letters to go on.

A run of name-like words (in the name list, or in no English dictionary) is a name when:
- a word in it is a name and no English word ("priya", "szollosy"), or
- strong context introduces it: "my name is ...", "this is ... speaking", "mr ...", "my wife ...",
  "can i speak to ...", "ask for ...", or
- weak context ("to", "from", "call", "email", "thanks", ...) comes before a word that is no
  English word ("call raju"), or
- in cased text, it is capitalised mid-sentence, or
- it is one word that no dictionary or name list knows (most such words in ASR output are names).
Where the sentence calls for a person, one to three English words are a name too: "shouted at
gary", "who is tom hanks", "emails from sam", "email david about ...", "add rachel as a payee",
"pay rachel back", "when was X born", "did mike send ...", "X speaking", "jean's email",
"X began writing", "X is from ...", "tell me X middle name", "mr green", "speak to miss X".
Listed English words at the edge of an unknown word are dropped ("[list] usamov and bowers"),
"a"/"i" between two unlisted name words is a middle initial, and address words ("suite") end a name.
"mark my words", "i hope so", "my name is wrong on the card" stay text: every word there is an
English word with no context that makes it a name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.lang.en.stop_words import STOP_WORDS

from governance.redaction.entity_types import PERSON
from governance.redaction.name_lexicon import NEVER_NAMES, NameLexicon, fold
from governance.redaction.normalize import SENTENCE_END, TEENS, TENS, UNITS, Token, capitalised, tokens_of

_NAME, _AMBIGUOUS, _UNKNOWN, _WORD = range(4)
_MAX_NAME_WORDS = 4

_TITLES = frozenset({
     "mr", "mrs", "ms", "miss", "mister", "missus", "dr", "doctor", "prof", "professor", "sir",
     "madam", "dame", "lord", "lady", "agent", "officer",
})  # fmt: skip
_PLAIN_TITLES = frozenset({"mr", "mrs", "ms", "mister", "missus", "dr", "prof", "professor"})
_RELATIONS = frozenset({
    "wife", "husband", "son", "daughter", "mother", "father", "mum", "mom", "dad", "brother",
    "sister", "partner", "friend", "colleague", "boss", "manager", "landlord", "landlady",
    "grandmother", "grandfather", "grandma", "grandpa", "aunt", "uncle", "cousin", "nephew",
    "niece", "fiance", "fiancee", "girlfriend", "boyfriend", "neighbour", "neighbor", "tenant", "kid",
})  # fmt: skip
# Words of an address that follow a name on a form: "mrs diana usamov [suite] nine ...".
_ADDRESS_UNITS = frozenset({"apartment", "apt", "unit", "suite", "ste", "flat", "floor", "box", "postbox", "psc"})
# Word sequences that end right before a name, read backwards from the name.
_STRONG_BEFORE: tuple[tuple[str, ...], ...] = (
    ("name", "is"), ("name's",), ("names",), ("name", "was"), ("names", "is"), ("surname", "is"),
    ("called",), ("named",),
    ("holder", "is"), ("speak", "to"), ("speak", "with"), ("spoke", "to"), ("spoke", "with"),
    ("speaking", "to"), ("speaking", "with"), ("talk", "to"), ("talked", "to"), ("talking", "to"),
    ("talk", "with"), ("ask", "for"), ("asked", "for"), ("through", "to"), ("transfer", "me", "to"),
    ("dear",), ("signed",), ("regards",), ("attention", "of"), ("care", "of"), ("behalf", "of"),
    ("account", "of"), ("name", "of"), ("spelled",), ("spelt",), ("is", "that"),
)  # fmt: skip
_STRONG_AFTER = frozenset({"here", "speaking", "calling"})
# "this is ...", "i'm ...": a name only if the words are listed names, or "... speaking/from".
_INTROS: tuple[tuple[str, ...], ...] = (("this", "is"), ("i'm",), ("i", "am"), ("it's",), ("it", "is"), ("im",))
_INTRO_FOLLOWERS = _STRONG_AFTER | {"from"}
# Words that often come right before a name; enough for a word no dictionary knows ("call raju").
_WEAK_BEFORE = frozenset(
    {
        "call",
        "called",
        "email",
        "emailed",
        "text",
        "texted",
        "message",
        "messaged",
        "tell",
        "told",
        "meet",
        "met",
        "hi",
        "hello",
        "hey",
        "thanks",
        "dear",
        "cc",
        "contact",
        "ask",
        "asked",
        "remind",
        "invite",
        "visit",
        "pay",
        "paid",
        "owe",
        "owes",
        "add",
        "named",
        "phone",
        "ring",
        "reply",
        "forward",
        "wish",
        "congratulate",
        "thank",
    }
)
# "... from/to <name>" after a word for a message or payment: "emails from claire".
_WEAK_PAIRS = frozenset({"from", "to", "for", "with", "by"})
_WEAK_PAIR_HEADS = frozenset({
    "email", "emails", "message", "messages", "call", "calls", "text", "texts", "letter",
    "payment", "payments", "transfer", "money", "invite", "invitation", "meeting", "appointment",
    "reply", "note", "gift", "present", "birthday", "party", "dinner", "lunch",
})  # fmt: skip
# Words right before a person, read backwards: "shouted at X", "directed by X", "who is X",
# "meeting with X", "emails from X". The name may be an English word here ("who is tom").
_PERSON_BEFORE: tuple[tuple[str, ...], ...] = (
    ("shouted", "at"), ("yelled", "at"), ("directed", "by"), ("written", "by"), ("produced", "by"),
    ("sung", "by"), ("starring",), ("who", "is"), ("who", "was"), ("old", "is"), ("old", "was"),
    ("movies", "of"), ("films", "of"), ("movies", "with"), ("films", "with"), ("meeting", "with"),
    ("meet", "with"), ("lunch", "with"), ("dinner", "with"), ("appointment", "with"), ("call", "with"),
    ("email", "from"), ("emails", "from"), ("message", "from"), ("messages", "from"), ("texts", "from"),
    ("call", "from"), ("calls", "from"), ("letter", "from"), ("email", "to"), ("reply", "to"),
    ("respond", "to"), ("message", "to"), ("write", "to"), ("letter", "to"), ("meet",),
)  # fmt: skip
# Verbs whose object is a person, if the name ends the text or a clause follows: "email tom",
# "tell bob smith", "email david about the meeting" (not "text message", "email address").
_PERSON_VERBS = frozenset({"email", "tell", "text", "message", "ring", "remind", "invite", "thank", "congratulate"})
_CLAUSE_AFTER = frozenset({"about", "saying", "that", "to", "and", "please", "if", "when", "back", "asking"})
# Words right after a person: "add X as a payee", "X lives at".
_PERSON_AFTER: tuple[tuple[str, ...], ...] = (
    ("as", "a", "payee"), ("as", "payee"), ("as", "a", "beneficiary"), ("as", "beneficiary"),
    ("as", "guardian"), ("as", "a", "guardian"), ("as", "a", "contact"), ("as", "a", "new", "contact"),
    ("as", "an", "authorised", "user"), ("as", "an", "authorized", "user"), ("to", "my", "contacts"),
    ("to", "my", "contact", "list"), ("middle", "name"), ("last", "name"), ("first", "name"),
)  # fmt: skip
# Verbs of a person at the start of a sentence: "david lives on ...", "leon shouted at ...",
# "walker began writing ..."; also "anna is from plotwatt".
_PERSON_VERBS_AFTER = frozenset({"lives", "shouted", "yelled", "said", "says", "told", "began"})
# What a person has: "jean's email", "paul's retirement", "john's last name".
_PERSONAL = frozenset({
    "email", "emails", "message", "messages", "text", "texts", "birthday", "party", "wedding",
    "retirement", "anniversary", "funeral", "graduation", "number", "phone", "address", "last",
    "first", "middle", "full", "name", "surname", "house", "place", "home", "car", "podcast",
    "office", "flight", "new", "latest", "daughter", "son", "wife", "husband", "mother", "father",
    "mum", "mom", "dad", "brother", "sister", "kids", "children", "approval",
})  # fmt: skip
_DETERMINERS = frozenset({
    "the", "a", "an", "my", "your", "our", "their", "his", "her", "its", "this", "that", "these",
    "those", "each", "every", "any", "some", "no", "which", "what", "whose", "today's", "one",
})  # fmt: skip
# Things, not people, that money words take as objects: "pay the money back".
_THINGS = frozenset({
    "money", "cash", "amount", "fee", "fees", "balance", "loan", "debt", "rent", "card",
    "account", "refund", "deposit", "charge", "payment", "transfer", "everything", "everyone",
    "somebody", "someone", "anybody", "anyone", "support", "service", "team", "letter", "email",
})  # fmt: skip
# Context words that end a run of person words: "when was benjamin franklin [born]".
_RUN_STOP = frozenset({"born", "back", "speaking", "calling", "here", "there", "ever", "as", "middle"})
_WH = frozenset({"when", "why", "where"})
_INTERJECTIONS = frozenset(
    {"yes", "yeah", "yep", "no", "nope", "oh", "okay", "ok", "hello", "hi", "hey", "right", "well", "sure", "thanks"}
)
_NOT_NAME = frozenset(UNITS) | frozenset(TEENS) | frozenset(TENS) | {"hundred", "thousand", "double", "triple"}


class SpokenNameRecognizer(EntityRecognizer):
    """Names from a name list, English words and the context around them (no NER needed)."""

    def __init__(self, lexicon: NameLexicon) -> None:
        self.lexicon = lexicon
        super().__init__(supported_entities=[PERSON], name="SpokenNameRecognizer")

    def load(self) -> None:
        """Nothing to load: the lexicon is given."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if PERSON not in entities:
            return []
        doc = getattr(nlp_artifacts, "tokens", None)
        others = [(e.start_char, e.end_char) for e in doc.ents if e.label_ != "PERSON"] if doc is not None else []
        return [RecognizerResult(PERSON, start, end, score) for start, end, score in self.find(text, others)]

    def find(self, text: str, other_entities: Sequence[tuple[int, int]] = ()) -> list[tuple[int, int, float]]:
        """(start, end, score) of each name; ``other_entities`` are spans NER gave another label."""
        tokens = tokens_of(text)
        kinds = [self._kind(tok) for tok in tokens]
        for start, end in other_entities:
            for k, tok in enumerate(tokens):
                if tok.start < end and tok.end > start:
                    kinds[k] = _WORD
        found = []
        i = 0
        while i < len(tokens):
            if kinds[i] == _WORD:
                i += 1
                continue
            j = i
            while (
                j + 1 < len(tokens)
                and j + 1 - i < _MAX_NAME_WORDS
                and (kinds[j + 1] != _WORD or _initial_or_hyphen(tokens, kinds, j + 1))
            ):
                j += 1
            score = self._judge(tokens, kinds, i, j)
            if score is None and _UNKNOWN in kinds[i : j + 1]:
                # "myriam jaggi [date] of birth", "[list] usamov and bowers": drop listed-but-English
                # words at the edges of unknown words ("amazon dot com" keeps "dot"); with one
                # unknown word, no stop word ("My withdrawl" is a typo, not a name) and no short word.
                first, last = i, j
                while kinds[first] == _AMBIGUOUS:
                    first += 1
                while kinds[last] == _AMBIGUOUS:
                    last -= 1
                unknown = kinds[first : last + 1].count(_UNKNOWN)
                dropped = [*tokens[i:first], *tokens[last + 1 : j + 1]]
                if (first, last) != (i, j) and (
                    unknown >= 2
                    or (
                        unknown == 1
                        and not any(t.low in STOP_WORDS for t in dropped)
                        and all(len(tokens[k].low) > 3 for k in range(first, last + 1) if kinds[k] == _UNKNOWN)
                    )
                ):
                    score = self._judge(tokens, kinds, first, last)
                    if score is not None:
                        first, last = self._widen(tokens, kinds, first, last)
                        found.append((tokens[first].start, tokens[last].end, score))
                i = j + 1
                continue
            if score is not None:
                first, last = self._widen(tokens, kinds, i, j)
                found.append((tokens[first].start, tokens[last].end, score))
            i = j + 1
        found += self._after_introductions(tokens, other_entities) + _spelled_names(tokens)
        found += self._person_contexts(tokens, kinds, other_entities)
        return found + _coordinated(tokens, kinds, found, lambda tok: self._person_word(tok, verbs=False))

    def _widen(self, tokens: Sequence[Token], kinds: Sequence[int], i: int, j: int) -> tuple[int, int]:
        """Take in one neighbouring word that can only be a noun: "toby [scholz]", "[donald] trump"."""
        if i > 0 and self._noun_only(tokens[i - 1]):
            i -= 1
        elif j + 1 < len(tokens) and self._noun_only(tokens[j + 1]):
            j += 1
        return i, j

    def _noun_only(self, tok: Token) -> bool:
        word = fold(tok.low)
        return (
            _free_word(tok)
            and not self.lexicon.is_descriptive(word)
            and word not in _WEAK_BEFORE
            and word not in _INTERJECTIONS
        )

    def _person_word(self, tok: Token, *, verbs: bool = True) -> bool:
        """A word that can be a name where the context says a person comes: a listed name, a word
        in no dictionary, or a singular noun ("tom", "bob"); with ``verbs`` False no word that can
        be a verb or adjective."""
        low = tok.low[:-2] if tok.low.endswith("'s") else tok.low
        if not (tok.text[0].isalpha() and len(low) > 1 and low.isalpha()):
            return False
        if low in STOP_WORDS or low in _NOT_AFTER_INTRO or low in _NOT_NAME or low in _TITLES or low in _RELATIONS:
            return False
        word = fold(low)
        if word in _INTERJECTIONS or word in _THINGS or word in _WEAK_BEFORE or word in _PERSON_VERBS:
            return False
        lexicon = self.lexicon
        if lexicon.is_name(word) or not lexicon.is_english(word):
            return True
        if word in NEVER_NAMES or (word.endswith("s") and not word.endswith("ss") and lexicon.is_english(word[:-1])):
            return False  # a plural: "emails from customers"
        if word.endswith(("ing", "ed")):
            return False  # "who is giving me ...", "know about topping up"
        if lexicon.is_descriptive(word):
            return verbs and word in lexicon.descriptive and word in lexicon.nouns  # "bob", "mark"; not "sent"
        return True

    def _surname_word(self, tok: Token) -> bool:
        """A second name word may be a plural-looking noun or colour: "tom [hanks]", "george [brown]"."""
        low = tok.low
        if not (low.isalpha() and len(low) > 1) or low in STOP_WORDS or low in _NOT_AFTER_INTRO or low in _NOT_NAME:
            return False
        word = fold(low)
        stem = word[:-1] if word.endswith("s") else word
        return (
            word not in NEVER_NAMES
            and word not in _THINGS
            and (stem in self.lexicon.nouns or word in self.lexicon.nouns)
            and (not word.endswith("ing") or self.lexicon.is_name(word))  # "bruno mars [coming]"
        )

    def _person_contexts(
        self, tokens: Sequence[Token], kinds: Sequence[int], other_entities: Sequence[tuple[int, int]]
    ) -> list[tuple[int, int, float]]:
        """One to three words where the context calls for a person, even English words: "who is
        tom hanks", "shouted at gary", "email tom", "add X as a payee", "pay rachel back", "when
        was X born", "reply to jean's email", "david lives on ..."."""
        n = len(tokens)
        found = []
        for i in range(n):
            if not self._person_word(tokens[i]):
                continue
            j = i
            while (
                j < n
                and j - i < 3
                and tokens[j].low not in _RUN_STOP
                and (self._person_word(tokens[j]) or (j > i and self._surname_word(tokens[j])))
                and (j == i or not tokens[j - 1].low.endswith("'s"))
            ):
                j += 1
            prev = tokens[i - 1].low if i > 0 else ""
            nxt = tokens[j].low if j < n else ""
            ok = _ends_with(tokens, i, _PERSON_BEFORE)
            ok = ok or (prev in ("says", "said") and self._person_word(tokens[i], verbs=False))
            ok = ok or (
                prev in _PERSON_VERBS
                and (not nxt or nxt in _CLAUSE_AFTER or nxt in SENTENCE_END or nxt == ",")
                and self._person_word(tokens[i], verbs=False)
            )
            ok = ok or _starts_with(tokens, j, _PERSON_AFTER)
            ok = ok or (nxt == "born" and prev in ("was", "is"))
            # "did mike send ...", "when is bruno mars coming", "has sally fields ever won", "is X there"
            ok = ok or (
                prev in ("did", "does", "has", "is")
                and (i == 1 or tokens[i - 2].low in _WH or tokens[i - 2].low in _INTERJECTIONS)
                and j < n
                and (
                    nxt in ("ever", "there")
                    or (prev != "is" and self.lexicon.is_descriptive(fold(nxt)) and nxt not in STOP_WORDS)
                    or (prev == "is" and nxt.endswith("ing") and self.lexicon.is_descriptive(fold(nxt)))
                )
                and all(self._person_word(t, verbs=False) for t in tokens[i : i + 1])
            )
            # "matthew da costa speaking", "yes elizabeth from your fraud team"
            ok = ok or (nxt in ("speaking", "calling") and (i == 0 or prev in SENTENCE_END or prev in _INTERJECTIONS))
            ok = ok or (_starts_with(tokens, j, (("from", "your"),)) and prev not in _DETERMINERS)
            ok = ok or (nxt == "back" and prev in ("pay", "paid", "owe", "repay"))
            ok = ok or (
                (nxt in _PERSON_VERBS_AFTER or _starts_with(tokens, j, (("is", "from"), ("was", "from"))))
                and (i == 0 or prev in SENTENCE_END)
                and all(self._person_word(t, verbs=False) for t in tokens[i:j])
            )
            if ok and not any(s < tokens[j - 1].end and e > tokens[i].start for s, e in other_entities):
                found.append((tokens[i].start, tokens[j - 1].end, 0.7))
            # "reply to jean's email", "what is john's last name": a possessive before what a person has.
            for k in range(i, j):
                if (
                    tokens[k].low.endswith("'s")
                    and k + 1 < n
                    and tokens[k + 1].low in _PERSONAL
                    and (k == 0 or tokens[k - 1].low not in _DETERMINERS)
                ):
                    begin = k - 1 if k > i and kinds[k - 1] != _WORD else k
                    found.append((tokens[begin].start, tokens[k].end, 0.7))
        return found

    def _after_introductions(
        self, tokens: Sequence[Token], other_entities: Sequence[tuple[int, int]]
    ) -> list[tuple[int, int, float]]:
        """Up to three words after "my name is", "mr", "my wife", or between "this is" and "calling":
        a name even if they are English words."""
        found = []
        for i in range(1, len(tokens)):
            prev = tokens[i - 1].low
            related = prev in _TITLES or prev in _RELATIONS
            # "mr green", "speak to miss smit": right after a title (not one that is also a verb,
            # "miss"), an English word is a name too; "mr leiva [flew]" stops at a verb after it.
            titled = prev in _TITLES and (prev in _PLAIN_TITLES or _ends_with(tokens, i - 1, _STRONG_BEFORE))
            strong = _ends_with(tokens, i, _STRONG_INTROS)
            medium = _ends_with(tokens, i, _INTROS)
            if not (strong or related or medium):
                continue
            j = i
            while j < len(tokens) and j - i < 3 and _free_word(tokens[j]):
                if not (strong or (titled and j == i)) and self.lexicon.is_descriptive(fold(tokens[j].low)):
                    break
                j += 1
            if j == i or (
                medium and not strong and not related and (j >= len(tokens) or tokens[j].low not in _INTRO_FOLLOWERS)
            ):
                continue
            if not any(s < tokens[j - 1].end and e > tokens[i].start for s, e in other_entities):
                found.append((tokens[i].start, tokens[j - 1].end, 0.8))
        return found

    def _kind(self, tok: Token) -> int:
        if not tok.text[0].isalpha():
            return _WORD
        word = fold(tok.low[:-2] if tok.low.endswith("'s") else tok.low)
        if len(word) < 2 or word in _NOT_NAME or (word in STOP_WORDS and not capitalised(tok)):
            return _WORD
        if word in _TITLES or word in _RELATIONS or word in _ADDRESS_UNITS:
            return _WORD
        english = self.lexicon.is_english(word)
        if self.lexicon.is_name(word):
            return _AMBIGUOUS if english or len(word) < 3 else _NAME
        if english or len(word) < 3 or not word.isalpha():
            return _WORD
        return _UNKNOWN

    def _judge(self, tokens: Sequence[Token], kinds: Sequence[int], i: int, j: int) -> float | None:
        span = kinds[i : j + 1]
        if _strong_context(tokens, i, j):
            return 0.85
        if _NAME in span:
            return 0.8
        if _ends_with(tokens, i, _INTROS) and j + 1 < len(tokens) and tokens[j + 1].low in _INTRO_FOLLOWERS:
            return 0.75
        cased = any(_capitalised_mid_sentence(tokens, k) for k in range(i, j + 1) if kinds[k] != _WORD)
        if cased and _UNKNOWN not in span:
            return 0.7
        if (_UNKNOWN in span or cased) and _weak_context(tokens, i):
            return 0.6
        if _UNKNOWN in span and _AMBIGUOUS not in span:
            return 0.5  # a word no dictionary or name list knows: most often a name
        return None


# Words after "my name is" that say something about the name instead of being one.
_NOT_AFTER_INTRO = frozenset({
    "wrong", "incorrect", "misspelled", "misspelt", "spelled", "spelt", "different", "missing",
    "showing", "shown", "listed", "printed", "changed", "displayed", "correct", "right", "fine",
    "ok", "okay", "there", "here", "calling", "speaking", "from", "regarding", "about", "sorry",
    "trying", "going", "looking", "waiting", "having", "just", "still", "really", "actually",
    "sure", "afraid", "customer", "account", "card", "bank", "name", "names", "please", "thanks",
    "yesterday", "today", "tomorrow", "tonight", "earlier", "again", "back", "twice", "morning",
    "afternoon", "evening", "week", "month", "year", "recently", "once", "everyone",
})  # fmt: skip
_STRONG_INTROS: tuple[tuple[str, ...], ...] = (
    ("name", "is"), ("name's",), ("names", "is"), ("name", "was"), ("surname", "is"), ("called",),
    ("named",), ("holder", "is"), ("name", "on", "the", "account", "is"), ("name", "on", "the", "card", "is"),
)  # fmt: skip


_SPELL_WORDS = frozenset({"spelled", "spelt", "spell", "spelling", "name", "surname", "initials"})
_MIN_SPELLED = 3


def _spelled_names(tokens: Sequence[Token]) -> list[tuple[int, int, float]]:
    """Letters spelled one by one after "spelled" or a name word: "that's vicente spelled c o r i s h"."""
    found = []
    i = 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and len(tokens[j].text) == 1 and tokens[j].text.isalpha():
            j += 1
        if j - i >= _MIN_SPELLED and any(t.low in _SPELL_WORDS for t in tokens[max(0, i - 5) : i]):
            found.append((tokens[i].start, tokens[j - 1].end, 0.75))
        i = max(j, i + 1)
    return found


def _coordinated(
    tokens: Sequence[Token],
    kinds: Sequence[int],
    found: Sequence[tuple[int, int, float]],
    noun: Callable[[Token], bool] = lambda tok: False,
) -> list[tuple[int, int, float]]:
    """The other name of a pair joined by "and", when one of the two is a name: "marrero and
    [murphy]", "[park] and mann". The other side must be name-like (a listed name or no English
    word), one or two words, or one noun that can be no verb or adjective ("park and [mann]"),
    so "john and the bank" stays text."""
    at_start = {tok.start: k for k, tok in enumerate(tokens)}
    at_end = {tok.end: k for k, tok in enumerate(tokens)}
    extra = []
    for start, end, score in found:
        first, last = at_start.get(start), at_end.get(end)
        if first is None or last is None:
            continue
        if last + 2 < len(tokens) and tokens[last + 1].low == "and":
            if kinds[last + 2] != _WORD:
                stop = last + 2 + (last + 3 < len(tokens) and kinds[last + 3] != _WORD)
                extra.append((tokens[last + 2].start, tokens[stop].end, min(score, 0.7)))
            elif noun(tokens[last + 2]):
                extra.append((tokens[last + 2].start, tokens[last + 2].end, min(score, 0.6)))
        if first >= 2 and tokens[first - 1].low == "and":
            if kinds[first - 2] != _WORD:
                begin = first - 2 - (first >= 3 and kinds[first - 3] != _WORD)
                extra.append((tokens[begin].start, tokens[first - 2].end, min(score, 0.7)))
            elif noun(tokens[first - 2]):
                extra.append((tokens[first - 2].start, tokens[first - 2].end, min(score, 0.6)))
    return extra


def _free_word(tok: Token) -> bool:
    low = tok.low
    return (
        tok.text[0].isalpha()
        and len(low) > 1
        and ("'" not in low or low[:2] in ("o'", "d'"))
        and low not in STOP_WORDS
        and low not in _NOT_AFTER_INTRO
        and low not in _NOT_NAME
        and low not in _TITLES
        and low not in _RELATIONS
        and low not in _ADDRESS_UNITS
    )


def _weak_context(tokens: Sequence[Token], i: int) -> bool:
    before = tokens[i - 1].low if i > 0 else ""
    if before in _WEAK_BEFORE:
        return True
    return before in _WEAK_PAIRS and i > 1 and tokens[i - 2].low in _WEAK_PAIR_HEADS


def _initial_or_hyphen(tokens: Sequence[Token], kinds: Sequence[int], k: int) -> bool:
    """A middle initial ("john j smith") or hyphen ("anna-maria") between two name words; "a" and
    "i" only between two words that are no English words ("juliusz a kwiatkowski")."""
    if k + 1 >= len(tokens) or kinds[k + 1] == _WORD:
        return False
    text = tokens[k].text
    if text.lower() in ("a", "i"):
        return _AMBIGUOUS not in (kinds[k - 1], kinds[k + 1])
    return text == "-" or (len(text) == 1 and text.isalpha())


def _strong_context(tokens: Sequence[Token], i: int, j: int) -> bool:
    if j + 1 < len(tokens) and tokens[j + 1].low in _STRONG_AFTER:
        return True
    if i == 0:
        return False
    prev = tokens[i - 1].low
    if prev in _TITLES or prev in _RELATIONS:
        return True
    return _ends_with(tokens, i, _STRONG_BEFORE)


def _starts_with(tokens: Sequence[Token], j: int, patterns: tuple[tuple[str, ...], ...]) -> bool:
    """Whether the tokens from index j on spell one of ``patterns``."""
    for pattern in patterns:
        n = len(pattern)
        if j + n <= len(tokens) and tuple(t.low for t in tokens[j : j + n]) == pattern:
            return True
    return False


def _ends_with(tokens: Sequence[Token], i: int, patterns: tuple[tuple[str, ...], ...]) -> bool:
    """Whether the tokens right before index i spell one of ``patterns``."""
    if i == 0:
        return False
    for pattern in _by_last_word(patterns).get(tokens[i - 1].low, ()):
        n = len(pattern)
        if i >= n and all(tokens[i - n + k].low == word for k, word in enumerate(pattern)):
            return True
    return False


@functools.cache
def _by_last_word(patterns: tuple[tuple[str, ...], ...]) -> dict[str, list[tuple[str, ...]]]:
    """Patterns by their last word: most tokens end none, and are ruled out with one lookup."""
    index: dict[str, list[tuple[str, ...]]] = {}
    for pattern in patterns:
        index.setdefault(pattern[-1], []).append(pattern)
    return index


def _capitalised_mid_sentence(tokens: Sequence[Token], k: int) -> bool:
    return capitalised(tokens[k]) and k > 0 and tokens[k - 1].text not in SENTENCE_END
