"""Prometheus metrics through the real stack: respond requests, then scrape the gateway's /metrics and
the worker's metrics port and check the series and their exact counts."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import _free_port
from tests.credentials import auth_headers

pytestmark = pytest.mark.e2e

RESPOND_ROUTE = "/api/digital-twin/respond"


class Scrape(dict):
    """``{(sample name, frozenset(labels)): value}`` of one exposition, with small lookups."""

    @classmethod
    def of(cls, url: str) -> "Scrape":
        resp = httpx.get(f"{url}/metrics", timeout=10)
        assert resp.status_code == 200, resp.text
        return cls({(s.name, frozenset(s.labels.items())): s.value
                    for family in text_string_to_metric_families(resp.text) for s in family.samples})

    def get_value(self, name: str, **labels) -> float:
        return self.get((name, frozenset(labels.items())), 0.0)

    def series(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for n, labels in self if n == name]


def _wait(check, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (httpx.HTTPError, AssertionError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def metrics_app(plain_twin_app):
    _wait(lambda: Scrape.of(plain_twin_app.worker_url), what="the worker's metrics endpoint")
    return plain_twin_app


def _respond(app, tenant, interviewer="dana", turn="I built a rate limiter with Redis and a token bucket."):
    return httpx.post(f"{app.url}{RESPOND_ROUTE}", headers=auth_headers(tenant), timeout=30, json={
        "interviewerId": interviewer, "sessionId": f"s-{uuid.uuid4().hex[:6]}",
        "history": [{"role": "interviewer", "text": "Tell me about a system you built."}], "candidateTurn": turn})


def test_respond_path_is_counted_on_gateway_and_worker(metrics_app, sample_tenant):
    gw0, wk0 = Scrape.of(metrics_app.url), Scrape.of(metrics_app.worker_url)
    turns = ["I built a rate limiter with Redis and a token bucket.",
             "```python\nprint(sum(i * i for i in range(5)))\n```",  # runs the code tool
             "We sharded the queue by customer id to keep ordering per customer."]
    bodies = []
    for turn in turns:
        resp = _respond(metrics_app, sample_tenant, turn=turn)
        assert resp.status_code == 200, resp.text
        bodies.append(resp.json())
    assert _respond(metrics_app, sample_tenant, interviewer="nobody-trained").status_code == 404
    n = len(bodies)

    # Gateway: the respond histogram and the per-route request histogram, exactly once per request.
    gw = Scrape.of(metrics_app.url)
    delta = lambda name, **labels: gw.get_value(name, **labels) - gw0.get_value(name, **labels)  # noqa: E731
    assert delta("twin_respond_duration_seconds_count", outcome="ok") == n
    assert delta("twin_respond_duration_seconds_count", outcome="rejected") == 1
    assert delta("twin_http_request_duration_seconds_count", method="POST", route=RESPOND_ROUTE,
                 status_class="2xx") == n
    assert delta("twin_http_request_duration_seconds_count", method="POST", route=RESPOND_ROUTE,
                 status_class="4xx") == 1
    assert delta("twin_gateway_replies_total", outcome="delivered") == n
    # The histogram times the whole request, the handler's latencyMs a part of it.
    handler_s = sum(b["latencyMs"] for b in bodies) / 1000
    assert delta("twin_respond_duration_seconds_sum", outcome="ok") >= handler_s - 0.001

    # Worker: per-agent counters, one step observation per step each reply's traces carry, tools,
    # safety checks at both stages, and (offline generator) zero tokens for this tenant.
    def settled():
        wk = Scrape.of(metrics_app.worker_url)
        done = wk.get_value("twin_agent_processed_total", agent="eval_sampling") - wk0.get_value(
            "twin_agent_processed_total", agent="eval_sampling")
        return wk if done >= n else None

    wk = _wait(settled, what="eval_sampling to process the replies")
    wdelta = lambda name, **labels: wk.get_value(name, **labels) - wk0.get_value(name, **labels)  # noqa: E731
    for agent in ("response_generation", "safety_filter", "eval_sampling"):
        assert wdelta("twin_agent_processed_total", agent=agent) == n, agent
        assert wdelta("twin_agent_handle_duration_seconds_count", agent=agent) == n, agent
        assert wdelta("twin_agent_failed_total", agent=agent) == 0, agent
    steps = Counter(s["name"] for b in bodies for s in b["traces"]["steps"])
    assert {"profile", "retrieve", "policy", "generate", "prosody", "tool.run_code"} <= set(steps)
    for step, count in steps.items():
        assert wdelta("twin_reply_step_duration_seconds_count", step=step, generator="offline") == count, step
    for step, count in steps.items():
        if step.startswith("tool."):
            tool = step.removeprefix("tool.")
            made = wdelta("twin_tool_calls_total", tool=tool, outcome="ok") + wdelta(
                "twin_tool_calls_total", tool=tool, outcome="error")
            assert made == count, tool
    assert wdelta("twin_tool_calls_total", tool="run_code", outcome="ok") >= 1
    for stage in ("input", "output"):
        checks = wdelta("twin_safety_checks_total", stage=stage, outcome="passed") + wdelta(
            "twin_safety_checks_total", stage=stage, outcome="flagged")
        assert checks == n, stage
    assert wdelta("twin_safety_checks_total", stage="output", outcome="passed") == sum(
        b["safety"]["passed"] for b in bodies)
    assert wdelta("twin_generations_total", tenant=sample_tenant, interviewer="dana", generator="offline") == n
    for kind in ("prompt", "completion"):
        assert ("twin_llm_tokens_total", frozenset({"tenant": sample_tenant, "interviewer": "dana",
                                                    "kind": kind}.items())) in wk
        assert wk.get_value("twin_llm_tokens_total", tenant=sample_tenant, interviewer="dana", kind=kind) == 0
    assert wk.get_value("twin_llm_cost_total", tenant=sample_tenant, interviewer="dana") == 0


def test_worker_reports_consumer_lag_for_every_agent_and_it_drains(metrics_app, sample_tenant):
    assert _respond(metrics_app, sample_tenant).status_code == 200
    group = f"{metrics_app.prefix}interviewer-twin"

    def drained():
        wk = Scrape.of(metrics_app.worker_url)
        lag = wk.series("twin_consumer_lag")
        requests = [s for s in lag if s["topic"] == f"{metrics_app.prefix}twin.requests"]
        # twin.requests has 3 partitions, all assigned to this (only) worker of its group.
        if len(requests) == 3 and all(wk.get_value("twin_consumer_lag", **s) == 0 for s in requests):
            return lag
        return None

    lag = _wait(drained, what="twin.requests lag of 0 on 3 partitions")
    assert {s["group"] for s in lag} == {group}
    agents = {s["agent"] for s in lag}
    assert {"response_generation", "safety_filter", "eval_sampling", "pii_redaction", "telemetry_storage",
            "feature_extraction", "audit_storage", "training_jobs"} <= agents
    by_agent = {s["agent"]: s["topic"] for s in lag}
    assert by_agent["safety_filter"] == f"{metrics_app.prefix}twin.drafts"


async def test_a_late_reply_is_counted_on_the_gateway(metrics_app, cfg):
    from infra.clients import kafka_producer
    from schemas.codec import encode_model
    from schemas.samples import sample

    before = Scrape.of(metrics_app.url).get_value("twin_gateway_replies_total", outcome="late")
    reply = sample("TwinReply").model_copy(update={"correlationId": str(uuid.uuid4())})
    producer = kafka_producer(cfg)
    await producer.start()
    try:
        await producer.send_and_wait(f"{metrics_app.prefix}twin.replies", encode_model(reply), key=b"x")
    finally:
        await producer.stop()
    _wait(lambda: Scrape.of(metrics_app.url).get_value("twin_gateway_replies_total", outcome="late") == before + 1,
          timeout=10, what="the late reply to be counted")


@pytest.mark.llm
def test_llm_tokens_and_cost_are_counted_per_tenant_and_interviewer(twin_app_factory, llm_server, sample_tenant):
    port = _free_port()
    app = twin_app_factory("metrics-llm", extra_env={
        "OPENAI_BASE_URL": llm_server.base_url, "OPENAI_MODEL": "smollm2", "LLM_MAX_TOKENS": "48",
        "WORKER_METRICS_PORT": str(port), "LLM_PRICE_PER_1K_PROMPT_TOKENS": "0.5",
        "LLM_PRICE_PER_1K_COMPLETION_TOKENS": "2"})
    worker_url = f"http://127.0.0.1:{port}"
    _wait(lambda: Scrape.of(worker_url), what="the worker's metrics endpoint")
    resp = httpx.post(f"{app.url}{RESPOND_ROUTE}", headers=auth_headers(sample_tenant), timeout=60, json={
        "interviewerId": "dana", "sessionId": "s-llm-metrics", "candidateTurn": "I built a webhook normaliser.",
        "history": [{"role": "interviewer", "text": "Tell me about a system you built."}], "timeoutMs": 30_000})
    assert resp.status_code == 200, resp.text
    generate = next(s for s in resp.json()["traces"]["steps"] if s["name"] == "generate")
    prompt, completion = generate["detail"]["promptTokens"], generate["detail"]["completionTokens"]
    assert prompt > 0 and completion > 0

    wk = Scrape.of(worker_url)  # a fresh worker: its counters hold this one reply only
    labels = {"tenant": sample_tenant, "interviewer": "dana"}
    assert wk.get_value("twin_llm_tokens_total", **labels, kind="prompt") == prompt
    assert wk.get_value("twin_llm_tokens_total", **labels, kind="completion") == completion
    assert wk.get_value("twin_llm_cost_total", **labels) == pytest.approx(prompt / 1000 * 0.5 + completion / 1000 * 2)
    assert wk.get_value("twin_generations_total", **labels, generator="llm") == 1
    assert wk.get_value("twin_reply_step_duration_seconds_count", step="generate", generator="llm") == 1
