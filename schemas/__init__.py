"""The contract every process shares: Avro schemas, their pydantic models, the topic catalogue.

- ``schemas/avro/*.avsc``: one Avro record per Kafka message type (frozen copies in
  ``avro/released/``);
- :mod:`schemas.models`: pydantic models with the same field names (HTTP API and agents);
- :mod:`schemas.codec`: the wire format (header with schema id and version, then Avro);
- :mod:`schemas.topics`: ``TOPICS``, the one place a topic meets its record and key;
- :mod:`schemas.samples`: ``sample(record_name)`` for tests and benchmarks.

Run the contract tests with ``python -m pytest tests/schemas -q`` (no services needed).
"""

from schemas.codec import (
    SCHEMA_IDS,
    SCHEMA_VERSIONS,
    CodecError,
    DecodeError,
    EncodeError,
    SchemaError,
    check_compatible,
    decode,
    decode_model,
    encode,
    encode_model,
    record_names,
)
from schemas.models import (
    MODELS,
    AuditRecord,
    AvroModel,
    CodeActivityFeatures,
    CodeEditEvent,
    ControlEvent,
    DeadLetter,
    EvalSample,
    RunEvent,
    SafetyVerdict,
    SessionEvent,
    StyleFeatures,
    TelemetryBatch,
    TelemetryEvent,
    TelemetryRaw,
    TelemetryRedacted,
    TrainingJob,
    TrainingJobStatus,
    TurnEvent,
    TwinDraft,
    TwinReply,
    TwinRequest,
    model_for,
)
from schemas.samples import sample
from schemas.topics import TOPICS, TopicSpec, by_name, key_for

__all__ = [
    "MODELS",
    "SCHEMA_IDS",
    "SCHEMA_VERSIONS",
    "TOPICS",
    "AuditRecord",
    "AvroModel",
    "CodeActivityFeatures",
    "CodeEditEvent",
    "CodecError",
    "ControlEvent",
    "DeadLetter",
    "DecodeError",
    "EncodeError",
    "EvalSample",
    "RunEvent",
    "SafetyVerdict",
    "SchemaError",
    "SessionEvent",
    "StyleFeatures",
    "TelemetryBatch",
    "TelemetryEvent",
    "TelemetryRaw",
    "TelemetryRedacted",
    "TopicSpec",
    "TrainingJob",
    "TrainingJobStatus",
    "TurnEvent",
    "TwinDraft",
    "TwinReply",
    "TwinRequest",
    "by_name",
    "check_compatible",
    "decode",
    "decode_model",
    "encode",
    "encode_model",
    "key_for",
    "model_for",
    "record_names",
    "sample",
]
