"""Worker metrics: the Prometheus endpoint, per-agent handle accounting and consumer lag.

A worker serves the default registry (every metric of infra/metrics.py) over HTTP when
``WORKER_METRICS_PORT`` is set::

    WORKER_METRICS_PORT=9101 twin worker
    curl -s localhost:9101/metrics | grep twin_

:func:`serve` is started by the app once the worker runs (``processors/engine/app.py``); agents
wrap the handling of each record (or batch) in :func:`handling`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from infra.metrics import AGENT_FAILED, AGENT_HANDLE_SECONDS, AGENT_PROCESSED, CONSUMER_LAG, consumer_lag

__all__ = ["handling", "run_periodic", "agents_by_topic", "fetch_lag", "serve"]

log = logging.getLogger(__name__)


@dataclass
class Handle:
    """What :func:`handling` yields: mark records of the unit that failed (``fail``)."""

    records: int
    failed: int = 0

    def fail(self, n: int = 1) -> None:
        self.failed += n


@contextlib.contextmanager
def handling(agent: str, records: int = 1) -> Iterator[Handle]:
    """Account one unit of an agent's work: its duration, and its records as processed or failed.

    Records marked with ``handle.fail(n)`` (dead-lettered, say) count as failed, the rest as
    processed; an exception counts them all as failed and propagates. Cancellation (the worker
    stopping) counts nothing.
    """
    handle = Handle(records)
    started = time.perf_counter()
    try:
        yield handle
    except asyncio.CancelledError:
        raise
    except Exception:
        AGENT_FAILED.labels(agent).inc(records)
        AGENT_HANDLE_SECONDS.labels(agent).observe(time.perf_counter() - started)
        raise
    AGENT_HANDLE_SECONDS.labels(agent).observe(time.perf_counter() - started)
    failed = min(handle.failed, records)
    AGENT_PROCESSED.labels(agent).inc(records - failed)
    if failed:
        AGENT_FAILED.labels(agent).inc(failed)


async def run_periodic(agent: str, executor, job, what: str):
    """One tick of a timer agent: the blocking ``job()`` in ``executor``, accounted by :func:`handling`.
    An exception is logged and counted as a failure, and None returned: the next tick retries (a
    store may be down)."""
    with handling(agent) as unit:
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, job)
        except Exception:  # noqa: BLE001 - the next tick retries
            unit.fail()
            log.exception("%s failed", what)
            return None


def agents_by_topic(app) -> dict[str, list[str]]:
    """Broker topic name → the agents of this worker reading it (named like their module, ``AGENT``)."""
    out: dict[str, list[str]] = defaultdict(list)
    for agent in app.agents.values():
        name = agent.fun.__module__.rsplit(".", 1)[-1]
        for topic in getattr(agent.channel, "topics", ()) or ():
            out[topic].append(name)
    return dict(out)


async def fetch_lag(admin, consumer, group: str, tps) -> dict:
    """Lag per partition of ``group`` from the broker: end offsets minus the group's committed offsets.

    :param admin: a started ``AIOKafkaAdminClient``.
    :param consumer: a started ``AIOKafkaConsumer`` without a group (it only asks for offsets).
    :param tps: aiokafka ``TopicPartition``\\ s.
    """
    if not tps:
        return {}
    end = await consumer.end_offsets(list(tps))
    offsets = await admin.list_consumer_group_offsets(group, partitions=list(tps))
    committed = {tp: meta.offset for tp, meta in offsets.items()}
    uncommitted = [tp for tp in tps if committed.get(tp, -1) < 0]
    beginning = await consumer.beginning_offsets(uncommitted) if uncommitted else {}
    return consumer_lag(end, committed, beginning)


class _LagReporter:
    """Refreshes ``twin_consumer_lag`` for the partitions this worker is assigned."""

    def __init__(self, app, cfg):
        self.app, self.cfg = app, cfg
        self.group = app.conf.id  # Faust's consumer group is the app id
        self.by_topic = agents_by_topic(app)
        self._admin = self._consumer = None
        self._series: set[tuple[str, str, str, str]] = set()

    async def _clients(self):
        if self._admin is None:
            from aiokafka.admin import AIOKafkaAdminClient

            from infra.clients import kafka_consumer

            admin = AIOKafkaAdminClient(bootstrap_servers=self.cfg.KAFKA_BOOTSTRAP)
            consumer = kafka_consumer(self.cfg, group_id=None, isolation_level="read_uncommitted")
            try:
                await admin.start()
                await consumer.start()
            except BaseException:
                await self._close(admin, consumer)
                raise
            self._admin, self._consumer = admin, consumer
        return self._admin, self._consumer

    @staticmethod
    async def _close(admin, consumer) -> None:
        for client, stop in ((consumer, "stop"), (admin, "close")):
            if client is not None:
                with contextlib.suppress(Exception):
                    await getattr(client, stop)()

    async def close(self) -> None:
        await self._close(self._admin, self._consumer)
        self._admin = self._consumer = None

    async def refresh(self) -> None:
        from aiokafka import TopicPartition

        tps = [TopicPartition(tp.topic, tp.partition) for tp in self.app.consumer.assignment()
               if tp.topic in self.by_topic]
        lag = await fetch_lag(*(await self._clients()), self.group, tps) if tps else {}
        series = set()
        for tp, value in lag.items():
            for agent in self.by_topic[tp.topic]:
                labels = (agent, self.group, tp.topic, str(tp.partition))
                CONSUMER_LAG.labels(*labels).set(value)
                series.add(labels)
        for labels in self._series - series:  # partitions that moved to another worker
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(*labels)
        self._series = series

    async def run(self, interval: float) -> None:
        try:
            while True:
                try:
                    await self.refresh()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the broker may be away; keep the last values
                    log.warning("consumer lag: %s: %s", type(exc).__name__, exc)
                    await self.close()
                await asyncio.sleep(interval)
        finally:
            await self.close()


async def serve(app, cfg) -> None:
    """Serve the worker's metrics and keep its consumer-lag gauges fresh (runs for the worker's life)."""
    if not cfg.WORKER_METRICS_PORT:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(cfg.WORKER_METRICS_PORT, addr=cfg.WORKER_METRICS_HOST)
    except OSError as exc:
        # Metrics must never stop a worker from working: say so loudly and carry on.
        log.error("worker metrics: cannot listen on %s:%s (%s); set WORKER_METRICS_PORT to a free port",
                  cfg.WORKER_METRICS_HOST, cfg.WORKER_METRICS_PORT, exc)
        return
    log.info("worker metrics on http://%s:%s/metrics", cfg.WORKER_METRICS_HOST, cfg.WORKER_METRICS_PORT)
    await _LagReporter(app, cfg).run(max(0.5, cfg.WORKER_LAG_INTERVAL_S))
