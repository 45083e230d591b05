"""Feature agent: ``telemetry.redacted`` → ``features.style`` and ``features.code_activity``.

The math is in :mod:`processors.features` (shared with training and evaluation); this agent
carries each session's running state in Redis (``<prefix><tenant>:session:<id>:features``) and
remembers processed batch ids in the same transaction, so a replay or redelivery neither emits
features twice nor counts an edit twice. Analytics subscribes to the two feature topics. Batches of
erased sessions (sinks/retention.py) are dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging

from infra.settings import settings
from processors.engine import topics
from processors.engine.app import app, enabled
from processors.engine.batching import run_batched
from processors.features import SessionFeatureState, batch_features
from schemas import topics as catalogue
from schemas.models import TelemetryRedacted
from sinks.redis import session_key

__all__ = ["extract_batch_features", "extract_features"]

log = logging.getLogger(__name__)
AGENT = "feature_extraction"


async def extract_batch_features(batches: list[TelemetryRedacted]) -> tuple[int, int]:
    """Compute, publish and remember features of redacted batches; returns (style, activity) counts."""
    from processors.engine.resources import directory, postgres, redis, seen

    client, marks = await redis(), await seen(AGENT)
    erased = await (await postgres()).erased({(b.tenant, b.interviewSessionId) for b in batches})
    live = [b for b in batches if (b.tenant, b.interviewSessionId) not in erased]
    unique = list({(b.tenant, b.eventId): b for b in live}.values())
    done = await marks.seen([(b.tenant, b.eventId) for b in unique])
    todo = [b for b in unique if (b.tenant, b.eventId) not in done]
    if not todo:
        return 0, 0
    interviewers = await (await directory()).interviewers([b.interviewSessionId for b in todo])
    keys = {(b.tenant, b.interviewSessionId): session_key(settings.REDIS_KEY_PREFIX, b.tenant, b.interviewSessionId,
                                                          "features") for b in todo}
    raw = await client.mget(list(keys.values()))
    states = {k: SessionFeatureState.from_dict(json.loads(v) if v else None) for k, v in zip(keys, raw)}
    styles, activities = [], []
    for batch in todo:
        s, a = batch_features(batch, states[(batch.tenant, batch.interviewSessionId)],
                              interviewers.get(batch.interviewSessionId), settings.FEATURE_PAUSE_S)
        styles += s
        activities += [a] if a else []
    futures = [await topics.publish(catalogue.FEATURES_STYLE, f) for f in styles]
    futures += [await topics.publish(catalogue.FEATURES_CODE_ACTIVITY, f) for f in activities]
    await asyncio.gather(*futures)
    # State and "seen" together: a crash before this line replays the batches against the old state.
    async with client.pipeline(transaction=True) as pipe:
        for k, key in keys.items():
            pipe.set(key, json.dumps(states[k].to_dict()), ex=settings.DEDUPE_TTL_S)
        marks.mark(pipe, [(b.tenant, b.eventId) for b in todo])
        await pipe.execute()
    return len(styles), len(activities)


if enabled(AGENT):

    @app.agent(topics.TELEMETRY_REDACTED)
    async def extract_features(stream):
        """Turn style per interviewer turn and code activity per session, for analytics."""
        await run_batched(stream, agent=AGENT, model=TelemetryRedacted, handle=extract_batch_features,
                          size=settings.SINK_BATCH_MESSAGES, within=settings.SINK_BATCH_WITHIN_S)
else:  # pragma: no cover - this worker runs other agents
    extract_features = None
