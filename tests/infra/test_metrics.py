"""The pure logic behind the Prometheus metrics (infra/metrics.py): no services needed."""

import uuid

import pytest
from prometheus_client import REGISTRY

from infra.metrics import consumer_lag, llm_cost, observe_generation, observe_safety, respond_outcome, status_class, \
    token_usage
from schemas.models import SafetyFlag, TraceStep


def _value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("status, cls, outcome", [
    (200, "2xx", "ok"),
    (202, "2xx", "ok"),
    (404, "4xx", "rejected"),
    (422, "4xx", "rejected"),
    (401, "4xx", "rejected"),
    (503, "5xx", "unavailable"),  # broker or database away: retry later
    (504, "5xx", "timeout"),  # the twin missed the deadline
    (500, "5xx", "error"),
])
def test_status_maps_to_class_and_respond_outcome(status, cls, outcome):
    assert status_class(status) == cls
    assert respond_outcome(status) == outcome


@pytest.mark.parametrize("prompt, completion, p_price, c_price, cost", [
    (0, 0, 0.15, 0.6, 0.0),  # the offline generator uses no tokens
    (1000, 1000, 0.0, 0.0, 0.0),  # no price configured: not estimated
    (1000, 500, 0.15, 0.6, 0.45),
    (250, 0, 2.0, 8.0, 0.5),
])
def test_llm_cost_is_priced_per_thousand_tokens(prompt, completion, p_price, c_price, cost):
    assert llm_cost(prompt, completion, p_price, c_price) == pytest.approx(cost)


def test_token_usage_is_read_from_the_generate_step():
    steps = [TraceStep(name="profile", ms=1.0), TraceStep(name="generate", ms=9.0,
                                                          detail={"promptTokens": 120, "completionTokens": 31}),
             TraceStep(name="prosody", ms=0.1, detail={"promptTokens": 999})]  # only "generate" counts
    assert token_usage(steps) == (120, 31)
    assert token_usage([TraceStep(name="generate", ms=1.0, detail={"exemplar": "dana-1"})]) == (0, 0)


@pytest.mark.parametrize("end, committed, beginning, lag", [
    ({0: 10, 1: 5}, {0: 10, 1: 2}, None, {0: 0, 1: 3}),
    ({0: 10}, {}, {0: 4}, {0: 6}),  # never committed: read from the (retention-trimmed) beginning
    ({0: 10}, {0: -1}, None, {0: 10}),  # the broker's "no offset" and no known beginning
    ({0: 10}, {0: 12}, None, {0: 0}),  # committed fetched after the end offset moved on: never negative
    ({}, {0: 3}, None, {}),  # only the partitions asked for
], ids=["caught-up-and-behind", "uncommitted", "no-offset", "crossed", "unassigned"])
def test_consumer_lag_is_end_minus_committed(end, committed, beginning, lag):
    assert consumer_lag(end, committed, beginning) == lag


def test_observe_generation_records_steps_tools_tokens_and_cost():
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    step = "retrieve"
    before = _value("twin_reply_step_duration_seconds_count", step=step, generator="llm")
    tool_ok = _value("twin_tool_calls_total", tool="run_code", outcome="ok")
    tool_err = _value("twin_tool_calls_total", tool="fact_lookup", outcome="error")
    steps = [TraceStep(name="retrieve", ms=12.0), TraceStep(name="tool.run_code", ms=40.0, detail={"ok": True}),
             TraceStep(name="tool.fact_lookup", ms=3.0, detail={"ok": False}),
             TraceStep(name="generate", ms=300.0, detail={"promptTokens": 2000, "completionTokens": 100})]
    observe_generation(tenant=tenant, interviewer="dana", generator="llm", steps=steps,
                       price_prompt_per_1k=0.5, price_completion_per_1k=2.0)
    assert _value("twin_reply_step_duration_seconds_count", step=step, generator="llm") == before + 1
    assert _value("twin_tool_calls_total", tool="run_code", outcome="ok") == tool_ok + 1
    assert _value("twin_tool_calls_total", tool="fact_lookup", outcome="error") == tool_err + 1
    assert _value("twin_llm_tokens_total", tenant=tenant, interviewer="dana", kind="prompt") == 2000
    assert _value("twin_llm_tokens_total", tenant=tenant, interviewer="dana", kind="completion") == 100
    assert _value("twin_llm_cost_total", tenant=tenant, interviewer="dana") == pytest.approx(1.2)
    assert _value("twin_generations_total", tenant=tenant, interviewer="dana", generator="llm") == 1


def test_an_offline_generation_shows_zero_tokens_rather_than_nothing():
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    observe_generation(tenant=tenant, interviewer="dana", generator="offline",
                       steps=[TraceStep(name="generate", ms=5.0, detail={"exemplar": "dana-3"})],
                       price_prompt_per_1k=1.0, price_completion_per_1k=1.0)
    labels = {"tenant": tenant, "interviewer": "dana"}
    assert REGISTRY.get_sample_value("twin_llm_tokens_total", {**labels, "kind": "prompt"}) == 0
    assert REGISTRY.get_sample_value("twin_llm_cost_total", labels) == 0


def test_observe_safety_counts_checks_flags_by_category_and_interventions():
    checks = _value("twin_safety_checks_total", stage="output", outcome="flagged")
    flags = _value("twin_safety_flags_total", stage="output", category="prohibited_question")
    replaced = _value("twin_safety_interventions_total", action="replaced")
    observe_safety("output", False, [SafetyFlag(category="prohibited_question", detail="age"),
                                     SafetyFlag(category="prohibited_question", detail="marital status")], "replaced")
    assert _value("twin_safety_checks_total", stage="output", outcome="flagged") == checks + 1
    assert _value("twin_safety_flags_total", stage="output", category="prohibited_question") == flags + 2
    assert _value("twin_safety_interventions_total", action="replaced") == replaced + 1
