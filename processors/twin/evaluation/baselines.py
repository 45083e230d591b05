"""The simple systems every twin must beat, answered for the same test turns as the twin.

Each is what a lazy or cheating twin could do, so each exposes one way a metric can be fooled:

* ``previous_line`` – repeat this interviewer's previous line in this session (the strongest
  simple baseline on argument-style data: a justice keeps pressing the same point);
* ``echo`` – the candidate's last sentence turned back into a question (parroting);
* ``retrieval`` – the reply of the nearest train moment (``situation_text`` embeddings, the same
  query the twin's memory uses), verbatim: no policy, no editing;
* ``medoid`` – the interviewer's most typical line, always (bland: wins match rates against
  random distractors, loses indistinguishability and scores exactly 0.5 on rank-same);
* ``random_same_interviewer`` – a random train line of this interviewer (chance);
* ``other_interviewer`` – retrieval over *another* real interviewer's train moments (a
  persona-less twin). On a one-interviewer corpus they come from another corpus (real
  transcripts, never synthetic sample lines).

A baseline that has nothing to go on (no previous line yet, no candidate turn) says the medoid
line, so every system answers every turn. Usage::

    systems = BaselineSystems.fit(embedder, train_sessions, other_train_sessions, seed=0)
    replies = systems.answer_all(moments)   # {"previous_line": [...], "echo": [...], ...}
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from processors.twin.corpus import Exchange, Transcript, exchanges
from processors.twin.memory import situation_text
from processors.twin.text import sentences

__all__ = ["BASELINES", "BaselineSystems", "Moment", "echo_question"]

BASELINES: tuple[str, ...] = ("previous_line", "echo", "retrieval", "medoid", "random_same_interviewer",
                              "other_interviewer")
MAX_POOL = 4000  # train moments searched per system (a sample when there are more)


@dataclass(frozen=True)
class Moment:
    """A test turn as every system sees it: the session so far and the candidate's turn."""

    session_id: str
    history: tuple[tuple[str, str], ...]  # (role, text), oldest first
    candidate_turn: str

    @property
    def previous_line(self) -> str:
        for role, text in reversed(self.history):
            if role == "interviewer":
                return text
        return ""


_SWAPS = {"i": "you", "me": "you", "my": "your", "mine": "yours", "we": "you", "us": "you", "our": "your",
          "ours": "yours", "am": "are", "i'm": "you're", "i've": "you've", "i'd": "you'd", "i'll": "you'll",
          "we're": "you're", "we've": "you've", "myself": "yourself", "ourselves": "yourselves"}
_WORD = re.compile(r"[A-Za-z']+")


def echo_question(candidate_turn: str) -> str:
    """The candidate's last sentence as a question, in the second person ("So you X?")."""
    parts = [s for s in sentences(candidate_turn) if s.strip()]
    if not parts:
        return ""
    last = parts[-1].strip().rstrip(".!?;:,- ")
    swapped = _WORD.sub(lambda m: _SWAPS.get(m.group(0).lower(), m.group(0)), last)
    if swapped and swapped[0].isupper() and not swapped.startswith(("I ", "You ")):
        swapped = swapped[0].lower() + swapped[1:]
    return f"So {swapped}?" if swapped else ""


def _pool(sessions: Sequence[Transcript], rng: random.Random) -> list[Exchange]:
    pool = [ex for s in sessions for ex in exchanges(s)]
    if len(pool) > MAX_POOL:
        pool = rng.sample(pool, MAX_POOL)
    return pool


def _situation(ex: Exchange) -> str:
    return situation_text(ex.context_turns, ex.candidate_turn.text if ex.candidate_turn else "")


@dataclass
class BaselineSystems:
    """The six baselines of one interviewer, fitted on the train split only."""

    embedder: object
    own_lines: list[str]
    medoid_line: str
    own_pool: list[Exchange]
    own_vectors: np.ndarray
    other_pool: list[Exchange]
    other_vectors: np.ndarray
    seed: int

    @classmethod
    def fit(cls, embedder, train: Sequence[Transcript], others: Sequence[Transcript], *, seed: int = 0
            ) -> "BaselineSystems":
        """``train``: this interviewer's train sessions; ``others``: another interviewer's sessions."""
        rng = random.Random(f"{seed}:baselines")  # nosec B311  # seeded for reproducible baselines, not secrets
        own_lines = [t.text for s in train for t in s.turns if t.role == "interviewer"]
        if not own_lines:
            raise ValueError("the train split has no interviewer line")
        sample = own_lines if len(own_lines) <= MAX_POOL else rng.sample(own_lines, MAX_POOL)
        vecs = embedder.embed(sample)
        # The medoid maximises the summed cosine to every line: v_i · Σ v_j, exact for unit vectors.
        medoid = sample[int(np.argmax(vecs @ vecs.sum(axis=0)))]
        own_pool, other_pool = _pool(train, rng), _pool(others, rng)
        own_vectors = embedder.embed([_situation(e) for e in own_pool])
        other_vectors = embedder.embed([_situation(e) for e in other_pool]) if other_pool else np.zeros((0, 1))
        return cls(embedder, own_lines, medoid, own_pool, own_vectors, other_pool, other_vectors, seed)

    def answer_all(self, moments: Sequence[Moment], key: str = "") -> dict[str, list[str]]:
        """Every baseline's reply to every moment (``key`` varies the random baseline's draws)."""
        out: dict[str, list[str]] = {name: [] for name in BASELINES}
        if not moments:
            return out
        queries = self.embedder.embed([situation_text([{"role": r, "text": t} for r, t in m.history],
                                                      m.candidate_turn) for m in moments])
        own_best = (queries @ self.own_vectors.T).argmax(axis=1)
        other_best = (queries @ self.other_vectors.T).argmax(axis=1) if self.other_pool else None
        rng = random.Random(f"{self.seed}:random:{key}")  # nosec B311  # seeded for reproducible baselines
        for i, m in enumerate(moments):
            out["previous_line"].append(m.previous_line or self.medoid_line)
            out["echo"].append(echo_question(m.candidate_turn) or self.medoid_line)
            out["retrieval"].append(self.own_pool[int(own_best[i])].interviewer_reply.text)
            out["medoid"].append(self.medoid_line)
            out["random_same_interviewer"].append(rng.choice(self.own_lines))
            out["other_interviewer"].append(self.other_pool[int(other_best[i])].interviewer_reply.text
                                            if other_best is not None else "")
        return out
