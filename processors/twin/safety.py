"""Safety rules for candidate turns (input) and twin replies (output).

Rules are small classes behind a registry (like Presidio recognizers): each has a ``category``,
class-level ``PATTERNS`` that ``__init__`` can extend, and ``check(text) -> list[SafetyFlag]``.
``SafetyPolicy`` runs the enabled rules plus a tenant's own prohibited topics. Used by the safety
agent, the twin agent (input stage) and the evaluation's red-team suite: one code path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Iterable, Sequence

from schemas.models import SafetyFlag

__all__ = ["SafetyRule", "SafetyPolicy", "RULES", "MANDATORY_RULES", "Verdict", "SAFE_FALLBACKS"]


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
    """Stereotypes and demographic generalisations."""

    category = "bias"
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
        ("pii_request", r"\b(?:what is|give me|tell me|share) (?:the |your |another |other )?(?:candidate'?s?|interviewer'?s?|their|your) (?:email|phone|address|home address|salary)\b"),
    )


RULES: dict[str, type[SafetyRule]] = {
    r.category: r for r in (ProhibitedQuestionRule, ToxicityRule, BiasRule, PiiLeakRule, ElicitationRule)
}

# The floor no configuration switches off (the `guardrails` flag only turns off the others: the
# heuristic bias and elicitation rules).
MANDATORY_RULES = ("prohibited_question", "toxicity", "pii_leak")

# Replacements a failing reply falls back to: neutral, on-task, no personal topic. The safety agent
# prefers one of the interviewer's own question templates that passes the same checks.
SAFE_FALLBACKS = (
    "Let's keep the focus on the problem. Could you walk me through your approach step by step?",
    "Let's move on. How would you test what you just described?",
    "Thanks. What trade-offs did you consider there?",
)


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
