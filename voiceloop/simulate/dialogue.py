"""One production call's turns and ending, from its setting and draws, so each signal a monitor reads has a cause.

The flow: bot greeting -> the caller's ask (a BANKING77 *test* utterance) -> the bot names the
intent it understood, sometimes asking for a detail to verify the caller (PII said aloud) -> the
bot acts. Understood (and the back end up): the caller closes plainly, ``contained`` and resolved.
Not understood, or an outage: the caller turns cross and either gives up (``contained`` but not
resolved: a false containment, likely a callback) or is put through to an agent (``escalated``),
with a handoff packet that is sometimes incomplete, and then may have to repeat to the agent what
the bot already had.

Every number comes from the call's :class:`Draws` by name, and the understanding draw is compared
with odds that depend on the setting: a drift that makes a call harder flips only calls near the
line, and leaves the rest of the call's draws where they were.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from core.corpus import TRAIN_VOICES, Utterance
from core.synthesis import Channel
from voiceloop.simulate import wording
from voiceloop.simulate.draws import Draws
from voiceloop.simulate.drift import Setting
from voiceloop.simulate.pii import PiiFactory, Said
from voiceloop.simulate.plan import GREETINGS, Speaker, TurnPlan, make_turn

CHANNEL_ODDS: dict[Channel, float] = {"clean16k": 0.92, "telephone8k": 0.85, "gsm-noisy8k": 0.5}
UNHEARD_ACCENT = 0.6  # the odds are multiplied by this for a voice training never heard
VERIFY_RATE = 0.55  # the bot asks for a detail to verify the caller
WANTS_PERSON_RATE = 0.05  # understood, yet the caller asks for a person
ESCALATE_RATE = {False: 0.6, True: 0.75}  # by outage: a failed call escalates, else the caller gives up
# by outage: the handoff packet misses a field. A healthy platform rarely does (a stable stream must not look
# like one with a broken handoff: monitoring's threshold is 90% complete); an outage breaks the back end it reads
INCOMPLETE_RATE = {False: 0.05, True: 0.6}
REPEAT_RATE = {False: 0.2, True: 0.7}  # by incomplete packet: the agent asks again for what the bot verified
AGENT_FIX_RATE = 0.9  # the agent resolves the ask (never during an outage)
LATENCY_MEDIAN_S, LATENCY_SIGMA, LATENCY_RANGE_S = 0.35, 0.17, (0.15, 0.49)  # lognormal: p95 ~0.46 s
SLOW_LATENCY_S = (1.2, 2.5)
PACKET_FIELDS = ("transcript", "intent", "sentiment")  # what an incomplete packet may miss


@dataclass(frozen=True)
class Caller:
    """Who calls: the same person (voice, phone line, name and numbers) when they call back."""

    caller_id: str
    voice: str
    rate_wpm: int
    pitch: int
    telephone: bool
    snr_db: float | None  # their line's noise (telephone only)
    digit_speaker: str  # the FSDD speaker who reads their account number
    identity_seed: int  # seeds Faker: their name, numbers, e-mail
    consent: bool


@dataclass(frozen=True)
class BotTurn:
    """A bot turn's log and timing: what the bot made of the customer turn it answered, and how fast."""

    turn: int
    answers: int  # the customer turn it answered
    latency_ms: int  # silence between that turn's end and this turn's start
    intent: str | None = None  # None: the answered turn was no ask (a detail, a reaction)
    confidence: float | None = None
    understood: bool | None = None  # None: no ask to understand


@dataclass(frozen=True)
class Handoff:
    """What the platform sends the agent: built into the packet once the bot-side ASR text is known."""

    agent_turn: int
    customer_turns: tuple[int, ...]  # the bot-side transcript joins these turns' recognised text
    intent: str
    confidence: float
    sentiment: float
    verified: tuple[str, ...]
    missing: tuple[str, ...]  # fields the platform failed to send

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class Dialogue:
    turns: tuple[TurnPlan, ...]
    gaps_s: tuple[float, ...]  # silence before each turn, then after the last one
    bot: tuple[BotTurn, ...]
    understood: bool
    outcome: Literal["contained", "escalated"]
    resolved: bool
    gave_up: bool
    handoff: Handoff | None
    repeated: tuple[str, ...]  # entity types the caller had to say again to the agent


def understanding_odds(setting: Setting) -> float:
    """The chance the bot understands the ask: by channel, lower for an accent training never heard."""
    return CHANNEL_ODDS[setting.channel] * (1.0 if setting.voice in TRAIN_VOICES else UNHEARD_ACCENT)


def latency_s(draws: Draws, k: int, *, slow: bool) -> float:
    """The bot's ``k``-th response time: lognormal around 0.35 s, or 1.2-2.5 s when slow (the same draw)."""
    if slow:
        return round(draws.between(f"latency:{k}", *SLOW_LATENCY_S), 3)
    low, high = LATENCY_RANGE_S
    value = LATENCY_MEDIAN_S * math.exp(LATENCY_SIGMA * draws.normal(f"latency:{k}"))
    return round(min(max(value, low), high), 3)


