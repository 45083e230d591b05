"""Long sessions through the real stack: gateway → Kafka → twin agent (reading PostgreSQL) → safety agent.

A respond request is bounded by the bytes of its texts (RESPOND_MAX_BYTES), not by its number of
turns, and a client may send only a recent window: the twin agent puts the session's earlier turns,
as the capture pipeline stored them, in front of it. The reply's trace ends with a ``history`` step
saying how many turns were sent, read from the store and answered.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from processors.twin.corpus import read_transcripts
from schemas.models import SessionEvent, TelemetryRedacted, TurnEvent
from schemas.respond_limits import MAX_TURN_CHARS, text_bytes
from tests.conftest import SAMPLE_CORPUS
from tests.credentials import auth_headers

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app(plain_twin_app):
    return plain_twin_app


@pytest.fixture(scope="module")
def dana_turns() -> list[dict[str, str]]:
    """Dana's sample interviews (the interviewer the sample tenant trained) as one long run of turns."""
    parsed = [p.transcript for p in read_transcripts(SAMPLE_CORPUS) if p.ok]
    return [{"role": t.role, "text": t.text} for transcript in parsed for t in transcript.turns if t.text.strip()]


def _respond(app, tenant, **body) -> httpx.Response:
    payload = {"interviewerId": "dana", "sessionId": "s-long", "history": [], "candidateTurn": "", "timeoutMs": 20_000,
               **body}
    return httpx.post(f"{app.url}/api/digital-twin/respond", json=payload, headers=auth_headers(tenant), timeout=60)


def _history_step(body) -> dict:
    return next(s for s in body["traces"]["steps"] if s["name"] == "history")["detail"]


def _session(dana_turns, n: int, words: int = 12) -> list[dict[str, str]]:
    """``n`` short turns cut from dana's interviews, alternating speakers as they do."""
    cycle = itertools.cycle(dana_turns)
    return [{"role": t["role"], "text": " ".join(t["text"].split()[:words])} for t in itertools.islice(cycle, n)]


def test_the_500th_turn_is_answered_like_the_5th(app, sample_tenant, dana_turns):
    session = _session(dana_turns, 501)
    early = _respond(app, sample_tenant, sessionId="s-long-5", history=session[:4], candidateTurn=session[4]["text"])
    late = _respond(app, sample_tenant, sessionId="s-long-500", history=session[:499],
                    candidateTurn=session[499]["text"])
    for resp in (early, late):
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["text"].strip() and body["generator"] == "offline"
        names = [s["name"] for s in body["traces"]["steps"]]
        assert [x for x in names if x in ("profile", "retrieve", "policy", "generate")] == [
            "profile", "retrieve", "policy", "generate"]
    detail = _history_step(late.json())
    assert (detail["sent"], detail["merged"], detail["from_store"]) == (499, 499, 0), "all 499 turns answered"
    assert _history_step(early.json())["merged"] == 4


def test_over_the_byte_budget_is_a_422_naming_limit_and_size(app, sample_tenant, cfg):
    # Bytes, not characters: 33 turns of 4000 "é" are 132000 characters but 264000 bytes.
    history = [{"role": "candidate" if i % 2 else "interviewer", "text": "é" * 4_000} for i in range(33)]
    resp = _respond(app, sample_tenant, history=history, candidateTurn="And then?")
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    size = 33 * 8_000 + len("And then?")
    assert err["code"] == "history_too_large"
    assert err["details"] == [{"loc": ["body", "history"], "rule": "max_text_bytes", "limit": cfg.RESPOND_MAX_BYTES,
                               "actual": size}]
    assert str(cfg.RESPOND_MAX_BYTES) in err["message"] and str(size) in err["message"]
    # One turn over the per-turn character limit is still refused on its own.
    resp = _respond(app, sample_tenant, history=[{"role": "candidate", "text": "x" * (MAX_TURN_CHARS + 1)}],
                    candidateTurn="ok")
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "validation_failed"


def test_exactly_the_byte_budget_is_answered(app, sample_tenant, dana_turns, cfg):
    text = " ".join(itertools.islice(itertools.cycle(" ".join(t["text"] for t in dana_turns).split()), 2_000))
    turn = text[:MAX_TURN_CHARS].rstrip()
    n = -(-(cfg.RESPOND_MAX_BYTES - MAX_TURN_CHARS) // text_bytes(turn))  # leaves at most one turn's worth
    history = [{"role": "candidate" if i % 2 else "interviewer", "text": turn} for i in range(n)]
    rest = cfg.RESPOND_MAX_BYTES - n * text_bytes(turn)
    candidate = ("I used a queue and " * 1_000)[:rest]
    assert text_bytes(candidate) == rest and len(candidate) <= MAX_TURN_CHARS
    resp = _respond(app, sample_tenant, history=history, candidateTurn=candidate)
    assert resp.status_code == 200, resp.text
    assert _history_step(resp.json())["bytes"] == cfg.RESPOND_MAX_BYTES


async def test_a_window_is_answered_with_the_stored_session_before_it(app, sample_tenant, cfg, dana_turns):
    """The capture pipeline stored 60 turns of the session (as its storage agent writes them); the client
    sends the last 10 and the candidate's new turn."""
    from infra.clients import pg_pool
    from sinks.postgres import PostgresSink

    sid = f"s-window-{sample_tenant}"
    session = _session(dana_turns, 61, words=20)
    t0 = datetime(2025, 3, 4, 10, tzinfo=timezone.utc)
    sink = PostgresSink(pg_pool(cfg, max_size=2))
    await sink.setup()
    try:
        await sink.write_sessions([SessionEvent(eventId=f"{sid}:created", kind="created", tenant=sample_tenant,
                                                sessionId=sid, interviewerId="dana", consentRecording=True,
                                                consentTraining=False, ts=t0)])
        await sink.write([TelemetryRedacted(eventId=f"{sid}-b", tenant=sample_tenant, interviewSessionId=sid, events=[
            TurnEvent(eventId=f"e{i:03d}", ts=(t0 + timedelta(seconds=15 * i)).isoformat(), sessionId=sid,
                      role=t["role"], text=t["text"]) for i, t in enumerate(session[:60])])])
    finally:
        await sink.close()
    resp = _respond(app, sample_tenant, sessionId=sid, history=session[50:60], candidateTurn=session[60]["text"])
    assert resp.status_code == 200, resp.text
    detail = _history_step(resp.json())
    assert detail["bytes"] == sum(text_bytes(t["text"]) for t in session)
    assert {k: v for k, v in detail.items() if k != "bytes"} == {
        "sent": 10, "stored": 60, "from_store": 50, "merged": 60, "window_found": True}
    # The same window for a session nothing was captured of is answered from the window alone.
    alone = _respond(app, sample_tenant, sessionId=f"{sid}-uncaptured", history=session[50:60],
                     candidateTurn=session[60]["text"])
    assert alone.status_code == 200 and _history_step(alone.json())["merged"] == 10
