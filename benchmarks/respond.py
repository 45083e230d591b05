"""Respond latency: POST /api/digital-twin/respond end to end at concurrency 1 and 8.

Starts an isolated gateway + worker pair (own topic prefix, own port) on the running local stack,
trains the sample interviewer in a bench tenant, and replays candidate turns of the sample corpus.
Prints a table and writes benchmarks/results/respond.json.

    .venv/bin/python benchmarks/respond.py [--requests 100] [--llm]
    .venv/bin/python benchmarks/respond.py --corpus infra/samples/scotus_oyez_slice.jsonl --interviewer elena_kagan

With ``--corpus`` the interviewer is trained on the train part of their sessions and the requests are
the candidate turns of the held-out sessions, each asked once, in session order, with the session so
far (as much as the request's byte budget holds): real turn lengths, and no answer served twice
from a cache. The sample corpus is short and small, and its turns are asked again once used up.

"outside generation" is end-to-end latency minus the twin's `generate` step (gateway, Kafka hops,
retrieval, policy, safety); with --llm it is what the service adds to the model's own time. A second
table (and ``steps_ms`` in the JSON) gives the p50 and p95 of each step of the engine's trace.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from infra.apikeys import bearer_headers  # noqa: E402
from infra.kafka_admin import create_topics  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.stack import Stack  # noqa: E402
from processors.twin.corpus import read_transcripts  # noqa: E402

console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def workload(sessions: list, interviewer_id: str, cfg: Settings) -> list[dict]:
    """One request per candidate turn of ``sessions``, in session order, with the session so far."""
    from processors.twin.evaluation.responders import request_window
    from schemas.respond_limits import RespondLimits

    limits = RespondLimits.of(cfg)
    bodies = []
    for s in sessions:
        for i, t in enumerate(s.turns):
            if t.role == "candidate" and i > 0:
                window = request_window([(x.role, x.text) for x in s.turns[:i]], t.text, limits)
                bodies.append({"interviewerId": interviewer_id, "sessionId": f"bench-{s.session_id}", **window,
                               "timeoutMs": 30_000})
    return bodies


async def drive(cfg: Settings, url: str, tenant: str, bodies: list[dict], total: int, concurrency: int) -> dict:
    latencies: list[float] = []
    outside: list[float] = []
    by_step: dict[str, list[float]] = {}  # the engine's own trace steps: where the time inside the worker goes
    errors = 0
    queue = [bodies[i % len(bodies)] for i in range(total)][::-1]  # popped from the end: session order

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while queue:
            body = queue.pop()
            started = time.perf_counter()
            resp = await client.post("/api/digital-twin/respond", json=body)
            ms = (time.perf_counter() - started) * 1000
            if resp.status_code != 200:
                errors += 1
                continue
            steps = resp.json()["traces"]["steps"]
            gen = sum(s["ms"] for s in steps if s["name"] == "generate")
            for s in steps:
                by_step.setdefault(s["name"], []).append(s["ms"])
            latencies.append(ms)
            outside.append(ms - gen)

    started = time.perf_counter()
    headers = bearer_headers(cfg, tenant, scopes=["respond"], name="bench-respond")
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers) as client:
        await asyncio.gather(*(one(client) for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": total, "errors": errors,
            "throughput_rps": round(len(latencies) / wall, 2),
            "p50_ms": round(pct(latencies, 50), 1), "p95_ms": round(pct(latencies, 95), 1),
            "p99_ms": round(pct(latencies, 99), 1),
            "outside_generation_p50_ms": round(pct(outside, 50), 1),
            "outside_generation_p95_ms": round(pct(outside, 95), 1),
            "outside_generation_share": round(statistics.fmean(outside) / statistics.fmean(latencies), 3),
            "steps_ms": {name: {"p50": round(pct(v, 50), 1), "p95": round(pct(v, 95), 1)}
                         for name, v in by_step.items()}}


def steps_table(rows: list[dict]) -> Table:
    """One row per step of the engine's trace, p50 and p95 per concurrency level: where the time inside
    the worker goes."""
    table = Table(title="engine steps, ms (the rest of a request is the gateway, Kafka and the safety agent)")
    table.add_column("step")
    for r in rows:
        table.add_column(f"conc {r['concurrency']} p50", justify="right")
        table.add_column(f"conc {r['concurrency']} p95", justify="right")
    for n in dict.fromkeys(n for r in rows for n in r["steps_ms"]):
        cells = [(str(r["steps_ms"][n]["p50"]), str(r["steps_ms"][n]["p95"])) if n in r["steps_ms"] else ("", "")
                 for r in rows]
        table.add_row(n, *(c for pair in cells for c in pair))
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=100, help="requests per concurrency level")
    ap.add_argument("--llm", action="store_true", help="generate with the local llama.cpp SmolLM2 server")
    ap.add_argument("--corpus", type=Path, help="real sessions (JSON Lines) to train on and replay")
    ap.add_argument("--interviewer", help="with --corpus: whose sessions")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/respond.json"))
    args = ap.parse_args()
    if bool(args.corpus) != bool(args.interviewer):
        ap.error("--corpus and --interviewer go together")

    name = "bench-respond-llm" if args.llm else "bench-respond"
    cfg = Settings(TOPIC_PREFIX=f"{name}.", GATEWAY_PORT=free_port())
    stack = Stack(cfg, echo=lambda m: console.print(f"[dim]{m}[/]"))
    stack.up()
    create_topics(cfg)
    sys.path.insert(0, str(ROOT / "tests"))
    saved_env = dict(os.environ)
    from conftest import train_sample  # the same training call the tests use

    # Importing the tests' conftest points the environment at a per-run test namespace (its own
    # database and topic prefix); the benchmark's gateway and worker must use the stack's.
    os.environ.clear()
    os.environ.update(saved_env)

    if args.corpus:
        from processors.twin.corpus import chronological_split

        own = [p.transcript for p in read_transcripts(args.corpus) if p.ok and p.transcript.interviewer_id ==
               args.interviewer]
        if len(own) < 3:
            raise SystemExit(f"{args.corpus}: {len(own)} sessions of {args.interviewer}; at least 3 are needed")
        split = chronological_split(own)
        tenant, interviewer_id, replay = "bench-corpus", args.interviewer, split.test
        train_sample(cfg, tenant, interviewer_id, split.train + split.val)
    else:
        tenant, interviewer_id = "bench", "dana"
        replay = [p.transcript for p in read_transcripts(ROOT / "infra/samples/sample_interviews.jsonl") if p.ok]
        train_sample(cfg, tenant)
    extra_env: dict[str, str] = {}
    llm = None
    if args.llm:
        from infra.llm_server import LlamaServer

        llm = LlamaServer(free_port(), log_path=cfg.TWIN_VAR_DIR / "log" / "bench-llama.log").start()
        extra_env = {"OPENAI_BASE_URL": llm.base_url, "OPENAI_MODEL": "smollm2"}
    try:
        url = stack.start_app(name, extra_env=extra_env)
        bodies = workload(replay, interviewer_id, cfg)
        if args.corpus:  # every request a new turn: the warm-up and each level get their own turns
            need = 5 + 2 * args.requests
            if len(bodies) < need:
                console.print(f"[yellow]{len(bodies)} turns held out; fewer than {need}: some are asked twice[/]")
            parts = [bodies[:5], bodies[5:5 + args.requests] or bodies, bodies[5 + args.requests:] or bodies]
        else:
            parts = [bodies, bodies, bodies]
        asyncio.run(drive(cfg, url, tenant, parts[0], 5, 1))  # warm-up, not reported
        rows = [asyncio.run(drive(cfg, url, tenant, part, min(args.requests, len(part)) if args.corpus
                                  else args.requests, c)) for part, c in zip(parts[1:], (1, 8))]
    finally:
        stack.stop_app(name)
        if llm:
            llm.stop()
    source = f"{args.corpus.name}, {interviewer_id}" if args.corpus else "sample corpus"
    table = Table(title=f"respond latency ({'llm: SmolLM2 via llama.cpp' if args.llm else 'offline twin'}; {source})")
    for col in ("conc", "req", "err", "rps", "p50 ms", "p95 ms", "p99 ms", "outside gen p50", "outside gen p95",
                "outside share"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["concurrency"]), str(r["requests"]), str(r["errors"]), str(r["throughput_rps"]),
                      str(r["p50_ms"]), str(r["p95_ms"]), str(r["p99_ms"]), str(r["outside_generation_p50_ms"]),
                      str(r["outside_generation_p95_ms"]), f"{r['outside_generation_share']:.0%}")
    console.print(table)
    console.print(steps_table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"generator": "llm" if args.llm else "offline", "workload": source, "rows": rows},
                              indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