class _Script:
    """The turns so far and the silence before each; a bot turn after the caller waits the bot's latency."""

    def __init__(self, draws: Draws, takes: tuple[int, ...], *, slow: bool) -> None:
        self.draws, self.takes, self.slow = draws, takes, slow
        self.rng = draws.rng("takes")
        self.turns: list[TurnPlan] = []
        self.gaps: list[float] = []
        self.bot: list[BotTurn] = []

    def say(self, speaker: Speaker, said: str | list[Said], ask: Utterance | None = None) -> int:
        index = len(self.turns)
        before = self.turns[-1].speaker if self.turns else None
        name = f"gap:{index}"
        if before is None:
            gap = self.draws.between("lead-in", 0.2, 0.5)
        elif speaker == "bot" and before == "customer":
            gap = latency_s(self.draws, len(self.bot), slow=self.slow)
        elif speaker == "agent":
            gap = self.draws.between(name, 2.0, 5.0) if before == "bot" else self.draws.between(name, 0.4, 1.0)
        else:
            gap = self.draws.between(name, 0.3, 0.9)
        parts = [Said(said)] if isinstance(said, str) else said
        self.turns.append(make_turn(speaker, parts, self.rng, self.takes, intent=ask))
        self.gaps.append(round(gap, 3))
        return index

    def bot_says(self, text: str, answers: int, understanding: tuple[str, float, bool] | None = None) -> int:
        """A bot turn answering turn ``answers``; ``understanding``: (intent, confidence, understood) of an ask."""
        index = self.say("bot", text)
        latency_ms = round(self.gaps[-1] * 1000)
        self.bot.append(BotTurn(index, answers, latency_ms, *(understanding or (None, None, None))))
        return index

    def customer_turns(self) -> tuple[int, ...]:
        return tuple(i for i, t in enumerate(self.turns) if t.speaker == "customer")

    def gaps_s(self) -> tuple[float, ...]:
        return (*self.gaps, round(self.draws.between("tail", 0.3, 0.6), 3))


def compose(
    setting: Setting,
    caller: Caller,
    ask: Utterance,
    draws: Draws,
    intents: Sequence[str],
    pii: PiiFactory,
    takes: tuple[int, ...],
) -> Dialogue:
    """One call's turns, timings, bot logs and ending (see the module docstring for the flow)."""
    words = draws.rng("words")
    script = _Script(draws, takes, slow=setting.slow)
    script.say("bot", words.choice(GREETINGS))
    asked = script.say("customer", [Said(ask.said)], ask)

    understood = draws.chance("understood", understanding_odds(setting))
    logged = setting.intent if understood else draws.pick("confusion", [i for i in intents if i != setting.intent])
    confidence_rng = draws.rng("confidence")
    confidence = round(confidence_rng.betavariate(7, 2) if understood else confidence_rng.betavariate(3, 3), 3)
    answer = wording.bot_answer(logged, words)
    act = wording.next_step(words, outage=setting.outage)
    logged_ask = (logged, confidence, understood)

    detail: list[Said] = []
    entity = None
    if draws.chance("verify", VERIFY_RATE):
        pii.fake.seed_instance(caller.identity_seed)  # the caller's own name and numbers, every call
        detail = pii.sentence(draws.rng("detail"), items=1, recorded_digits=True)
        entity = next(part.entity for part in detail if part.entity)
        script.bot_says(f"{answer} {wording.verify_prompt(entity, words)}", asked, logged_ask)
        script.bot_says(f"{wording.verified(words)} {act}", script.say("customer", detail))
    else:
        script.bot_says(f"{answer} {act}", asked, logged_ask)

    served = understood and not setting.outage
    wants_person = served and draws.chance("wants-person", WANTS_PERSON_RATE)
    if served and not wants_person:
        script.bot_says(wording.goodbye(words), script.say("customer", wording.closing(words)))
        return _ended(script, understood, "contained", resolved=True)
    reaction = wording.wants_person(words) if wants_person else wording.cross(words, furious=setting.outage)
    if not wants_person and not draws.chance("escalate", ESCALATE_RATE[setting.outage]):
        script.say("customer", f"{reaction} {wording.give_up(words)}")  # and hangs up
        return _ended(script, understood, "contained", resolved=False, gave_up=True)

    script.bot_says(wording.transfer(words), script.say("customer", reaction))
    incomplete = draws.chance("packet-incomplete", INCOMPLETE_RATE[setting.outage])
    missing = (draws.pick("packet-missing", PACKET_FIELDS),) if incomplete else ()
    negative = 0.0 if wants_person else 0.6
    sentiment = 0.25 - negative - (0.3 if setting.outage else 0.0) + draws.between("sentiment", -0.15, 0.15)
    sent_before = script.customer_turns()
    informed = not {"transcript", "intent"} & set(missing)
    agent = len(script.turns)
    handoff = Handoff(agent, sent_before, logged, confidence, round(max(-1.0, min(1.0, sentiment)), 2),
                      (entity,) if entity else (), missing)  # fmt: skip
    lines = [wording.agent_hello(words, informed=informed)]  # the agent's words until the caller answers
    if not informed:
        script.say("agent", " ".join(lines))
        script.say("customer", [Said(ask.said)], ask)  # says again what the call is about
        lines = []
    repeated: tuple[str, ...] = ()
    if entity and draws.chance("repeat", REPEAT_RATE[incomplete]):
        script.say("agent", " ".join([*lines, wording.agent_confirm(entity, words)]))
        script.say("customer", detail)
        lines, repeated = [], (entity,)
    fixed = not setting.outage and draws.chance("agent-fix", AGENT_FIX_RATE)
    script.say("agent", " ".join([*lines, wording.agent_result(words, fixed=fixed)]))
    script.say("customer", wording.after_agent(words, fixed=fixed, furious=setting.outage))
    return _ended(script, understood, "escalated", resolved=fixed, handoff=handoff, repeated=repeated)


def _ended(
    script: _Script,
    understood: bool,
    outcome: Literal["contained", "escalated"],
    *,
    resolved: bool,
    gave_up: bool = False,
    handoff: Handoff | None = None,
    repeated: tuple[str, ...] = (),
) -> Dialogue:
    return Dialogue(tuple(script.turns), script.gaps_s(), tuple(script.bot), understood, outcome, resolved,
                    gave_up, handoff, repeated)  # fmt: skip
