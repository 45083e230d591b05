"""The interviewer's next move: follow up, probe, hint, shift topic, move on or wrap up.

One heuristic, ``label_move``, labels what a real interviewer did in their transcripts; the same
function labels the live history, so ``PolicyStats`` (learned from transcripts) and
``ConversationState`` (built per request) speak about the same moves. ``decide`` combines the
interviewer's learned move rates with the state of the conversation, a model of the candidate
and the per-interviewer ``Controls``; given a learned move model's prediction (``move_probs``,
see ``move_model.py``) that distribution is the base instead, and only the controls steer it.
``adjust_for_rubric`` revises a decision once a rubric check has graded the answer::

    stats = PolicyStats.fit(transcripts_of_one_interviewer)
    decision = decide_next_move(history, "I think we used Redis, maybe?", stats, Controls(), seed=7)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from processors.twin.corpus import Transcript, Turn
from processors.twin.style import extract_style
from processors.twin.text import compile_cues, cue_sum, lexical_similarity, stem_set, words

__all__ = [
    "DECIDABLE_MOVES",
    "EMBEDDING_SHIFT_THRESHOLD",
    "HEURISTIC_WEIGHT",
    "HIGH_COACHING",
    "LEXICAL_SHIFT_THRESHOLD",
    "CandidateModel",
    "Controls",
    "ConversationState",
    "Move",
    "PolicyDecision",
    "PolicyStats",
    "adjust_for_rubric",
    "redirect_from",
    "decide",
    "decide_next_move",
    "embedding_similarity",
    "label_move",
    "situation",
]


class Move(StrEnum):
    """What the interviewer does next."""

    OPEN = "open"
    ASK_FOLLOWUP = "ask_followup"
    PROBE_DEEPER = "probe_deeper"
    GIVE_HINT = "give_hint"
    SHIFT_TOPIC = "shift_topic"
    MOVE_ON = "move_on"
    WRAP_UP = "wrap_up"


# "open" is decided by rule (nothing said yet), never scored against the others.
DECIDABLE_MOVES: tuple[Move, ...] = (
    Move.ASK_FOLLOWUP, Move.PROBE_DEEPER, Move.GIVE_HINT, Move.SHIFT_TOPIC, Move.MOVE_ON, Move.WRAP_UP,
)
# Moves after which the next interviewer turn is on a new topic (or the next agenda item).
_TOPIC_STARTERS = {Move.OPEN, Move.SHIFT_TOPIC, Move.MOVE_ON}

# Below these, the candidate's turn is treated as having left the current topic. Lexical
# (Jaccard on content words) is much lower than MiniLM cosine for the same pair of texts.
LEXICAL_SHIFT_THRESHOLD = 0.04
EMBEDDING_SHIFT_THRESHOLD = 0.2
# How much general interviewing heuristics (stuck -> hint, long topic -> move on) add on top of
# what the interviewer's own transcripts say about the same situation.
HEURISTIC_WEIGHT = 0.3

_WRAP_UP = compile_cues([
    (r"thank you (?:so much |very much )?for (?:coming|joining|being|doing|your time|having)", 1.5),
    (r"thanks (?:so much )?for (?:coming|joining|being|doing|your time|having)", 1.5),
    (r"we'?re (?:almost |about )?out of time", 1.5), (r"last question", 1.2), (r"final question", 1.2),
    (r"one last (?:thing|question)", 1.2), (r"before we (?:wrap|close|end|go|let you go)", 1.5),
    (r"wrap (?:things )?up", 1.2), (r"lightning round", 1.2),
    (r"where can (?:folks|people|listeners|they) (?:find|follow|reach)", 1.5),
    (r"how can listeners be useful", 1.5), (r"that'?s all (?:the time|we have|i have)", 1.5),
    (r"thank(?:s| you) (?:so much )?for listening", 1.5), (r"thank you,? counsel", 1.5),
    (r"the case is submitted", 1.5), (r"in closing", 1.0),
    (r"we have to stop", 1.2), (r"any questions for (?:me|us)", 1.2),
])
_HINT = compile_cues([
    (r"maybe consider", 1.2), (r"have you considered", 1.2), (r"have you thought about", 1.0),
    (r"what if you", 1.0), (r"you might want to", 1.2), (r"might want to", 0.8), (r"hint", 1.2),
    (r"it might help", 1.2), (r"one way (?:to|is|would be)", 0.8), (r"try (?:to|thinking|starting|using|looking)", 0.9),
    (r"start with", 0.6), (r"focus on", 0.6), (r"step back", 0.6), (r"on the right track", 1.0),
    (r"you'?re close", 1.0), (r"think about (?:what|how|whether|the)", 0.5), (r"don'?t worry", 0.8),
    (r"take your time", 0.8), (r"a good way", 0.8), (r"you could (?:try|consider|start|use|add)", 1.0),
])
_SHIFT = compile_cues([
    (r"switch(?:ing)? gears", 1.5), (r"shift(?:ing)? gears", 1.5), (r"chang(?:e|ing) gears", 1.5),
    (r"(?:a |one )?different (?:topic|question|direction|area|subject)", 1.2), (r"on a different note", 1.5),
    (r"turning to", 1.0), (r"let'?s (?:talk|chat) about", 1.0), (r"i want to (?:ask|talk) (?:you )?about", 1.0),
    (r"i'?d love to (?:ask|talk|chat) (?:you )?about", 1.0), (r"another (?:topic|area|subject)", 1.2),
    (r"separate question", 1.2), (r"let me ask you about", 1.0), (r"chang(?:e|ing) (?:the )?subject", 1.5),
    (r"let me (?:turn|switch|shift) to", 1.2), (r"a totally different", 1.2), (r"let me go to", 0.8),
])
_MOVE_ON = compile_cues([
    (r"next question", 1.2), (r"moving on", 1.2), (r"let'?s move on", 1.5), (r"move on", 1.0),
    (r"let'?s keep going", 1.0), (r"let me move on", 1.5), (r"we should move on", 1.5),
    (r"let'?s go to the next", 1.2), (r"all right,? next", 1.0), (r"okay,? next", 1.0),
])
_PROBE = compile_cues([
    (r"why", 0.9), (r"how so", 1.2), (r"what do you mean", 1.2), (r"for example", 0.6),
    (r"give (?:me |us )?(?:an |a concrete |some )?examples?", 1.2),
    (r"an example", 0.8), (r"specifically", 0.8), (r"concretely", 1.0), (r"in practice", 0.6),
    (r"what exactly", 1.0), (r"how exactly", 1.0), (r"what does that look like", 1.0),
    (r"how (?:would|does) that work", 1.0), (r"what happens (?:if|when)", 0.8), (r"walk me through", 1.0),
    (r"say more", 1.0), (r"tell me more", 1.0), (r"dig into", 1.0), (r"unpack", 1.0),
    (r"double[- ]click", 1.0), (r"go deeper", 1.0), (r"how did you (?:know|decide|measure|figure)", 0.9),
    (r"elaborate", 1.0), (r"be more specific", 1.2), (r"what'?s an example", 1.0), (r"like what", 0.9),
])
_CANDIDATE_HEDGES = compile_cues([
    (r"i think", 0.5), (r"maybe", 0.8), (r"i'?m not sure", 1.2), (r"not sure", 0.8), (r"i guess", 0.9),
    (r"probably", 0.6), (r"kind of", 0.5), (r"sort of", 0.5), (r"i don'?t know", 1.2), (r"perhaps", 0.7),
    (r"might", 0.4), (r"um+", 0.4), (r"uh+", 0.4), (r"i believe", 0.3), (r"possibly", 0.6),
    (r"i suppose", 0.6), (r"hard to say", 1.0), (r"not really", 0.6), (r"i'?m not certain", 1.0),
])
_STRUGGLE = compile_cues([
    (r"i don'?t know", 1.0), (r"no idea", 1.2), (r"i'?m not sure", 0.8), (r"i'?m stuck", 1.5),
    (r"can you repeat", 1.0), (r"could you repeat", 1.0), (r"what do you mean", 0.8), (r"could you clarify", 1.0),
    (r"i forget", 0.8), (r"don'?t remember", 0.8), (r"i'?m confused", 1.2), (r"not sure how", 1.0),
    (r"i have no", 0.8), (r"i can'?t think", 1.2), (r"where to start", 1.0),
])
_SPECIFIC = compile_cues([
    (r"for example", 1.0), (r"for instance", 1.0), (r"because", 0.6), (r"specifically", 0.8),
    (r"such as", 0.6), (r"e\.g\.", 0.8), (r"measured", 0.6), (r"percent", 0.8), (r"\d+(?:[.,]\d+)?%?", 0.6),
])


def _text(turn: Turn | str | None) -> str | None:
    if turn is None:
        return None
    return turn.text if isinstance(turn, Turn) else str(turn)


def label_move(
    interviewer_turn: Turn | str,
    previous_candidate_turn: Turn | str | None = None,
    previous_interviewer_turn: Turn | str | None = None,
) -> Move:
    """Label what an interviewer turn does, from its text and the two turns before it.

    Rules in order: nothing before it -> open; closing cues -> wrap_up; hint cues -> give_hint;
    explicit topic-change cues -> shift_topic; "next question"/"let's move on" -> move_on;
    pushback or why/example demands -> probe_deeper; a question that reuses the candidate's
    words or refers back ("you said", "that") -> ask_followup; an unconnected question ->
    shift_topic; a short acknowledgement -> move_on; a comment on the answer -> ask_followup.
    """
    return _label_move(_text(interviewer_turn) or "", _text(previous_candidate_turn), _text(previous_interviewer_turn))


# Live sessions re-walk the same history on every request; labels of past turns never change.
@lru_cache(maxsize=8192)
def _label_move(text: str, prev_c: str | None, prev_i: str | None) -> Move:
    if prev_c is None and prev_i is None:
        return Move.OPEN
    sv = extract_style(text, prev_c)
    if cue_sum(text, _WRAP_UP) >= 1.0:
        return Move.WRAP_UP
    hint = cue_sum(text, _HINT)
    if (hint >= 1.0 or sv.coaching >= 0.75) and sv.challenge < 0.5:
        return Move.GIVE_HINT
    if cue_sum(text, _SHIFT) >= 1.0:
        return Move.SHIFT_TOPIC
    if cue_sum(text, _MOVE_ON) >= 1.0:
        return Move.MOVE_ON
    shared = 0
    if prev_c:
        shared = len(stem_set(text) & stem_set(prev_c))
    refers = sv.follow_up >= 0.35 or shared >= 1
    if sv.challenge >= 0.5 or cue_sum(text, _PROBE) >= 0.9:
        return Move.PROBE_DEEPER
    if sv.question_form >= 0.5:
        if refers:
            return Move.ASK_FOLLOWUP
        # A question unconnected to the answer can still continue the interviewer's own line.
        if prev_i and lexical_similarity(text, prev_i) >= 0.1:
            return Move.ASK_FOLLOWUP
        return Move.SHIFT_TOPIC
    if sv.word_count <= 8 and shared == 0:
        return Move.MOVE_ON  # "Okay." "Got it, thanks." : acknowledgement that closes the answer
    if refers:
        return Move.ASK_FOLLOWUP
    return Move.SHIFT_TOPIC if sv.word_count > 25 else Move.MOVE_ON


@dataclass(frozen=True)
class _Step:
    move: Move
    depth_before: int  # interviewer turns already spent on the current topic
    answer: str | None  # the candidate turn it replies to
    anchor: str | None  # the question that opened the current topic


def _walk(turns: Sequence[Turn]) -> tuple[list[_Step], int, int]:
    """Label every interviewer turn; returns the steps, the current depth, and the anchor index."""
    steps: list[_Step] = []
    depth = 0
    anchor = -1
    last_interviewer: str | None = None
    for i, turn in enumerate(turns):
        if turn.role != "interviewer":
            continue
        prev_c = turns[i - 1].text if i > 0 and turns[i - 1].role == "candidate" else None
        move = label_move(turn.text, prev_c, last_interviewer)
        steps.append(_Step(move, depth, prev_c, turns[anchor].text if anchor >= 0 else None))
        if move in _TOPIC_STARTERS or depth == 0:
            depth, anchor = 1, i
        else:
            depth += 1
        last_interviewer = turn.text
    return steps, depth, anchor


def _as_turns(history: Iterable[Turn | dict[str, Any]]) -> list[Turn]:
    return [t if isinstance(t, Turn) else Turn.model_validate(t) for t in history]


def embedding_similarity(embedder: Any) -> Callable[[str, str], float]:
    """A ``similarity`` for ``ConversationState.from_history`` using MiniLM cosine (pair with
    ``EMBEDDING_SHIFT_THRESHOLD``)."""

    def similarity(a: str, b: str) -> float:
        va, vb = embedder.embed_one(a), embedder.embed_one(b)
        return float(np.dot(va, vb))

    return similarity


@dataclass
class ConversationState:
    """Where the conversation stands, derived from the history and the candidate's latest turn."""

    turn_count: int = 0
    interviewer_turns: int = 0
    turns_on_topic: int = 0
    exchanges_on_question: int = 0
    time_on_question_s: float | None = None
    topic_similarity: float = 1.0
    topic_shift_detected: bool = False
    previous_moves: list[Move] = field(default_factory=list)
    topic_anchor: str | None = None

    @classmethod
    def from_history(
        cls,
        history: Sequence[Turn | dict[str, Any]],
        candidate_turn: Turn | str | None = None,
        similarity: Callable[[str, str], float] | None = None,
        shift_threshold: float | None = None,
        now: datetime | None = None,
    ) -> ConversationState:
        """Build the state from past turns (oldest first) and the candidate's new turn.

        A topic starts at the opening and at every turn labelled shift_topic or move_on;
        ``turns_on_topic`` counts interviewer turns since then. ``topic_shift_detected`` is set
        when the candidate's turn is unlike the topic's opening question (``similarity`` below
        ``shift_threshold``; lexical Jaccard by default). ``time_on_question_s`` needs ``ts``.
        """
        turns = _as_turns(history)
        cand_text = _text(candidate_turn)
        steps, depth, anchor = _walk(turns)
        sim_fn = similarity or lexical_similarity
        threshold = shift_threshold if shift_threshold is not None else (
            LEXICAL_SHIFT_THRESHOLD if similarity is None else EMBEDDING_SHIFT_THRESHOLD
        )
        anchor_text = turns[anchor].text if anchor >= 0 else None

        # Candidate answers since the interviewer last asked something.
        last_q = max((i for i, t in enumerate(turns) if t.role == "interviewer"), default=-1)
        answers = sum(1 for t in turns[last_q + 1 :] if t.role == "candidate") + (1 if cand_text else 0)

        time_on_q = None
        if now is not None and now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)  # turns carry UTC-aware ts (see corpus.Turn)
        if last_q >= 0 and turns[last_q].ts is not None:
            end = candidate_turn.ts if isinstance(candidate_turn, Turn) and candidate_turn.ts else now
            if end is None:
                end = max((t.ts for t in turns if t.ts is not None), default=None)
            if end is not None:
                time_on_q = max(0.0, (end - turns[last_q].ts).total_seconds())

        topic_sim, shifted = 1.0, False
        # Very short answers ("Yes.") carry no topic signal, so they never count as a shift.
        if anchor_text and cand_text and len(words(cand_text)) >= 8:
            topic_sim = float(sim_fn(anchor_text, cand_text))
            shifted = topic_sim < threshold

        return cls(
            turn_count=len(turns) + (1 if cand_text else 0),
            interviewer_turns=len(steps),
            turns_on_topic=depth,
            exchanges_on_question=answers,
            time_on_question_s=time_on_q,
            topic_similarity=round(topic_sim, 4),
            topic_shift_detected=shifted,
            previous_moves=[s.move for s in steps],
            topic_anchor=anchor_text,
        )


