"""SessionTranscripts: a session's stored turns read back from the real PostgreSQL.

The turns are written the way the telemetry storage agent writes them (``sinks.postgres.PostgresSink``:
encrypted text, one row per turn event) into this run's database; the session row comes from its
lifecycle event. The texts are a real session of the in-repo SCOTUS fixture.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from infra.clients import pg_pool
from processors.twin.session_history import SessionTranscripts, session_history
from schemas.models import HistoryTurn, SessionEvent, TelemetryRedacted, TurnEvent, TwinRequest
from schemas.respond_limits import text_bytes
from sinks.postgres import PostgresSink

T0 = datetime(2025, 3, 4, 10, tzinfo=timezone.utc)


@pytest.fixture
async def sink(cfg, postgres_dsn):
    sink = PostgresSink(pg_pool(cfg, max_size=2))
    await sink.setup()
    yield sink
    await sink.close()


@pytest.fixture
def transcripts(postgres_dsn):
    reader = SessionTranscripts(postgres_dsn)
    yield reader
    reader.close()


@pytest.fixture(scope="module")
def dialogue(scotus) -> list[dict[str, str]]:
    """72 turns of a real session; every fifth interviewer turn spoken by the twin."""
    longest = max(scotus, key=lambda t: len(t.turns))
    turns = [{"role": t.role, "text": t.text} for t in longest.turns if t.text.strip()][:72]
    assert len(turns) == 72
    for i in range(0, 72, 5):
        if turns[i]["role"] == "interviewer":
            turns[i] = {**turns[i], "role": "twin"}
    return turns


async def _capture(sink, tenant: str, sid: str, turns: list[dict[str, str]], interviewer: str = "dana",
                   kind: str = "created") -> None:
    """The session row and its turns, as the capture pipeline stores them (batches of 25, out of order)."""
    await sink.write_sessions([SessionEvent(eventId=f"{sid}:{kind}", kind=kind, tenant=tenant, sessionId=sid,
                                            interviewerId=interviewer, consentRecording=True,
                                            consentTraining=False, ts=T0)])
    events = [TurnEvent(eventId=f"e{i:03d}", ts=(T0 + timedelta(seconds=10 * i)).isoformat(), sessionId=sid,
                        role=t["role"], text=t["text"]) for i, t in enumerate(turns)]
    batches = [events[i:i + 25] for i in range(0, len(events), 25)]
    for n, batch in reversed(list(enumerate(batches))):
        await sink.write([TelemetryRedacted(eventId=f"{sid}-b{n}", tenant=tenant, interviewSessionId=sid,
                                            events=batch)])


def _as_history(turns):
    return [{"role": "interviewer" if t["role"] == "twin" else t["role"], "text": t["text"]} for t in turns]


async def test_reads_the_session_oldest_first_with_the_twin_as_interviewer(sink, transcripts, tenant, dialogue):
    sid = f"{tenant}-s"
    await _capture(sink, tenant, sid, dialogue)
    transcripts.page_rows = 7  # several pages
    got = transcripts.recent(tenant, "dana", sid, max_bytes=1 << 20)
    assert got == _as_history(dialogue), "decrypted, in order, twin turns as the interviewer's"


async def test_reads_back_only_as_far_as_the_budget(sink, transcripts, tenant, dialogue):
    sid = f"{tenant}-s"
    await _capture(sink, tenant, sid, dialogue)
    transcripts.page_rows = 9
    budget = sum(text_bytes(t["text"]) for t in dialogue[-30:])
    got = transcripts.recent(tenant, "dana", sid, max_bytes=budget)
    assert got == _as_history(dialogue[-30:]), "the newest turns that reach the budget, no more"
    assert transcripts.recent(tenant, "dana", sid, max_bytes=budget + 1) == _as_history(dialogue[-31:])


async def test_another_interviewers_or_an_erased_session_reads_nothing(sink, transcripts, tenant, dialogue):
    theirs, erased = f"{tenant}-theirs", f"{tenant}-erased"
    await _capture(sink, tenant, theirs, dialogue[:10], interviewer="someone-else")
    assert transcripts.recent(tenant, "dana", theirs, 1 << 20) == []
    assert transcripts.recent(tenant, "someone-else", theirs, 1 << 20) == _as_history(dialogue[:10])
    assert transcripts.recent(f"{tenant}-other", "someone-else", theirs, 1 << 20) == [], "tenant-scoped"
    await _capture(sink, tenant, erased, dialogue[:10], kind="erased")
    assert transcripts.recent(tenant, "dana", erased, 1 << 20) == []
    assert transcripts.recent(tenant, "dana", f"{tenant}-never-captured", 1 << 20) == []


def _request(tenant: str, sid: str, window, candidate: str) -> TwinRequest:
    return TwinRequest(correlationId=f"{sid}-c", tenant=tenant, interviewerId="dana", sessionId=sid,
                       history=[HistoryTurn(**t) for t in window], candidateTurn=candidate, deadlineMs=1,
                       replyTopic="twin.replies")


async def test_a_window_is_answered_with_the_stored_session_in_front(sink, transcripts, tenant, dialogue):
    sid = f"{tenant}-s"
    await _capture(sink, tenant, sid, dialogue[:71])  # the candidate's current turn (70) is captured too
    full = _as_history(dialogue)
    merged = session_history(_request(tenant, sid, full[60:70], full[70]["text"]), transcripts, 1 << 18)
    assert merged.turns == full[:70]
    assert merged.detail() == {"sent": 10, "stored": 71, "from_store": 60, "merged": 70, "window_found": True,
                               "bytes": sum(text_bytes(t["text"]) for t in full[:71])}


def test_an_unreachable_store_leaves_the_window(tenant, dialogue):
    # Nothing listens on port 1: the reply is made from the window alone rather than failing.
    reader = SessionTranscripts("postgresql://twin:twin@127.0.0.1:1/twin?connect_timeout=2")
    window = _as_history(dialogue[:6])
    merged = session_history(_request(tenant, f"{tenant}-s", window, "Yes."), reader, 1 << 18)
    assert merged.turns == window and merged.stored == 0
