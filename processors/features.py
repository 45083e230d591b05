"""Telemetry features, one definition for the streaming agent, training and evaluation.

- Turn style (interviewer and twin turns): ``processors.twin.style.extract_style`` — directness,
  warmth, verbosity, question form, follow-up vs new topic, challenge, coaching — with the
  previous candidate turn of the session as context for follow-up.
- Code activity (per session): edit rate per minute, run success rate, time on the current
  question, pauses, counts. Folded event by event in :class:`CodeActivityState`, so the agent
  can carry it across batches while training computes it over a whole session at once
  (:func:`code_activity`) and gets the same numbers.

Definitions:

- *active span*: from the session's first to its latest event timestamp (client ``ts``);
  ``editRatePerMin`` = code edits / max(active span, 1 minute);
- ``runSuccessRate`` = successful runs / runs (0 when nothing ran yet);
- ``timeOnQuestionS`` = latest event ts minus the start of the current question, which is the
  session's first event or the last ``control`` event with ``action="topic_shift"``;
- a *pause* is a gap of at least ``pause_s`` seconds between consecutive IDE events
  (``code_edit`` / ``run``), in timestamp order.

Usage::

    from processors.features import code_activity, style_features
    features = code_activity(events, tenant="acme", session_id="s1")
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from processors.twin.style import StyleVector, extract_style
from schemas.models import CodeActivityFeatures, StyleFeatures, TelemetryRedacted, parse_ts

__all__ = [
    "PAUSE_S",
    "STYLE_ROLES",
    "CodeActivityState",
    "SessionFeatureState",
    "batch_features",
    "code_activity",
    "style_features",
    "turn_style",
]

PAUSE_S = 30.0
STYLE_ROLES = ("interviewer", "twin")  # whose turns get style features (the ones the twin imitates)
_IDE = ("code_edit", "run")


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def turn_style(text: str, previous_candidate_text: str | None = None) -> StyleVector:
    """Style of one interviewer (or twin) turn; the candidate's previous turn informs follow-up."""
    return extract_style(text, previous_candidate_text)


@dataclass
class CodeActivityState:
    """Running code-activity aggregates of one session (JSON-serialisable via ``asdict``)."""

    first_ms: int | None = None
    last_ms: int | None = None
    last_ide_ms: int | None = None
    question_start_ms: int | None = None
    edits: int = 0
    runs: int = 0
    run_successes: int = 0
    pauses: int = 0

    def add(self, event: Any, pause_s: float = PAUSE_S) -> None:
        """Fold one telemetry event (any type) into the aggregates."""
        ts = _ms(parse_ts(event.ts))
        self.first_ms = ts if self.first_ms is None else min(self.first_ms, ts)
        self.last_ms = ts if self.last_ms is None else max(self.last_ms, ts)
        if self.question_start_ms is None:
            self.question_start_ms = ts
        if event.type == "control" and event.action == "topic_shift":
            self.question_start_ms = max(self.question_start_ms, ts)
        if event.type in _IDE:
            if self.last_ide_ms is not None and ts - self.last_ide_ms >= pause_s * 1000:
                self.pauses += 1
            self.last_ide_ms = ts if self.last_ide_ms is None else max(self.last_ide_ms, ts)
            if event.type == "code_edit":
                self.edits += 1
            else:
                self.runs += 1
                self.run_successes += event.status == "success"

    def extend(self, events: Iterable[Any], pause_s: float = PAUSE_S) -> None:
        """Fold events in timestamp order (ties keep their given order)."""
        for event in sorted(events, key=lambda e: parse_ts(e.ts)):
            self.add(event, pause_s)

    def features(self, tenant: str, session_id: str) -> CodeActivityFeatures:
        """The current features (all zero for a session with no events)."""
        last = self.last_ms or 0
        span_min = max(((self.last_ms or 0) - (self.first_ms or 0)) / 60_000, 1.0)
        return CodeActivityFeatures(
            tenant=tenant, sessionId=session_id, windowEnd=_dt(last),
            editRatePerMin=round(self.edits / span_min, 4),
            runSuccessRate=round(self.run_successes / self.runs, 4) if self.runs else 0.0,
            timeOnQuestionS=round(max(0, last - (self.question_start_ms or last)) / 1000, 3),
            pauseCount=self.pauses, edits=self.edits, runs=self.runs,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "CodeActivityState":
        return cls(**(data or {}))


def code_activity(events: Iterable[Any], tenant: str, session_id: str, pause_s: float = PAUSE_S) -> CodeActivityFeatures:
    """Code-activity features of a whole session's events (training and evaluation use this)."""
    state = CodeActivityState()
    state.extend(events, pause_s)
    return state.features(tenant, session_id)


def style_features(events: Sequence[Any], tenant: str, session_id: str, interviewer_id: str | None,
                   previous_candidate_text: str | None = None) -> tuple[list[StyleFeatures], str | None]:
    """Style features of the interviewer/twin turns among ``events`` (in the order given).

    Returns the features and the last candidate text seen, to carry into the next batch.
    """
    out: list[StyleFeatures] = []
    previous = previous_candidate_text
    for event in events:
        if event.type != "turn":
            continue
        if event.role == "candidate":
            previous = event.text
            continue
        if event.role not in STYLE_ROLES:
            continue
        vec = turn_style(event.text, previous)
        out.append(StyleFeatures(
            eventId=event.eventId or event.to_avro()["eventId"], tenant=tenant, sessionId=session_id,
            interviewerId=interviewer_id, role=event.role, directness=vec.directness, warmth=vec.warmth,
            verbosity=vec.verbosity, questionForm=vec.question_form, followUp=vec.follow_up,
            challenge=vec.challenge, coaching=vec.coaching, wordCount=vec.word_count, ts=parse_ts(event.ts),
        ))
    return out, previous


@dataclass
class SessionFeatureState:
    """What the feature agent remembers per session between batches."""

    activity: CodeActivityState
    last_candidate_text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"activity": self.activity.to_dict(), "lastCandidateText": self.last_candidate_text}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "SessionFeatureState":
        data = data or {}
        return cls(CodeActivityState.from_dict(data.get("activity")), data.get("lastCandidateText"))


def batch_features(batch: TelemetryRedacted, state: SessionFeatureState, interviewer_id: str | None,
                   pause_s: float = PAUSE_S) -> tuple[list[StyleFeatures], CodeActivityFeatures | None]:
    """Features of one redacted batch, updating ``state`` in place.

    Code-activity features are emitted only for batches with IDE events (a batch of turns does
    not change them in a way anyone reads).
    """
    session_id, tenant = batch.interviewSessionId, batch.tenant
    styles, state.last_candidate_text = style_features(batch.events, tenant, session_id, interviewer_id,
                                                       state.last_candidate_text)
    state.activity.extend(batch.events, pause_s)
    activity = state.activity.features(tenant, session_id) if any(e.type in _IDE for e in batch.events) else None
    return styles, activity
