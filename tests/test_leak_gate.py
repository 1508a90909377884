"""The leak gate: one set of rules (patterns over three readings of a turn), run with Great Expectations on
batches, and an independent detector for every entity type the redactor handles."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from governance.redaction.leak_gate import TurnText, leak_gate
from governance.redaction.leaks import find_leaks, normal_form, readings

TEXTS = [
    "my number is four one five five five five zero one three four",
    "hello <PERSON> how can i help",
    "email john dot smith at gmail dot com",
    "card 4111 1111 1111 1111",
    "I topped up 20 pounds four days ago",
    "it's 2018 and my pin is double four two one",
    "<PHONE_NUMBER> <DIGIT_STRING> 12 <ACCOUNT_NUMBER> 34",
    "I bought it at amazon dot com",
]


def test_gate_names_call_turn_and_types_never_values() -> None:
    texts = [TurnText(f"call-{i // 3}", i % 3, text) for i, text in enumerate(TEXTS)]
    leaks = leak_gate(texts)
    assert [(leak.call_id, leak.turn, leak.types) for leak in leaks] == [
        ("call-0", 0, ("PHONE_NUMBER",)),
        ("call-0", 2, ("EMAIL_ADDRESS", "PERSON")),  # "email john dot smith ...": the name is in clear too
        ("call-1", 0, ("CREDIT_CARD",)),
        ("call-1", 2, ("DIGIT_STRING", "PIN")),
    ]
    assert not any("4155" in repr(leak) or "smith" in repr(leak) for leak in leaks)


def test_two_texts_of_one_turn_are_one_leak_with_both_types() -> None:
    leaks = leak_gate([TurnText("c", 4, "card 4111 1111 1111 1111"), TurnText("c", 4, "jd@example.com")])
    assert [(leak.turn, leak.types) for leak in leaks] == [(4, ("CREDIT_CARD", "EMAIL_ADDRESS"))]


def test_gate_is_empty_on_no_texts_and_clean_texts() -> None:
    assert leak_gate([]) == []
    assert leak_gate([TurnText("c", 0, "my card <CREDIT_CARD> was declined twice")]) == []


_WORDS = ["one", "two", "oh", "double", "five", "nine", "4", "1234", "at", "dot", "gmail", "com", "john",
          "pounds", "$", ",", "-", "<PERSON>", "2019", "uh"]  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_WORDS), max_size=15).map(" ".join), min_size=1, max_size=8))
def test_gate_agrees_with_the_per_text_rule(texts: list[str]) -> None:
    """One rule everywhere: GX on a batch finds exactly what find_leaks finds text by text."""
    leaks = {leak.turn: list(leak.types) for leak in leak_gate([TurnText("c", i, t) for i, t in enumerate(texts)])}
    assert leaks == {i: find_leaks(t) for i, t in enumerate(texts) if find_leaks(t)}


def test_normal_form_keeps_offsets_out_and_amounts_blank() -> None:
    assert "4155550134" in normal_form("call four one five five five five zero one three four")
    assert not any(ch.isdigit() for ch in normal_form("I paid 1,000 dollars in 2019"))


# One turn per entity type that the digit and e-mail patterns alone let through, as ASR writes speech.
PLANTED = {
    "PERSON": ["i am grace o'neill and i need help", "yes grace o'neill", "it's grace o'neill",
               "hello yan speaking how can i help", "the last name is <PERSON> n g u b a n e"],
    "DATE_OF_BIRTH": ["my dob is august twenty eight nineteen eighty five", "born three february nineteen eighty seven",
                      "the seventeenth of april nineteen sixty nine"],
    "STREET_ADDRESS": ["my mailing address is sixty four fifty six b maple avenue", "flat two eight riverside way"],
    "ZIP_CODE": ["my post code is w c six five p s", "it's e nine f four s r"],
    "PIN": ["the cvv is nought one three", "the security code is double oh four"],
    "IP_ADDRESS": ["keep getting address four one dot one seven three dot nine six dot two six blocked"],
    "EMAIL_ADDRESS": ["send it to sierra seventy nine at gmail dot com"],
}
CLEAN = ["is there a grace period on my card", "i will pay it back tomorrow", "i topped up twenty pounds four days ago",
         "i paid on the third of march", "my pin is not working", "can i use my card in austria",
         "what is the zip code for the branch", "i moved flat last month"]


def test_every_type_has_a_detector_and_the_issue_examples_leak() -> None:
    for kind, texts in PLANTED.items():
        for text in texts:
            assert kind in find_leaks(text), (kind, text, readings(text))
    assert [text for text in CLEAN if find_leaks(text)] == []
    leaks = leak_gate([TurnText("c", i, t) for i, t in enumerate(PLANTED["PERSON"][:3])])
    assert [(leak.turn, leak.types) for leak in leaks] == [(i, ("PERSON",)) for i in range(3)]
