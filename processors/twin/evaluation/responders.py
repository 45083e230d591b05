"""How the evaluation asks the twin: through the product (gateway) or in-process (engine).

``GatewayResponder`` sends every test turn as ``POST /api/digital-twin/respond`` to a running
gateway, so Kafka, the twin agent with its configuration and canary routing, and the safety agent
are all in the path, and the latency is end to end. What the safety agent replaced counts as it
was delivered. ``EngineResponder`` calls ``TwinEngine.respond`` directly (fast, for development):
no safety agent, so its ``safety_action`` is always "none".

Both return an ``Answer``; an error is recorded on it (empty text) rather than raised, so one
failing turn is counted, not fatal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from infra.settings import settings
from schemas.respond_limits import RespondLimits

__all__ = ["Answer", "EngineResponder", "GatewayResponder", "LLM_DRAFT_OUTCOMES", "Responder", "llm_draft_outcome",
           "request_window"]


@dataclass
class Answer:
    """One reply as the caller received it."""

    text: str
    latency_ms: float
    move: str | None = None
    generator: str | None = None
    model: str | None = None
    profile_version: int | None = None
    safety_action: str = "none"
    error: str | None = None
    llm_draft: str | None = None  # with the LLM: "kept", "below_offline" or "refused" (``llm_draft_outcome``)


LLM_DRAFT_OUTCOMES = ("kept", "below_offline", "refused")


def llm_draft_outcome(steps: Sequence[Any]) -> str | None:
    """What became of the LLM's draft, from a reply's trace steps (``TraceStep`` objects or the API's
    dicts): ``engine.TwinEngine.respond`` marks on its generate step a draft that gave way to the offline
    twin. None when the offline generator answered (its generate step made no model calls)."""
    for s in steps:
        name, detail = (s.get("name"), s.get("detail")) if isinstance(s, dict) else (s.name, s.detail)
        if name != "generate":
            continue
        detail = detail or {}
        if "calls" not in detail:
            return None
        if detail.get("llm_draft_refused"):
            return "refused"
        return "below_offline" if detail.get("llm_draft_below_offline") else "kept"
    return None


class Responder(Protocol):
    via: str

    def ask(self, tenant: str, interviewer_id: str, session_id: str, history: Sequence[tuple[str, str]],
            candidate_turn: str) -> Answer: ...


def request_window(history: Sequence[tuple[str, str]], candidate_turn: str,
                   limits: RespondLimits | None = None) -> dict[str, Any]:
    """``history`` and ``candidateTurn`` as the respond API takes them (``limits``: the API's, from the
    settings, when not given): each turn cut to the per-turn limit, then the most recent turns whose
    texts fit the byte budget beside the candidate's turn (what a real client would send; the twin
    reads earlier turns of a captured session from its stored transcript)."""
    limits = limits or RespondLimits.of(settings)
    cap = limits.max_turn_chars
    candidate = candidate_turn[:cap]
    turns = [{"role": r, "text": t[:cap]} for r, t in history if t.strip()]
    return {"history": limits.window(turns, candidate, lambda t: t["text"]), "candidateTurn": candidate}


class EngineResponder:
    """``TwinEngine.respond`` in this process."""

    via = "engine"

    def __init__(self, engine, use_llm: bool | None = None, ablate: Sequence[str] = ()):
        self.engine, self.use_llm, self.ablate = engine, use_llm, tuple(ablate)

    def ask(self, tenant: str, interviewer_id: str, session_id: str, history: Sequence[tuple[str, str]],
            candidate_turn: str) -> Answer:
        t0 = time.perf_counter()
        try:
            reply = self.engine.respond(tenant=tenant, interviewer_id=interviewer_id, session_id=session_id,
                                        history=[{"role": r, "text": t} for r, t in history],
                                        candidate_turn=candidate_turn, use_llm=self.use_llm, ablate=self.ablate)
        except Exception as exc:  # noqa: BLE001 - a failed turn is counted as an empty reply
            return Answer("", (time.perf_counter() - t0) * 1000, error=f"{type(exc).__name__}: {exc}"[:500])
        return Answer(reply.text, (time.perf_counter() - t0) * 1000, reply.move.value, reply.generator, reply.model,
                      reply.profile_version, llm_draft=llm_draft_outcome(reply.steps))


class GatewayResponder:
    """``POST /api/digital-twin/respond`` on a running gateway, with an API key per tenant."""

    via = "gateway"

    def __init__(self, base_url: str, token_for: Callable[[str], str], *, timeout_s: float = 30.0,
                 verify: bool | str = True, limits: RespondLimits | None = None, deadline_ms: int | None = None):
        """``deadline_ms``: each request's ``timeoutMs`` (the gateway's default deadline when None)."""
        import httpx

        self.base_url = base_url.rstrip("/")
        self.deadline_ms = deadline_ms
        self.limits = limits or RespondLimits.of(settings)  # the gateway's (same settings) unless told
        self._token_for = token_for
        self._tokens: dict[str, str] = {}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, verify=verify)

    def close(self) -> None:
        self._http.close()

    def ask(self, tenant: str, interviewer_id: str, session_id: str, history: Sequence[tuple[str, str]],
            candidate_turn: str) -> Answer:
        import httpx

        if tenant not in self._tokens:
            self._tokens[tenant] = self._token_for(tenant)
        body = {"interviewerId": interviewer_id, "sessionId": session_id[:128],
                **request_window(history, candidate_turn, self.limits)}
        if self.deadline_ms is not None:
            body["timeoutMs"] = self.deadline_ms
        if not body["history"] and not body["candidateTurn"].strip():
            body["candidateTurn"] = "..."  # the API needs something to answer; the session has not started
        t0 = time.perf_counter()
        try:
            resp = self._http.post("/api/digital-twin/respond", json=body,
                                   headers={"Authorization": f"Bearer {self._tokens[tenant]}"})
        except httpx.HTTPError as exc:
            return Answer("", (time.perf_counter() - t0) * 1000, error=f"{type(exc).__name__}: {exc}"[:500])
        latency = (time.perf_counter() - t0) * 1000
        if resp.status_code != 200:
            return Answer("", latency, error=f"HTTP {resp.status_code}: {resp.text[:400]}")
        data = resp.json()
        calls = data.get("functionCalls") or []
        return Answer(data.get("text", ""), latency, calls[0]["name"] if calls else None, data.get("generator"),
                      data.get("model"), data.get("profileVersion"), (data.get("safety") or {}).get("action", "none"),
                      llm_draft=llm_draft_outcome((data.get("traces") or {}).get("steps") or []))
