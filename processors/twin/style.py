"""Interviewer style: per-turn features and a per-interviewer profile fitted from transcripts.

Features are deterministic heuristics in [0, 1] (cue lexicons, counts, saturating transforms),
so the same text always scores the same in fitting, generation and evaluation. Run a quick
look at one corpus with::

    python -c "from processors.twin.corpus import *; from processors.twin.style import *; \\
      ts=[p.transcript for p in read_transcripts('../shared/corpora/scotus_oyez/dev.jsonl') if p.ok]; \\
      print(StyleProfile.fit(interviewer_turns(t for t in ts if t.interviewer_id=='elena_kagan')).to_dict())"
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from processors.twin.corpus import InterviewerTurn
from processors.twin.text import DETERMINERS, STOPWORDS, compile_cues, cue_sum, sentences, stem_set, words

__all__ = [
    "FEATURES",
    "FeatureStats",
    "Phrase",
    "StyleProfile",
    "StyleVector",
    "extract_style",
    "style_similarity",
]

# Serialised feature names (camelCase, as in the API and the stored profile), in array order.
FEATURES: tuple[str, ...] = (
    "directness",
    "warmth",
    "verbosity",
    "questionForm",
    "followUp",
    "challenge",
    "coaching",
)

# Word count that maps to verbosity 1.0; log-scaled so 5 vs 20 words matters more than 150 vs 200.
VERBOSE_WORDS = 200


_HEDGES = compile_cues([
    (r"i wonder", 1.0), (r"i was wondering", 1.0), (r"maybe", 0.6), (r"perhaps", 0.7), (r"i guess", 0.8),
    (r"sort of", 0.6), (r"kind of", 0.6), (r"i'?m curious", 0.6), (r"just curious", 0.8),
    (r"if you don'?t mind", 1.0), (r"would you mind", 0.8), (r"possibly", 0.6), (r"it seems", 0.5),
    (r"a little bit", 0.5), (r"a bit", 0.3), (r"somewhat", 0.5), (r"i think", 0.4), (r"i suppose", 0.6),
    (r"i don'?t know if", 0.8), (r"i'?m not sure", 0.5),
])
_POSITIVE = compile_cues([
    (r"great", 1.0), (r"love", 1.0), (r"loved", 1.0), (r"amazing", 1.0), (r"awesome", 1.0),
    (r"wonderful", 1.0), (r"fantastic", 1.0), (r"excellent", 1.0), (r"brilliant", 1.0), (r"beautiful", 0.8),
    (r"cool", 0.7), (r"fascinating", 0.9), (r"interesting", 0.6), (r"incredible", 0.9), (r"nice", 0.8),
    (r"glad", 0.9), (r"happy", 0.6), (r"thanks?", 0.8), (r"thank you", 1.0), (r"appreciate", 1.0),
    (r"congrat\w*", 1.0), (r"exciting", 0.8), (r"impressive", 0.9), (r"good point", 1.0),
    (r"i like that", 1.0), (r"well said", 1.0), (r"makes sense", 0.6), (r"good", 0.6), (r"helpful", 0.7),
])
_POLITE = compile_cues([
    (r"please", 1.0), (r"feel free", 1.0), (r"no worries", 1.0), (r"take your time", 1.0),
    (r"of course", 0.5), (r"i'?m sorry", 0.6), (r"sorry", 0.5), (r"if you don'?t mind", 1.0),
])
_NEGATIVE = compile_cues([
    (r"wrong", 1.0), (r"absurd", 1.0), (r"nonsense", 1.0), (r"ridiculous", 1.0), (r"silly", 0.8),
    (r"doesn'?t make (?:any )?sense", 1.0), (r"makes no sense", 1.0), (r"that'?s not", 0.6),
    (r"i don'?t understand", 0.7), (r"i don'?t see", 0.6), (r"can'?t be", 0.7), (r"not true", 1.0),
    (r"irrelevant", 0.8), (r"of course not", 0.8), (r"no,", 0.5), (r"you can'?t", 0.6),
])
_FOLLOW_UP = compile_cues([
    (r"you said", 1.0), (r"you'?ve said", 1.0), (r"you mentioned", 1.0), (r"you just", 0.7),
    (r"you talked about", 1.0), (r"you described", 1.0), (r"you brought up", 1.0), (r"you'?re saying", 1.0),
    (r"are you saying", 1.0), (r"so you", 0.5), (r"your answer", 0.8), (r"your point", 0.8),
    (r"your argument", 0.8), (r"your position", 0.7), (r"your view", 0.6), (r"earlier", 0.5),
    (r"go back to", 0.8), (r"coming back to", 0.8), (r"say more", 1.0), (r"tell me more", 1.0),
    (r"elaborate", 0.8), (r"what do you mean", 1.0), (r"how so", 1.0), (r"why", 0.45),
    (r"that", 0.2), (r"this", 0.12), (r"those", 0.15), (r"in that case", 0.6), (r"for example", 0.3),
    (r"such as", 0.2), (r"what was that like", 0.8), (r"like what", 0.8),
])
_CHALLENGE = compile_cues([
    (r"how do you square", 1.5), (r"doesn'?t that", 1.0), (r"isn'?t that", 1.0), (r"isn'?t it", 1.0),
    (r"wouldn'?t that", 1.0), (r"wouldn'?t it", 0.9), (r"surely", 0.8), (r"i don'?t understand", 1.0),
    (r"i don'?t see (?:how|why|what)", 1.0), (r"can'?t be", 1.0), (r"that'?s not", 0.8),
    (r"i disagree", 1.2), (r"not true", 1.0), (r"that'?s wrong", 1.2), (r"wrong", 0.7), (r"absurd", 1.0),
    (r"doesn'?t make (?:any )?sense", 1.0), (r"makes no sense", 1.0), (r"how can you", 1.0),
    (r"how could you", 1.0), (r"why should", 0.8), (r"why would", 0.6), (r"what'?s the difference", 0.9),
    (r"contradict\w*", 1.0), (r"inconsistent", 1.0), (r"counter-?example", 1.0), (r"are you saying", 0.7),
    (r"so you'?re saying", 0.9), (r"aren'?t you", 0.8), (r"don'?t you", 0.5), (r"wouldn'?t you", 0.7),
    (r"what about", 0.6), (r"suppose", 0.7), (r"let'?s say", 0.4), (r"take the case", 0.9),
    (r"even if", 0.6), (r"why not", 0.6), (r"how is that", 0.6), (r"how does that", 0.5), (r"no,", 0.6),
    (r"and yet", 0.8), (r"then why", 0.9), (r"in other words", 0.4), (r"really\?", 0.8),
    (r"hypothetical\w*", 0.5), (r"that may be", 0.6), (r"assume", 0.4), (r"push back", 1.0),
    (r"devil'?s advocate", 1.0), (r"skeptic\w*", 0.8), (r"but", 0.35), (r"however", 0.4),
])
_COACHING = compile_cues([
    (r"maybe consider", 1.2), (r"consider", 0.6), (r"what if you", 1.0), (r"have you considered", 1.2),
    (r"have you thought about", 1.0), (r"you might want to", 1.2), (r"you might", 0.7),
    (r"you could (?:try|consider|start|look|use|add|also|maybe|think|focus)", 0.8),
    (r"might want to", 0.8), (r"try", 0.7), (r"hint", 1.2),
    (r"on the right track", 1.2), (r"you'?re close", 1.2), (r"good start", 1.2), (r"well done", 1.0),
    (r"good", 0.5), (r"great", 0.4), (r"nice", 0.4), (r"exactly", 0.5), (r"that'?s right", 0.6),
    (r"let'?s", 0.4), (r"one way", 0.6), (r"it might help", 1.2), (r"take your time", 1.0),
    (r"no rush", 1.0), (r"don'?t worry", 1.0), (r"start with", 0.6), (r"focus on", 0.6),
    (r"step back", 0.6), (r"keep going", 1.0), (r"a good way", 0.8), (r"you'?re doing", 0.6),
])

_FILLER_LEAD = {"so", "okay", "ok", "and", "now", "alright", "all", "right", "well", "yeah", "yes", "but"}
_INTERROGATIVE = {
    "what", "why", "how", "when", "where", "which", "who", "whom", "whose", "is", "are", "do", "does",
    "did", "can", "could", "would", "will", "should", "have", "has", "had", "isn't", "doesn't", "don't",
    "aren't", "wasn't", "weren't", "won't", "wouldn't", "couldn't", "shouldn't", "didn't", "was", "were",
    "may", "might", "shall", "am",
}
_IMPERATIVE = {"tell", "explain", "walk", "describe", "give", "show", "name", "define", "list", "answer",
               "justify", "say", "talk", "share", "help", "clarify", "compare"}


def _norm(text: str) -> str:
    return (text or "").replace("’", "'").replace("‘", "'")


def _sat(x: float, scale: float = 1.0) -> float:
    """Saturate a non-negative evidence sum into [0, 1)."""
    return 1.0 - math.exp(-max(0.0, x) / scale)


def _clip(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _first_words(sentence: str) -> list[str]:
    toks = [w.lower() for w in words(_norm(sentence))]
    # "So, what..." / "Okay and how..." : look past discourse fillers to the real first word.
    while toks and toks[0] in _FILLER_LEAD and len(toks) > 1:
        toks = toks[1:]
    return toks


def _question_score(sentence: str) -> float:
    s = sentence.strip()
    if s.endswith("?") or s.rstrip("\"'”’)").endswith("?"):
        return 1.0
    toks = _first_words(s)
    # Transcripts drop "?" on interrupted or run-on questions; an interrogative start is half a question.
    if toks and toks[0] in _INTERROGATIVE and (s.endswith("--") or s.endswith(".") or s[-1:].isalnum()):
        return 0.5
    return 0.0


class StyleVector(BaseModel):
    """Style features of one interviewer turn, each in [0, 1], plus its word count."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    directness: float = 0.0
    warmth: float = 0.0
    verbosity: float = 0.0
    question_form: float = 0.0
    follow_up: float = 0.0
    challenge: float = 0.0
    coaching: float = 0.0
    word_count: int = 0

    def as_array(self) -> np.ndarray:
        """The seven features as float32, in ``FEATURES`` order."""
        return np.array(
            [self.directness, self.warmth, self.verbosity, self.question_form, self.follow_up,
             self.challenge, self.coaching],
            dtype=np.float32,
        )

    def to_dict(self) -> dict[str, float | int]:
        """camelCase dict (``questionForm``, ``followUp``, ``wordCount``)."""
        return self.model_dump(by_alias=True)


