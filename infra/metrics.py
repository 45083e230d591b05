"""Every Prometheus metric of the project, defined once, plus the pure helpers that feed them.

The gateway and the workers both import this module (it needs ``prometheus_client`` only: no ML
libraries, no Kafka client) and register into the default registry. Each metric is recorded by one
kind of process, named in its help text and in README.md (Operations → Metrics):

* the gateway serves them at ``GET /metrics``;
* a worker serves them on ``WORKER_METRICS_HOST:WORKER_METRICS_PORT`` (0 disables), started by
  ``processors/engine/metrics.py``.

Reply-derived metrics (step timings, tokens, cost, tools, safety) are recorded by the workers where
the work happens, so a reply that arrives too late for its request still counts its tokens, and
several gateway instances never count one reply twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Hashable

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "HTTP_REQUEST_SECONDS", "RESPOND_SECONDS", "GATEWAY_REPLIES",
    "AGENT_PROCESSED", "AGENT_FAILED", "AGENT_DEAD_LETTERED", "AGENT_HANDLE_SECONDS", "CONSUMER_LAG",
    "REQUESTS_EXPIRED", "GENERATIONS", "STEP_SECONDS", "LLM_TOKENS", "LLM_COST", "TOOL_CALLS",
    "SAFETY_CHECKS", "SAFETY_FLAGS", "SAFETY_INTERVENTIONS",
    "status_class", "respond_outcome", "llm_cost", "token_usage", "consumer_lag",
    "observe_generation", "observe_safety",
    "CANARY_REQUESTS", "CANARY_SHARE",
]

# Buckets in seconds. HTTP covers health checks (ms) to uploads; respond is the interactive path
# (the default deadline is 5 s); steps are mostly milliseconds; agent handles include training.
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
_RESPOND_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
_STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_HANDLE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0, 3600.0)

# ------------------------------------------------------------------------------------ gateway
HTTP_REQUEST_SECONDS = Histogram(
    "twin_http_request_duration_seconds",
    "Gateway: HTTP request latency by route template (\"unmatched\" when no route), method and status class.",
    ["method", "route", "status_class"], buckets=_HTTP_BUCKETS)
RESPOND_SECONDS = Histogram(
    "twin_respond_duration_seconds",
    "Gateway: POST /api/digital-twin/respond end to end (request in → reply out), by outcome "
    "(ok, timeout, unavailable, rejected, error).",
    ["outcome"], buckets=_RESPOND_BUCKETS)
GATEWAY_REPLIES = Counter(
    "twin_gateway_replies_total",
    "Gateway: replies read from twin.replies, delivered to a waiting request or late (nobody waiting: "
    "the request timed out, or it belongs to another gateway instance).",
    ["outcome"])

# ------------------------------------------------------------------------------------ workers
AGENT_PROCESSED = Counter(
    "twin_agent_processed_total", "Worker: records an agent handled successfully.", ["agent"])
AGENT_FAILED = Counter(
    "twin_agent_failed_total",
    "Worker: records an agent could not handle (undecodable, or handling raised after retries).", ["agent"])
AGENT_DEAD_LETTERED = Counter(
    "twin_agent_dead_lettered_total", "Worker: records an agent copied to the deadletter topic.", ["agent"])
AGENT_HANDLE_SECONDS = Histogram(
    "twin_agent_handle_duration_seconds",
    "Worker: time an agent spent handling one record (one batch, for batching agents).",
    ["agent"], buckets=_HANDLE_BUCKETS)
CONSUMER_LAG = Gauge(
    "twin_consumer_lag",
    "Worker: messages behind the end of a partition this worker is assigned (end offset minus the "
    "group's committed offset). Agents of one worker share its consumer group, so agents reading the "
    "same topic show the same lag: that of the slowest.",
    ["agent", "group", "topic", "partition"])
REQUESTS_EXPIRED = Counter(
    "twin_requests_expired_total",
    "Worker: twin requests dropped unanswered because their deadline had passed when they were read.")
GENERATIONS = Counter(
    "twin_generations_total", "Worker: twin drafts generated, by tenant, interviewer and generator.",
    ["tenant", "interviewer", "generator"])
STEP_SECONDS = Histogram(
    "twin_reply_step_duration_seconds",
    "Worker: duration of each step of a twin reply (profile, retrieve, policy, tool.<name>, generate, "
    "prosody), as carried in the reply's traces.",
    ["step", "generator"], buckets=_STEP_BUCKETS)
LLM_TOKENS = Counter(
    "twin_llm_tokens_total",
    "Worker: LLM tokens used for twin replies, by tenant, interviewer and kind (prompt, completion); "
    "the offline generator uses none.",
    ["tenant", "interviewer", "kind"])
LLM_COST = Counter(
    "twin_llm_cost_total",
    "Worker: estimated LLM cost of twin replies (LLM_PRICE_PER_1K_*_TOKENS, in their currency).",
    ["tenant", "interviewer"])
TOOL_CALLS = Counter(
    "twin_tool_calls_total", "Worker: tool calls made while generating, by tool and outcome (ok, error).",
    ["tool", "outcome"])
SAFETY_CHECKS = Counter(
    "twin_safety_checks_total",
    "Worker: safety checks, by stage (input: the candidate turn, output: the draft) and outcome (passed, flagged).",
    ["stage", "outcome"])
SAFETY_FLAGS = Counter(
    "twin_safety_flags_total", "Worker: safety flags raised, by stage and category.", ["stage", "category"])
SAFETY_INTERVENTIONS = Counter(
    "twin_safety_interventions_total", "Worker: drafts the safety agent changed, by action (replaced, ...).",
    ["action"])
# Canary deployments (processors/twin/canary.py).
CANARY_REQUESTS = Counter(
    "twin_canary_requests_total",
    "Worker: twin requests answered while the interviewer has a running canary, by arm (candidate, baseline) "
    "and the profile version that answered.",
    ["tenant", "interviewer", "arm", "version"])
CANARY_SHARE = Gauge(
    "twin_canary_share",
    "Worker (canary_controller): share of sessions a canary's candidate answers, as of the last evaluation; "
    "0 after a rollback, 1 after a promotion.",
    ["tenant", "interviewer", "candidate_version"])


# ------------------------------------------------------------------------------------ helpers
def status_class(status: int) -> str:
    """``404`` → ``"4xx"``."""
    return f"{status // 100}xx"


def respond_outcome(status: int) -> str:
    """The respond histogram's outcome for an HTTP status."""
    if status < 400:
        return "ok"
    if status == 504:
        return "timeout"
    if status == 503:
        return "unavailable"
    if status < 500:
        return "rejected"
    return "error"


