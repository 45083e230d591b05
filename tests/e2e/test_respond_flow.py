"""POST /api/digital-twin/respond through the real stack: gateway → Kafka → twin agent → safety agent → reply topic."""

import time
import uuid

import httpx
import pytest

from processors.twin.corpus import Transcript, Turn
from tests.credentials import auth_headers

pytestmark = pytest.mark.e2e

MOVES = {"open", "ask_followup", "probe_deeper", "give_hint", "shift_topic", "move_on", "wrap_up"}


@pytest.fixture(scope="module")
def offline_app(plain_twin_app):
    return plain_twin_app


def _respond(app, tenant, **body):
    payload = {"interviewerId": "dana", "sessionId": "s-e2e", "history": [], "candidateTurn": "", **body}
    return httpx.post(f"{app.url}/api/digital-twin/respond", json=payload, headers=auth_headers(tenant), timeout=30)


def test_reply_comes_from_the_interviewers_own_lines(offline_app, sample_tenant):
    resp = _respond(offline_app, sample_tenant,
                    history=[{"role": "interviewer", "text": "Tell me about a system you built."}],
                    candidateTurn="I built a billing pipeline that charges customers monthly from a cron job.")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["text"].strip() and body["generator"] == "offline"
    assert body["functionCalls"][0]["name"] in MOVES
    steps = [s["name"] for s in body["traces"]["steps"]]
    # Every step of the engine, in order (the sample interviewer is trained with the learned models).
    assert [x for x in steps if not x.startswith("tool.")][:9] == [
        "profile", "input_check", "session", "retrieve", "policy", "select", "generate", "ground", "prosody"]
    assert len(body["traces"]["traceId"]) == 32
    generate = next(s for s in body["traces"]["steps"] if s["name"] == "generate")
    assert generate["detail"]["exemplar"].startswith("dana-"), "the reply is built from one of dana's sessions"
    assert body["safety"] == {"passed": True, "action": "none", "flags": []}
    assert body["prosody"]["pace"] in {"slow", "normal", "fast"} and body["prosody"]["intonation"]
    assert 0 < body["latencyMs"] < 30_000


def test_code_in_the_candidate_turn_runs_in_the_sandbox(offline_app, sample_tenant):
    code = "```python\nprint(sum(i * i for i in range(5)))\n```"
    resp = _respond(offline_app, sample_tenant, history=[{"role": "interviewer", "text": "Write it."}],
                    candidateTurn=code)
    assert resp.status_code == 200, resp.text
    calls = {c["name"]: c for c in resp.json()["functionCalls"]}
    assert calls["run_code"]["args"]["result"]["status"] == "ok"
    assert calls["run_code"]["args"]["result"]["stdout"].strip() == "30"
    assert any(s["name"] == "tool.run_code" for s in resp.json()["traces"]["steps"])


def test_an_interviewers_unsafe_lines_never_reach_the_reply(offline_app, cfg):
    # An interviewer whose follow-ups ask prohibited questions: the engine skips those lines (the
    # next candidate, or the interviewer's own safe frame), so the safety agent has nothing to replace.
    from tests.conftest import train_sample

    tenant = f"t-{uuid.uuid4().hex[:8]}"
    sessions = [Transcript(interviewer_id="rogue", session_id=f"rogue-{i}", turns=[
        Turn(role="interviewer", text="Welcome. Tell me about your last project."),
        Turn(role="candidate", text="I built a search service for product listings."),
        Turn(role="interviewer", text="Nice. So how old are you, and are you married?"),
        Turn(role="candidate", text="I would rather not say."),
        Turn(role="interviewer", text="How old are you though? Do you have kids?"),
    ]) for i in range(4)]
    train_sample(cfg, tenant, "rogue", sessions)
    resp = _respond(offline_app, tenant, interviewerId="rogue",
                    history=[{"role": "interviewer", "text": "Welcome. Tell me about your last project."}],
                    candidateTurn="I built a search service for product listings.")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    text = body["text"].lower()
    assert text.strip() and "old are you" not in text and "married" not in text and "kids" not in text
    generate = next(s for s in body["traces"]["steps"] if s["name"] == "generate")
    assert generate["detail"].get("refused_lines", 0) >= 1 or generate["detail"].get("empty_reply_replaced")
    assert body["safety"] == {"passed": True, "action": "none", "flags": []}


