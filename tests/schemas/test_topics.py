"""The topic catalogue: every topic's record exists, round-trips and is keyed sensibly."""

from __future__ import annotations

import dataclasses

import pytest

from schemas import codec, topics
from schemas.models import MODELS
from schemas.samples import sample
from schemas.topics import TOPICS, TopicSpec, by_name, key_for

IDS = [spec.name for spec in TOPICS]


def _avro_fields(record_name: str) -> set[str]:
    return {f["name"] for f in codec.schema_json(record_name)["fields"]}


def test_topic_names_are_unique():
    assert len(set(IDS)) == len(IDS)


def test_every_topic_constant_is_in_topics_and_named_after_its_topic():
    constants = {name: value for name, value in vars(topics).items() if isinstance(value, TopicSpec)}
    assert set(constants.values()) == set(TOPICS)
    for constant, spec in constants.items():
        assert constant == spec.name.upper().replace(".", "_")
        assert constant in topics.__all__


def test_every_record_travels_on_exactly_one_topic():
    carried = [spec.record for spec in TOPICS]
    assert sorted(carried) == sorted(codec.record_names())


@pytest.mark.parametrize("spec", TOPICS, ids=IDS)
def test_topic_record_round_trips_a_sample(spec):
    model = sample(spec.record)
    data = codec.encode_model(model)
    assert codec.peek_header(data)[0] == spec.record
    assert codec.decode_model(data, MODELS[spec.record]) == model


@pytest.mark.parametrize("spec", [s for s in TOPICS if s.key is not None], ids=lambda s: s.name)
def test_key_is_tenant_scoped_value_of_the_key_field(spec):
    model = sample(spec.record)
    fields = _avro_fields(spec.record)
    key_field = "interviewSessionId" if spec.key == "sessionId" and "sessionId" not in fields else spec.key
    assert key_field in fields
    value = getattr(model, key_field)
    expected = model.tenant if spec.key == "tenant" else f"{model.tenant}/{value}"
    assert key_for(spec, model) == expected.encode()
    assert key_for(spec, model.to_avro()) == key_for(spec, model)  # dicts from fastavro too


def test_same_id_in_two_tenants_gives_two_keys():
    first = sample("SessionEvent")
    second = first.model_copy(update={"tenant": "globex"})
    assert key_for(topics.SESSIONS_LIFECYCLE, first) != key_for(topics.SESSIONS_LIFECYCLE, second)


def test_key_for_reports_a_missing_key_field():
    record = sample("TwinRequest").to_avro()
    del record["sessionId"]
    with pytest.raises(ValueError, match="twin.requests: record has no sessionId"):
        key_for(topics.TWIN_REQUESTS, record)


def test_unkeyed_topic_has_no_key():
    assert key_for(topics.DEADLETTER, sample("DeadLetter")) is None


@pytest.mark.parametrize("spec", [s for s in TOPICS if s.cleanup_policy == "compact"], ids=lambda s: s.name)
def test_compacted_topics_are_keyed_and_never_expire(spec):
    assert spec.key is not None
    assert spec.retention_ms is None


def test_compacted_topics_are_the_state_topics():
    assert {s.name for s in TOPICS if s.cleanup_policy == "compact"} == {"sessions.lifecycle", "training.status"}


@pytest.mark.parametrize("spec", TOPICS, ids=IDS)
def test_partitions_follow_the_topic_family(spec):
    family = spec.name.split(".")[0]
    expected = {"telemetry": 6, "features": 6, "twin": 3, "training": 1, "audit": 1, "deadletter": 1}
    if family in expected:
        assert spec.partitions == expected[family]
    else:
        assert spec.partitions >= 1


@pytest.mark.parametrize("spec", TOPICS, ids=IDS)
def test_flow_names_known_components(spec):
    assert spec.producers, "every topic has a writer"
    assert set(spec.producers) | set(spec.consumers) <= set(topics.COMPONENTS)
    assert spec.description


def test_every_topic_but_deadletter_is_read():
    assert [s.name for s in TOPICS if not s.consumers] == ["deadletter"]


def test_by_name_finds_each_topic_and_rejects_others():
    for spec in TOPICS:
        assert by_name(spec.name) is spec
    with pytest.raises(KeyError, match="telemetry.raw"):
        by_name("telemetry.cooked")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"record": "Nope"}, "unknown record", id="unknown-record"),
        pytest.param({"cleanup_policy": "compact", "key": None}, "needs a key", id="compact-unkeyed"),
        pytest.param({"key": "candidateRef"}, "is not one of", id="bad-key"),
        pytest.param({"partitions": 0}, "partitions", id="no-partitions"),
        pytest.param({"consumers": ("spark",)}, "unknown components", id="unknown-consumer"),
    ],
)
def test_topic_spec_rejects_inconsistent_entries(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(topics.TWIN_REQUESTS, **change)


def test_topic_specs_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        topics.TWIN_REQUESTS.partitions = 12  # type: ignore[misc]
