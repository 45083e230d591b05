"""Wire format and round trips: every record, model -> Avro -> bytes -> model."""

from __future__ import annotations

import json
from datetime import timezone

import pytest

from schemas import codec
from schemas.codec import HEADER, MAGIC, SCHEMA_IDS, SCHEMA_VERSIONS, DecodeError, EncodeError, SchemaError
from schemas.models import MODELS, CodeEditEvent, ControlEvent, RunEvent, TelemetryRaw, TurnEvent
from schemas.samples import sample

RECORDS = codec.record_names()


def test_every_record_has_a_model_and_a_sample():
    assert set(RECORDS) == set(SCHEMA_IDS) == set(MODELS)
    for name in RECORDS:
        assert type(sample(name)) is MODELS[name]


def test_schema_ids_never_change():
    # Ids are on the wire of every stored message: renumbering one makes old data unreadable
    # or, worse, readable as another record. Only ever append to this table.
    assert SCHEMA_IDS == {
        "TelemetryRaw": 1,
        "TelemetryRedacted": 2,
        "SessionEvent": 3,
        "TwinRequest": 4,
        "TwinDraft": 5,
        "TwinReply": 6,
        "SafetyVerdict": 7,
        "StyleFeatures": 8,
        "CodeActivityFeatures": 9,
        "EvalSample": 10,
        "TrainingJob": 11,
        "TrainingJobStatus": 12,
        "AuditRecord": 13,
        "DeadLetter": 14,
    }


@pytest.mark.parametrize("record_name", RECORDS)
def test_round_trips_model_through_avro_bytes(record_name):
    model = sample(record_name)
    data = codec.encode(record_name, model.to_avro())
    name, record = codec.decode(data, reader_name=record_name)
    assert name == record_name
    assert type(model).from_avro(record) == model
    assert codec.decode_model(data, type(model)) == model


@pytest.mark.parametrize("record_name", RECORDS)
def test_message_starts_with_magic_id_and_version(record_name):
    data = codec.encode_model(sample(record_name))
    magic, schema_id, version = HEADER.unpack_from(data)
    assert (magic, schema_id, version) == (MAGIC, SCHEMA_IDS[record_name], SCHEMA_VERSIONS[record_name])
    assert codec.peek_header(data) == (record_name, SCHEMA_VERSIONS[record_name])


def test_union_events_decode_to_their_own_classes():
    batch = sample("TelemetryRaw")
    decoded = codec.decode_model(codec.encode_model(batch), TelemetryRaw)
    assert [type(e) for e in decoded.events] == [CodeEditEvent, RunEvent, TurnEvent, ControlEvent]


def test_free_form_objects_travel_as_json_strings():
    batch = sample("TelemetryRaw")
    _, record = codec.decode(codec.encode_model(batch))
    control = record["events"][3]
    assert json.loads(control["paramsJson"]) == batch.events[3].params
    args = record["events"][2]["functionCalls"][0]["argsJson"]
    assert json.loads(args) == batch.events[2].functionCalls[0].args


def test_instants_decode_as_utc_datetimes():
    model = sample("SessionEvent")
    decoded = codec.decode_model(codec.encode_model(model))
    assert decoded.ts.tzinfo is not None and decoded.ts.utcoffset() == timezone.utc.utcoffset(None)
    assert decoded.ts == model.ts


def test_missing_event_id_is_filled_on_the_wire():
    batch = sample("TelemetryRaw")
    batch.events[0].eventId = None
    decoded = codec.decode_model(codec.encode_model(batch))
    assert decoded.events[0].eventId  # derived, not empty
    assert decoded.events[1:] == batch.events[1:]