# CandidateModel re-reads every past answer on each turn (live requests and move-model features).
@lru_cache(maxsize=8192)
def _word_count(text: str) -> int:
    return len(words(text))


@lru_cache(maxsize=8192)
def _answer_quality(text: str) -> tuple[float, float, float, bool]:
    """(quality, confidence, specificity, struggling) of one candidate answer, each in [0, 1]."""
    wc = len(words(text))
    hedges = cue_sum(text, _CANDIDATE_HEDGES)
    # Hedges per 25 words: one "I think" in a long answer is style, three in a short one is doubt.
    confidence = math.exp(-hedges / max(1.0, wc / 25))
    specificity = 1 - math.exp(-cue_sum(text, _SPECIFIC, cap_per_cue=3) / 2.0)
    substance = min(1.0, math.log1p(wc) / math.log1p(120))
    struggling = cue_sum(text, _STRUGGLE) >= 1.0 or (wc <= 4 and hedges > 0)
    quality = 0.4 * confidence + 0.35 * substance + 0.25 * specificity
    if struggling:
        quality *= 0.5
    return quality, confidence, specificity, struggling


@dataclass
class CandidateModel:
    """What the interviewer believes about the candidate so far."""

    answer_words: int = 0
    mean_answer_words: float = 0.0
    confidence: float = 0.5
    specificity: float = 0.0
    skill: float = 0.5
    struggling: bool = False
    previous_answers: list[str] = field(default_factory=list)

    @classmethod
    def from_history(
        cls, history: Sequence[Turn | dict[str, Any]], candidate_turn: Turn | str | None = None,
        max_previous: int = 5,
    ) -> CandidateModel:
        """Estimate skill (EMA of answer quality: confidence, substance, specificity), confidence
        from hedging, and whether the candidate is stuck, from all candidate turns."""
        turns = _as_turns(history)
        answers = [t.text for t in turns if t.role == "candidate"]
        current = _text(candidate_turn)
        all_answers = answers + ([current] if current else [])
        if not all_answers:
            return cls()
        skill = None
        for a in all_answers:
            q = _answer_quality(a)[0]
            # Recent answers weigh more: an interviewer updates quickly on a strong or weak answer.
            skill = q if skill is None else 0.5 * skill + 0.5 * q
        last = all_answers[-1]
        _, conf, spec, stuck = _answer_quality(last)
        lengths = [_word_count(a) for a in all_answers]
        return cls(
            answer_words=lengths[-1],
            mean_answer_words=float(np.mean(lengths)),
            confidence=round(conf, 4),
            specificity=round(spec, 4),
            skill=round(float(skill), 4),
            struggling=stuck,
            previous_answers=answers[-max_previous:],
        )


