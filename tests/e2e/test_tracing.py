"""One respond request → one connected trace across gateway, Kafka, twin agent and safety agent."""

import json
import time

import httpx
import pytest
from tests.credentials import auth_headers

pytestmark = pytest.mark.e2e


def _spans(path, trace_id):
    if not path.exists():
        return []
    spans = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [s for s in spans if s["trace_id"] == trace_id]


def test_respond_yields_one_connected_trace(plain_twin_app, sample_tenant):
    app, trace_file = plain_twin_app, plain_twin_app.trace_file
    resp = httpx.post(f"{app.url}/api/digital-twin/respond", headers=auth_headers(sample_tenant), timeout=30, json={
        "interviewerId": "dana", "sessionId": "s-trace", "candidateTurn": "I split the service with a queue.",
        "history": [{"role": "interviewer", "text": "How did you scale it?"}]})
    assert resp.status_code == 200, resp.text
    trace_id = resp.json()["traces"]["traceId"]
    expected_names = ("gateway.respond", "kafka.produce twin.requests", "agent.response_generation",
                      "twin.retrieve", "twin.policy", "twin.generate", "kafka.produce twin.drafts",
                      "agent.safety_filter", "kafka.produce twin.replies")
    def roots_of(spans):
        ids = {s["span_id"] for s in spans}
        return [s for s in spans if s["parent_id"] is None or s["parent_id"] not in ids]

    deadline = time.monotonic() + 10
    spans = _spans(trace_file, trace_id)
    # Spans are written when they end, and some (the HTTP server span, the safety agent's) end
    # after the response went out: wait until every expected span and every parent has arrived.
    while (not set(expected_names) <= {s["name"] for s in spans} or len(roots_of(spans)) != 1) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
        spans = _spans(trace_file, trace_id)
    names = {s["name"] for s in spans}
    for expected in expected_names:
        assert expected in names, f"{expected} missing from {sorted(names)}"
    assert {s["service"] for s in spans} >= {"twin-gateway", "twin-worker"}
    # Connected: exactly one root, and every other span's parent is in the trace.
    roots = roots_of(spans)
    assert len(roots) == 1 and roots[0]["service"] == "twin-gateway", roots
    assert roots[0]["name"] in ("POST /api/digital-twin/respond", "gateway.respond")
    by_id = {s["span_id"]: s for s in spans}

    def ancestors(span):
        while span["parent_id"] in by_id:
            span = by_id[span["parent_id"]]
            yield span["name"]

    safety = next(s for s in spans if s["name"] == "agent.safety_filter")
    assert {"kafka.produce twin.drafts", "agent.response_generation", "kafka.produce twin.requests",
            "gateway.respond"} <= set(ancestors(safety))
