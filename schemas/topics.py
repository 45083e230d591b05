"""The topic catalogue: the one place a topic name meets its record, key and broker config.

Everything else imports from here: ``infra/kafka_admin.py`` creates ``TOPICS``,
``processors/engine/topics.py`` builds faust topics from them, the gateway publishes to them.
``producers``/``consumers`` document the data flow (and the tests check the names); they do
not wire anything.

Usage::

    from schemas import topics
    spec = topics.TWIN_REQUESTS
    await producer.send(spec.name, key=topics.key_for(spec, request), value=codec.encode_model(request))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from schemas.codec import SCHEMA_IDS

if TYPE_CHECKING:
    from schemas.models import AvroModel

__all__ = [
    "AUDIT_RECORDS",
    "COMPONENTS",
    "DEADLETTER",
    "EVAL_SAMPLES",
    "FEATURES_CODE_ACTIVITY",
    "FEATURES_STYLE",
    "SAFETY_VERDICTS",
    "SESSIONS_LIFECYCLE",
    "TELEMETRY_RAW",
    "TELEMETRY_REDACTED",
    "TOPICS",
    "TRAINING_JOBS",
    "TRAINING_STATUS",
    "TWIN_DRAFTS",
    "TWIN_REPLIES",
    "TWIN_REQUESTS",
    "KeyField",
    "TopicSpec",
    "by_name",
    "key_for",
]

KeyField = Literal["sessionId", "interviewerId", "jobId", "correlationId", "tenant"]

# The processes that read or write topics: the gateway, one agent per job, the sinks.
COMPONENTS: tuple[str, ...] = (
    "gateway",
    "pii_redaction",
    "feature_extraction",
    "vector_indexing",
    "telemetry_storage",
    "session_storage",
    "session_state",
    "audit_storage",
    "response_generation",
    "safety_filter",
    "eval_sampling",
    "training_jobs",
    "dataset_growth",
    "refresh_controller",
    "analytics",
)

# The agents (each one processors/<name>.py); the catalogue test checks their real topics against this file.
_AGENTS = tuple(c for c in COMPONENTS if c not in ("gateway", "analytics"))

# Record fields that carry a key when the record names it differently (the telemetry batch
# predates this project and calls its session `interviewSessionId`, spec 12b).
_KEY_SOURCES: dict[str, tuple[str, ...]] = {
    "sessionId": ("sessionId", "interviewSessionId"),
    "interviewerId": ("interviewerId",),
    "jobId": ("jobId",),
    "correlationId": ("correlationId",),
    "tenant": ("tenant",),
}

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic: its name, the record it carries, how it is keyed and kept.

    :param name: topic name without any deployment prefix (``Settings.topic()`` adds it).
    :param record: Avro record name in ``schemas/avro`` (a key of ``codec.SCHEMA_IDS``).
    :param key: record field whose value, scoped by tenant, is the message key
        (see :func:`key_for`); None means unkeyed (round-robin), only for delete topics.
    :param partitions: partition count; all messages of one key stay in order in one.
    :param retention_ms: how long messages are kept; None keeps them forever.
    :param cleanup_policy: ``delete`` (time-based) or ``compact`` (latest value per key).
    :param description: what the topic is for, one line.
    :param producers: components that write it (names from ``COMPONENTS``).
    :param consumers: components that read it.
    """

    name: str
    record: str
    key: KeyField | None
    partitions: int
    retention_ms: int | None
    cleanup_policy: Literal["delete", "compact"]
    description: str
    producers: tuple[str, ...]
    consumers: tuple[str, ...]

    def __post_init__(self) -> None:
        # Fail at import time: a typo here would otherwise surface as a runtime KeyError.
        if self.record not in SCHEMA_IDS:
            raise ValueError(f"{self.name}: unknown record {self.record!r}")
        if self.key is not None and self.key not in get_args(KeyField):
            raise ValueError(f"{self.name}: key {self.key!r} is not one of {get_args(KeyField)}")
        if self.cleanup_policy not in ("delete", "compact"):
            raise ValueError(f"{self.name}: cleanup_policy must be delete or compact")
        if self.cleanup_policy == "compact" and self.key is None:
            raise ValueError(f"{self.name}: a compacted topic needs a key")
        if self.partitions < 1:
            raise ValueError(f"{self.name}: partitions must be >= 1")
        if self.retention_ms is not None and self.retention_ms <= 0:
            raise ValueError(f"{self.name}: retention_ms must be positive or None")
        unknown = set(self.producers + self.consumers) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"{self.name}: unknown components {sorted(unknown)}")


