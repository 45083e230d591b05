"""The session so far, for the twin: the stored transcript's earlier turns in front of the sent window.

A client of ``POST /api/digital-twin/respond`` may send only its most recent turns (the request is
bounded by bytes, ``RESPOND_MAX_BYTES``). The capture pipeline has already stored the session's
dialogue: turn events streamed as telemetry are PII-redacted and written to the ``turns`` table
(encrypted, ``infra.crypto.TURNS_TEXT``) by the telemetry storage agent. The twin agent reads them
with :class:`SessionTranscripts` and :func:`merge_history` builds the history the engine answers:

- the window is found in the stored turns by role and text, in order (a stored text the redactor
  changed matches the sent text it came from: each ``<ENTITY>`` stands for the words it replaced;
  a stored text dropped as oversized matches any turn of its role);
- the stored turns before that point go in front of the window; the window wins where they overlap,
  and stored turns after it (the candidate's turn, already captured) are not used;
- when the window is not found (the transcript lags behind, or the session was not captured), the
  stored turns all go in front of it; when no window is sent, the stored turns are the history, less
  the candidate's turn if it was already captured;
- the result is capped by the same byte budget as the request, keeping the most recent turns.

The merged history is complete up to the budget; the engine's steps use its recent part.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.db import ThreadConnections
from schemas.models import TwinRequest
from schemas.respond_limits import recent_within, text_bytes, texts_bytes

__all__ = ["MergedHistory", "SessionTranscripts", "merge_history", "session_history", "window_start"]

log = logging.getLogger(__name__)

Turn = dict[str, str]  # {"role": "candidate" | "interviewer", "text": ...}, as the engine takes turns

# What the redactor puts in place of an entity (processors/pii/engine.py): "<PERSON>", "<REDACTED>".
_PLACEHOLDER_RE = re.compile(r"<[A-Z][A-Z_]*>")
_SPACES_RE = re.compile(r"\s+")
# The twin speaks as the interviewer: its captured turns are the interviewer's in a history.
_HISTORY_ROLE = {"candidate": "candidate", "interviewer": "interviewer", "twin": "interviewer"}
# Bounds the turn-by-turn checks of candidate starts in a pathological transcript (thousands of identical
# short turns); an ordinary one checks one start, the window's length.
MAX_COMPARISONS = 200_000


def _norm(text: str) -> str:
    return _SPACES_RE.sub(" ", text).strip().casefold()


class _StoredKey:
    """How a stored turn is compared with a sent one: exactly (normalised), as a pattern where the
    redactor replaced entities, or as a wildcard of its role when its text was dropped."""

    __slots__ = ("role", "text", "pieces", "_pattern")

    def __init__(self, turn: Turn):
        self.role = turn["role"]
        raw = _SPACES_RE.sub(" ", turn["text"]).strip()
        self.text = raw.casefold()
        # The literal stretches between placeholders; empty when the redactor changed nothing.
        self.pieces = [p.casefold() for p in _PLACEHOLDER_RE.split(raw)] if "<" in raw else []
        if len(self.pieces) < 2:
            self.pieces = []
        self._pattern: re.Pattern[str] | None = None

    def _fits(self, sent: str, search: bool) -> bool:
        if not self.pieces:
            return (self.text in sent) if search else self.text == sent
        if any(p not in sent for p in self.pieces):  # cheap refusal before the regex
            return False
        if self._pattern is None:  # compiled on first use: most stored turns are never compared twice
            self._pattern = re.compile("(.+?)".join(re.escape(p) for p in self.pieces))
        return bool(self._pattern.search(sent) if search else self._pattern.fullmatch(sent))

    def matches(self, role: str, sent: str) -> bool:
        """Whether this stored turn is the sent turn (``sent`` normalised)."""
        if role != self.role:
            return False
        return not self.text or self._fits(sent, search=False)

    def within(self, sent: str) -> bool:
        """Whether this stored text is part of ``sent`` (normalised): a fragment of the candidate's turn."""
        return bool(self.text) and self._fits(sent, search=True)


def window_start(stored: Sequence[Turn], window: Sequence[Turn]) -> int | None:
    """Where ``window`` begins in ``stored`` (an index into it), or None when it is not there.

    A start ``j`` qualifies when ``stored[j:]`` agrees with the window turn by turn for as long as
    both last: the whole window (stored turns may follow it), or up to the end of ``stored`` (the
    transcript lags behind). The longest agreement wins, then the latest start.
    """
    if not window or not stored:
        return None
    keys = [_StoredKey(t) for t in stored]
    sent = [(t["role"], _norm(t["text"])) for t in window]
    best, best_span, budget = None, 0, MAX_COMPARISONS
    for j in range(len(keys) - 1, -1, -1):
        if not keys[j].matches(*sent[0]):
            continue
        span = min(len(keys) - j, len(sent))
        i = 1
        while i < span and keys[j + i].matches(*sent[i]):
            i += 1
        if i == span and span > best_span:
            best, best_span = j, span
            if span == len(sent):
                break  # the whole window: an earlier start cannot agree on more
        budget -= i
        if budget <= 0:
            break
    return best


