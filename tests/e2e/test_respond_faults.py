"""Faults on the respond path: a twin agent that stops answers 504 within the deadline, then recovers."""

import time

import httpx
import pytest
from tests.credentials import auth_headers

pytestmark = pytest.mark.e2e


def test_stopped_twin_agent_gives_504_within_deadline_then_recovers(plain_twin_app, sample_tenant):
    # The shared app: its worker is killed here and started again before the test returns.
    app = plain_twin_app
    body = {"interviewerId": "dana", "sessionId": "s-fault", "candidateTurn": "I used a queue between them.",
            "history": [{"role": "interviewer", "text": "Why a queue?"}], "timeoutMs": 10_000}
    headers = auth_headers(sample_tenant)
    assert httpx.post(f"{app.url}/api/digital-twin/respond", json=body, headers=headers, timeout=30).status_code == 200
    body["timeoutMs"] = 1500

    app.worker.kill()  # SIGKILL mid-life, as a crash would
    try:
        started = time.monotonic()
        resp = httpx.post(f"{app.url}/api/digital-twin/respond", json=body, headers=headers, timeout=30)
        elapsed = time.monotonic() - started
    finally:
        app.worker.start()  # the same worker comes back; the expired request is skipped, new ones answered
    assert resp.status_code == 504, resp.text
    assert resp.json()["error"]["code"] == "deadline_exceeded"
    assert elapsed < 1.5 + 1.0, f"answered after {elapsed:.2f}s; the deadline was 1.5s"

    # The group reassigns the dead member's partitions after WORKER_SESSION_TIMEOUT_S (10 s).
    body["timeoutMs"] = 5_000
    recovered_after = None
    started = time.monotonic()
    while time.monotonic() - started < 60:
        resp = httpx.post(f"{app.url}/api/digital-twin/respond", json=body, headers=headers, timeout=30)
        if resp.status_code == 200:
            recovered_after = time.monotonic() - started
            break
        assert resp.status_code == 504, resp.text  # nothing but "not yet" while recovering
    assert recovered_after is not None, "the restarted worker never answered"
    ready = httpx.get(f"{app.url}/readyz").json()
    assert ready["ready"] is True