def llm_cost(prompt_tokens: int, completion_tokens: int, price_prompt_per_1k: float,
             price_completion_per_1k: float) -> float:
    """Estimated cost of one generation from per-1k-token prices (0 when no price is set)."""
    return prompt_tokens / 1000 * price_prompt_per_1k + completion_tokens / 1000 * price_completion_per_1k


def token_usage(steps: Iterable[Any]) -> tuple[int, int]:
    """``(prompt, completion)`` tokens from a reply's trace steps (the ``generate`` step's detail)."""
    prompt = completion = 0
    for step in steps:
        if step.name == "generate" and step.detail:
            prompt += int(step.detail.get("promptTokens") or 0)
            completion += int(step.detail.get("completionTokens") or 0)
    return prompt, completion


def consumer_lag(end: Mapping[Hashable, int], committed: Mapping[Hashable, int],
                 beginning: Mapping[Hashable, int] | None = None) -> dict[Hashable, int]:
    """Messages behind per partition: ``end - committed``.

    A partition the group never committed (``committed`` missing or negative) is read from its
    beginning (``auto_offset_reset=earliest``), so its lag is ``end - beginning`` (``end`` when the
    beginning is unknown). Never negative: offsets are fetched one after the other and may cross.
    """
    lag = {}
    for tp, end_offset in end.items():
        done = committed.get(tp, -1)
        if done is None or done < 0:
            done = (beginning or {}).get(tp, 0)
        lag[tp] = max(0, end_offset - done)
    return lag


def observe_generation(*, tenant: str, interviewer: str, generator: str, steps: Iterable[Any],
                       price_prompt_per_1k: float = 0.0, price_completion_per_1k: float = 0.0) -> None:
    """Record one generated draft: its step timings, tool calls, tokens and estimated cost."""
    steps = list(steps)
    GENERATIONS.labels(tenant, interviewer, generator).inc()
    for step in steps:
        STEP_SECONDS.labels(step.name, generator).observe(step.ms / 1000)
        if step.name.startswith("tool."):
            ok = (step.detail or {}).get("ok", True)
            TOOL_CALLS.labels(step.name[len("tool."):], "ok" if ok else "error").inc()
    prompt, completion = token_usage(steps)
    # inc(0) still creates the series, so a tenant served offline shows 0 rather than nothing.
    LLM_TOKENS.labels(tenant, interviewer, "prompt").inc(prompt)
    LLM_TOKENS.labels(tenant, interviewer, "completion").inc(completion)
    LLM_COST.labels(tenant, interviewer).inc(llm_cost(prompt, completion, price_prompt_per_1k,
                                                      price_completion_per_1k))


def observe_safety(stage: str, passed: bool, flags: Iterable[Any], action: str = "none") -> None:
    """Record one safety check (its flags by category, and the intervention when there was one)."""
    SAFETY_CHECKS.labels(stage, "passed" if passed else "flagged").inc()
    for flag in flags:
        SAFETY_FLAGS.labels(stage, flag.category).inc()
    if action != "none":
        SAFETY_INTERVENTIONS.labels(action).inc()
