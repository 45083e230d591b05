"""The eval sampler: which replies are sampled, what a sample holds, and one round trip through Kafka."""

from __future__ import annotations

import json
import time

import pytest

from infra.crypto import EVAL_CONTEXT
from infra.settings import Settings
from processors.eval_sampling import build_sample, is_sampled, sample_id_for, sample_rate
from schemas.samples import sample


@pytest.mark.parametrize(("rate", "expected"), [
    (0.0, False),   # sampling off
    (-1.0, False),  # nonsense rates are clipped, never an error
    (1.0, True),
    (2.0, True),
])
def test_extreme_rates_sample_none_or_all(rate, expected):
    assert all(is_sampled(f"corr-{i}", rate) is expected for i in range(50))


def test_sampling_is_stable_per_correlation_id_and_close_to_the_rate():
    ids = [f"corr-{i}" for i in range(4000)]
    first = [is_sampled(c, 0.25) for c in ids]
    assert first == [is_sampled(c, 0.25) for c in ids]  # a replay samples the same replies
    assert 0.22 < sum(first) / len(ids) < 0.28


@pytest.mark.parametrize(("tenant", "expected"), [
    ("acme", 0.5),     # its own override
    ("globex", 0.0),   # override to off
    ("other", 0.05),   # the default
    ("loud", 1.0),     # clipped
])
def test_rate_is_configurable_per_tenant(tenant, expected):
    cfg = Settings(EVAL_SAMPLE_RATE=0.05, EVAL_SAMPLE_RATES={"acme": 0.5, "globex": 0.0, "loud": 7})
    assert sample_rate(tenant, cfg) == expected


def test_sample_keeps_the_reply_and_what_the_twin_did():
    reply = sample("TwinReply")
    s = build_sample(reply, [{"role": "candidate", "text": "I used a queue."}])
    assert s.sampleId == sample_id_for(reply.tenant, reply.correlationId) and s.sampleId.startswith("live-")
    assert s.twinText == reply.text and s.realText is None and s.correlationId == reply.correlationId
    assert s.context["history"] == [{"role": "candidate", "text": "I used a queue."}]
    assert s.context["move"] == "rubric_check" and s.context["generator"] == "llm"
    assert s.context["safety"]["action"] == "regenerated"
    assert sample_id_for("a", "x") != sample_id_for("b", "x")  # tenants never share a sample


@pytest.mark.e2e
async def test_worker_samples_each_reply_once_into_topic_and_table(worker_factory, pg, read_topic, cfg, tenant):
    """A real worker: two sampled replies (one sent twice) and one from a tenant whose rate is 0."""
    from infra.clients import kafka_producer
    from infra.kafka_admin import acreate_topics
    from schemas.codec import encode_model
    from schemas.topics import EVAL_SAMPLES, TWIN_REPLIES, key_for

    # Topics of its own: a worker of another test running other agents joins the session's consumer
    # group and could take partitions of twin.replies away from this one.
    own = Settings(TOPIC_PREFIX=f"{cfg.TOPIC_PREFIX}evalsampling.")
    await acreate_topics(own)
    quiet = f"{tenant}-quiet"
    worker_factory("eval-sampler", agents="eval_sampling", extra_env={
        "TOPIC_PREFIX": own.TOPIC_PREFIX, "EVAL_SAMPLE_RATE": "1", "EVAL_SAMPLE_RATES": json.dumps({quiet: 0})})
    pg.execute("INSERT INTO turns (tenant, session_id, event_id, role, text, ts) VALUES"
               " (%s, %s, 'e1', 'interviewer', 'Tell me about the queue.', now() - interval '1 minute'),"
               " (%s, %s, 'e2', 'candidate', 'We used Kafka.', now())", (tenant, f"{tenant}-s1", tenant, f"{tenant}-s1"))
    base = sample("TwinReply")
    replies = [base.model_copy(update={"tenant": tenant, "sessionId": f"{tenant}-s1", "correlationId": f"{tenant}-c1"}),
               base.model_copy(update={"tenant": tenant, "sessionId": f"{tenant}-s2", "correlationId": f"{tenant}-c2"}),
               base.model_copy(update={"tenant": quiet, "sessionId": f"{tenant}-s3", "correlationId": f"{tenant}-c3"})]
    producer = kafka_producer(cfg)
    await producer.start()
    try:
        for r in [replies[0], *replies]:  # the first reply twice: a replay
            await producer.send_and_wait(own.topic(TWIN_REPLIES.name), encode_model(r),
                                         key=key_for(TWIN_REPLIES, r.model_dump()))
    finally:
        await producer.stop()
    found = await read_topic(EVAL_SAMPLES, lambda m: m.tenant in (tenant, quiet), count=2, timeout=60, settle=3,
                             on=own)
    assert sorted(m.correlationId for m in found) == [f"{tenant}-c1", f"{tenant}-c2"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = pg.execute("SELECT correlation_id, source, published_at IS NOT NULL, context, tenant, sample_id"
                          " FROM eval_samples"
                          " WHERE tenant IN (%s, %s) ORDER BY correlation_id", (tenant, quiet)).fetchall()
        if len(rows) == 2 and all(r[2] for r in rows):
            break
        time.sleep(0.3)
    assert [(r[0], r[1], r[2]) for r in rows] == [(f"{tenant}-c1", "live", True), (f"{tenant}-c2", "live", True)]
    rows = [(*r[:3], EVAL_CONTEXT.open(r[3], r[4], (r[5],))) for r in rows]  # the texts are stored encrypted
    assert rows[0][3]["history"] == [{"role": "interviewer", "text": "Tell me about the queue."},
                                     {"role": "candidate", "text": "We used Kafka."}]
    assert rows[1][3]["history"] == []
