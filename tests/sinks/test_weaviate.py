import numpy as np
import pytest

from sinks.weaviate import TURN_CHUNKS, VectorObject, WeaviateSink


@pytest.fixture
def turn_sink(weaviate_client, unique_name):
    sink = WeaviateSink(weaviate_client, TURN_CHUNKS, prefix=f"Test{unique_name}")
    sink.ensure_collection()
    yield sink
    sink.drop()


def _unit(seed: int, dim: int = 384) -> list[float]:
    v = np.random.default_rng(seed).normal(size=dim)
    return list(v / np.linalg.norm(v))


def test_near_vector_finds_the_closest_within_tenant_and_interviewer(turn_sink):
    objs = [VectorObject(f"k{i}", {"interviewerId": "a" if i % 2 else "b", "text": f"line {i}", "seq": i}, _unit(i))
            for i in range(20)]
    assert turn_sink.upsert("acme", objs) == 20
    hits = turn_sink.near_vector("acme", _unit(7), limit=3, where={"interviewerId": "a"})
    assert hits[0].properties["seq"] == 7 and hits[0].distance < 1e-4
    assert all(h.properties["interviewerId"] == "a" for h in hits)
    # Another tenant sees nothing of acme's objects.
    assert turn_sink.near_vector("globex", _unit(7), limit=3) == []


def test_a_list_in_where_matches_any_of_its_values(turn_sink):
    objs = [VectorObject(f"k{i}", {"interviewerId": "abc"[i % 3], "text": f"line {i}", "seq": i}, _unit(i))
            for i in range(30)]
    turn_sink.upsert("acme", objs)
    hits = turn_sink.near_vector("acme", _unit(4), limit=30,
                                 where={"interviewerId": ["a", "b"], "seq": list(range(10))})
    assert sorted(h.properties["seq"] for h in hits) == [i for i in range(10) if i % 3 != 2]
    assert hits[0].properties["seq"] == 4  # still nearest first
    assert turn_sink.count("acme", where={"interviewerId": ["a", "c"]}) == 20
    with pytest.raises(ValueError, match="no values"):
        turn_sink.near_vector("acme", _unit(4), where={"interviewerId": []})


def test_upsert_is_idempotent_by_key(turn_sink):
    obj = VectorObject("same-key", {"interviewerId": "a", "text": "v1", "seq": 1}, _unit(1))
    turn_sink.upsert("acme", [obj])
    turn_sink.upsert("acme", [VectorObject("same-key", {"interviewerId": "a", "text": "v2", "seq": 1}, _unit(1))])
    assert turn_sink.count("acme") == 1
    assert turn_sink.near_vector("acme", _unit(1), limit=1)[0].properties["text"] == "v2"
    assert turn_sink.delete_where("acme", "interviewerId", "a") == 1
    assert turn_sink.count("acme") == 0


def test_a_write_larger_than_one_request_lands_whole(turn_sink):
    from sinks.weaviate import UPSERT_CHUNK

    n = 2 * UPSERT_CHUNK + 7
    objs = [VectorObject(f"big-{i}", {"interviewerId": "a", "text": f"line {i}", "seq": i}, _unit(i)) for i in range(n)]
    assert turn_sink.upsert("acme", objs) == n
    assert turn_sink.count("acme") == n
    assert turn_sink.near_vector("acme", _unit(n - 1), limit=1)[0].properties["seq"] == n - 1  # the last request's


def test_a_rejected_object_fails_the_write_loudly(turn_sink):
    from sinks.weaviate import WeaviateSinkError

    bad = VectorObject("bad", {"interviewerId": "a", "text": "fine", "seq": "not a number"}, _unit(3))
    with pytest.raises(WeaviateSinkError, match="rejected"):
        turn_sink.upsert("acme", [VectorObject("good", {"interviewerId": "a", "text": "ok", "seq": 1}, _unit(2)), bad])
