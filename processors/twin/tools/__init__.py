"""Tools the twin can call while answering (spec §7 step 5): rubric check, fact retrieval, code runner.

Each tool is a plain function returning a ``ToolResult``; ``TOOL_SCHEMAS`` describes them as OpenAI
function-calling tools so the LLM path can call the same functions the offline path calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ToolResult", "TOOL_SCHEMAS"]


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
