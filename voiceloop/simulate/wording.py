"""What the bot, the agent and the caller say around the ask, so a call's words follow how it went.

The bot names the intent it understood (from the intent's own name), so a wrong understanding is
audible in the call. Callers close in plain or pleased words when the bot got it right and turn
cross when it did not. These sentences were written for the simulator and checked against no
sentiment lexicon or model: a sentiment metric measured on these calls is measured against
people's words, not against itself.
"""

from __future__ import annotations

import random

from voiceloop.simulate.pii import ACCOUNT, CARD, EMAIL, PERSON, PHONE

_SPOKEN = {"my": "your", "atm": "cash machine", "pin": "PIN"}

_ANSWERS = (
    "Okay, you're calling about {}.",
    "I understand this is about {}.",
    "Right, I can help you with {}.",
    "Got it, so this is about {}.",
)
_ASK_FOR = {
    PERSON: "your full name",
    PHONE: "the phone number on your account",
    CARD: "your card number",
    ACCOUNT: "your account number",
    EMAIL: "the email address on your account",
}
_VERIFY = ("Before I go on, could you tell me {}?", "First, can I take {}, please?")
_VERIFIED = ("Thank you, that's confirmed.", "Thanks, I've found your account.", "Lovely, you're verified.")
_NEXT_STEP = (
    "I've sent the steps to your app, and you'll get a text in a minute.",
    "That's been updated on your account, and you'll see it in the app shortly.",
    "I've put that through for you now.",
)
_OUTAGE = (
    "I'm sorry, I can't complete that right now because our system isn't responding.",
    "Unfortunately that service is unavailable at the moment, so I can't finish this.",
)
_CLOSING = (
    "Great, that's exactly what I needed, thanks.",
    "Okay, that works. Thank you.",
    "Perfect, thanks for sorting that out.",
    "Alright, got it. Bye.",
    "That's fine, thank you very much.",
)
_WANTS_PERSON = (
    "Thanks, but I'd rather go through this with a person.",
    "Okay. Could I speak to someone about it, please?",
)
_CROSS = (
    "No, that's not what I asked about at all.",
    "You're not listening, that's the wrong thing entirely.",
    "That doesn't help me one bit. I asked about something else.",
    "No no no, that's not it. Why is this so hard?",
)
_FURIOUS = (
    "This is the third time I've tried today and it still won't work. I'm fed up.",
    "Are you serious? Nothing on your side ever works when I need it.",
    "I've been stuck with this all morning and I'm really annoyed now.",
)
_GIVE_UP = (
    "Forget it, I'll call back later.",
    "I'm hanging up, this is pointless.",
    "Never mind, I'll sort it myself.",
)
_GOODBYE = ("Glad I could help. Thanks for calling Loop Bank, goodbye.", "You're welcome. Have a good day, goodbye.")
_TRANSFER = (
    "I'm sorry about that. Let me put you through to a colleague.",
    "Apologies. I'll transfer you to one of my colleagues now.",
)
_AGENT_NAMES = ("Sam", "Priya", "Tom", "Grace", "Luis")
_AGENT_INFORMED = (
    "Hi, you're through to {} at Loop Bank. I've got the notes from the assistant here.",
    "Hello, this is {} from Loop Bank. I can see what you've been asking about.",
)
_AGENT_ASKS = (
    "Hi, this is {} at Loop Bank. What are you calling about today?",
    "Hello, {} speaking. How can I help you?",
)
_AGENT_CONFIRM = ("Before we go on, could you confirm {} for me?", "Can I just take {} again, please?")
_AGENT_FIXED = ("Right, I've fixed that for you now.", "Okay, that's all sorted on our side.")
_AGENT_CANNOT = (
    "I'm afraid our systems are down right now, so I can't finish this for you today.",
    "Sorry, everything on our side is down at the moment. Please try again tomorrow.",
)
_AFTER_AGENT = ("Okay, thanks for your help.", "Good, thank you for sorting it.", "Right. Thanks, bye.")


def intent_phrase(intent: str) -> str:
    """``activate_my_card`` -> "activate your card": an intent name as the bot says it."""
    words = intent.strip("?").lower().split("_")
    return " ".join(_SPOKEN.get(word, word) for word in words)


def bot_answer(intent: str, rng: random.Random) -> str:
    return rng.choice(_ANSWERS).format(intent_phrase(intent))


def verify_prompt(entity: str, rng: random.Random) -> str:
    return rng.choice(_VERIFY).format(_ASK_FOR[entity])


def verified(rng: random.Random) -> str:
    return rng.choice(_VERIFIED)


def next_step(rng: random.Random, *, outage: bool) -> str:
    """What the bot does about the ask: done, or (in an outage) it cannot be done."""
    return rng.choice(_OUTAGE if outage else _NEXT_STEP)


def closing(rng: random.Random) -> str:
    """The caller, served: plain or pleased."""
    return rng.choice(_CLOSING)


def wants_person(rng: random.Random) -> str:
    return rng.choice(_WANTS_PERSON)


def cross(rng: random.Random, *, furious: bool) -> str:
    """The caller, not served: cross, or furious when nothing works (an outage)."""
    return rng.choice(_FURIOUS if furious else _CROSS)


def give_up(rng: random.Random) -> str:
    return rng.choice(_GIVE_UP)


def goodbye(rng: random.Random) -> str:
    return rng.choice(_GOODBYE)


def transfer(rng: random.Random) -> str:
    return rng.choice(_TRANSFER)


def agent_hello(rng: random.Random, *, informed: bool) -> str:
    """The agent's first words: informed by the handoff, or asking what the call is about."""
    return rng.choice(_AGENT_INFORMED if informed else _AGENT_ASKS).format(rng.choice(_AGENT_NAMES))


def agent_confirm(entity: str, rng: random.Random) -> str:
    return rng.choice(_AGENT_CONFIRM).format(_ASK_FOR[entity])


def agent_result(rng: random.Random, *, fixed: bool) -> str:
    return rng.choice(_AGENT_FIXED if fixed else _AGENT_CANNOT)


def after_agent(rng: random.Random, *, fixed: bool, furious: bool) -> str:
    """The caller's last words to the agent."""
    return rng.choice(_AFTER_AGENT) if fixed else cross(rng, furious=furious)
