"""Vector agent: redacted turns → ``TurnChunk`` objects in Weaviate (per tenant, per interviewer).

Each turn of ``telemetry.redacted`` is split into chunks of at most ``CHUNK_WORDS`` words (what
all-MiniLM-L6-v2 reads before truncating), embedded with ``processors.twin.embeddings`` and
upserted into the TurnChunk collection: Weaviate tenant = project tenant, ``interviewerId`` =
the session's interviewer. Object ids are uuid5 of ``tenant/session/event/chunk``, so replays
overwrite the same objects instead of adding new ones. Turns of erased sessions (sinks/retention.py)
are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from infra.settings import settings
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.batching import run_batched
from schemas.models import TelemetryRedacted, parse_ts
from sinks.weaviate import VectorObject

__all__ = ["CHUNK_WORDS", "chunk_text", "index_turn_batches", "index_turns", "turn_chunks"]

log = logging.getLogger(__name__)
AGENT = "vector_indexing"
CHUNK_WORDS = 150
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")


def chunk_text(text: str, max_words: int = CHUNK_WORDS) -> list[str]:
    """Split a turn into consecutive chunks of at most ``max_words`` words."""
    words = text.split()
    return [" ".join(words[i:i + max_words]) for i in range(0, len(words), max_words)]


def turn_chunks(batch: TelemetryRedacted, interviewer_id: str | None) -> list[VectorObject]:
    """The TurnChunk objects of one redacted batch, without vectors (``vector=[]``)."""
    out = []
    for event in batch.events:
        if event.type != "turn" or not event.text.strip():
            continue
        event_id = event.eventId or event.to_avro()["eventId"]
        ts = parse_ts(event.ts).isoformat()
        for seq, chunk in enumerate(chunk_text(event.text)):
            out.append(VectorObject(
                key=f"{batch.tenant}/{batch.interviewSessionId}/{event_id}/{seq}",
                properties={"interviewerId": interviewer_id or "", "sessionId": batch.interviewSessionId,
                            "eventId": event_id, "role": event.role, "ts": ts, "text": chunk, "seq": seq},
                vector=[],
            ))
    return out


async def index_turn_batches(batches: Sequence[TelemetryRedacted], sink=None, embedder=None, interviewers=None,
                             erased=None) -> int:
    """Embed and upsert the turns of redacted batches; returns how many chunks were written.

    The stores default to the worker's (``processors.engine.resources``); replays and tests may
    pass their own ``sink`` (WeaviateSink), ``embedder``, ``interviewers`` mapping and ``erased``
    (tenant, session) pairs.
    """
    from processors.engine import resources

    recheck = erased is None
    if erased is None:
        erased = await (await resources.postgres()).erased({(b.tenant, b.interviewSessionId) for b in batches})
    batches = [b for b in batches if (b.tenant, b.interviewSessionId) not in erased]
    if not batches:
        return 0
    if interviewers is None:
        interviewers = await (await resources.directory()).interviewers([b.interviewSessionId for b in batches])
    by_tenant: dict[str, list[VectorObject]] = {}
    for batch in batches:
        by_tenant.setdefault(batch.tenant, []).extend(turn_chunks(batch, interviewers.get(batch.interviewSessionId)))
    objects = [o for objs in by_tenant.values() for o in objs]
    if not objects:
        return 0
    if embedder is None:
        from processors.twin.embeddings import get_embedder

        embedder = get_embedder()
    vectors = await asyncio.get_running_loop().run_in_executor(
        _executor, embedder.embed, [o.properties["text"] for o in objects])
    for obj, vec in zip(objects, vectors):
        obj.vector = vec
    sink = sink or await resources.turn_chunks()
    for tenant, objs in by_tenant.items():
        if objs:
            await sink.write(objs, tenant=tenant)
    if recheck:
        # An erasure that committed while we embedded may have cleared Weaviate before our write
        # landed: check again and take back what we wrote for it (the erasure deletes after its
        # tombstone commits, so either it or this check sees every write).
        written = {(b.tenant, b.interviewSessionId) for b in batches}
        for tenant, session_id in await (await resources.postgres()).erased(written):
            await asyncio.to_thread(sink.delete_where, tenant, "sessionId", session_id)
    return len(objects)


if enabled(AGENT):

    @app.agent(topics.TELEMETRY_REDACTED)
    async def index_turns(stream):
        """Embed redacted turns into the TurnChunk index."""
        await run_batched(stream, agent=AGENT, model=TelemetryRedacted, handle=index_turn_batches,
                          size=settings.SINK_BATCH_MESSAGES, within=settings.SINK_BATCH_WITHIN_S)
else:  # pragma: no cover - this worker runs other agents
    index_turns = None
