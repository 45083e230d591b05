"""Rubric check: how well does the candidate's answer cover what the interviewer looks for?

A rubric is a list of criteria (short phrases). Coverage of a criterion is the best of lexical
overlap (stems) and embedding similarity between the criterion and the answer's sentences; the
score is the mean coverage. Without a stored rubric, the interviewer's own follow-up lines about
the same question stand in as implicit criteria.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from processors.twin.text import content_words, sentences, stem

__all__ = ["rubric_check", "DEFAULT_RUBRIC"]

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


def rubric_check(answer: str, criteria: Sequence[str] = DEFAULT_RUBRIC, embedder=None) -> dict:
    """Score ``answer`` against ``criteria``: per-criterion coverage, overall score, what is missing."""
    criteria = [c for c in criteria if c.strip()] or list(DEFAULT_RUBRIC)
    parts = sentences(answer) or [answer]
    cover = np.array([_lexical(c, answer) for c in criteria], dtype=float)
    if embedder is not None and answer.strip():
        # The criteria are the same few phrases at every follow-up: embedded once per worker. Apart from
        # them, short phrases no longer pad out to the answer's longest sentence in one batch.
        sims = embedder.embed_cached(list(criteria)) @ embedder.embed(parts).T
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
