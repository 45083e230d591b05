"""A configuration change through the admin API reaches a RUNNING worker on its next request, no restart:
gateway → Kafka → twin agent (tools flag, controls) → safety agent (prohibited topics)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.credentials import auth_headers

pytestmark = pytest.mark.e2e

CODE = "```python\nprint(sum(i * i for i in range(5)))\n```"
TURN = "I built a billing pipeline that charges customers monthly from a cron job."
HISTORY = [{"role": "interviewer", "text": "Tell me about a system you built."}]


@pytest.fixture(scope="module")
def config_app(plain_twin_app):
    return plain_twin_app


@pytest.fixture
def admin(config_app, sample_tenant):
    """PATCH dana's layer through the gateway; the layer is removed again afterwards (the tenant is shared)."""
    url = f"{config_app.url}/api/admin/config/interviewers/dana"
    headers = auth_headers(sample_tenant)

    def patch(body: dict) -> dict:
        resp = httpx.patch(url, json=body, headers=headers, timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.json()["live"] is True
        return resp.json()

    yield patch
    httpx.delete(url, headers=headers, timeout=30)


def _respond(app, tenant, turn: str, **body) -> dict:
    resp = httpx.post(f"{app.url}/api/digital-twin/respond", headers=auth_headers(tenant), timeout=30, json={
        "interviewerId": "dana", "sessionId": "s-config", "history": HISTORY, "candidateTurn": turn, **body})
    assert resp.status_code == 200, resp.text
    return resp.json()


def _step(reply: dict, name: str) -> dict:
    return next(s for s in reply["traces"]["steps"] if s["name"] == name)["detail"] or {}


def test_flags_and_prohibited_topics_change_the_next_reply_of_a_running_worker(config_app, sample_tenant, admin):
    before = _respond(config_app, sample_tenant, CODE)
    assert "run_code" in {c["name"] for c in before["functionCalls"]}
    version = _step(before, "profile")["config"]

    admin({"flags": {"tools": False}})
    after = _respond(config_app, sample_tenant, CODE)
    assert "run_code" not in {c["name"] for c in after["functionCalls"]}
    assert not any(s["name"].startswith("tool.") for s in after["traces"]["steps"])
    assert _step(after, "profile")["config"] != version  # the worker read the new configuration

    # A prohibited topic: a word the twin just said. The same request again may not contain it.
    plain = _respond(config_app, sample_tenant, TURN)
    words = [w for w in re.findall(r"[A-Za-z]{5,}", plain["text"])
             if w.lower() not in {"about", "there", "would", "which", "their", "could", "thanks", "think"}]
    assert words, plain["text"]
    topic = max(words, key=len).lower()
    admin({"prohibitedTopics": [topic]})
    avoided = _respond(config_app, sample_tenant, TURN)
    assert not re.search(rf"\b{re.escape(topic)}\b", avoided["text"], re.IGNORECASE), (topic, avoided["text"])
    # Either the twin did not draft it (its lines with the topic were dropped) or the safety agent,
    # which reads the same configuration, replaced the draft.
    replaced = any(f["category"] == "prohibited_topic" for f in avoided["safety"]["flags"])
    assert replaced or _step(avoided, "retrieve").get("prohibited_dropped"), avoided

    admin({"flags": {"tools": None}})  # inherited again: tools back on
    again = _respond(config_app, sample_tenant, CODE)
    assert "run_code" in {c["name"] for c in again["functionCalls"]}


def test_request_controls_win_unless_the_config_locks_them(config_app, sample_tenant, admin):
    admin({"controls": {"verbosity": "terse", "tone": "warm"}})
    free = _respond(config_app, sample_tenant, TURN, controls={"verbosity": "verbose"})
    used = _step(free, "profile")["controls"]
    assert "verbosity=verbose" in used and "tone=warm" in used, used
    admin({"controls": {"locked": ["verbosity"]}})
    pinned = _respond(config_app, sample_tenant, TURN, controls={"verbosity": "verbose"})
    assert "verbosity=terse" in _step(pinned, "profile")["controls"], _step(pinned, "profile")


@pytest.mark.llm
def test_generator_flag_picks_the_offline_twin_over_a_configured_llm(llm_server, sample_tenant, weaviate_client):
    from infra.settings import Settings
    from processors.twin.config import TwinConfig
    from processors.twin.engine import TwinEngine

    engine = TwinEngine.from_settings(Settings(OPENAI_BASE_URL=llm_server.base_url, OPENAI_MODEL="smollm2",
                                               LLM_MAX_TOKENS=16), weaviate_client=weaviate_client)

    def generator() -> str:
        return engine.respond(tenant=sample_tenant, interviewer_id="dana", session_id="s-flag", history=HISTORY,
                              candidate_turn=TURN).generator

    try:
        assert generator() == "llm"
        engine.config.write(sample_tenant, "dana", TwinConfig.model_validate({"flags": {"generator": "offline"}}),
                            actor="pytest")
        assert generator() == "offline"
    finally:
        engine.config.write(sample_tenant, "dana", None, actor="pytest")
        engine.config.close()
    assert generator() == "llm"
