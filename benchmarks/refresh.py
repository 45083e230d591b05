"""Periodic refresh: time from the session that reaches the refresh threshold to a running canary of
the refreshed version, on the running local stack.

Starts an isolated gateway and worker (own topic prefix and free port; the agents on this path:
``pii_redaction``, ``telemetry_storage``, ``dataset_growth``, ``training_jobs``,
``refresh_controller``), captures interviews through the capture API with consent (the in-repo
sample interviews, infra/samples/sample_interviews.jsonl, under new session ids), trains a first
version on ``live:<tenant>`` through ``POST /api/digital-twin/train`` (the baseline: the same
trainer on nearly the same data, without the refresh around it), enables refresh with
``minNewSessions`` and then, each round, captures that many sessions and measures from the moment
the last one is ended (``PATCH status=ended``) to the canary's row, split into its phases:

* **noticed**: until the refresh controller queued the training job (at most one
  ``REFRESH_INTERVAL_S`` poll after the dataset growth agent saw the session end);
* **trained**: the trainer's job (sync of the live dataset, training, the new version);
* **canary**: until the next controller round started the canary.

Between rounds the canary is promoted by hand, so each round refreshes from the version before it.
Prints a table and writes benchmarks/results/refresh.json.

    .venv/bin/python benchmarks/refresh.py [--rounds 3] [--min-new 2] [--interval 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from infra.apikeys import bearer_headers  # noqa: E402
from telemetry import (WORKER_CMD, free_port, gateway_cmd, isolated_stack, ready_check, spawn,  # noqa: E402
                       stop_all, wait_until, write_result)

console = Console()
SAMPLES = ROOT / "infra" / "samples" / "sample_interviews.jsonl"
AGENTS = "pii_redaction,telemetry_storage,dataset_growth,training_jobs,refresh_controller"
IID = "dana"


def capture(http: httpx.Client, dsn: str, tenant: str, session_id: str, turns: list[dict]) -> float:
    """One consented interview through the capture API; returns the monotonic time it was ended."""
    http.post("/api/interviews/session", json={"sessionId": session_id, "interviewerId": IID,
                                               "consentRecording": True, "consentTraining": True}).raise_for_status()
    t0 = datetime.now(timezone.utc)
    events = [{"type": "turn", "ts": (t0 + timedelta(seconds=i)).isoformat(), "sessionId": session_id,
               "role": t["role"], "text": t["text"], "tokens": len(t["text"].split())} for i, t in enumerate(turns)]
    for i in range(0, len(events), 25):
        http.post("/api/interviews/session/telemetry",
                  json={"interviewSessionId": session_id, "events": events[i:i + 25]}).raise_for_status()
    deadline = time.monotonic() + 60
    with psycopg.connect(dsn, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM turns WHERE tenant=%s AND session_id=%s",
                           (tenant, session_id)).fetchone()[0] < len(events):
            if time.monotonic() > deadline:
                raise SystemExit(f"the turns of {session_id} were not stored within 60 s")
            time.sleep(0.2)
    http.patch(f"/api/interviews/session/{session_id}", json={"status": "ended"}).raise_for_status()
    return time.monotonic()


def wait_job(http: httpx.Client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = http.get(f"/api/digital-twin/train/{job_id}").json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.2)
    raise SystemExit(f"training job {job_id} did not finish in {timeout:.0f}s")


def wait_canary(dsn: str, tenant: str, ended_at_wall: datetime, timeout: float = 300) -> dict:
    """The open refresh's phases once its canary runs (seconds after ``ended_at_wall``)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT r.created_at, j.updated_at, c.started_at, r.status, r.message FROM refresh_runs r"
                " JOIN training_jobs j ON j.job_id = r.job_id LEFT JOIN canary_deployments c ON c.canary_id = r.canary_id"
                " WHERE r.tenant=%s AND r.status IN ('canary', 'failed') AND r.created_at > %s",
                (tenant, ended_at_wall)).fetchone()
            if row is not None:
                if row[3] == "failed":
                    raise SystemExit(f"the refresh failed: {row[4]}")
                queued, trained, started = row[0], row[1], row[2]
                return {"noticed_s": (queued - ended_at_wall).total_seconds(),
                        "trained_s": (trained - queued).total_seconds(),
                        "canary_s": (started - trained).total_seconds(),
                        "total_s": (started - ended_at_wall).total_seconds()}
            time.sleep(0.2)
    raise SystemExit(f"no running canary {timeout:.0f}s after the threshold session")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="refreshes to measure")
    ap.add_argument("--min-new", type=int, default=2, help="refresh.minNewSessions")
    ap.add_argument("--first", type=int, default=4, help="sessions the first version trains on")
    ap.add_argument("--interval", type=float, default=1.0, help="REFRESH_INTERVAL_S of the worker")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/refresh.json"))
    args = ap.parse_args()
    interviews = [json.loads(line)["turns"] for line in SAMPLES.read_text().splitlines() if line.strip()]

    run_id = uuid.uuid4().hex[:6]
    prefix = f"bench-refresh-{run_id}."
    cfg, log_dir = isolated_stack(prefix, ("kafka", "postgres", "weaviate", "redis"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"TOPIC_PREFIX": prefix, "TWIN_AGENTS": AGENTS, "REFRESH_INTERVAL_S": str(args.interval)}
    logs = [log_dir / "bench-refresh-worker.log", log_dir / "bench-refresh-gateway.log"]
    procs: list[subprocess.Popen] = []
    tenant = f"bench-refresh-{run_id}"
    rounds: list[dict] = []
    try:
        procs.append(spawn(WORKER_CMD, env, logs[0]))
        procs.append(spawn(gateway_cmd(port), env, logs[1]))
        console.print(f"[dim]starting a worker ({AGENTS}) and a gateway on {url} ...[/]")

        wait_until("worker and gateway", ready_check(logs[:1], "trainer ready", url), 300, procs, logs)
        with httpx.Client(base_url=url, headers=bearer_headers(cfg, tenant, None, "bench"), timeout=60) as http:
            n = 0
            for _ in range(args.first):
                capture(http, cfg.POSTGRES_DSN, tenant, f"{tenant}-s{n}", interviews[n % len(interviews)])
                n += 1
            started = time.monotonic()
            job = http.post("/api/digital-twin/train", json={"interviewerId": IID, "datasetRef": f"live:{tenant}"})
            job.raise_for_status()
            first = wait_job(http, job.json()["jobId"])
            baseline_s = time.monotonic() - started
            if first["status"] != "succeeded":
                raise SystemExit(f"the first version did not train: {first.get('message')}")
            from processors.twin import canary as canaries
            from processors.twin.config import ConfigStore, TwinConfig

            configs = ConfigStore(cfg.POSTGRES_DSN)
            configs.write(tenant, None, TwinConfig.model_validate(
                {"refresh": {"enabled": True, "minNewSessions": args.min_new}}), actor="benchmark")
            configs.close()
            for r in range(args.rounds):
                for _ in range(args.min_new):
                    capture(http, cfg.POSTGRES_DSN, tenant, f"{tenant}-s{n}", interviews[n % len(interviews)])
                    n += 1
                ended = datetime.now(timezone.utc)
                phases = wait_canary(cfg.POSTGRES_DSN, tenant, ended)
                phases["sessions"] = n
                rounds.append(phases)
                console.print(f"[dim]round {r + 1}: {phases['total_s']:.1f}s to a running canary ({n} sessions)[/]")
                with psycopg.connect(cfg.POSTGRES_DSN) as conn:
                    canaries.promote(conn, tenant, IID, actor="benchmark", reason="benchmark round done")
                time.sleep(args.interval * 2)  # the controller closes the refresh before the next round
    finally:
        stop_all(procs, cfg, prefix)

    def med(key: str) -> float:
        return round(statistics.median(r[key] for r in rounds), 2)

    result = {"config": {"rounds": args.rounds, "min_new_sessions": args.min_new, "first_sessions": args.first,
                         "refresh_interval_s": args.interval, "cpus": os.cpu_count(),
                         "loadavg_1m": round(os.getloadavg()[0], 2)},
              "baseline_train_s": round(baseline_s, 2), "rounds": rounds,
              "median": {k: med(k) for k in ("noticed_s", "trained_s", "canary_s", "total_s")}}
    result["median"]["total_over_baseline_train"] = round(result["median"]["total_s"] / baseline_s, 2)
    table = Table(title=f"refresh: threshold session -> running canary ({os.cpu_count()} cpus, "
                        f"REFRESH_INTERVAL_S={args.interval:g})")
    for col in ("round", "sessions", "noticed (s)", "trained (s)", "canary (s)", "total (s)"):
        table.add_column(col, justify="right")
    for i, r in enumerate(rounds, 1):
        table.add_row(str(i), str(r["sessions"]), f"{r['noticed_s']:.2f}", f"{r['trained_s']:.2f}",
                      f"{r['canary_s']:.2f}", f"{r['total_s']:.2f}")
    m = result["median"]
    table.add_row("median", "", f"{m['noticed_s']:.2f}", f"{m['trained_s']:.2f}", f"{m['canary_s']:.2f}",
                  f"{m['total_s']:.2f}")
    console.print(table)
    console.print(f"baseline: the first version through POST /train (request to success, {args.first} sessions) took "
                  f"{baseline_s:.2f}s; median refresh total / baseline = {m['total_over_baseline_train']}x")
    write_result(args.out, result)


if __name__ == "__main__":
    main()
