"""The broker we pin (Kafka 3.9.x, KRaft) speaks what aiokafka and Faust need."""

import json
import os
import subprocess
import sys
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.clients import kafka_consumer, kafka_producer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def test_produce_consume_keyed_and_ordered(cfg, unique_topic):
    producer = kafka_producer(cfg)
    await producer.start()
    try:
        for i in range(30):
            await producer.send_and_wait(unique_topic, f"v{i}".encode(), key=f"s{i % 3}".encode())
    finally:
        await producer.stop()
    consumer = kafka_consumer(cfg, unique_topic, group_id=None)
    await consumer.start()
    got: dict[bytes, list[bytes]] = {}
    try:
        deadline = time.monotonic() + 20
        while sum(map(len, got.values())) < 30 and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                for m in msgs:
                    got.setdefault(m.key, []).append(m.value)
    finally:
        await consumer.stop()
    assert sum(map(len, got.values())) == 30
    # Same key → same partition → order kept.
    assert got[b"s0"] == [f"v{i}".encode() for i in range(0, 30, 3)]


async def test_consumer_group_commits_and_resumes(cfg, unique_topic, unique_name):
    producer = kafka_producer(cfg)
    await producer.start()
    for i in range(10):
        await producer.send_and_wait(unique_topic, str(i).encode(), partition=0)
    group = f"g-{unique_name}"
    first = kafka_consumer(cfg, unique_topic, group_id=group)
    await first.start()
    seen = []
    deadline = time.monotonic() + 30
    while len(seen) < 10 and time.monotonic() < deadline:
        for msgs in (await first.getmany(timeout_ms=500)).values():
            seen += [int(m.value) for m in msgs]
    await first.commit()
    await first.stop()
    assert sorted(seen) == list(range(10))
    for i in range(10, 15):
        await producer.send_and_wait(unique_topic, str(i).encode(), partition=0)
    await producer.stop()
    second = kafka_consumer(cfg, unique_topic, group_id=group)
    await second.start()
    resumed = []
    deadline = time.monotonic() + 30
    while len(resumed) < 5 and time.monotonic() < deadline:
        for msgs in (await second.getmany(timeout_ms=500)).values():
            resumed += [int(m.value) for m in msgs]
    await second.stop()
    assert resumed == [10, 11, 12, 13, 14], "a restarted group member resumes after the committed offset"


async def test_faust_agent_group_by_and_table(cfg, kafka_bootstrap, unique_name, tmp_path):
    probe = unique_name
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(f"probe-{probe}-{n}", 1 if n == "counts" else 2, 1)
                               for n in ("lines", "words", "counts")])
    await admin.close()
    (cfg.TWIN_VAR_DIR / "faust").mkdir(parents=True, exist_ok=True)
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "tests/infra/faust_wordcount.py", "worker", "-l", "info", "--without-web"],
        env={**os.environ, "PROBE_ID": probe, "PYTHONPATH": REPO_ROOT}, cwd=REPO_ROOT,
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        producer = kafka_producer(cfg)
        await producer.start()
        for line in ["alpha beta alpha", "beta gamma", "alpha"]:
            await producer.send_and_wait(f"probe-{probe}-lines", line.encode())
        await producer.stop()
        consumer = kafka_consumer(cfg, f"probe-{probe}-counts", group_id=None)
        await consumer.start()
        final: dict[str, int] = {}
        deadline = time.monotonic() + 90
        while final != {"alpha": 3, "beta": 2, "gamma": 1} and time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                for m in msgs:
                    d = json.loads(m.value)
                    final[d["word"]] = max(final.get(d["word"], 0), d["n"])
        await consumer.stop()
        assert final == {"alpha": 3, "beta": 2, "gamma": 1}, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()
    # The table was backed by a changelog topic on the broker.
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    topics = await admin.list_topics()
    await admin.close()
    assert any(t.startswith(f"probe-{probe}") and t.endswith("changelog") for t in topics), topics
