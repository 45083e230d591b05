"""Training augmentations (spec §9): paraphrase negatives and candidate-turn perturbations.

* **Paraphrase negatives** keep what an interviewer line is about and remove how this interviewer
  says it: their lead-ins and closings stripped, contractions and hedges normalised, the question
  recast in a neutral frame. The style classifier learns them as "not this interviewer", so it
  has to tell the person by style and cannot win on topic alone.
* **Candidate perturbations** rewrite the candidate turn before an interviewer reply: hedged,
  stuck, truncated, off topic, or only disfluent. The classifier gets them as candidate lines (hard
  negatives that sound like questions or hedges), and the policy gets a *stress set*: the same
  moment with the perturbed turn, with what should happen to the decision. Disfluency must not
  change the move (invariance); a stuck candidate must make a hint more likely, a hedged or
  truncated answer a probe (directional). :func:`policy_stress_report` scores the fitted policy.

Everything is deterministic for a seed, and needs no model: the same corpus gives the same
augmentations on every machine::

    negs = paraphrase_negatives(lines, style_profile, seed=7)
    stress = policy_stress_set(train_transcripts, seed=7)
    report = policy_stress_report(stress, policy_stats)
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from processors.twin.corpus import Transcript, Turn, exchanges
from processors.twin.policy import Controls, Move, PolicyStats, decide_next_move
from processors.twin.style import StyleProfile
from processors.twin.text import clean_transcript_text, salient_phrases, sentences, words

__all__ = [
    "PARAPHRASE_KINDS",
    "PERTURBATION_KINDS",
    "Augmented",
    "StressItem",
    "paraphrase",
    "paraphrase_negatives",
    "perturb_candidate",
    "candidate_perturbations",
    "policy_stress_set",
    "policy_stress_report",
]

PARAPHRASE_KINDS = ("strip", "formal", "neutral_frame", "question_only")
PERTURBATION_KINDS = ("filler", "hedged", "stuck", "truncated", "off_topic")

_CONTRACTIONS = {
    "don't": "do not", "doesn't": "does not", "didn't": "did not", "isn't": "is not", "aren't": "are not",
    "wasn't": "was not", "weren't": "were not", "can't": "cannot", "couldn't": "could not",
    "wouldn't": "would not", "shouldn't": "should not", "won't": "will not", "haven't": "have not",
    "hasn't": "has not", "it's": "it is", "that's": "that is", "what's": "what is", "you're": "you are",
    "we're": "we are", "they're": "they are", "i'm": "I am", "i've": "I have", "you've": "you have",
    "let's": "let us", "there's": "there is", "i'd": "I would", "you'd": "you would", "i'll": "I will",
}
_CONTRACTION_RE = re.compile(r"\b(" + "|".join(re.escape(k) for k in _CONTRACTIONS) + r")\b", re.I)
_SPOKEN_HEDGES_RE = re.compile(
    r"\b(?:i mean|you know|kind of|sort of|i think|i guess|basically|actually|really|just|like,)\s*", re.I)
_LEAD_FILLERS_RE = re.compile(
    r"^(?:(?:well|so|okay|ok|alright|all right|yeah|yes|now|and|but|right|um|uh|oh|mm-hmm|hmm)[,.!]?\s+)+", re.I)
_NEUTRAL_FRAMES = (
    "Could you tell me more about {x}?",
    "Can you explain {x} in more detail?",
    "How would you describe {x}?",
    "What is your view on {x}?",
)
_HEDGES = ("I think maybe ", "I'm not sure, but I guess ", "Probably, sort of, ", "I believe, kind of, ")
_STUCK = (
    "I'm not sure. I don't know how to approach this.",
    "Sorry, I'm stuck. Could you repeat the question?",
    "I don't know, I have no idea where to start.",
    "Hmm, I can't think of an answer to that.",
)
_FILLERS = ("um, ", "uh, ", "you know, ", "I mean, ")
_OFF_TOPIC = (
    "Before that, I wanted to mention that I really enjoy hiking on weekends with my friends and family.",
    "Honestly my favourite part of the week is cooking dinner and trying recipes from different countries.",
    "That reminds me of a movie I watched last night about astronauts travelling to a distant planet.",
)


@dataclass(frozen=True)
class Augmented:
    """A generated line: its text, how it was made, and the index of the line it came from."""

    text: str
    kind: str
    source: int


def _norm(text: str) -> str:
    return " ".join(w.lower() for w in words(text))


def _strip(text: str, style: StyleProfile | None) -> str:
    t = clean_transcript_text(text)
    leads = sorted((p.text for p in (style.lead_ins if style else [])), key=len, reverse=True)
    for lead in leads:  # the interviewer's own habitual lead-ins first, then generic fillers
        if t.lower().startswith(lead.lower()):
            t = t[len(lead):].lstrip(" ,.!")
            break
    t = _LEAD_FILLERS_RE.sub("", t).strip()
    return t[:1].upper() + t[1:] if t else t


def _formal(text: str) -> str:
    t = _CONTRACTION_RE.sub(lambda m: _CONTRACTIONS[m.group(1).lower()], text)
    t = _SPOKEN_HEDGES_RE.sub("", t)
    t = re.sub(r"\s+", " ", t).strip()
    return t[:1].upper() + t[1:] if t else t


def _neutral_frame(text: str, rng: random.Random) -> str:
    phrases = salient_phrases(text, max_phrases=2, nouns_only=True) or salient_phrases(text, max_phrases=2)
    if not phrases:
        return ""
    topic = phrases[0] if len(phrases) == 1 else f"{phrases[0]} and {phrases[1]}"
    return rng.choice(_NEUTRAL_FRAMES).format(x=topic)


def _question_only(text: str) -> str:
    qs = [s for s in sentences(text) if s.rstrip().endswith("?")]
    return qs[-1] if qs and len(sentences(text)) > 1 else ""


def paraphrase(text: str, kind: str, style: StyleProfile | None = None, rng: random.Random | None = None) -> str:
    """One paraphrase of ``text`` of the given kind ("" when that kind does not apply)."""
    rng = rng or random.Random(0)  # nosec B311  # seeded augmentation, not secrets
    if kind == "strip":
        return _strip(text, style)
    if kind == "formal":
        return _formal(_strip(text, style))
    if kind == "neutral_frame":
        return _neutral_frame(text, rng)
    if kind == "question_only":
        return _question_only(_formal(text))
    raise ValueError(f"unknown paraphrase kind {kind!r}; known: {', '.join(PARAPHRASE_KINDS)}")


def paraphrase_negatives(lines: Sequence[str], style: StyleProfile | None = None, seed: int = 0,
                         per_line: int = 1, max_items: int | None = None) -> list[Augmented]:
    """Style-stripped paraphrases of an interviewer's lines, to label as "not this interviewer".

    A paraphrase identical to its source (after normalising case and punctuation) or shorter
    than three words is dropped: it would be a positive wearing a negative label.
    """
    rng = random.Random(seed)  # nosec B311  # seeded augmentation, not secrets
    out: list[Augmented] = []
    for i, line in enumerate(lines):
        kinds = list(PARAPHRASE_KINDS)
        rng.shuffle(kinds)
        made = 0
        for kind in kinds:
            text = paraphrase(line, kind, style, rng)
            if len(words(text)) < 3 or _norm(text) == _norm(line):
                continue
            out.append(Augmented(text, kind, i))
            made += 1
            if made >= per_line:
                break
        if max_items is not None and len(out) >= max_items:
            break
    return out


def perturb_candidate(text: str, kind: str, rng: random.Random | None = None) -> str:
    """The candidate turn rewritten by one perturbation (see ``PERTURBATION_KINDS``)."""
    rng = rng or random.Random(0)  # nosec B311  # seeded augmentation, not secrets
    if kind == "filler":
        ws = text.split()
        if len(ws) < 4:
            return rng.choice(_FILLERS) + text
        cut = rng.randrange(1, len(ws))
        return " ".join(ws[:cut]) + " " + rng.choice(_FILLERS) + " ".join(ws[cut:])
    if kind == "hedged":
        body = text[:1].lower() + text[1:] if text else text
        return rng.choice(_HEDGES) + body
    if kind == "stuck":
        return rng.choice(_STUCK)
    if kind == "truncated":
        ws = text.split()
        return " ".join(ws[: max(2, min(5, len(ws) // 4))]).rstrip(",;") + "."
    if kind == "off_topic":
        return rng.choice(_OFF_TOPIC)
    raise ValueError(f"unknown perturbation kind {kind!r}; known: {', '.join(PERTURBATION_KINDS)}")


def candidate_perturbations(lines: Sequence[str], seed: int = 0,
                            kinds: Sequence[str] = ("hedged", "truncated", "filler"),
                            max_items: int | None = None) -> list[Augmented]:
    """Perturbed candidate lines (hard negatives for the classifier: still the candidate speaking)."""
    rng = random.Random(seed)  # nosec B311  # seeded augmentation, not secrets
    out = []
    for i, line in enumerate(lines):
        kind = kinds[i % len(kinds)]
        text = perturb_candidate(line, kind, rng)
        if len(words(text)) >= 2:
            out.append(Augmented(text, kind, i))
        if max_items is not None and len(out) >= max_items:
            break
    return out


@dataclass(frozen=True)
class StressItem:
    """One moment with a perturbed candidate turn, and what the decision should do."""

    session_id: str
    index: int
    kind: str
    history: list[dict[str, str]]
    original: str
    perturbed: str
    real_move: str | None
    expect: str  # "same" | "more:<move>[,<move>]" | "record"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# What each perturbation should do to the decision, and which moves' probability must go up.
_EXPECT = {
    "filler": "same",
    "stuck": "more:give_hint",
    "hedged": "more:probe_deeper,give_hint",
    "truncated": "more:probe_deeper,ask_followup",
    "off_topic": "record",  # drift handling depends on the topic anchor: measured, not asserted
}


def policy_stress_set(transcripts: Sequence[Transcript], seed: int = 0, max_items: int = 240,
                      kinds: Sequence[str] = PERTURBATION_KINDS, max_context_turns: int = 8) -> list[StressItem]:
    """Moments from ``transcripts`` with the candidate turn perturbed, one kind per moment in turn."""
    from processors.twin.policy import label_move

    rng = random.Random(seed)  # nosec B311  # seeded augmentation, not secrets
    moments = [ex for t in transcripts for ex in exchanges(t, max_context_turns=max_context_turns)
               if ex.candidate_turn is not None and len(words(ex.candidate_turn.text)) >= 8]
    rng.shuffle(moments)
    out: list[StressItem] = []
    for n, ex in enumerate(moments[: max(0, max_items)]):
        kind = kinds[n % len(kinds)]
        original = ex.candidate_turn.text
        prev_i = ex.previous_interviewer_turn
        real = label_move(ex.interviewer_reply, original, prev_i.text if prev_i else None).value
        out.append(StressItem(
            session_id=ex.session_id, index=ex.index, kind=kind,
            history=[{"role": t.role, "text": t.text} for t in ex.context_turns],
            original=original, perturbed=perturb_candidate(original, kind, rng), real_move=real,
            expect=_EXPECT[kind]))
    return out


def policy_stress_report(items: Sequence[StressItem], stats: PolicyStats | None,
                         controls: Controls | None = None) -> dict[str, Any]:
    """How the fitted policy reacts to the stress set, per perturbation kind.

    ``flipRate``: share of moments whose decided move changed. ``expectationMet``: for "same"
    items, the share that kept the move; for "more:" items, the share where the listed moves
    together became more probable. ``agreementOriginal``: the decided move equals the real one.
    """
    per: dict[str, dict[str, float]] = {}
    for item in items:
        history = [Turn(role=h["role"], text=h["text"]) for h in item.history]
        before = decide_next_move(history, item.original, stats, controls, seed=0)
        after = decide_next_move(history, item.perturbed, stats, controls, seed=0)
        agg = per.setdefault(item.kind, {"n": 0, "flips": 0, "met": 0, "checked": 0, "agree": 0})
        agg["n"] += 1
        agg["flips"] += int(before.move != after.move)
        agg["agree"] += int(item.real_move is not None and before.move.value == item.real_move)
        if item.expect == "same":
            agg["checked"] += 1
            agg["met"] += int(before.move == after.move)
        elif item.expect.startswith("more:"):
            moves = [Move(m) for m in item.expect[5:].split(",")]
            agg["checked"] += 1
            gain = sum(after.scores.get(m.value, 0.0) - before.scores.get(m.value, 0.0) for m in moves)
            agg["met"] += int(gain > 0)
    report: dict[str, Any] = {"items": len(items), "kinds": {}}
    met = checked = 0
    for kind, a in sorted(per.items()):
        report["kinds"][kind] = {
            "n": int(a["n"]), "flipRate": round(a["flips"] / a["n"], 4),
            "expectationMet": round(a["met"] / a["checked"], 4) if a["checked"] else None,
            "agreementOriginal": round(a["agree"] / a["n"], 4), "expect": _EXPECT.get(kind, "record"),
        }
        met += int(a["met"])
        checked += int(a["checked"])
    report["expectationMet"] = round(met / checked, 4) if checked else None
    return report
