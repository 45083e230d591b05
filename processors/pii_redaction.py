"""PII redaction agent: ``telemetry.raw`` → ``telemetry.redacted``.

Nothing downstream (PostgreSQL, Weaviate, Redis, the feature and analytics topics) reads the raw
topic: this agent is the only way telemetry gets further. Turn text, run previews and the string
values inside function-call arguments and control parameters are redacted; all texts of up to
``PII_BATCH_MESSAGES`` raw batches go through one batched NLP pass.

A batch id the agent already published (a client retry, a replay) is not published again
(``SeenBatches``); when Redis is down the check is skipped and the sinks' own de-duplication
takes over.

Run only this agent: ``TWIN_AGENTS=pii_redaction twin worker``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from infra.settings import settings
from infra.tracing import extract, tracer
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.batching import run_batched
from schemas import topics as catalogue
from schemas.models import Redaction, TelemetryRaw, TelemetryRedacted

__all__ = ["redact_batch", "redact_pii", "text_fields"]

log = logging.getLogger(__name__)
AGENT = "pii_redaction"
# spaCy is not thread-safe and holds the GIL: one thread, off the event loop so it keeps polling.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pii")


def _string_leaves(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _string_leaves(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _string_leaves(v, f"{path}[{i}]")


def _replace_leaves(value: Any, path: str, new: dict[str, str]) -> Any:
    if isinstance(value, str):
        return new.get(path, value)
    if isinstance(value, dict):
        return {k: _replace_leaves(v, f"{path}.{k}", new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_leaves(v, f"{path}[{i}]", new) for i, v in enumerate(value)]
    return value


def text_fields(event) -> list[tuple[str, str]]:
    """``(field path, text)`` of every free text in an event that may hold PII."""
    out: list[tuple[str, str]] = []
    if event.type == "turn":
        out.append(("text", event.text))
        for i, call in enumerate(event.functionCalls or []):
            out += list(_string_leaves(call.args, f"functionCalls[{i}].args")) if call.args else []
    elif event.type == "run":
        out += [(f, getattr(event, f)) for f in ("stdoutPreview", "stderrPreview") if getattr(event, f)]
    elif event.type == "control" and event.params:
        out += list(_string_leaves(event.params, "params"))
    return [(f, t) for f, t in out if t and t.strip()]


def _apply(event, new: dict[str, str]):
    """A copy of the event with redacted texts put back at their paths."""
    if not new:
        return event
    update: dict[str, Any] = {k: v for k, v in new.items() if k in ("text", "stdoutPreview", "stderrPreview")}
    if event.type == "turn" and event.functionCalls:
        calls = []
        for i, call in enumerate(event.functionCalls):
            args = _replace_leaves(call.args, f"functionCalls[{i}].args", new) if call.args else call.args
            calls.append(call.model_copy(update={"args": args}))
        update["functionCalls"] = calls
    if event.type == "control" and event.params:
        update["params"] = _replace_leaves(event.params, "params", new)
    return event.model_copy(update=update)


def redact_batch(batches: Sequence[TelemetryRaw], redactor) -> list[TelemetryRedacted]:
    """Redact raw telemetry batches in one NLP pass per tenant; one redacted batch per input.

    :param redactor: a ``processors.pii.PiiRedactor`` (``get_redactor()``).
    """
    # Gather every text of every batch, grouped by tenant (allow/deny terms are per tenant).
    slots: dict[str, list[tuple[int, int, str]]] = {}
    texts: dict[str, list[str]] = {}
    for b, batch in enumerate(batches):
        for e, event in enumerate(batch.events):
            for path, text in text_fields(event):
                slots.setdefault(batch.tenant, []).append((b, e, path))
                texts.setdefault(batch.tenant, []).append(text)
    replaced: dict[tuple[int, int], dict[str, str]] = {}
    redactions: dict[int, list[Redaction]] = {}
    for tenant, tenant_texts in texts.items():
        for (b, e, path), result in zip(slots[tenant], redactor.redact(tenant_texts, tenant)):
            replaced.setdefault((b, e), {})[path] = result.text
            for entity, count in sorted(result.counts.items()):
                redactions.setdefault(b, []).append(Redaction(eventIndex=e, field=path, entityType=entity, count=count))
    out = []
    for b, batch in enumerate(batches):
        events = [_apply(ev, replaced.get((b, e), {})) for e, ev in enumerate(batch.events)]
        out.append(TelemetryRedacted(
            eventId=batch.eventId, tenant=batch.tenant, interviewSessionId=batch.interviewSessionId,
            receivedAt=batch.receivedAt, events=events, droppedFields=batch.droppedFields,
            traceContext=batch.traceContext, redactions=redactions.get(b, []),
        ))
    return out


def _redact(batches: list[TelemetryRaw]) -> list[TelemetryRedacted]:
    from processors.pii import get_redactor

    with tracer().start_as_current_span("agent.pii_redaction", context=extract(batches[0].traceContext),
                                        attributes={"twin.batches": len(batches)}):
        return redact_batch(batches, get_redactor(settings))


async def redact_and_publish(batches: list[TelemetryRaw]) -> int:
    """The agent's job for one take: skip batches already published, redact, publish, remember."""
    from processors.engine.resources import redis, seen

    unique = list({(b.tenant, b.eventId): b for b in batches}.values())
    marks = None
    try:
        marks = await seen(AGENT)
        done = await marks.seen([(b.tenant, b.eventId) for b in unique])
        unique = [b for b in unique if (b.tenant, b.eventId) not in done]
    except Exception as exc:  # noqa: BLE001 - de-duplication is an optimisation here, never a blocker
        log.warning("pii_redaction: batch-id check unavailable (%s); publishing without it", exc)
        marks = None
    if not unique:
        return 0
    redacted = await asyncio.get_running_loop().run_in_executor(_executor, _redact, unique)
    futures = [await topics.publish(catalogue.TELEMETRY_REDACTED, r) for r in redacted]
    await asyncio.gather(*futures)  # delivered (acks=all) before the raw offsets are committed
    if marks is not None:
        try:
            async with (await redis()).pipeline(transaction=False) as pipe:
                marks.mark(pipe, [(r.tenant, r.eventId) for r in redacted])
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001
            log.warning("pii_redaction: could not record batch ids (%s)", exc)
    return len(redacted)


def warm_up() -> None:
    from processors.pii import get_redactor

    get_redactor(settings).redact(["Warm up, Maria: maria@example.com"], tenant="warm-up")
    log.info("pii redactor warm")


if enabled(AGENT):

    @app.agent(topics.TELEMETRY_RAW)
    async def redact_pii(stream):
        """Redact PII from raw telemetry batches and publish them to telemetry.redacted."""
        await asyncio.get_running_loop().run_in_executor(_executor, warm_up)
        await run_batched(stream, agent=AGENT, model=TelemetryRaw, handle=redact_and_publish,
                          size=settings.PII_BATCH_MESSAGES, within=settings.PII_BATCH_WITHIN_S)
else:  # pragma: no cover - this worker runs other agents
    redact_pii = None
