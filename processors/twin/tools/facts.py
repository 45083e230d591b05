"""Fact lookup's answer: the sentence of the interviewer's own notes that answers what the candidate asked.

A candidate asks the interviewer things ("Is the limit per API key or global?"); an interviewer with notes
on the exercise answers from them before going on. The notes are the persona documents of kind ``note``
the tenant supplied when training the version (``twin train --docs``); the notes training writes about the
interviewer's own habits (``DERIVED_NOTE_KEYS``: their question frames, their usual moves) describe the twin
to itself and are never said.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from processors.twin.text import ASK_MIN_WORDS, is_question, sentences, words

__all__ = ["CLARIFY_RE", "DERIVED_NOTE_KEYS", "FACT_MIN_SIMILARITY", "FactAnswer", "answer_from_notes",
           "asked_question"]

# The keys of the notes ``training.derive_persona_docs`` writes.
DERIVED_NOTE_KEYS = frozenset({"question_templates", "moves"})

# MiniLM cosine between the candidate's question and a note's sentence from which the note answers it. Set
# by hand on written pairs (no labelled data exists): questions a note answers scored 0.32-0.80 against
# it ("Should I assume a single region?" / "Assume the service runs in three regions ..."), questions it
# does not answer at most 0.25 against any sentence of the same notes.
FACT_MIN_SIMILARITY = 0.3
# A clarification asked without a question mark ("Can you clarify the limits.") still asks.
CLARIFY_RE = re.compile(r"\b(?:can you (?:clarify|explain)|what do you mean|is it ok(?:ay)? (?:if|to))\b",
                         re.IGNORECASE)


@dataclass(frozen=True)
class FactAnswer:
    """The note sentence that answers the question, which note it came from, and how near it is."""

    text: str
    key: str
    similarity: float


def asked_question(candidate_turn: str) -> str | None:
    """The last sentence of the candidate's turn that asks the interviewer something (a question of
    ``ASK_MIN_WORDS`` words or more, or a request to clarify), else None."""
    for s in reversed(sentences(candidate_turn or "")):
        if (is_question(s) and len(words(s)) >= ASK_MIN_WORDS) or CLARIFY_RE.search(s):
            return s
    return None


def answer_from_notes(question: str, notes: Sequence[tuple[str, str]], embedder) -> FactAnswer | None:
    """The sentence of ``notes`` ((key, text) pairs) nearest ``question`` if it is near enough to answer it.

    Sentences, not whole notes: a note covers an exercise, the candidate asked about one thing in it.
    """
    units = [(key, s) for key, text in notes for s in sentences(text) if words(s)]
    if not question or not units:
        return None
    vectors = embedder.embed_cached([question, *(s for _, s in units)])
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = vectors[1:] @ vectors[0]
    best = int(np.argmax(similarity))
    if similarity[best] < FACT_MIN_SIMILARITY:
        return None
    key, text = units[best]
    return FactAnswer(text=text, key=key, similarity=round(float(similarity[best]), 3))
