"""The single faust.App every agent registers on.

Run all agents in one worker::

    twin worker                      # or: python -m processors.engine.app worker -l info

Agents are found by autodiscovery of the ``processors`` package's top-level modules, so adding an
agent is adding a file there (see STYLE.md). ``TWIN_AGENTS=pii_redaction,safety_filter`` limits a
worker to some agents (scaling one job out without the others).
"""

from __future__ import annotations

import faust

from infra.settings import settings
from infra.tracing import setup_tracing
from processors.engine import avro_codec  # noqa: F401 - registers the twin_avro codec
from processors.engine import consumer_group

__all__ = ["app", "enabled"]

setup_tracing("twin-worker")
_ENABLED = {a.strip() for a in settings.TWIN_AGENTS.split(",") if a.strip()}
(settings.TWIN_VAR_DIR / "faust").mkdir(parents=True, exist_ok=True)


def _broker_tls() -> dict:
    """Faust's broker credentials when Kafka is reached over TLS (KAFKA_SECURITY_PROTOCOL=SSL)."""
    from infra.clients import kafka_ssl_context

    context = kafka_ssl_context(settings)
    return {"broker_credentials": faust.SSLCredentials(context)} if context else {}


def _agent_modules() -> list[str]:
    """The top-level modules of ``processors``, where every agent, timer and task is defined.

    Scanning the whole package would also import the training and evaluation code of its
    subpackages (scikit-learn and SciPy: ~4 of the ~7 s before a worker starts joining its group);
    the agents import what they use when they warm up, in the background.
    """
    import pkgutil

    import processors

    return [f"processors.{m.name}" for m in pkgutil.iter_modules(processors.__path__) if not m.ispkg]


app = faust.App(
    consumer_group(settings.TOPIC_PREFIX, _ENABLED),
    broker=f"kafka://{settings.KAFKA_BOOTSTRAP}",
    store="memory://",
    datadir=str(settings.TWIN_VAR_DIR / "faust" / "{conf.id}"),
    autodiscover=_agent_modules,
    origin=__name__,  # Faust scans its origin too: this module, not the whole package
    web_enabled=False,
    topic_replication_factor=1,
    topic_allow_declare=False,  # topics come from the catalogue (`twin topics create`)
    producer_acks=-1,
    consumer_auto_offset_reset="earliest",
    broker_commit_every=100,
    broker_commit_interval=1.0,
    stream_wait_empty=False,
    # A crashed worker's partitions move to a live one after this long (Faust's default is 60 s).
    broker_session_timeout=settings.WORKER_SESSION_TIMEOUT_S,
    broker_heartbeat_interval=max(1.0, settings.WORKER_SESSION_TIMEOUT_S / 4),
    **_broker_tls(),
)



def enabled(agent_name: str) -> bool:
    """Whether this worker runs the named agent (all of them unless TWIN_AGENTS narrows it)."""
    return not _ENABLED or agent_name in _ENABLED


@app.task
async def serve_worker_metrics() -> None:
    """Prometheus endpoint and consumer-lag gauges of this worker (WORKER_METRICS_PORT; 0: off)."""
    from processors.engine.metrics import serve

    await serve(app, settings)


def create_leader_topic() -> None:
    """Create this worker group's leader-election topic (Faust's name for it) before the worker joins.

    The catalogue does not list it, and the topics are not declared by Faust here, so the broker used to
    auto-create it on the first request for it. A worker whose group formed before that fetched nothing
    until its metadata refresh five minutes later (2 of 19 worker starts in one fresh test run).
    """
    from infra.kafka_admin import create_internal_topic

    create_internal_topic(settings, f"{app.conf.id}-__assignor-__leader", partitions=1)


def main() -> None:
    """Start this app's worker (the command line is Faust's: ``worker -l info ...``)."""
    create_leader_topic()
    app.main()


if __name__ == "__main__":
    # Run as a script this file is `__main__`, while agents import `processors.engine.app`: start
    # that module's app, the one the agents registered on, not this copy.
    from processors.engine.app import main as _main

    _main()