def _valid() -> bytes:
    return codec.encode_model(sample("TwinRequest"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "shorter than", id="empty"),
        pytest.param(b"\x01\x00", "shorter than", id="short-header"),
        pytest.param(b"\x00" + _valid()[1:], "magic", id="wrong-magic"),
        pytest.param(HEADER.pack(MAGIC, 999, 1) + b"\x00", "unknown schema id 999", id="unknown-id"),
        pytest.param(HEADER.pack(MAGIC, 4, 0) + _valid()[5:], "v0 is not known", id="version-zero"),
        pytest.param(HEADER.pack(MAGIC, 4, 77) + _valid()[5:], "v77 is not known", id="future-version"),
        pytest.param(_valid()[:-3], "does not decode", id="truncated"),
        pytest.param(_valid() + b"\x00", "trailing bytes", id="trailing-bytes"),
        # A valid header on random bytes: must fail cleanly, whatever fastavro trips on.
        pytest.param(HEADER.pack(MAGIC, 4, 1) + bytes(range(251, 256)) * 8, "TwinRequest v1", id="garbage-body"),
        pytest.param(b'{"candidateTurn": "hi"}', "magic", id="json-not-avro"),
    ],
)
def test_decoding_garbage_raises_decode_error(data, message):
    with pytest.raises(DecodeError, match=message):
        codec.decode(data)


def test_decode_rejects_a_different_record_than_expected():
    data = codec.encode_model(sample("TwinReply"))
    with pytest.raises(DecodeError, match="expected a TwinRequest message, got TwinReply"):
        codec.decode(data, reader_name="TwinRequest")


def test_decode_model_reports_model_validation_failures():
    record = sample("StyleFeatures").to_avro()
    record["warmth"] = 1.5  # fits the Avro double, not the model's [0, 1]
    with pytest.raises(DecodeError, match="warmth"):
        codec.decode_model(codec.encode("StyleFeatures", record))


def test_encode_unknown_record_raises_schema_error():
    with pytest.raises(SchemaError, match="unknown record 'TwinRequst'"):
        codec.encode("TwinRequst", {})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(lambda r: r.update(deadlineMs="soon"), "deadlineMs", id="wrong-type"),
        pytest.param(lambda r: r.pop("candidateTurn"), "candidateTurn", id="missing-field"),
        pytest.param(lambda r: r.update(candidateTrun="typo"), "more fields", id="unknown-field"),
    ],
)
def test_encode_rejects_records_that_do_not_match(change, message):
    record = sample("TwinRequest").to_avro()
    change(record)
    with pytest.raises(EncodeError, match=message):
        codec.encode("TwinRequest", record)


def test_registry_refuses_an_unreleased_schema_edit(edit_schema):
    avro_dir = edit_schema(
        "TwinRequest", lambda s: s["fields"].append({"name": "locale", "type": ["null", "string"], "default": None})
    )
    with pytest.raises(SchemaError, match=r"twin_request.avsc differs from its released v1"):
        codec.SchemaRegistry(avro_dir)


def test_registry_refuses_a_missing_released_version(avro_copy):
    (avro_copy / "released" / "dead_letter.v1.avsc").unlink()
    with pytest.raises(SchemaError, match="dead_letter.v1.avsc"):
        codec.SchemaRegistry(avro_copy)


def test_registry_refuses_a_schema_file_without_an_id(avro_copy):
    (avro_copy / "mystery_event.avsc").write_text('{"type": "record", "name": "MysteryEvent", "fields": []}')
    with pytest.raises(SchemaError, match="mystery_event.avsc"):
        codec.SchemaRegistry(avro_copy)


def test_registry_reports_an_unknown_named_type(edit_schema):
    avro_dir = edit_schema("SafetyVerdict", lambda s: s["fields"].append({"name": "x", "type": "NoSuchType"}))
    with pytest.raises(SchemaError, match="NoSuchType"):
        codec.SchemaRegistry(avro_dir)


def test_named_types_are_shared_across_files():
    # TelemetryRedacted only references the event records of telemetry_raw.avsc; its
    # standalone schema must carry the same definitions.
    raw = codec.schema_json("TelemetryRaw")
    redacted = codec.schema_json("TelemetryRedacted")
    events = {f["name"]: f["type"] for f in raw["fields"]}["events"]
    assert {f["name"]: f["type"] for f in redacted["fields"]}["events"] == events
