"""A tiny Faust app used by tests/infra/test_kafka.py to prove Faust works against our broker.

It exercises what the real agents rely on: an agent reading a topic, a group_by repartition
(through an internal topic) and a table with a changelog. Topic and app names come from the
environment so each test run is isolated:

    PROBE_ID=abc python tests/infra/faust_wordcount.py worker -l warn
"""

import os

import faust

from infra.settings import settings

probe = os.environ["PROBE_ID"]
app = faust.App(
    f"probe-{probe}",
    broker=f"kafka://{settings.KAFKA_BOOTSTRAP}",
    store="memory://",
    datadir=str(settings.TWIN_VAR_DIR / "faust" / "{conf.id}"),
    web_enabled=False,
    topic_partitions=2,
    topic_replication_factor=1,
    producer_acks=-1,
    consumer_auto_offset_reset="earliest",
)


class Word(faust.Record, serializer="json"):
    word: str
    n: int


lines = app.topic(f"probe-{probe}-lines", value_type=str, value_serializer="raw", partitions=2)
counts_out = app.topic(f"probe-{probe}-counts", value_type=Word, partitions=1)
word_counts = app.Table(f"probe-{probe}-word-counts", default=int, partitions=2)


@app.agent(lines)
async def split_lines(stream):
    async for line in stream:
        text = line.decode() if isinstance(line, bytes) else line
        for word in text.split():
            await count_words.send(value=Word(word=word, n=1))


words = app.topic(f"probe-{probe}-words", value_type=Word, partitions=2)


@app.agent(words)
async def count_words(stream):
    # group_by repartitions by word so each word's count lives in one table partition.
    async for w in stream.group_by(Word.word, name=f"probe-{probe}-by-word"):
        word_counts[w.word] += w.n
        await counts_out.send(key=w.word, value=Word(word=w.word, n=word_counts[w.word]))


if __name__ == "__main__":
    app.main()