def _without_captured_candidate(stored: Sequence[Turn], candidate_turn: str) -> list[Turn]:
    """``stored`` less its trailing candidate turns that are (parts of) ``candidate_turn``."""
    out = list(stored)
    cand = _norm(candidate_turn)
    while cand and out and out[-1]["role"] == "candidate" and _StoredKey(out[-1]).within(cand):
        out.pop()
    return out


@dataclass(frozen=True)
class MergedHistory:
    """The history the engine answers, and how it was made (for the reply's trace)."""

    turns: list[Turn]
    sent: int  # turns in the request's window
    stored: int  # stored turns read
    from_store: int  # stored turns put in front of the window (after the byte cap)
    found: bool | None  # whether the window was found in the stored turns (None: no window was sent)
    text_bytes: int  # bytes of text of ``turns`` plus the candidate's turn

    def detail(self) -> dict[str, Any]:
        """Counts only (no text), for the reply's trace."""
        return {"sent": self.sent, "stored": self.stored, "from_store": self.from_store, "merged": len(self.turns),
                "window_found": self.found, "bytes": self.text_bytes}


def merge_history(stored: Sequence[Turn], window: Sequence[Turn], candidate_turn: str,
                  max_bytes: int) -> MergedHistory:
    """Stored turns that precede ``window``, then ``window``, capped at ``max_bytes`` of text together
    with ``candidate_turn`` (the oldest go first). Turns are ``{"role", "text"}`` dicts, oldest first."""
    window = [{"role": t["role"], "text": t["text"]} for t in window]
    start = window_start(stored, window)
    if window:
        before = list(stored[:start]) if start is not None else list(stored)
    else:
        before = _without_captured_candidate(stored, candidate_turn)
    before = [{"role": t["role"], "text": t["text"]} for t in before if t["text"].strip()]
    kept = recent_within(before + window, max(0, max_bytes - text_bytes(candidate_turn)), lambda t: t["text"])
    return MergedHistory(turns=kept, sent=len(window), stored=len(stored),
                         from_store=max(0, len(kept) - len(window)), found=(start is not None) if window else None,
                         text_bytes=texts_bytes(t["text"] for t in kept) + text_bytes(candidate_turn))


_PAGE = """
SELECT t.role, t.text, t.event_id, t.ts FROM turns t
JOIN sessions s ON s.session_id = t.session_id AND s.tenant = t.tenant
WHERE t.tenant = %(tenant)s AND t.session_id = %(session)s AND s.interviewer_id = %(interviewer)s
  AND s.status <> 'erased' {after}
ORDER BY t.ts DESC, t.event_id DESC LIMIT %(limit)s
"""
_FIRST_PAGE = _PAGE.format(after="")
_NEXT_PAGE = _PAGE.format(after="AND (t.ts, t.event_id) < (%(ts)s, %(event_id)s)")


class SessionTranscripts:
    """Reads sessions' stored dialogue turns from PostgreSQL (one connection per thread, autocommit).

    Only a session of the asking interviewer is read (``sessions.interviewer_id``): a key limited to
    one interviewer cannot bring another's session into a reply by naming its id.
    """

    page_rows = 500

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._pool = ThreadConnections(dsn)

    def _conn(self):
        return self._pool.get()

    def close(self) -> None:
        """Close every thread's connection; the next read opens a new one."""
        self._pool.close()

    def recent(self, tenant: str, interviewer_id: str, session_id: str, max_bytes: int) -> list[Turn]:
        """The session's newest stored turns, oldest first, read back until their texts reach
        ``max_bytes`` (the older ones are not read). Empty when nothing was captured."""
        from infra.crypto import TURNS_TEXT

        conn = self._conn()
        params: dict[str, Any] = {"tenant": tenant, "session": session_id, "interviewer": interviewer_id,
                                  "limit": self.page_rows}
        newest_first: list[Turn] = []
        total = 0
        query = _FIRST_PAGE
        while total < max_bytes:
            rows = conn.execute(query, params).fetchall()
            for role, sealed, event_id, _ in rows:
                text = TURNS_TEXT.open(sealed, tenant, (session_id, event_id))
                newest_first.append({"role": _HISTORY_ROLE.get(role, role), "text": text})
                total += text_bytes(text)
                if total >= max_bytes:
                    break
            if len(rows) < self.page_rows:
                break
            params.update(ts=rows[-1][3], event_id=rows[-1][2])
            query = _NEXT_PAGE
        return newest_first[::-1]


def session_history(request: TwinRequest, transcripts: SessionTranscripts | None, max_bytes: int) -> MergedHistory:
    """The history to answer ``request`` with: its window merged after the session's stored turns.

    The store is read back twice the budget: what precedes the window, plus the part of the
    transcript that overlaps it or follows it. Without a store, or when it cannot be read, the
    window alone is answered (logged): a reply with less context beats no reply.
    """
    window = [{"role": t.role, "text": t.text} for t in request.history]
    stored: list[Turn] = []
    if transcripts is not None:
        try:
            stored = transcripts.recent(request.tenant, request.interviewerId, request.sessionId, 2 * max_bytes)
        except Exception:  # noqa: BLE001 - PostgreSQL or the key ring; the request is answered regardless
            log.warning("stored transcript of session %s unreadable; answering %s with the sent window only",
                        request.sessionId, request.correlationId, exc_info=True)
    return merge_history(stored, window, request.candidateTurn, max_bytes)