def extract_style(text: str, previous_candidate_text: str | None = None) -> StyleVector:
    """Score one interviewer turn; ``previous_candidate_text`` enables the overlap part of followUp."""
    t = _norm(text).strip()
    toks = words(t)
    wc = len(toks)
    if wc == 0:
        return StyleVector()
    sents = sentences(t) or [t]
    n_sent = len(sents)

    verbosity = _clip(math.log1p(wc) / math.log1p(VERBOSE_WORDS))

    q_scores = [_question_score(s) for s in sents]
    is_question = max(q_scores)
    question_form = _clip(0.5 * is_question + 0.5 * (sum(q_scores) / n_sent))

    first = _first_words(sents[0])
    opener = 1.0 if first and (first[0] in _INTERROGATIVE or first[0] in _IMPERATIVE or first[0] == "no") else 0.0
    first_q = next((i for i, q in enumerate(q_scores) if q > 0), None)
    # Questions buried after a long preamble read as less direct than a question up front.
    preamble = 0.5 if first_q is None else first_q / n_sent
    hedges = cue_sum(t, _HEDGES)
    brevity = 1.0 - verbosity
    directness = _clip(0.15 + 0.35 * opener + 0.30 * brevity + 0.20 * (1 - preamble) - 0.4 * _sat(hedges, 1.0))

    pos, polite, neg = cue_sum(t, _POSITIVE), cue_sum(t, _POLITE), cue_sum(t, _NEGATIVE)
    warmth = _clip(0.35 + 0.5 * _sat(pos, 1.2) + 0.15 * _sat(polite) - 0.45 * _sat(neg, 1.0))

    cue_follow = _sat(cue_sum(t, _FOLLOW_UP), 1.0)
    overlap = 0.0
    if previous_candidate_text:
        mine = stem_set(t)
        theirs = stem_set(_norm(previous_candidate_text))
        shared = len(mine & theirs)
        if mine:
            overlap = 0.5 * shared / len(mine) + 0.5 * _sat(shared, 2.0)
    # Noisy-or: either strong lexical reuse or explicit "you said" cues is enough on its own.
    follow_up = _clip(1 - (1 - 0.85 * overlap) * (1 - 0.85 * cue_follow))

    ch = cue_sum(t, _CHALLENGE)
    # A turn that opens with "But"/"No" pushes back harder than a "but" mid-sentence.
    if first and toks[0].lower() in ("but", "no"):
        ch += 0.8
    challenge = _clip(_sat(ch, 1.2))

    coaching = _clip(_sat(cue_sum(t, _COACHING), 1.2))

    return StyleVector(
        directness=round(directness, 4),
        warmth=round(warmth, 4),
        verbosity=round(verbosity, 4),
        question_form=round(question_form, 4),
        follow_up=round(follow_up, 4),
        challenge=round(challenge, 4),
        coaching=round(coaching, 4),
        word_count=wc,
    )


