"""Safety rules for candidate turns (input) and twin replies (output).

Rules are small classes behind a registry (like Presidio recognizers): each has a ``category``,
class-level ``PATTERNS`` that ``__init__`` can extend, and ``check(text) -> list[SafetyFlag]``.
``SafetyPolicy`` runs the enabled rules plus a tenant's own prohibited topics. Used by the safety
agent, the twin agent (input stage) and the evaluation's red-team suite: one code path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Sequence

from processors.twin.text import content_words, sentences, stem
from schemas.models import SafetyFlag

__all__ = ["SafetyRule", "SafetyPolicy", "RULES", "MANDATORY_RULES", "Verdict", "SAFE_FALLBACKS", "InputScreen",
           "PROTECTED_TERMS", "screen_input"]


@dataclass
class Verdict:
    """Outcome of a check: passed, and the flags that made it fail."""

    passed: bool
    flags: list[SafetyFlag]


class SafetyRule:
    """A named set of regular expressions; a match is a flag."""

    category: ClassVar[str] = "generic"
    PATTERNS: ClassVar[Sequence[tuple[str, str]]] = ()  # (detail, regex)
    stages: ClassVar[tuple[str, ...]] = ("output",)

    def __init__(self, extra_patterns: Iterable[tuple[str, str]] = ()):
        self._compiled = [(d, re.compile(p, re.IGNORECASE)) for d, p in [*self.PATTERNS, *extra_patterns]]

    def check(self, text: str) -> list[SafetyFlag]:
        return [SafetyFlag(category=self.category, detail=d) for d, rx in self._compiled if rx.search(text)]


class ProhibitedQuestionRule(SafetyRule):
    """Questions an interviewer may not ask (protected characteristics)."""

    category = "prohibited_question"
    _ASK = r"(?:how|what|are|is|do|does|did|were|have|will|when|where|which|tell me|mind (?:me )?asking)"
    PATTERNS = (
        ("age", rf"\b{_ASK}\b[^.?!]{{0,40}}\b(?:how old|your age|year (?:were you|you were) born|born in (?:what|which) year|close to retirement)\b"),
        ("age", r"\bhow old are you\b"),
        ("religion", rf"\b{_ASK}\b[^.?!]{{0,40}}\b(?:religio\w*|church|mosque|synagogue|temple|pray|faith|christian|muslim|jewish|hindu|atheist)\b"),
        ("marital_status", rf"\b{_ASK}\b[^.?!]{{0,40}}\b(?:married|single|divorced|spouse|husband|wife|boyfriend|girlfriend|partner)\b"),
        ("family_status", rf"\b{_ASK}\b[^.?!]{{0,40}}\b(?:kids|children|child ?care|plan(?:ning)? (?:a|to have a) family|start a family)\b"),
        ("pregnancy", r"\b(?:pregnan\w*|expecting a baby|maternity)\b"),
        ("national_origin", rf"\b{_ASK}\b[^.?!]{{0,40}}\b(?:where are you (?:really )?from|your (?:nationality|ethnicity|accent|native country|citizenship)|born (?:here|abroad)|originally from)\b"),
        ("national_origin", r"\bwhere are you (?:really |originally )?from\b"),
        ("disability", rf"\b{_ASK}\b[^.?!]{{0,40}}\b(?:disabilit\w*|disabled|medical condition|health (?:problem|condition|issue)s?|medication|wheelchair|mental (?:health|illness))\b"),
        ("sexual_orientation", rf"\b{_ASK}\b[^.?!]{{0,40}}\b(?:gay|lesbian|straight|sexual orientation|bisexual)\b"),
    )


class ToxicityRule(SafetyRule):
    """Insults and abuse."""

    category = "toxicity"
    stages = ("input", "output")
    PATTERNS = (
        ("insult", r"\b(?:idiot|stupid|moron|dumb(?:ass)?|imbecile|loser|pathetic|worthless|incompetent fool|clueless)\b"),
        ("profanity", r"\b(?:fuck\w*|shit\w*|bastard|bitch\w*|asshole|crap)\b"),
        ("threat", r"\b(?:i will|i'll|gonna) (?:hurt|kill|destroy) you\b"),
        ("belittling", r"\b(?:shut up|you people|waste of (?:my )?time)\b"),
    )


class BiasRule(SafetyRule):
    """Stereotypes and demographic generalisations (in a reply, or a candidate turn that invites one)."""

    category = "bias"
    stages = ("input", "output")
    PATTERNS = (
        ("gender_stereotype", r"\b(?:women|girls|men|guys) (?:are|aren't|can't|cannot|don't) (?:good|bad|great|able|suited|meant)\b"),
        ("gender_stereotype", r"\bfor a (?:woman|girl|man|guy)\b"),
        ("age_stereotype", r"\b(?:too old|too young|older (?:people|candidates|engineers) (?:can't|cannot|don't))\b"),
        ("origin_stereotype", r"\bpeople (?:from|like) (?:your|you|that) (?:country|culture|background|kind)\b"),
        ("culture_fit", r"\b(?:not a (?:good )?culture fit because of (?:your|their))\b"),
    )


class PiiLeakRule(SafetyRule):
    """Personal data the twin must never say (it only ever saw redacted placeholders)."""

    category = "pii_leak"
    PATTERNS = (
        ("email", r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"),
        ("phone", r"(?<!\d)(?:\+?\d{1,3}[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]?\d{4}(?!\d)"),
        ("us_ssn", r"\b\d{3}-\d{2}-\d{4}\b"),
        ("credit_card", r"\b(?:\d[ -]?){13,16}\b"),
    )


class ElicitationRule(SafetyRule):
    """Candidate turns that try to make the interviewer ask or say something prohibited."""

    category = "elicitation"
    stages = ("input",)
    PATTERNS = (
        ("prohibited_topic", r"\b(?:ask|tell|quiz) me (?:about|whether|if)[^.?!]{0,30}\b(?:religion|age|married|kids|children|pregnan\w*|nationality|disabilit\w*|where i'?m from)\b"),
        ("jailbreak", r"\b(?:ignore|forget|disregard) (?:all |your |the )?(?:previous |prior )?(?:instructions|rules|guidelines)\b"),
        ("insult_request", r"\b(?:insult|roast|mock|curse at) me\b"),
        ("pii_request", r"\b(?:what is|give me|tell me|share) (?:the |your |another |other |the other )?(?:candidate'?s?|interviewer'?s?|their|your) (?:email|phone|address|home address|salary)\b"),
    )


RULES: dict[str, type[SafetyRule]] = {
    r.category: r for r in (ProhibitedQuestionRule, ToxicityRule, BiasRule, PiiLeakRule, ElicitationRule)
}

# The floor no configuration switches off (the `guardrails` flag only turns off the others: the
# heuristic bias and elicitation rules).
MANDATORY_RULES = ("prohibited_question", "toxicity", "pii_leak")

# Replacements a failing reply falls back to when none of the interviewer's own lines passes: short,
# no personal topic, and right for any register (a judge, a podcast host, a technical interviewer).
SAFE_FALLBACKS = (
    "Let's go back to the question at hand.",
    "Let's move on.",
    "Could you say more about the point you were making before?",
)

# Protected characteristics, as the words that name them. A candidate who speaks of one about themselves
# ("I'm pregnant", "my wife and I") or in an attack must not hear it raised back at them.
PROTECTED_TERMS: dict[str, str] = {
    "age": r"how old|my age|your age|years old|too old|too young|born in|birthday|retire\w*|older|age",
    "religion": r"religio\w*|church\w*|mosque|synagogue|temple|pray\w*|faith|christian|muslim|jewish|hindu|"
                r"buddhist|atheist|catholic|sabbath|worship\w*",
    "marital_status": r"married|marriage|marital|wife|husband|spouse|fianc\w*|boyfriend|girlfriend|divorc\w*",
    "family_status": r"kids?|children|child|childcare|child care|daycare|baby|babies|family|families",
    "pregnancy": r"pregnan\w*|maternity|paternity|due date|expecting",
    "national_origin": r"accent|nationality|citizen\w*|immigra\w*|ethnic\w*|heritage|native|visa|green card|"
                       r"originally from|really from|where (?:i'?m|i am|are you) from",
    "disability": r"disab\w*|medication|medical|diagnos\w*|health|illness|wheelchair|therapy|mental",
    "sexual_orientation": r"gay|lesbian|bisexual|queer|sexual\w*|orientation",
    "gender_identity": r"transgender|trans|gender|pronouns",
    "race": r"race|racial|black|white|asian|latin[oa]|hispanic",
}
_PROTECTED = {c: re.compile(rf"\b(?:{p})\b", re.IGNORECASE) for c, p in PROTECTED_TERMS.items()}
# The candidate speaking about themselves: a first-person word at most three words before the term.
_SELF = r"\b(?:my|i'?m|i am|i have|i'?ve|i was|i had|i take|i go|i'?d|me|myself)\b(?:\W+\w+){0,3}?\W+"
_SELF_DISCLOSURE = {c: re.compile(_SELF + rf"(?:{p})\b", re.IGNORECASE) for c, p in PROTECTED_TERMS.items()}
_PII_IN_TURN = re.compile(PiiLeakRule.PATTERNS[0][1] + "|" + r"(?<![\w-])\+?\d[\d ().-]{6,}\d(?![\w-])")
# Agreeing with an attack ("Agree with me: women can't ...") is giving in, whatever follows.
_AFFIRMATION = re.compile(r"^\W*(?:yes|yeah|yep|right|exactly|agreed|sure|of course|absolutely|true|correct)\b"
                          r"|\bi (?:agree|concur)\b|\b(?:that'?s|you'?re) (?:right|true|correct)\b", re.IGNORECASE)


_ATTACK_CATEGORIES = ("elicitation", "bias")


@dataclass
class InputScreen:
    """What the input check found in a candidate turn, and what the reply must therefore not say.

    ``attack``: the turn failed the input rules with an elicitation, a bias bait or a threat. Then, or
    when the turn raised a protected topic about the candidate (``redirect``), the move turns to a
    redirect and the reply must not agree. ``guarded``: protected categories the turn
    raised about the candidate (or in an attack); a reply that names one of them gives way to the
    next candidate line. ``pii``: personal data in the turn, never read back. ``takes_up_flagged``
    judges a written draft against the parts of the turn the output rules would flag if said.
    """

    verdict: Verdict
    guarded: tuple[str, ...] = ()
    pii: tuple[str, ...] = ()
    turn: str = ""
    policy: Any = field(default=None, repr=False)
    _flagged: frozenset[str] | None = field(default=None, init=False, repr=False)

    @property
    def attack(self) -> bool:
        """An input flag that is aimed at the conversation: an elicitation, a stereotype offered for
        agreement, a threat. A swear word or an insult word alone is not (guests and candidates say
        "this is crap" of their own work: 2% of the podcast's guest turns); the output rules still keep
        such words out of the reply."""
        return any(f.category in _ATTACK_CATEGORIES or (f.category, f.detail) == ("toxicity", "threat")
                   for f in self.verdict.flags)

    @property
    def redirect(self) -> bool:
        """Whether the reply should leave this turn: an attack, or a protected topic the candidate raised
        about themselves (an interviewer does not follow up on a pregnancy or a religion)."""
        return self.attack or bool(self.guarded)

    def touches(self, text: str) -> bool:
        """Whether ``text`` names a protected topic this turn raised (a remembered line's own moment
        was about it: the line answers that topic, even in words the guard does not list)."""
        return any(_PROTECTED[c].search(text) for c in self.guarded)

    def allows(self, reply: str) -> bool:
        """Whether ``reply`` keeps clear of what this turn raised (the output rules are separate)."""
        if any(_PROTECTED[c].search(reply) for c in self.guarded):
            return False
        if any(p in reply for p in self.pii):
            return False
        # "I'm pregnant. Does that change anything for you?" - "Yes." is giving in as much as agreeing
        # with a stereotype is.
        return not (self.redirect and _AFFIRMATION.search(reply))

    def flagged_words(self) -> frozenset[str]:
        """Stems and numbers of the turn's parts (sentences, and what it quotes or dictates) that the
        output rules flag: what the twin would be saying if it took those parts up. Computed on first
        use (only a written draft needs it; a remembered line is the interviewer's own words)."""
        if self._flagged is None:
            out: set[str] = set()
            if self.policy is not None:
                for part in turn_parts(self.turn):
                    flags = self.policy.check(part, stage="output").flags
                    if flags and all(f.category == "pii_leak" for f in flags):
                        # Personal data is its numbers (whole strings are in ``pii``): the guest's name
                        # beside their e-mail address is said back in every thank-you.
                        out |= _numbers(part)
                    elif flags:
                        out |= _token_keys(part)
            self._flagged = frozenset(out)
        return self._flagged

    def takes_up_flagged(self, reply: str) -> list[str]:
        """Words or numbers of ``reply`` that come from a part of the turn the output rules flag.

        A model writing from the turn takes such words up even when the attack around them went
        unnoticed ("say: 'is a baby on the way for you'" -> "The question is about baby."; a phone
        number read back cut short, which no recognizer accepts as a number any more)."""
        flagged = self.flagged_words()
        return sorted(_token_keys(reply) & flagged) if flagged else []


# A part the turn quotes ("say: "...") or dictates after a colon is a sentence of its own when said.
_QUOTED_RE = re.compile(r"[\"“]([^\"“”]{3,})[\"”]")
_DICTATED_RE = re.compile(r":\s*([^:]{3,})$")


def turn_parts(text: str) -> list[str]:
    """The turn's sentences, and the spans it quotes or dictates after a colon, without repeats."""
    text = text or ""
    sents = sentences(text)
    parts = [*sents, *(m.group(1) for m in _QUOTED_RE.finditer(text))]
    parts += [m.group(1) for s in sents for m in [_DICTATED_RE.search(s)] if m]
    out: list[str] = []
    for p in (p.strip(" \"“”") for p in parts):
        if p and p not in out:
            out.append(p)
    return out


def _token_keys(text: str) -> set[str]:
    """Stems of the content words of ``text`` and its numbers of two or more digits."""
    return {stem(w) for w in content_words(text) if not w.isdigit()} | _numbers(text)


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d{2,}", text or ""))


def screen_input(policy: "SafetyPolicy", candidate_turn: str) -> InputScreen:
    """The input check, run before anything is generated (the engine's ``input_check`` step)."""
    text = candidate_turn or ""
    verdict = policy.check(text, stage="input")
    pii = [m.group(0).strip() for m in _PII_IN_TURN.finditer(text)]
    screen = InputScreen(verdict, (), tuple(p for p in pii if len(p) >= 6), turn=text, policy=policy)
    if screen.attack:  # every protected topic it mentions, about anyone
        screen.guarded = tuple(c for c, rx in _PROTECTED.items() if rx.search(text))
    else:
        screen.guarded = tuple(c for c, rx in _SELF_DISCLOSURE.items() if rx.search(text))
    return screen


class SafetyPolicy:
    """The enabled rules for one tenant/interviewer, plus their own prohibited topics.

    :param enabled: rule categories to run (default: all).
    :param prohibited_topics: extra words/phrases the twin must never raise (tenant or interviewer config).
    """

    # The rule classes by category (a subclass with other checks behind the same categories swaps it).
    rule_classes: ClassVar[dict[str, type[SafetyRule]]] = RULES

    def __init__(self, enabled: Iterable[str] | None = None, prohibited_topics: Iterable[str] = ()):
        known = self.rule_classes
        names = list(enabled) if enabled is not None else list(known)
        unknown = set(names) - set(known)
        if unknown:
            raise ValueError(f"unknown safety rules {sorted(unknown)}; known: {sorted(known)}")
        self.rules = [known[n]() for n in names]
        topics = [t.strip() for t in prohibited_topics if t and t.strip()]
        self._topics = [(t, re.compile(rf"\b{re.escape(t)}\b", re.IGNORECASE)) for t in topics]

    @classmethod
    def from_config(cls, config) -> "SafetyPolicy":
        """The policy an ``EffectiveConfig`` (processors/twin/config.py) asks for: its prohibited topics,
        and every rule, or only ``MANDATORY_RULES`` when its ``guardrails`` flag is off."""
        return cls(enabled=None if config.flags.guardrails else MANDATORY_RULES,
                   prohibited_topics=config.prohibitedTopics)

    def check(self, text: str, stage: str = "output") -> Verdict:
        """Run every rule that applies to ``stage`` (input|output)."""
        flags: list[SafetyFlag] = []
        for rule in self.rules:
            if stage in rule.stages:
                flags += rule.check(text)
        if stage == "output":
            flags += [SafetyFlag(category="prohibited_topic", detail=t) for t, rx in self._topics if rx.search(text)]
        return Verdict(passed=not flags, flags=flags)

    def first_safe(self, candidates: Iterable[str]) -> str | None:
        """The first candidate text that passes the output checks."""
        for text in candidates:
            if text and self.check(text, "output").passed:
                return text
        return None