TELEMETRY_RAW = TopicSpec(
    "telemetry.raw",
    record="TelemetryRaw",
    key="sessionId",
    partitions=6,
    retention_ms=3 * _DAY_MS,  # holds unredacted PII: long enough to recover an outage, no more
    cleanup_policy="delete",
    description="Telemetry batches accepted by the gateway, before PII redaction.",
    producers=("gateway",),
    consumers=("pii_redaction",),
)
TELEMETRY_REDACTED = TopicSpec(
    "telemetry.redacted",
    record="TelemetryRedacted",
    key="sessionId",
    partitions=6,
    retention_ms=30 * _DAY_MS,
    cleanup_policy="delete",
    description="Telemetry batches after PII redaction; the source for features, vectors and storage.",
    producers=("pii_redaction",),
    consumers=("feature_extraction", "vector_indexing", "telemetry_storage", "session_state", "analytics"),
)
SESSIONS_LIFECYCLE = TopicSpec(
    "sessions.lifecycle",
    record="SessionEvent",
    key="sessionId",
    partitions=6,
    retention_ms=None,
    cleanup_policy="compact",  # the latest state of every session, replayable from offset 0
    description="Session created/updated/ended/erased, with consent flags and video URL.",
    producers=("gateway",),
    consumers=("session_storage", "dataset_growth"),
)
TWIN_REQUESTS = TopicSpec(
    "twin.requests",
    record="TwinRequest",
    key="sessionId",  # one session's turns are answered in order by one worker
    partitions=3,
    retention_ms=1 * _DAY_MS,  # a request is stale after its deadline (seconds)
    cleanup_policy="delete",
    description="Respond requests from the gateway to the twin.",
    producers=("gateway",),
    consumers=("response_generation",),
)
TWIN_DRAFTS = TopicSpec(
    "twin.drafts",
    record="TwinDraft",
    key="sessionId",
    partitions=3,
    retention_ms=1 * _DAY_MS,
    cleanup_policy="delete",
    description="Generated replies waiting for the output safety filter.",
    producers=("response_generation",),
    consumers=("safety_filter",),
)
TWIN_REPLIES = TopicSpec(
    "twin.replies",
    record="TwinReply",
    key="sessionId",
    partitions=3,
    retention_ms=7 * _DAY_MS,
    cleanup_policy="delete",
    description="Safe replies; the gateway matches them to waiting requests by correlationId.",
    producers=("safety_filter",),
    consumers=("gateway", "eval_sampling", "analytics"),
)
SAFETY_VERDICTS = TopicSpec(
    "safety.verdicts",
    record="SafetyVerdict",
    key="correlationId",
    partitions=3,  # one verdict or two per twin request: twin.* volume
    retention_ms=30 * _DAY_MS,
    cleanup_policy="delete",
    description="Every input and output safety check, passed or not.",
    producers=("response_generation", "safety_filter"),
    consumers=("analytics",),
)
FEATURES_STYLE = TopicSpec(
    "features.style",
    record="StyleFeatures",
    key="sessionId",
    partitions=6,
    retention_ms=30 * _DAY_MS,
    cleanup_policy="delete",
    description="Style scores per turn (directness, warmth, verbosity, ...).",
    producers=("feature_extraction",),
    consumers=("analytics",),
)
FEATURES_CODE_ACTIVITY = TopicSpec(
    "features.code_activity",
    record="CodeActivityFeatures",
    key="sessionId",
    partitions=6,
    retention_ms=30 * _DAY_MS,
    cleanup_policy="delete",
    description="Windowed IDE activity per session (edit rate, run success, pauses).",
    producers=("feature_extraction",),
    consumers=("analytics",),
)
EVAL_SAMPLES = TopicSpec(
    "eval.samples",
    record="EvalSample",
    key="interviewerId",  # evaluation is per interviewer (GET /eval/:interviewerId)
    partitions=3,
    retention_ms=30 * _DAY_MS,
    cleanup_policy="delete",
    description="Twin replies paired with the real interviewer's turns, for scoring.",
    producers=("eval_sampling",),
    consumers=("analytics",),
)
TRAINING_JOBS = TopicSpec(
    "training.jobs",
    record="TrainingJob",
    key="jobId",
    partitions=1,
    retention_ms=30 * _DAY_MS,
    cleanup_policy="delete",
    description="Training requests from POST /api/digital-twin/train and from the refresh controller.",
    producers=("gateway", "training_jobs", "refresh_controller"),
    consumers=("training_jobs",),
)
TRAINING_STATUS = TopicSpec(
    "training.status",
    record="TrainingJobStatus",
    key="jobId",
    partitions=1,
    retention_ms=None,
    cleanup_policy="compact",  # the latest status per job is what GET .../train/:jobId needs
    description="Latest state of every training job.",
    producers=("gateway", "training_jobs"),
    consumers=("analytics",),
)
AUDIT_RECORDS = TopicSpec(
    "audit.records",
    record="AuditRecord",
    key="tenant",
    partitions=1,
    retention_ms=None,  # the audit trail is never expired in Kafka; erasure happens in Postgres
    cleanup_policy="delete",
    description="Audit trail: access, drops, redactions, erasures, training.",
    producers=("gateway", "safety_filter", "training_jobs"),
    consumers=("audit_storage",),
)
DEADLETTER = TopicSpec(
    "deadletter",
    record="DeadLetter",
    key=None,  # failures from every topic; no ordering to keep, and no tenant to scope by
    partitions=1,
    retention_ms=14 * _DAY_MS,
    cleanup_policy="delete",
    description="Messages an agent or sink could not process; inspect and replay with the CLI.",
    producers=_AGENTS,
    consumers=(),
)