@pytest.mark.parametrize("body, status, code", [
    ({"interviewerId": "nobody-trained"}, 404, "unknown_interviewer"),
    ({"history": [], "candidateTurn": "  "}, 422, "validation_failed"),
    ({"history": [{"role": "candidate", "text": "é" * 8000}] * 17}, 422, "history_too_large"),
    ({"controls": {"challengeLevel": 2}}, 422, "validation_failed"),
    ({"controls": {"verbosity": "chatty"}}, 422, "validation_failed"),
    ({"history": [{"role": "moderator", "text": "x"}]}, 422, "validation_failed"),
    ({"temperature": -1}, 422, "validation_failed"),
], ids=["unknown-interviewer", "empty-history-and-turn", "oversized-history", "challenge-out-of-range",
        "bad-verbosity", "bad-role", "negative-temperature"])
def test_bad_input_is_rejected_with_a_clear_body(offline_app, sample_tenant, body, status, code):
    payload = {"candidateTurn": "I used a queue.", **body}
    resp = _respond(offline_app, sample_tenant, **payload)
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code and err["message"]


def test_malformed_json_is_a_400(offline_app, sample_tenant):
    resp = httpx.post(f"{offline_app.url}/api/digital-twin/respond", content=b"{not json",
                      headers={**auth_headers(sample_tenant), "content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "malformed_json"


def test_other_tenants_cannot_reach_the_twin(offline_app, sample_tenant):
    resp = _respond(offline_app, f"other-{sample_tenant}", candidateTurn="Hello")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "unknown_interviewer"


async def test_a_late_reply_is_dropped_and_counted(offline_app, cfg):
    from infra.clients import kafka_producer
    from schemas.codec import encode_model
    from schemas.samples import sample

    before = httpx.get(f"{offline_app.url}/readyz").json()["lateReplies"]
    reply = sample("TwinReply").model_copy(update={"correlationId": str(uuid.uuid4())})
    producer = kafka_producer(cfg)
    await producer.start()
    await producer.send_and_wait(f"{offline_app.prefix}twin.replies", encode_model(reply), key=b"x")
    await producer.stop()
    deadline = time.monotonic() + 10
    while httpx.get(f"{offline_app.url}/readyz").json()["lateReplies"] == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert httpx.get(f"{offline_app.url}/readyz").json()["lateReplies"] == before + 1


def test_a_warm_worker_never_loaded_torch(offline_app, sample_tenant):
    """MiniLM runs in ONNX Runtime and Presidio is imported without its optional deep-learning stack:
    torch and transformers, 15-20 s of each worker's start-up, stay out of a worker that has answered
    and redacted (torch's shared library is never mapped into it)."""
    assert _respond(offline_app, sample_tenant, candidateTurn="I'm Maria, maria@example.com.").status_code == 200
    worker = offline_app.worker
    deadline = time.monotonic() + 60
    while "pii redactor warm" not in worker.log_tail(10**7):
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)
    maps = open(f"/proc/{worker.proc.pid}/maps").read()
    assert "onnxruntime" in maps  # the check sees libraries the worker loaded
    assert "libtorch" not in maps


def test_the_worker_s_leader_topic_exists_before_it_joins(offline_app):
    """Every topic a worker subscribes to exists before it starts: the catalogue's, and Faust's leader
    topic, which the worker creates first. Auto-created by the broker on first request instead, it
    could appear after the group formed, and such a worker fetched nothing for five minutes."""
    log = offline_app.worker.log_tail(10**7)
    assert "-__assignor-__leader" in log.split("Final Subscription", 1)[1]  # subscribed to it ...
    assert "not found in cluster metadata" not in log  # ... and it was there
