"""Faust topics built from the catalogue (schemas.topics), with TOPIC_PREFIX applied."""

from __future__ import annotations

from schemas import topics as catalogue
from schemas.topics import TopicSpec

from infra.settings import settings
from processors.engine.app import app
from opentelemetry.trace import SpanKind

from infra.tracing import headers_from_context, inject, tracer
from processors.engine.avro_codec import CODEC_NAME
from schemas.topics import key_for

__all__ = ["faust_topic", "publish"] + [n for n in catalogue.__all__ if n.isupper() and n not in ("TOPICS", "COMPONENTS")]


def faust_topic(spec: TopicSpec):
    """The faust topic of a catalogue entry: raw bytes keys and values.

    Values stay bytes on the way in, so agents decode them with
    ``processors.engine.deadletter.decode_or_deadletter`` (a poison message is dead-lettered, not
    fatal); on the way out use :func:`publish`, which encodes, keys and adds trace headers.
    """
    return app.topic(
        settings.topic(spec.name),
        key_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
        retention=spec.retention_ms / 1000 if spec.retention_ms else None,
        compacting=spec.cleanup_policy == "compact",
        acks=True,
    )


TELEMETRY_RAW = faust_topic(catalogue.TELEMETRY_RAW)
TELEMETRY_REDACTED = faust_topic(catalogue.TELEMETRY_REDACTED)
SESSIONS_LIFECYCLE = faust_topic(catalogue.SESSIONS_LIFECYCLE)
TWIN_REQUESTS = faust_topic(catalogue.TWIN_REQUESTS)
TWIN_DRAFTS = faust_topic(catalogue.TWIN_DRAFTS)
TWIN_REPLIES = faust_topic(catalogue.TWIN_REPLIES)
SAFETY_VERDICTS = faust_topic(catalogue.SAFETY_VERDICTS)
FEATURES_STYLE = faust_topic(catalogue.FEATURES_STYLE)
FEATURES_CODE_ACTIVITY = faust_topic(catalogue.FEATURES_CODE_ACTIVITY)
EVAL_SAMPLES = faust_topic(catalogue.EVAL_SAMPLES)
TRAINING_JOBS = faust_topic(catalogue.TRAINING_JOBS)
TRAINING_STATUS = faust_topic(catalogue.TRAINING_STATUS)
AUDIT_RECORDS = faust_topic(catalogue.AUDIT_RECORDS)
DEADLETTER = faust_topic(catalogue.DEADLETTER)


_BY_NAME = {t.get_topic_name(): t for t in (
    TELEMETRY_RAW, TELEMETRY_REDACTED, SESSIONS_LIFECYCLE, TWIN_REQUESTS, TWIN_DRAFTS, TWIN_REPLIES, SAFETY_VERDICTS,
    FEATURES_STYLE, FEATURES_CODE_ACTIVITY, EVAL_SAMPLES, TRAINING_JOBS, TRAINING_STATUS, AUDIT_RECORDS, DEADLETTER)}


async def publish(spec: TopicSpec, model, topic_name: str | None = None):
    """Encode ``model`` (framed Avro, through the twin_avro faust codec), key it by the catalogue rule and send it with trace headers.

    ``topic_name`` overrides the destination (a reply topic named in the request); it must carry
    the same record as ``spec``. Returns the delivery future (await it to wait for the ack).
    """
    name = topic_name or settings.topic(spec.name)
    topic = _BY_NAME.get(name) or app.topic(name, key_type=bytes, key_serializer="raw", value_serializer="raw")
    with tracer().start_as_current_span(f"kafka.produce {spec.name}", kind=SpanKind.PRODUCER,
                                        attributes={"messaging.system": "kafka", "messaging.destination.name": name}):
        # Records that carry a traceContext field get this span as the parent of their consumers.
        if "traceContext" in type(model).model_fields:
            model = model.model_copy(update={"traceContext": inject()})
        return await topic.send(key=key_for(spec, model.model_dump()), value=model, value_serializer=CODEC_NAME,
                                headers=headers_from_context())