TOPICS: tuple[TopicSpec, ...] = (
    TELEMETRY_RAW,
    TELEMETRY_REDACTED,
    SESSIONS_LIFECYCLE,
    TWIN_REQUESTS,
    TWIN_DRAFTS,
    TWIN_REPLIES,
    SAFETY_VERDICTS,
    FEATURES_STYLE,
    FEATURES_CODE_ACTIVITY,
    EVAL_SAMPLES,
    TRAINING_JOBS,
    TRAINING_STATUS,
    AUDIT_RECORDS,
    DEADLETTER,
)

_BY_NAME = {spec.name: spec for spec in TOPICS}


def by_name(name: str) -> TopicSpec:
    """The spec of a topic name (without deployment prefix).

    :raises KeyError: not a catalogue topic.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(_BY_NAME)}") from None


def key_for(spec: TopicSpec, model_or_dict: AvroModel | Mapping[str, Any]) -> bytes | None:
    """Message key of a record on ``spec``'s topic: UTF-8 ``"<tenant>/<value>"``.

    Keys are scoped by tenant so that two tenants can never share a key: on a compacted topic
    a shared key would let one tenant's record replace the other's. A ``tenant``-keyed topic
    uses the tenant alone, and an unkeyed topic (``spec.key is None``) returns None.

    :param model_or_dict: a model from :mod:`schemas.models` or a dict with the same fields.
    :raises ValueError: the record lacks the tenant or the key field, or it is empty.
    """
    if spec.key is None:
        return None
    record = model_or_dict if isinstance(model_or_dict, Mapping) else dict(model_or_dict)
    tenant = record.get("tenant")
    if not tenant:
        raise ValueError(f"{spec.name}: record has no tenant to key by")
    if spec.key == "tenant":
        return str(tenant).encode()
    for field in _KEY_SOURCES[spec.key]:
        value = record.get(field)
        if value:
            return f"{tenant}/{value}".encode()
    raise ValueError(f"{spec.name}: record has no {spec.key} (looked for {', '.join(_KEY_SOURCES[spec.key])})")