def style_similarity(a: StyleVector, b: StyleVector) -> float:
    """1 minus the mean absolute feature difference: 1.0 for identical style, 0.0 for opposite."""
    return float(1.0 - np.abs(a.as_array() - b.as_array()).mean())


class FeatureStats(BaseModel):
    """Mean and standard deviation of one feature over an interviewer's turns."""

    mean: float
    std: float


class Phrase(BaseModel):
    """A recurring phrase and the share of turns (or question sentences) it appears in."""

    text: str
    share: float
    count: int


_LEAD_IN_RE = re.compile(r"^((?:[A-Za-z']+[ ]?){1,3}?[A-Za-z']+[,.!])\s+\S")
_ABBREV_LEADS = {"mr.", "mrs.", "ms.", "dr.", "st.", "no.", "v."}
# Slots only after these words are noun positions, so a filled template stays grammatical.
NOUN_SLOT_PRECEDERS = DETERMINERS


_GREETING_LEADS = {"hi", "hello", "hey", "hi there", "hello there", "welcome", "good morning", "good afternoon",
                   "good evening", "thanks", "thank you", "nice to meet you"}


def _lead_in(text: str) -> str | None:
    m = _LEAD_IN_RE.match(_norm(text).strip())
    if not m:
        return None
    lead = m.group(1)
    if lead.lower() in _ABBREV_LEADS:
        return None
    # Greetings open a session; prefixed to a mid-interview question they read as "Hi, why ...?".
    if lead.lower().rstrip(",.!") in _GREETING_LEADS:
        return None
    return lead