class Controls(BaseModel):
    """Per-interviewer knobs (spec section 14). None keeps the interviewer's learned behaviour.

    ``challenge_level`` and ``coaching_ratio`` are in [0, 1] with 0.5 meaning "as learned";
    ``verbosity`` shapes reply length; ``tone`` is free text, of which warm/supportive/
    encouraging and firm/tough/strict/neutral are understood.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    challenge_level: float | None = Field(default=None, ge=0, le=1)
    coaching_ratio: float | None = Field(default=None, ge=0, le=1)
    verbosity: Literal["terse", "normal", "verbose"] = "normal"
    tone: str | None = None

    @property
    def tone_kind(self) -> Literal["warm", "firm", "neutral"]:
        """The tone reduced to what policy, generation and prosody act on."""
        t = (self.tone or "").lower()
        if any(k in t for k in ("warm", "support", "encourag", "friendly", "kind")):
            return "warm"
        if any(k in t for k in ("firm", "tough", "strict", "stern", "challeng", "rigor")):
            return "firm"
        return "neutral"


def situation(
    turns_on_topic: int,
    answer_words: int,
    confidence: float,
    struggling: bool,
    drifted: bool,
    session_position: float | None = None,
) -> dict[str, str]:
    """The discrete situation a move is learned and decided in (same buckets in fit and decide).

    ``session_position`` places the turn being decided in the session: its number among the
    interviewer's turns over the session's length (1.0 for the last turn); at decision time the
    length is the interviewer's median session length.
    """
    where = {
        "depth": "4+" if turns_on_topic >= 4 else str(max(1, turns_on_topic)),
        "answer": "short" if answer_words < 15 else "long",
        "hedged": "yes" if confidence < 0.4 else "no",
        "stuck": "yes" if struggling else "no",
        "drift": "yes" if drifted else "no",
    }
    if session_position is not None:
        where["phase"] = "early" if session_position < 0.5 else "mid" if session_position < 0.9 else "late"
    return where


def _step_situation(step: _Step, position: float) -> dict[str, str]:
    answer = step.answer or ""
    wc = len(words(answer))
    _, conf, _, stuck = _answer_quality(answer) if answer else (0.0, 1.0, 0.0, False)
    drifted = bool(step.anchor and wc >= 8 and lexical_similarity(step.anchor, answer) < LEXICAL_SHIFT_THRESHOLD)
    return situation(step.depth_before, wc, conf, stuck, drifted, position)


class PolicyStats(BaseModel):
    """How often one interviewer makes each move, overall and per situation, learned from their
    transcripts with ``label_move``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    version: int = 2
    interviewer_id: str | None = None
    n_turns: int = 0
    move_counts: dict[str, int] = Field(default_factory=dict)
    move_rates: dict[str, float] = Field(default_factory=dict)
    # "stuck=yes" -> smoothed move rates in that situation, and how many turns they rest on.
    conditional: dict[str, dict[str, float]] = Field(default_factory=dict)
    conditional_n: dict[str, int] = Field(default_factory=dict)
    mean_topic_length: float = 2.0
    session_turns: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def fit(
        cls, transcripts: Iterable[Transcript], interviewer_id: str | None = None, alpha: float = 1.0
    ) -> PolicyStats:
        """Count labelled moves over the interviewer's turns (the opening turn excluded).

        Rates are Laplace-smoothed with ``alpha`` so a move never seen keeps a small chance.
        ``conditional`` holds the same rates within each situation value (``situation``: depth
        on the topic, answer length, hedging, a stuck candidate, an answer off the topic).
        """
        total: Counter[str] = Counter()
        by_key: dict[str, Counter[str]] = {}
        topic_lengths: list[int] = []
        session_lengths: list[int] = []
        for tr in transcripts:
            steps, _, _ = _walk(tr.turns)
            session_lengths.append(len(steps))
            run = 0
            for j, s in enumerate(steps):
                if s.move == Move.OPEN:
                    run = 1
                    continue
                total[s.move.value] += 1
                for name, value in _step_situation(s, (j + 1) / len(steps)).items():
                    by_key.setdefault(f"{name}={value}", Counter())[s.move.value] += 1
                if s.move in _TOPIC_STARTERS:
                    if run:
                        topic_lengths.append(run)
                    run = 1
                else:
                    run = run + 1 if run else 1
            if run:
                topic_lengths.append(run)

        def rates(c: Counter[str]) -> dict[str, float]:
            n = sum(c.values())
            k = len(DECIDABLE_MOVES)
            return {m.value: round((c[m.value] + alpha) / (n + alpha * k), 5) for m in DECIDABLE_MOVES}

        sl = np.array(session_lengths or [0], dtype=float)
        return cls(
            interviewer_id=interviewer_id,
            n_turns=sum(total.values()),
            move_counts={m.value: total[m.value] for m in DECIDABLE_MOVES},
            move_rates=rates(total),
            conditional={k: rates(v) for k, v in sorted(by_key.items())},
            conditional_n={k: sum(v.values()) for k, v in sorted(by_key.items())},
            mean_topic_length=round(float(np.mean(topic_lengths)) if topic_lengths else 2.0, 3),
            session_turns={f"p{p}": float(np.percentile(sl, p)) for p in (25, 50, 90)},
        )

    def rate(self, move: Move | str) -> float:
        """Smoothed overall rate of ``move`` (uniform when nothing was fitted)."""
        return self.move_rates.get(Move(move).value, 1.0 / len(DECIDABLE_MOVES))

    def prior(self, where: dict[str, str], strength: float = 20.0, weight: float = 0.7) -> dict[Move, float]:
        """Move probabilities in situation ``where`` (from ``situation``).

        Naive-Bayes style: the overall rate times, for each situation value, the ratio of the
        conditional rate to the overall rate. Each conditional is shrunk towards the overall
        rate by ``strength`` pseudo-turns (few observations barely move it), and ``weight`` < 1
        damps the double counting of correlated values (short answers are often hedged).
        """
        logp = {m: math.log(self.rate(m)) for m in DECIDABLE_MOVES}
        for name, value in where.items():
            key = f"{name}={value}"
            cond, n = self.conditional.get(key), self.conditional_n.get(key, 0)
            if not cond or n == 0:
                continue
            for m in DECIDABLE_MOVES:
                base = self.rate(m)
                shrunk = (n * cond.get(m.value, base) + strength * base) / (n + strength)
                logp[m] += weight * math.log(shrunk / base)
        top = max(logp.values())
        z = sum(math.exp(v - top) for v in logp.values())
        return {m: math.exp(v - top) / z for m, v in logp.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict with camelCase keys (what PostgreSQL stores)."""
        return self.model_dump(by_alias=True, mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyStats:
        """Rebuild stats from ``to_dict`` output."""
        return cls.model_validate(data)


class PolicyDecision(BaseModel):
    """The chosen move, its probability, why, and every move's probability."""

    move: Move
    confidence: float
    reasons: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)


