"""Validation of the pydantic models, mostly the telemetry API (spec 12b)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from schemas import models as m
from schemas.samples import sample

EVENT = TypeAdapter(m.TelemetryEvent)
EVENT_CLASSES = [m.CodeEditEvent, m.RunEvent, m.TurnEvent, m.ControlEvent]


def _example(cls: type) -> dict:
    return dict(cls.model_config["json_schema_extra"]["examples"][0])


def _errors(payload: dict, model=m.TelemetryBatch) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(payload)
    return info.value.errors()


def _batch(*events: dict) -> dict:
    return {"interviewSessionId": "sess-1", "events": list(events)}


@pytest.mark.parametrize("cls", EVENT_CLASSES)
def test_discriminated_union_picks_the_class_named_by_type(cls):
    event = EVENT.validate_python(_example(cls))
    assert type(event) is cls


def test_batch_keeps_event_order_and_classes():
    batch = m.TelemetryBatch.model_validate(_batch(*(_example(c) for c in reversed(EVENT_CLASSES))))
    assert [type(e) for e in batch.events] == list(reversed(EVENT_CLASSES))


def test_initialise_batch_needs_only_the_session_id():
    assert m.TelemetryBatch.model_validate({"interviewSessionId": "sess-1"}).events == []


@pytest.mark.parametrize(
    ("change", "loc", "error_type"),
    [
        pytest.param({"type": "keystroke"}, ("events", 0), "union_tag_invalid", id="unknown-type"),
        pytest.param({"type": None}, ("events", 0), "union_tag_invalid", id="null-type"),
        pytest.param({"diffChars": -1}, ("events", 0, "code_edit", "diffChars"), "greater_than_equal", id="negative-diff"),
        pytest.param({"diffChars": 2.5}, ("events", 0, "code_edit", "diffChars"), "int_from_float", id="fractional-diff"),
        pytest.param({"source": "browser"}, ("events", 0, "code_edit", "source"), "literal_error", id="bad-source"),
        pytest.param({"ts": "yesterday"}, ("events", 0, "code_edit", "ts"), "value_error", id="bad-ts"),
        pytest.param({"ts": 1700000000}, ("events", 0, "code_edit", "ts"), "string_type", id="numeric-ts"),
        pytest.param({"cursor": {"line": 3}}, ("events", 0, "code_edit", "cursor", "column"), "missing", id="half-cursor"),
        pytest.param({"colour": "red"}, ("events", 0, "code_edit", "colour"), "extra_forbidden", id="unknown-field"),
    ],
)
def test_rejects_invalid_code_edit_naming_the_field(change, loc, error_type):
    errors = _errors(_batch({**_example(m.CodeEditEvent), **change}))
    assert (errors[0]["loc"], errors[0]["type"]) == (loc, error_type)


def test_unknown_type_error_names_the_discriminator_and_the_allowed_tags():
    (error,) = _errors(_batch({**_example(m.RunEvent), "type": "keystroke"}))
    assert "'type'" in error["msg"] and "'code_edit'" in error["msg"] and "keystroke" in error["msg"]


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (m.RunEvent, "status", "crashed"),
        (m.TurnEvent, "role", "recruiter"),
        (m.ControlEvent, "action", "skip"),
    ],
)
def test_rejects_values_outside_an_enum(cls, field, value):
    (error,) = _errors(_batch({**_example(cls), field: value}))
    assert error["loc"][-1] == field and error["type"] == "literal_error"


@pytest.mark.parametrize(
    ("cls", "field"),
    [
        (m.CodeEditEvent, "diffChars"),
        (m.CodeEditEvent, "sessionId"),
        (m.RunEvent, "status"),
        (m.TurnEvent, "text"),
        (m.TurnEvent, "ts"),
        (m.ControlEvent, "action"),
    ],
)
def test_rejects_missing_required_field(cls, field):
    payload = _example(cls)
    del payload[field]
    (error,) = _errors(_batch(payload))
    assert error["loc"] == ("events", 0, payload["type"], field) and error["type"] == "missing"


def test_rejects_more_than_200_events():
    errors = _errors(_batch(*[_example(m.TurnEvent)] * 201))
    assert errors[0]["loc"] == ("events",) and errors[0]["type"] == "too_long"
    assert len(m.TelemetryBatch.model_validate(_batch(*[_example(m.TurnEvent)] * 200)).events) == 200


@pytest.mark.parametrize("ts", ["2025-03-04T10:15:30Z", "2025-03-04T10:15:30.120+02:00", "2025-03-04T10:15:30"])
def test_accepts_iso8601_timestamps_and_keeps_them_as_sent(ts):
    event = EVENT.validate_python({**_example(m.TurnEvent), "ts": ts})
    assert event.ts == ts
    assert m.parse_ts(ts).tzinfo is not None  # offset-less is read as UTC


def test_avro_spelling_of_json_fields_is_not_accepted_by_the_api():
    payload = {**_example(m.ControlEvent), "paramsJson": '{"level": 1}'}
    payload.pop("params")
    (error,) = _errors(_batch(payload))
    assert error["loc"][-1] == "paramsJson" and error["type"] == "extra_forbidden"


def test_json_fields_convert_both_ways():
    event = m.ControlEvent.model_validate(_example(m.ControlEvent))
    record = event.to_avro()
    assert "params" not in record and record["paramsJson"] == '{"level":1}'
    assert m.ControlEvent.from_avro(record) == event.model_copy(update={"eventId": record["eventId"]})


def test_from_avro_rejects_a_json_field_that_is_not_json():
    record = m.ControlEvent.model_validate(_example(m.ControlEvent)).to_avro()
    record["paramsJson"] = "{level: 1"
    with pytest.raises(ValidationError, match="paramsJson is not valid JSON"):
        m.ControlEvent.from_avro(record)


def test_derived_event_id_is_stable_and_content_based():
    first = EVENT.validate_python(_example(m.TurnEvent))
    again = EVENT.validate_python(_example(m.TurnEvent))
    other = EVENT.validate_python({**_example(m.TurnEvent), "text": "Something else?"})
    assert first.eventId is None
    assert first.to_avro()["eventId"] == again.to_avro()["eventId"] == m.derive_event_id(first)
    assert other.to_avro()["eventId"] != first.to_avro()["eventId"]
    assert EVENT.validate_python({**_example(m.TurnEvent), "eventId": "client-1"}).to_avro()["eventId"] == "client-1"


@pytest.mark.parametrize("cls", EVENT_CLASSES + [m.TelemetryBatch])
def test_json_schema_examples_are_valid(cls):
    # FastAPI shows these; an example that fails validation would mislead API users.
    for example in cls.model_config["json_schema_extra"]["examples"]:
        cls.model_validate(example)
    assert cls.model_json_schema()["examples"]


def test_instants_must_be_timezone_aware():
    with pytest.raises(ValidationError) as info:
        m.SessionEvent.model_validate({**sample("SessionEvent").model_dump(), "ts": datetime(2025, 1, 1)})
    assert info.value.errors()[0]["loc"] == ("ts",) and info.value.errors()[0]["type"] == "timezone_aware"


def test_instants_are_stored_as_utc_milliseconds():
    local = datetime(2025, 1, 1, 12, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2)))
    event = m.SessionEvent.model_validate({**sample("SessionEvent").model_dump(), "ts": local})
    assert event.ts == local.replace(microsecond=123_000)
    assert event.ts.utcoffset() == timedelta(0)


@pytest.mark.parametrize("field", ["directness", "warmth", "verbosity", "questionForm", "followUp", "challenge", "coaching"])
@pytest.mark.parametrize("value", [-0.01, 1.01])
def test_style_scores_must_be_between_zero_and_one(field, value):
    payload = {**sample("StyleFeatures").model_dump(), field: value}
    with pytest.raises(ValidationError) as info:
        m.StyleFeatures.model_validate(payload)
    assert info.value.errors()[0]["loc"] == (field,)


def test_twin_controls_reject_unknown_verbosity():
    payload = sample("TwinRequest").model_dump()
    payload["controls"]["verbosity"] = "chatty"
    with pytest.raises(ValidationError) as info:
        m.TwinRequest.model_validate(payload)
    assert info.value.errors()[0]["loc"] == ("controls", "verbosity")


def test_redacted_batch_is_not_a_raw_batch():
    # Agents dispatch on the class; a redacted batch must never pass for a raw one.
    assert not isinstance(sample("TelemetryRedacted"), m.TelemetryRaw)
    assert not isinstance(sample("TelemetryRaw"), m.TelemetryRedacted)


def test_model_for_unknown_record_names_the_known_ones():
    with pytest.raises(KeyError, match="TwinRequest"):
        m.model_for("Nope")