def _question_frame(sentence: str, max_tokens: int = 6) -> str | None:
    toks = _first_words(sentence)  # "Well, what about X?" frames as "what about {x}"
    frame: list[str] = []
    for w in toks[:max_tokens]:
        if w in STOPWORDS:
            frame.append(w)
            continue
        frame.append("{x}")
        break  # the frame ends at its first slot: that is the part a template can reuse
    if len(frame) < 2 or all(f == "{x}" for f in frame):
        return None
    return " ".join(frame)


class StyleProfile(BaseModel):
    """How one interviewer talks, fitted from many of their turns; JSON-serialisable for storage."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    version: int = 1
    interviewer_id: str | None = None
    n_turns: int = 0
    features: dict[str, FeatureStats] = Field(default_factory=dict)
    word_count: dict[str, float] = Field(default_factory=dict)
    openings: list[Phrase] = Field(default_factory=list)
    lead_ins: list[Phrase] = Field(default_factory=list)
    lead_in_rate: float = 0.0
    closings: list[Phrase] = Field(default_factory=list)
    question_templates: list[Phrase] = Field(default_factory=list)
    follow_up_rate: float = 0.0
    question_rate: float = 0.0
    challenge_level: float = 0.0
    coaching_ratio: float = 0.0

    @classmethod
    def fit(
        cls,
        turns: Sequence[InterviewerTurn] | Iterable[InterviewerTurn],
        interviewer_id: str | None = None,
        top_k: int = 12,
        min_count: int = 3,
    ) -> StyleProfile:
        """Fit a profile from one interviewer's turns (use ``corpus.interviewer_turns``).

        Rates (``follow_up_rate`` etc.) are shares of turns whose feature is at least 0.5;
        ``challenge_level`` is the mean challenge score. Phrases seen fewer than ``min_count``
        times are dropped, the ``top_k`` most frequent are kept.
        """
        turns = list(turns)
        n = len(turns)
        if n == 0:
            return cls(interviewer_id=interviewer_id)
        vecs = [extract_style(t.text, t.previous_candidate_text) for t in turns]
        arr = np.stack([v.as_array() for v in vecs]).astype(np.float64)
        wc = np.array([v.word_count for v in vecs], dtype=np.float64)

        opening_counts: Counter[str] = Counter()
        lead_counts: Counter[str] = Counter()
        lead_surface: dict[str, Counter[str]] = {}
        closing_counts: Counter[str] = Counter()
        frame_counts: Counter[str] = Counter()
        n_questions = 0
        for t in turns:
            toks = [w.lower() for w in words(_norm(t.text))]
            for k in (2, 3):
                if len(toks) > k:  # a turn that is only k words is not an "opening" of anything
                    opening_counts[" ".join(toks[:k])] += 1
            lead = _lead_in(t.text)
            if lead:
                key = lead.lower().rstrip(",.!")
                lead_counts[key] += 1
                lead_surface.setdefault(key, Counter())[lead] += 1
            if len(toks) >= 4:
                tail = _norm(t.text).rstrip()
                end = tail[-1] if tail and tail[-1] in "?.!" else ""
                for k in (2, 3):
                    closing_counts[" ".join(toks[-k:]) + end] += 1
            for s in sentences(t.text):
                if _question_score(s) == 1.0:
                    n_questions += 1
                    frame = _question_frame(s)
                    if frame:
                        frame_counts[frame] += 1

        def top(counter: Counter[str], denom: int) -> list[Phrase]:
            items = [(k, c) for k, c in counter.items() if c >= min_count]
            items.sort(key=lambda kv: (-kv[1], kv[0]))
            return [Phrase(text=k, share=round(c / max(1, denom), 4), count=c) for k, c in items[:top_k]]

        leads = top(lead_counts, n)
        # Store each lead-in as it is most often written ("Yeah." rather than "yeah").
        leads = [Phrase(text=lead_surface[p.text].most_common(1)[0][0], share=p.share, count=p.count) for p in leads]

        idx = {name: i for i, name in enumerate(FEATURES)}
        return cls(
            interviewer_id=interviewer_id,
            n_turns=n,
            features={
                name: FeatureStats(mean=round(float(arr[:, i].mean()), 4), std=round(float(arr[:, i].std()), 4))
                for name, i in idx.items()
            },
            word_count={
                "mean": round(float(wc.mean()), 2),
                **{f"p{p}": float(np.percentile(wc, p)) for p in (10, 25, 50, 75, 90)},
            },
            openings=top(opening_counts, n),
            lead_ins=leads,
            lead_in_rate=round(sum(lead_counts.values()) / n, 4),
            closings=top(closing_counts, n),
            question_templates=top(frame_counts, max(1, n_questions)),
            follow_up_rate=round(float((arr[:, idx["followUp"]] >= 0.5).mean()), 4),
            question_rate=round(float((arr[:, idx["questionForm"]] >= 0.5).mean()), 4),
            challenge_level=round(float(arr[:, idx["challenge"]].mean()), 4),
            coaching_ratio=round(float((arr[:, idx["coaching"]] >= 0.5).mean()), 4),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict with camelCase keys (what PostgreSQL stores)."""
        return self.model_dump(by_alias=True, mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StyleProfile:
        """Rebuild a profile from ``to_dict`` output (camelCase or snake_case keys)."""
        return cls.model_validate(data)

    def mean_vector(self) -> np.ndarray:
        """Feature means in ``FEATURES`` order (zeros for an empty profile)."""
        return np.array([self.features[f].mean if f in self.features else 0.0 for f in FEATURES], dtype=np.float32)

    def fit_score(self, vector: StyleVector, min_std: float = 0.08) -> float:
        """How typical ``vector`` is for this interviewer, in [0, 1] (1 = at the mean on every feature).

        Mean over features of a Gaussian kernel on the z-score; ``min_std`` keeps a feature the
        interviewer never varies from vetoing every line.
        """
        if not self.features:
            return 0.5
        x = vector.as_array()
        scores = []
        for i, name in enumerate(FEATURES):
            st = self.features.get(name)
            if st is None:
                continue
            z = (float(x[i]) - st.mean) / max(st.std, min_std)
            scores.append(math.exp(-0.5 * z * z))
        return float(np.mean(scores)) if scores else 0.5

    def distance(self, other: StyleProfile) -> float:
        """Standardised difference between two profiles: mean |Δmean| / pooled std over features,
        plus the absolute difference of median log word counts. 0 for identical profiles."""
        diffs = []
        for name in FEATURES:
            a, b = self.features.get(name), other.features.get(name)
            if a is None or b is None:
                continue
            pooled = math.sqrt((a.std**2 + b.std**2) / 2) or 1.0
            diffs.append(abs(a.mean - b.mean) / pooled)
        length = 0.0
        if self.word_count.get("p50") and other.word_count.get("p50"):
            length = abs(math.log(self.word_count["p50"]) - math.log(other.word_count["p50"]))
        return float(np.mean(diffs) if diffs else 0.0) + length
