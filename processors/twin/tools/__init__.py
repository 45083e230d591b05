"""Tools the twin can call while answering (spec §7 step 5): rubric check, fact retrieval, code runner.

Each tool is a plain function returning a ``ToolResult``; ``TOOL_SCHEMAS`` describes them as OpenAI
function-calling tools so the LLM path can call the same functions the offline path calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from processors.twin.tools.facts import CLARIFY_RE

__all__ = ["ToolResult", "TOOL_SCHEMAS", "CODE_RE", "RUBRIC_MIN_WORDS", "tool_for"]

CODE_RE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
# A turn that ends with a question, or asks anywhere to clarify, calls for the interviewer's notes.
_FACT_QUESTION_RE = re.compile(r"\?\s*$|" + CLARIFY_RE.pattern, re.IGNORECASE)
# An answer shorter than this is not graded: a few words say too little for a verdict.
RUBRIC_MIN_WORDS = 15
# The moves after which an answer is graded. A verdict revises some of them (``policy.adjust_for_rubric``: a weak
# answer turns a follow-up into a probe, a strong one a follow-up or probe into moving on); a hint's grade is traced.
_GRADED_MOVES = ("ask_followup", "probe_deeper", "give_hint")


def tool_for(move: str, candidate_turn: str, rubric: bool = True) -> str | None:
    """Which tool the situation calls for, if any (the same rule for both generators and for training's
    check of whether rubric verdicts fit an interviewer).

    :param move: the decided move (``Move.value``).
    :param rubric: whether a rubric applies to this interviewer at all (else no rubric check).
    """
    if CODE_RE.search(candidate_turn or ""):
        return "run_code"
    if candidate_turn and _FACT_QUESTION_RE.search(candidate_turn.strip()):
        return "fact_lookup"
    # A follow-up too: the verdict may turn it into a probe (weak answer) or a move on (strong one).
    if rubric and move in _GRADED_MOVES and len((candidate_turn or "").split()) >= RUBRIC_MIN_WORDS:
        return "rubric_check"
    return None


@dataclass
class ToolResult:
    """What a tool returned, for the reply's ``traces`` and ``functionCalls``."""

    name: str
    args: dict[str, Any]
    result: dict[str, Any]
    ms: float = 0.0
    ok: bool = True
    notes: list[str] = field(default_factory=list)


TOOL_SCHEMAS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "rubric_check",
        "description": "Score the candidate's latest answer against the rubric of the current question.",
        "parameters": {"type": "object", "properties": {
            "answer": {"type": "string", "description": "The candidate's answer to score."},
            "question": {"type": "string", "description": "The question being answered."}},
            "required": ["answer"]}}},
    {"type": "function", "function": {
        "name": "fact_lookup",
        "description": "Look up the interviewer's notes and domain knowledge relevant to a query.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "run_code",
        "description": "Run a Python snippet from the candidate in a sandbox and return its output.",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}},
]
