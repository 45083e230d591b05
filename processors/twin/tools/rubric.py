"""Rubric check: how well does the candidate's answer cover what the interviewer looks for?

A rubric is a list of criteria (short phrases). Coverage of a criterion is the best of lexical
overlap (stems) and embedding similarity between the criterion and the answer's sentences; the
score is the mean coverage. The criteria are the interviewer's own (configured, or the rubric documents
their version was trained with); without them ``DEFAULT_RUBRIC``'s generic criteria of a technical answer
apply only where training found their verdicts agree with the interviewer's moves on validation turns
(the engine's ``rubric_of``): for a judge or a podcast host they say little, and no check runs.

Lexical coverage reads the whole answer; embedding reads at most ``SEMANTIC_WORDS`` words of it (whole
sentences from both ends, where an answer states and sums up its point), so a long answer costs no more
than a short one per request.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from processors.twin.text import content_words, sentences, stem

__all__ = ["rubric_check", "DEFAULT_RUBRIC", "SEMANTIC_WORDS", "semantic_part"]

# MiniLM's cost grows with the words embedded: a real advocate's turn of 1,500 words took ~110 ms of a
# respond request's 300 ms budget; 100 words (about five sentences) take ~15 ms.
SEMANTIC_WORDS = 100

# Generic criteria of a technical answer, used when the interviewer has no rubric stored.
DEFAULT_RUBRIC = (
    "explains the approach step by step",
    "states time and space complexity",
    "considers edge cases and failure modes",
    "discusses trade-offs and alternatives",
    "gives a concrete example or test",
)


def _lexical(criterion: str, answer: str) -> float:
    c = {stem(w) for w in content_words(criterion)}
    a = {stem(w) for w in content_words(answer)}
    return len(c & a) / len(c) if c else 0.0


def semantic_part(parts: Sequence[str], budget: int = SEMANTIC_WORDS) -> list[str]:
    """Whole sentences of ``parts`` taken alternately from the start and the end while they fit
    ``budget`` words (the first sentence always), in the answer's order."""
    lengths = [len(p.split()) for p in parts]
    head, tail, used = 0, len(parts), 0
    take_head = True
    while head < tail:
        i = head if take_head else tail - 1
        if used and used + lengths[i] > budget:
            break
        used += lengths[i]
        if take_head:
            head += 1
        else:
            tail -= 1
        take_head = not take_head
    return [*parts[:head], *parts[tail:]]


def rubric_check(answer: str, criteria: Sequence[str] = DEFAULT_RUBRIC, embedder=None) -> dict:
    """Score ``answer`` against ``criteria``: per-criterion coverage, overall score, what is missing."""
    criteria = [c for c in criteria if c.strip()] or list(DEFAULT_RUBRIC)
    parts = sentences(answer) or [answer]
    cover = np.array([_lexical(c, answer) for c in criteria], dtype=float)
    if embedder is not None and answer.strip():
        # The criteria are the same few phrases at every follow-up: embedded once per worker. Apart from
        # them, short phrases no longer pad out to the answer's longest sentence in one batch.
        sims = embedder.embed_cached(list(criteria)) @ embedder.embed(semantic_part(parts)).T
        # Cosine of MiniLM for a sentence that really addresses a criterion is ~0.5+; map 0.2..0.6 → 0..1.
        semantic = np.clip((sims.max(axis=1) - 0.2) / 0.4, 0, 1)
        cover = np.maximum(cover, semantic)
    score = float(cover.mean())
    return {
        "score": round(score, 3),
        "criteria": [{"criterion": c, "coverage": round(float(v), 3)} for c, v in zip(criteria, cover)],
        "missing": [c for c, v in zip(criteria, cover) if v < 0.4],
        "verdict": "strong" if score >= 0.6 else "partial" if score >= 0.3 else "weak",
    }
