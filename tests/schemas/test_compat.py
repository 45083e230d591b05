"""Schema evolution: released writer schemas and current reader schemas read each other."""

from __future__ import annotations

import copy
import io

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas import codec
from schemas.codec import SCHEMA_VERSIONS, DecodeError, SchemaError, check_compatible
from schemas.models import TwinRequest
from schemas.release import release, released_versions
from schemas.samples import sample

RECORDS = codec.record_names()
RELEASES = [(name, v) for name in RECORDS for v in range(1, SCHEMA_VERSIONS[name] + 1)]


def _write(schema: dict, record: dict) -> io.BytesIO:
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(copy.deepcopy(schema), named_schemas={}), record)
    out.seek(0)
    return out


def _read(data: io.BytesIO, writer: dict, reader: dict) -> dict:
    return schemaless_reader(
        data, parse_schema(copy.deepcopy(writer), named_schemas={}), parse_schema(copy.deepcopy(reader), named_schemas={})
    )


@pytest.mark.parametrize(("record_name", "version"), RELEASES)
def test_released_data_is_readable_by_the_current_schema(record_name, version):
    released, current = codec.schema_json(record_name, version), codec.schema_json(record_name)
    model = sample(record_name)
    decoded = _read(_write(released, model.to_avro()), writer=released, reader=current)
    assert type(model).from_avro(decoded) == model


@pytest.mark.parametrize(("record_name", "version"), RELEASES)
def test_current_data_is_readable_by_released_schemas(record_name, version):
    released, current = codec.schema_json(record_name, version), codec.schema_json(record_name)
    model = sample(record_name)
    decoded = _read(_write(current, model.to_avro()), writer=current, reader=released)
    assert type(model).from_avro(decoded) == model


@pytest.mark.parametrize(("record_name", "version"), RELEASES)
def test_current_schemas_are_compatible_with_every_release(record_name, version):
    assert check_compatible(codec.schema_json(record_name, version), codec.schema_json(record_name)) == []


def _field(schema: dict, name: str) -> dict:
    return next(f for f in schema["fields"] if f["name"] == name)


def _verbosity_enum(schema: dict) -> dict:
    return _field(schema, "controls")["type"][1]["fields"][2]["type"][1]


BREAKING = [
    pytest.param(
        lambda s: s["fields"].append({"name": "locale", "type": "string"}),
        ["backward", "No default value for field locale"],
        id="add-required-field",
    ),
    pytest.param(
        lambda s: s["fields"].remove(_field(s, "candidateTurn")),
        ["forward", "No default value for field candidateTurn"],
        id="remove-required-field",
    ),
    pytest.param(
        lambda s: _field(s, "candidateTurn").update(name="candidateText"),
        ["backward", "candidateText", "forward", "candidateTurn"],
        id="rename-field",
    ),
    pytest.param(
        lambda s: _field(s, "replyTopic").update(type="int"),
        ["backward", "string is not int", "forward", "int is not string"],
        id="change-type",
    ),
    pytest.param(
        lambda s: _verbosity_enum(s)["symbols"].remove("verbose"),
        ["backward", "verbose not found in reader symbol list"],
        id="remove-enum-symbol",
    ),
    pytest.param(
        lambda s: _verbosity_enum(s)["symbols"].append("chatty"),
        ["forward", "chatty not found in reader symbol list"],
        id="add-enum-symbol",
    ),
    pytest.param(
        lambda s: _field(s, "temperature").update(type="double", default=0.7),
        ["backward", "null"],
        id="optional-becomes-required",
    ),
]


@pytest.mark.parametrize(("change", "expected"), BREAKING)
def test_check_reports_breaking_changes(change, expected):
    old = codec.schema_json("TwinRequest")
    new = copy.deepcopy(old)
    change(new)
    problems = "\n".join(check_compatible(old, new))
    for text in expected:
        assert text in problems


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda s: s["fields"].append({"name": "locale", "type": ["null", "string"], "default": None}),
            id="add-optional-field",
        ),
        pytest.param(lambda s: s["fields"].remove(_field(s, "temperature")), id="remove-field-with-default"),
        pytest.param(lambda s: _field(s, "deadlineMs").update(doc="reworded"), id="doc-only"),
    ],
)
def test_check_accepts_compatible_changes(change):
    old = codec.schema_json("TwinRequest")
    new = copy.deepcopy(old)
    change(new)
    assert check_compatible(old, new) == []


def test_coverage_samples_use_every_enum_symbol_and_union_branch():
    samples = codec.coverage_samples(codec.schema_json("TelemetryRaw"))
    events = [event for s in samples for event in s["events"]]
    assert {name.rsplit(".", 1)[-1] for name, _ in events} == {"CodeEditEvent", "RunEvent", "TurnEvent", "ControlEvent"}
    actions = {e["action"] for name, e in events if name.endswith("ControlEvent")}
    assert actions == {"ask_followup", "hint", "pace_up", "pace_down", "topic_shift", "end"}


def _add_locale(schema: dict) -> None:
    schema["fields"].append({"name": "locale", "type": ["null", "string"], "default": None})


def test_a_released_v2_reads_v1_messages_and_v1_refuses_v2(edit_schema):
    avro_dir = edit_schema("TwinRequest", _add_locale)
    written = release("TwinRequest", avro_dir)
    assert written is not None and written.name == "twin_request.v2.avsc"
    assert released_versions("TwinRequest", avro_dir) == [1, 2]
    v2 = codec.SchemaRegistry(avro_dir, versions={**SCHEMA_VERSIONS, "TwinRequest": 2})

    old_message = codec.encode_model(sample("TwinRequest"))  # this build writes v1
    name, record = v2.decode(old_message, reader_name="TwinRequest")
    assert name == "TwinRequest" and record["locale"] is None
    assert {k: v for k, v in record.items() if k != "locale"} == codec.decode(old_message)[1]

    new_message = v2.encode("TwinRequest", {**sample("TwinRequest").to_avro(), "locale": "de-DE"})
    assert v2.peek_header(new_message) == ("TwinRequest", 2)
    assert v2.decode(new_message)[1]["locale"] == "de-DE"
    with pytest.raises(DecodeError, match="TwinRequest v2 is not known.*deploy"):
        codec.decode(new_message)


def test_release_refuses_an_incompatible_change(edit_schema):
    avro_dir = edit_schema("TwinRequest", lambda s: s["fields"].append({"name": "locale", "type": "string"}))
    with pytest.raises(SchemaError, match="v1: backward.*locale"):
        release("TwinRequest", avro_dir)
    assert released_versions("TwinRequest", avro_dir) == [1]


def test_release_of_an_unchanged_schema_writes_nothing(avro_copy):
    assert release("TwinRequest", avro_copy) is None
    assert released_versions("TwinRequest", avro_copy) == [1]


def test_model_ignores_fields_added_by_a_newer_writer(edit_schema):
    # Models forbid unknown fields, so decoding must resolve to the reader's schema first:
    # a newer writer's extra field is dropped by Avro resolution, not rejected by pydantic.
    avro_dir = edit_schema("TwinRequest", _add_locale)
    release("TwinRequest", avro_dir)
    v2 = codec.SchemaRegistry(avro_dir, versions={**SCHEMA_VERSIONS, "TwinRequest": 2})
    data = v2.encode("TwinRequest", {**sample("TwinRequest").to_avro(), "locale": "de-DE"})
    writer = v2.schema_json("TwinRequest", 2)
    record = _read(io.BytesIO(data[codec.HEADER.size :]), writer=writer, reader=codec.schema_json("TwinRequest"))
    assert TwinRequest.from_avro(record) == sample("TwinRequest")
