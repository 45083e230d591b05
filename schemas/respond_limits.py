"""How big a respond request may be, measured one way for everyone who needs to know.

The gateway refuses a ``POST /api/digital-twin/respond`` whose texts exceed the budget; the twin
agent merges the session's stored transcript in front of the sent window under the same budget;
the evaluation's gateway client sends the most recent window that fits. All three read the limits
here (the byte budget itself is the ``RESPOND_MAX_BYTES`` setting, so an operator can change it in
one place) rather than restating numbers.

The budget is in bytes of text, not in turns: a long session's turn 500 is answered like its turn
5 as long as what is sent fits. Only the texts count (UTF-8): the history's and the candidate's
turn. Dependency-free on purpose, so the gateway imports it without pulling in worker code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

__all__ = ["MAX_TURN_CHARS", "RespondLimits", "recent_within", "text_bytes", "texts_bytes"]

# One turn's text, in characters (a monologue longer than this is cut by the client).
MAX_TURN_CHARS = 8_000

T = TypeVar("T")


class _HasRespondBytes(Protocol):
    RESPOND_MAX_BYTES: int


def text_bytes(text: str) -> int:
    """The UTF-8 size of ``text``, which is what the budget counts."""
    return len(text.encode("utf-8"))


def texts_bytes(texts: Iterable[str]) -> int:
    """The UTF-8 size of all ``texts`` together."""
    return sum(text_bytes(t) for t in texts)


def recent_within(turns: Sequence[T], budget: int, text_of: Callable[[T], str]) -> list[T]:
    """The most recent turns (a suffix of ``turns``, oldest first) whose texts total at most ``budget``
    bytes. Stops at the first turn that does not fit, so what is kept is contiguous."""
    kept = 0
    start = len(turns)
    for i in range(len(turns) - 1, -1, -1):
        size = text_bytes(text_of(turns[i]))
        if kept + size > budget:
            break
        kept += size
        start = i
    return list(turns[start:])


@dataclass(frozen=True)
class RespondLimits:
    """The limits of one respond request: ``max_bytes`` of text in all, ``max_turn_chars`` per turn."""

    max_bytes: int
    max_turn_chars: int = MAX_TURN_CHARS

    @classmethod
    def of(cls, cfg: _HasRespondBytes) -> "RespondLimits":
        """The limits under ``cfg`` (``infra.settings.Settings``)."""
        return cls(max_bytes=int(cfg.RESPOND_MAX_BYTES))

    def request_bytes(self, history_texts: Iterable[str], candidate_turn: str) -> int:
        """What a request with these texts counts against ``max_bytes``."""
        return texts_bytes(history_texts) + text_bytes(candidate_turn)

    def window(self, history: Sequence[Any], candidate_turn: str, text_of: Callable[[Any], str]) -> list[Any]:
        """The most recent turns of ``history`` that fit beside ``candidate_turn`` (each turn as given:
        cut it to ``max_turn_chars`` first)."""
        return recent_within(history, max(0, self.max_bytes - text_bytes(candidate_turn)), text_of)
