"""Scaling: telemetry throughput of the redaction + storage agents with 1 vs 2 worker processes.

For each worker count it starts that many workers (``pii_redaction,telemetry_storage``, one consumer
group, own topic prefix) on the running local stack and waits until all are ready; then it writes a
backlog of raw telemetry batches straight to ``telemetry.raw`` (the event mix of
benchmarks/telemetry.py, validated and given ids by the gateway's own code, but not sent through
HTTP: the gateway would be the bottleneck on a small machine, and this measures the workers) and
times how long the workers take to redact and store every event in PostgreSQL. Throughput is
events / (last ``received_at`` − first send). The topics have the catalogue's 6 partitions
(``--partitions`` changes that for telemetry.raw and telemetry.redacted), so two workers get 3 each;
one partition would leave the second worker idle.

Every event must be stored exactly once (checked). Prints a table with the 2/1 ratio and writes
benchmarks/results/scaling.json.

    .venv/bin/python benchmarks/scaling.py [--events 20000] [--workers 1,2] [--partitions 6] [--corpus FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from infra.clients import ServiceUnavailable, check_services, kafka_producer  # noqa: E402
from infra.db import upgrade  # noqa: E402
from infra.kafka_admin import acreate_topics  # noqa: E402
from infra.settings import Settings  # noqa: E402
from telemetry import (  # noqa: E402
    AGENTS,
    Mix,
    add_corpus_option,
    cpu_seconds,
    spawn,
    stop_all,
    turn_texts,
    wait_until,
)

console = Console(width=120)


def raw_batches(tenant: str, events: int, batch: int, sessions: int, texts: list[str]) -> list:
    """TelemetryRaw records as the gateway would publish them (same validation, ids and batch ids)."""
    from gateway.routes.telemetry import batch_id, drop_oversized, parse_events
    from schemas.models import TelemetryRaw

    cfg = Settings()
    mix = Mix(texts)
    out = []
    for k in range(0, events, batch):
        sid = f"{tenant}-s{(k // batch) % sessions}"
        ts = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        parsed = parse_events([mix.event(sid, ts) for _ in range(min(batch, events - k))], sid)
        evs, dropped = drop_oversized(parsed, cfg.TELEMETRY_MAX_TEXT_CHARS, cfg.TELEMETRY_MAX_PREVIEW_CHARS)
        out.append(TelemetryRaw(eventId=batch_id(tenant, sid, [e.eventId for e in evs]), tenant=tenant,
                                interviewSessionId=sid, events=evs, droppedFields=dropped))
    return out


async def produce(cfg: Settings, records: list) -> float:
    """Send every record to telemetry.raw (acks=all); returns the wall-clock time of the first send."""
    from schemas.codec import encode_model
    from schemas.topics import TELEMETRY_RAW, key_for

    payloads = [(encode_model(r), key_for(TELEMETRY_RAW, r)) for r in records]
    producer = kafka_producer(cfg, linger_ms=5)
    await producer.start()
    try:
        started = time.time()
        futures = [await producer.send(cfg.topic(TELEMETRY_RAW.name), value, key=key) for value, key in payloads]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return started


def run(workers: int, args, texts: list[str]) -> dict:
    """One measurement: ``workers`` processes drain a backlog of ``args.events`` events."""
    from schemas.topics import TELEMETRY_RAW, TELEMETRY_REDACTED, TOPICS

    run_id = uuid.uuid4().hex[:6]
    prefix = f"bench-scaling-{run_id}."
    tenant = f"bench-scaling-{run_id}"
    cfg = Settings(TOPIC_PREFIX=prefix)
    if args.partitions:
        specs = [dataclasses.replace(s, partitions=args.partitions) if s in (TELEMETRY_RAW, TELEMETRY_REDACTED) else s
                 for s in TOPICS]
    else:
        specs = list(TOPICS)
    asyncio.run(acreate_topics(cfg, specs))
    partitions = args.partitions or TELEMETRY_RAW.partitions
    records = raw_batches(tenant, args.events, args.batch, args.sessions, texts)
    total = sum(len(r.events) for r in records)
    log_dir = cfg.TWIN_VAR_DIR / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {"TOPIC_PREFIX": prefix, "TWIN_AGENTS": AGENTS}
    procs, logs = [], []
    try:
        for w in range(workers):
            logs.append(log_dir / f"bench-scaling-{workers}w-{w}.log")
            procs.append(spawn([sys.executable, "-m", "processors.engine.app", "worker", "-l", "info",
                                "--without-web"], env, logs[-1]))
        console.print(f"[dim]{workers} worker(s), {partitions} partitions: starting ...[/]")

        def ready() -> bool:
            return all("Worker]: Ready" in text and "pii redactor warm" in text
                       for text in (log.read_text(errors="replace") if log.exists() else "" for log in logs))

        wait_until(f"{workers} worker(s)", ready, 300, procs, logs)
        time.sleep(5)  # the group settles: the last worker to join triggered a rebalance
        load_before = os.getloadavg()[0]
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        console.print(f"[dim]{workers} worker(s): writing {total} events in {len(records)} batches to telemetry.raw[/]")
        started = asyncio.run(produce(cfg, records))
        produced_s = time.time() - started
        with psycopg.connect(cfg.POSTGRES_DSN, autocommit=True) as conn:
            deadline = time.monotonic() + args.drain
            stored = 0
            while time.monotonic() < deadline:
                stored = conn.execute("SELECT count(*) FROM telemetry_events WHERE tenant=%s", (tenant,)).fetchone()[0]
                if stored >= total:
                    break
                time.sleep(0.5)
            cpu = [round(cpu_seconds(p.pid) - c, 1) for p, c in zip(procs, cpu0)]
            time.sleep(2)  # duplicates would land now (the primary key would refuse them; count anyway)
            rows, distinct, last = conn.execute(
                "SELECT count(*), count(DISTINCT (session_id, event_id)), max(received_at) FROM telemetry_events"
                " WHERE tenant=%s", (tenant,)).fetchone()
            conn.execute("SELECT purge_telemetry(now() + interval '1 second', %s)", (tenant,))
    finally:
        stop_all(procs, cfg, prefix)
    if rows != total or distinct != total:
        raise SystemExit(f"{workers} worker(s): stored {rows} rows ({distinct} distinct) of {total} events")
    seconds = last.timestamp() - started
    return {"workers": workers, "partitions": partitions, "events": total, "batches": len(records),
            "produce_seconds": round(produced_s, 2), "drain_seconds": round(seconds, 2),
            "events_per_s": round(total / seconds, 1), "stored": rows, "duplicates": rows - distinct,
            "worker_cpu_s": cpu, "worker_cpu_ms_per_event": round(sum(cpu) * 1000 / total, 3),
            "loadavg_1m_before": round(load_before, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20000, help="backlog size per run")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare")
    ap.add_argument("--partitions", type=int, default=0,
                    help="partitions of telemetry.raw/redacted (0: the catalogue's)")
    ap.add_argument("--batch", type=int, default=50, help="events per raw batch")
    ap.add_argument("--sessions", type=int, default=48, help="sessions (message keys) the batches spread over")
    ap.add_argument("--drain", type=float, default=240, help="max seconds to wait for the backlog")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/scaling.json"))
    add_corpus_option(ap)
    args = ap.parse_args()

    cfg = Settings()
    try:
        asyncio.run(check_services(cfg, ("kafka", "postgres", "redis"), timeout=10))
    except ServiceUnavailable as exc:
        raise SystemExit(str(exc)) from None
    upgrade(cfg)
    texts = turn_texts(corpus=args.corpus)
    rows = [run(int(w), args, texts) for w in args.workers.split(",")]
    base = rows[0]["events_per_s"]
    for r in rows:
        r["ratio_vs_first"] = round(r["events_per_s"] / base, 2)

    table = Table(title=f"scaling: backlog of {rows[0]['events']} telemetry events → redaction → PostgreSQL "
                        f"({os.cpu_count()} cpus, shared with the stack)")
    for col in ("workers", "partitions", "events/s", "drain s", "ratio", "worker CPU s", "CPU ms/event",
                "stored (dup)", "load before"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["workers"]), str(r["partitions"]), f"{r['events_per_s']:.0f}", f"{r['drain_seconds']:.1f}",
                      f"{r['ratio_vs_first']:.2f}x", " + ".join(str(c) for c in r["worker_cpu_s"]),
                      f"{r['worker_cpu_ms_per_event']:.2f}", f"{r['stored']} ({r['duplicates']})",
                      f"{r['loadavg_1m_before']:.1f}")
    console.print(table)
    if len(rows) > 1:
        console.print(f"{rows[-1]['workers']} vs {rows[0]['workers']} worker(s): "
                      f"{rows[-1]['ratio_vs_first']:.2f}x the throughput")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": {"events": args.events, "batch": args.batch, "sessions": args.sessions,
                                          "agents": AGENTS, "cpus": os.cpu_count()}, "rows": rows}, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