def decide(
    state: ConversationState,
    candidate: CandidateModel,
    stats: PolicyStats | None = None,
    controls: Controls | None = None,
    seed: int | None = None,
    temperature: float = 0.0,
    heuristic_weight: float | None = None,
    move_probs: Mapping[Move | str, float] | None = None,
) -> PolicyDecision:
    """Choose the next move: the interviewer's learned rates in this situation, nudged by
    general interviewing heuristics (scaled by ``heuristic_weight``) and by the controls.

    ``move_probs`` (a ``MoveModel``'s prediction) replaces the rates and the heuristics as the
    base distribution, since the model has learned both from the interviewer; the controls
    still steer it. With ``temperature`` 0 the most probable move wins (ties in
    ``DECIDABLE_MOVES`` order); above 0 the move is drawn from the softened distribution with
    ``seed``, so the same inputs and seed always give the same move.
    """
    stats = stats or PolicyStats()
    controls = controls or Controls()
    # Only an empty conversation is opened by rule; when the candidate spoke first (an opening
    # statement), the interviewer's first turn is scored like any other, as label_move does.
    if state.turn_count == 0:
        return PolicyDecision(move=Move.OPEN, confidence=1.0, reasons=["nothing said yet"],
                              scores={Move.OPEN.value: 1.0})

    reasons: list[str] = []
    if move_probs is not None:
        base = _model_distribution(move_probs)
        score = {m: math.log(base[m]) for m in DECIDABLE_MOVES}
        top = max(DECIDABLE_MOVES, key=lambda m: base[m])
        reasons.append(f"move model p={base[top]:.2f} for {top.value}")
    else:
        score = _heuristic_scores(state, candidate, stats, reasons, heuristic_weight)
    _apply_controls(score, reasons, controls)

    logits = np.array([score[m] for m in DECIDABLE_MOVES], dtype=np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    if temperature and temperature > 0:
        soft = np.exp((logits - logits.max()) / temperature)
        soft /= soft.sum()
        idx = int(np.random.default_rng(seed).choice(len(DECIDABLE_MOVES), p=soft))
    else:
        idx = int(np.argmax(probs))
    move = DECIDABLE_MOVES[idx]
    return PolicyDecision(
        move=move,
        confidence=round(float(probs[idx]), 4),
        reasons=reasons,
        scores={m.value: round(float(p), 4) for m, p in zip(DECIDABLE_MOVES, probs)},
    )


def _model_distribution(move_probs: Mapping[Move | str, float]) -> dict[Move, float]:
    """A move model's probabilities over ``DECIDABLE_MOVES``, floored and renormalised."""
    raw = {m: 0.0 for m in DECIDABLE_MOVES}
    for key, p in move_probs.items():
        move = Move(key)
        if move in raw:  # "open" is decided by rule, not by the model
            raw[move] = max(0.0, float(p))
    # The floor keeps a move the model rules out reachable by an explicit control.
    floored = {m: max(p, 1e-6) for m, p in raw.items()}
    total = sum(floored.values())
    return {m: p / total for m, p in floored.items()}


def _bump(score: dict[Move, float], reasons: list[str], move: Move, amount: float, why: str) -> None:
    score[move] += amount
    if why and why not in reasons:
        reasons.append(why)


def _heuristic_scores(
    state: ConversationState, candidate: CandidateModel, stats: PolicyStats, reasons: list[str],
    heuristic_weight: float | None,
) -> dict[Move, float]:
    """Log-scores from the interviewer's learned rates in this situation plus general heuristics."""
    p50 = stats.session_turns.get("p50", 0.0)
    p90 = stats.session_turns.get("p90", 0.0)
    where = situation(state.turns_on_topic, candidate.answer_words, candidate.confidence,
                      candidate.struggling, state.topic_shift_detected,
                      (state.interviewer_turns + 1) / p50 if p50 else None)
    prior = stats.prior(where)
    score = {m: math.log(max(prior[m], 1e-6)) for m in DECIDABLE_MOVES}

    h = HEURISTIC_WEIGHT if heuristic_weight is None else heuristic_weight

    def bump(move: Move, amount: float, why: str) -> None:
        _bump(score, reasons, move, amount * h, why)  # heuristics are scaled by h

    top_prior = max(prior, key=lambda m: prior[m])
    reasons.append(f"interviewer usually does {top_prior.value} here ({prior[top_prior]:.0%})")

    if candidate.struggling:
        bump(Move.GIVE_HINT, 1.2, "candidate seems stuck")
        bump(Move.PROBE_DEEPER, -0.4, "")
    elif candidate.confidence < 0.4:
        bump(Move.PROBE_DEEPER, 0.6, f"hedged answer (confidence {candidate.confidence:.2f})")
        bump(Move.GIVE_HINT, 0.3, "")
    if candidate.answer_words < 8 and not candidate.struggling:
        bump(Move.PROBE_DEEPER, 0.5, f"short answer ({candidate.answer_words} words)")
        bump(Move.ASK_FOLLOWUP, 0.2, "")
    if candidate.skill >= 0.65 and not candidate.struggling:
        bump(Move.ASK_FOLLOWUP, 0.3, f"solid answer (skill {candidate.skill:.2f})")
        bump(Move.MOVE_ON, 0.2, "")

    typical = max(1.0, stats.mean_topic_length)
    if state.turns_on_topic >= 1.5 * typical + 1:
        bump(Move.SHIFT_TOPIC, 0.7, f"{state.turns_on_topic} turns on this topic (typical {typical:.1f})")
        bump(Move.MOVE_ON, 0.7, "")
    elif state.turns_on_topic <= 1:
        bump(Move.SHIFT_TOPIC, -0.5, "topic just started")
        bump(Move.MOVE_ON, -0.3, "")
    if state.topic_shift_detected:
        bump(Move.PROBE_DEEPER, 0.4, f"answer drifted from the topic (similarity {state.topic_similarity:.2f})")
        bump(Move.ASK_FOLLOWUP, -0.2, "")
    if state.time_on_question_s is not None and state.time_on_question_s > 300:
        bump(Move.MOVE_ON, 0.5, f"{state.time_on_question_s:.0f}s on this question")

    # Learned "phase=late" rates already say whether this interviewer closes verbally; a
    # justice's thread just stops, a host thanks the guest. Past p90 we only nudge.
    if p90 and state.interviewer_turns >= p90:
        bump(Move.WRAP_UP, 2.5, f"session is long ({state.interviewer_turns} interviewer turns, p90 {p90:.0f})")
    elif p50 and state.interviewer_turns < 0.5 * p50:
        bump(Move.WRAP_UP, -2.0, "")

    return score


def _apply_controls(score: dict[Move, float], reasons: list[str], controls: Controls) -> None:
    """The per-interviewer controls, at full strength: they are explicit requests."""
    if controls.challenge_level is not None:
        delta = controls.challenge_level - 0.5
        _bump(score, reasons, Move.PROBE_DEEPER, 2.5 * delta,
              f"challengeLevel {controls.challenge_level:.2f}" if abs(delta) > 0.05 else "")
        _bump(score, reasons, Move.GIVE_HINT, -1.0 * delta, "")
    if controls.coaching_ratio is not None:
        delta = controls.coaching_ratio - 0.5
        _bump(score, reasons, Move.GIVE_HINT, 3.0 * delta,
              f"coachingRatio {controls.coaching_ratio:.2f}" if abs(delta) > 0.05 else "")
    if controls.tone_kind == "warm":
        _bump(score, reasons, Move.GIVE_HINT, 0.3, "warm tone")
        _bump(score, reasons, Move.PROBE_DEEPER, -0.2, "")
    elif controls.tone_kind == "firm":
        _bump(score, reasons, Move.PROBE_DEEPER, 0.3, "firm tone")
        _bump(score, reasons, Move.GIVE_HINT, -0.3, "")


def decide_next_move(
    history: Sequence[Turn | dict[str, Any]],
    candidate_turn: Turn | str | None,
    stats: PolicyStats | None = None,
    controls: Controls | None = None,
    seed: int | None = None,
    temperature: float = 0.0,
    similarity: Callable[[str, str], float] | None = None,
    heuristic_weight: float | None = None,
    move_probs: Mapping[Move | str, float] | None = None,
) -> PolicyDecision:
    """Build ``ConversationState`` and ``CandidateModel`` from the history, then ``decide``.

    ``move_probs`` is a move model's prediction for this turn (``MoveModel.predict_proba``);
    when given it is the base the controls steer, instead of the learned rates and heuristics.
    """
    state = ConversationState.from_history(history, candidate_turn, similarity=similarity)
    candidate = CandidateModel.from_history(history, candidate_turn)
    return decide(state, candidate, stats, controls, seed=seed, temperature=temperature,
                  heuristic_weight=heuristic_weight, move_probs=move_probs)


# coachingRatio at or above this counts as an interviewer who coaches rather than presses.
HIGH_COACHING = 0.6


def adjust_for_rubric(
    decision: PolicyDecision, rubric_result: Mapping[str, Any] | None, controls: Controls | None = None,
) -> PolicyDecision:
    """Revise a decision with a rubric check of the candidate's answer (``tools.rubric.rubric_check``).

    A weak answer is not followed up but probed (or hinted at, when ``controls`` coach at
    ``HIGH_COACHING`` or more); a strong answer is not followed up or probed but left, by moving
    on or shifting topic, whichever the decision scored higher. Anything else, or a result
    without a verdict, returns the decision unchanged. The input decision is not modified.
    """
    verdict = (rubric_result or {}).get("verdict")
    new: Move | None = None
    if verdict == "weak" and decision.move == Move.ASK_FOLLOWUP:
        coaching = controls.coaching_ratio if controls is not None else None
        new = Move.GIVE_HINT if coaching is not None and coaching >= HIGH_COACHING else Move.PROBE_DEEPER
    elif verdict == "strong" and decision.move in (Move.ASK_FOLLOWUP, Move.PROBE_DEEPER):
        # Ties go to move_on: it closes the answer without presuming what comes next.
        new = max((Move.MOVE_ON, Move.SHIFT_TOPIC), key=lambda m: decision.scores.get(m.value, 0.0))
    if new is None:
        return decision
    score = (rubric_result or {}).get("score")
    why = f"rubric: {verdict} answer" + (f" (score {float(score):.2f})" if score is not None else "")
    return _revised(decision, new, why)


def _revised(decision: PolicyDecision, new: Move, why: str) -> PolicyDecision:
    """``decision`` turned to ``new``: the two moves trade probabilities, so what selection reads (the
    scores, through each line's move) says what the revision says; a relabelled move alone never reached
    the line."""
    old = decision.move
    scores = dict(decision.scores)
    scores[old.value], scores[new.value] = scores.get(new.value, 0.0), scores.get(old.value, decision.confidence)
    return decision.model_copy(update={
        "move": new,
        "confidence": scores[new.value],
        "scores": scores,
        "reasons": [*decision.reasons, f"{why}: {old.value} -> {new.value}"],
    })


def redirect_from(decision: PolicyDecision, why: str) -> PolicyDecision:
    """Turn a decision away from the candidate's last turn (an attack the input check caught): move on,
    or shift topic when the decision scored that higher. Following up or probing would take the bait."""
    if decision.move in (Move.MOVE_ON, Move.SHIFT_TOPIC, Move.WRAP_UP):
        return decision.model_copy(update={"reasons": [*decision.reasons, f"{why}: kept {decision.move.value}"]})
    new = max((Move.MOVE_ON, Move.SHIFT_TOPIC), key=lambda m: decision.scores.get(m.value, 0.0))
    return _revised(decision, new, why)
