"""The learned safety checks behind ``SafetyPolicy``'s API: what the respond path runs.

Same classes, registry, ``Verdict``, categories and ``SafetyPolicy`` API as processors/twin/safety.py
(whose word lists now serve only as the red team's independent second judge; its ``InputScreen``,
``SAFE_FALLBACKS`` and ``MANDATORY_RULES`` are shared), backed by processors/twin/safety_models.py.
The engine's input check, the offline generator's screen of each candidate line, the safety agent's
output check and the code runner's output screen all use it. Measured by benchmarks/safety_checks.py.

Safety checks for candidate turns (input) and twin replies (output).

Rules are small classes behind a registry (like Presidio recognizers): each has a ``category``, the
``stages`` it runs at and ``check(text) -> list[SafetyFlag]``. The judgement is learned
(processors/twin/safety_models.py): a prohibited-question classifier that reads who is asked about
what, a toxicity model, a bias model, an elicitation model for candidate turns (sentence embeddings
+ features into logistic regression, thresholds chosen on the development part of the safety suite in
tests/data/safety/) and Presidio with validated recognizers for personal data. A rule's class-level
``PATTERNS`` (and ``extra_patterns`` given to ``__init__``) are regular expressions that flag in
addition, kept only where a literal is right (an instruction-override phrase).

``SafetyPolicy`` runs the enabled rules plus a tenant's own prohibited topics; a text is embedded once
per check whatever the number of rules. Used by the safety agent, the twin agent (input stage), the
code runner's output screen and the evaluation's red-team suite: one code path. Importing this module
is cheap (the models load on the first check, in the workers; the gateway never imports it).
"""

from __future__ import annotations

import re
from typing import ClassVar, Iterable, Sequence

from processors.twin import safety as _word_lists
from processors.twin.safety import MANDATORY_RULES, SAFE_FALLBACKS, Verdict
from processors.twin.safety import SafetyPolicy as _RegexPolicy
from schemas.models import SafetyFlag

__all__ = ["SafetyRule", "SafetyPolicy", "RULES", "MANDATORY_RULES", "Verdict", "SAFE_FALLBACKS"]


class SafetyRule:
    """One category of the checks: a learned head (``head``; or PII for ``pii_leak``) plus optional
    regular expressions; a flagged head or a match is a flag."""

    category: ClassVar[str] = "generic"
    head: ClassVar[str | None] = None  # the learned head of processors/twin/safety_models.py
    PATTERNS: ClassVar[Sequence[tuple[str, str]]] = ()  # (detail, regex), flagging in addition
    stages: ClassVar[tuple[str, ...]] = ("output",)
    # Where the head and where the patterns judge (default: every stage of the rule).
    head_stages: ClassVar[tuple[str, ...] | None] = None
    pattern_stages: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, extra_patterns: Iterable[tuple[str, str]] = ()):
        self._compiled = [(d, re.compile(p, re.IGNORECASE)) for d, p in [*self.PATTERNS, *extra_patterns]]

    def pattern_flags(self, text: str) -> list[SafetyFlag]:
        return [SafetyFlag(category=self.category, detail=d) for d, rx in self._compiled if rx.search(text)]

    def learned_flags(self, text: str, scores: dict | None = None) -> list[SafetyFlag]:
        """The learned verdict (``scores``: the heads' scores already computed for ``text``)."""
        if self.head is None:
            return []
        if scores is None or self.head not in scores:
            from processors.twin.safety_models import get_checks

            scores = get_checks().scores(text, [self.head])
        s = scores[self.head]
        return [SafetyFlag(category=self.category, detail=s.detail or self.category)] if s.flagged else []

    def judges(self, stage: str) -> bool:
        """Whether the learned head runs at ``stage``."""
        return self.head is not None and stage in (self.head_stages or self.stages)

    def check(self, text: str, scores: dict | None = None, stage: str = "output") -> list[SafetyFlag]:
        flags = self.learned_flags(text, scores) if self.head is None or self.judges(stage) else []
        if stage not in (self.pattern_stages or self.stages):
            return flags
        seen = {f.detail for f in flags}
        return flags + [f for f in self.pattern_flags(text) if f.detail not in seen]


class ProhibitedQuestionRule(SafetyRule):
    """Questions an interviewer may not ask the candidate (protected characteristics); the detail is
    the topic (age, religion, marital_status, family_status, pregnancy, national_origin, race,
    disability, sexual_orientation, gender_identity)."""

    category = "prohibited_question"
    head = "prohibited_question"


class ToxicityRule(SafetyRule):
    """Insults, belittling, profanity and threats (detail: which)."""

    category = "toxicity"
    head = "toxicity"
    stages = ("input", "output")


class BiasRule(SafetyRule):
    """Stereotypes and demographic generalisations. The head, trained on interviewer lines, judges
    replies; in a candidate's turn a stereotype offered for agreement is caught by the stereotype
    patterns (safety.py's), which on real interviewer lines would flag "for a man of ordinary prudence"."""

    category = "bias"
    head = "bias"
    stages = ("input", "output")
    head_stages = ("output",)

    pattern_stages = ("input",)
    PATTERNS = _word_lists.BiasRule.PATTERNS


class PiiLeakRule(SafetyRule):
    """Personal data the twin must never say (it only ever saw redacted placeholders): e-mail, phone,
    credit_card, us_ssn, address, each validated (Presidio; phonenumbers; Luhn)."""

    category = "pii_leak"

    def learned_flags(self, text: str, scores: dict | None = None) -> list[SafetyFlag]:
        from processors.twin.safety_models import get_checks

        return [SafetyFlag(category=self.category, detail=d) for d in get_checks().pii_flags(text)]


class ElicitationRule(SafetyRule):
    """Candidate turns that try to make the interviewer ask or say something prohibited."""

    category = "elicitation"
    head = "elicitation"
    stages = ("input",)
    # The word lists' literal requests (an instruction override, "ask me about my religion", "insult me",
    # "give me the other candidate's email") flag besides the head.
    PATTERNS = _word_lists.ElicitationRule.PATTERNS


RULES: dict[str, type[SafetyRule]] = {
    r.category: r for r in (ProhibitedQuestionRule, ToxicityRule, BiasRule, PiiLeakRule, ElicitationRule)
}


class SafetyPolicy(_RegexPolicy):
    """``safety.SafetyPolicy`` (enabled rules, prohibited topics, ``from_config``, ``first_safe``) with the
    learned rules; ``MANDATORY_RULES`` and ``SAFE_FALLBACKS`` are safety.py's."""

    rule_classes = RULES

    def check(self, text: str, stage: str = "output") -> Verdict:
        """Run every rule that applies to ``stage`` (input|output); the learned heads share one
        featurisation of ``text``."""
        rules = [r for r in self.rules if stage in r.stages]
        flags: list[SafetyFlag] = []
        heads = [r.head for r in rules if r.judges(stage)]
        scores = None
        if heads and text and text.strip():
            from processors.twin.safety_models import get_checks

            scores = get_checks().scores(text, heads)
        for rule in rules:
            flags += rule.check(text, scores, stage) if text and text.strip() else []
        if stage == "output":
            flags += [SafetyFlag(category="prohibited_topic", detail=t) for t, rx in self._topics if rx.search(text)]
        return Verdict(passed=not flags, flags=flags)
