"""Telemetry throughput: gateway → Kafka → PII redaction → PostgreSQL, at a realistic event mix.

Starts an isolated gateway and worker (own topic prefix, free port, only the agents on this path:
``pii_redaction`` and ``telemetry_storage``) on the running local stack, creates consented
sessions, and has concurrent clients post telemetry batches at a target rate for a fixed time:
about 70% ``code_edit``/``run`` events (some runs with short stdout/stderr previews) and 30% turns
of ~30 words cut from real transcripts, a few with injected names, e-mails and phone numbers.
The transcripts are the in-repo SCOTUS slice (infra/samples/scotus_oyez_slice.jsonl)
unless ``--corpus`` or ``TWIN_BENCH_CORPUS`` names larger JSONL files (several joined by ``:``).
Each event's ``ts`` is the moment its batch was built, so end-to-end lag is PostgreSQL's
``received_at`` minus ``ts`` (one clock: everything is on loopback).

Then, in the same run, it measures redaction cost per text on the same kind of texts: the
agent's batched path (``PiiRedactor.redact`` over a batch) against plain Presidio, one
``analyze`` + ``anonymize`` call per text with the default pipeline and recognizers.

Prints a table and writes benchmarks/results/telemetry.json. Bounded: the load lasts
``--seconds``; the drain wait is capped; processes and topics are removed at the end.

    .venv/bin/python benchmarks/telemetry.py [--rate 1000] [--seconds 30] [--clients 8] [--batch 50]
                                             [--corpus FILE[:FILE...]]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from infra.clients import ServiceUnavailable, check_services  # noqa: E402
from infra.db import upgrade  # noqa: E402
from infra.apikeys import bearer_headers  # noqa: E402
from infra.kafka_admin import create_topics  # noqa: E402
from infra.settings import Settings  # noqa: E402

console = Console()
# Turn texts come from real transcripts: the repository's SCOTUS fixture unless --corpus or
# TWIN_BENCH_CORPUS (JSONL files in the format of processors/twin/corpus.py, joined by os.pathsep) say otherwise.
DEFAULT_CORPUS = ROOT / "infra" / "samples" / "scotus_oyez_slice.jsonl"
CORPUS_ENV = "TWIN_BENCH_CORPUS"
AGENTS = "pii_redaction,telemetry_storage"
NAMES = ["Priya Raman", "John Smith", "Maria Lopez", "Wei Zhang", "Olusegun Adeyemi"]
# Run previews: templates filled with varying numbers, so they repeat only as often as real ones do.
STDOUT = ["{a} passed in 0.{b}s", "OK", "[{a}, {b}, {c}]", "Ran {a} tests in 0.0{b}s\nOK", "result: {a}",
          "hello world", "True", "Compiled successfully in {b} ms.", "max profit = {a}, days {b} -> {c}"]
STDERR = ["IndexError: list index out of range", "AssertionError: expected {a}, got {b}",
          "TypeError: unsupported operand type(s) for +: 'int' and 'str'",
          "  File \"solution.py\", line {a}, in solve\nKeyError: 'id'",
          "RecursionError: maximum recursion depth exceeded", "{a} failed, {b} passed in 0.{c}s"]


def preview(rng: random.Random, templates: list[str]) -> str:
    return rng.choice(templates).format(a=rng.randint(1, 99), b=rng.randint(1, 999), c=rng.randint(1, 99))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def corpus_paths(spec: str | None = None) -> list[Path]:
    """The transcript files to read: ``spec`` (from --corpus), else $TWIN_BENCH_CORPUS, else the fixture."""
    spec = spec or os.environ.get(CORPUS_ENV, "")
    paths = [Path(p).expanduser() for p in spec.split(os.pathsep) if p] or [DEFAULT_CORPUS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"corpus not found: {', '.join(missing)} (--corpus / {CORPUS_ENV})")
    return paths


def add_corpus_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--corpus", default=None, metavar="FILE[:FILE...]",
                    help=f"transcripts (JSONL) the turn texts are cut from; default ${CORPUS_ENV}, "
                         "else the in-repo SCOTUS test fixture")


def turn_texts(limit: int = 40000, words: int = 30, corpus: str | None = None) -> list[str]:
    """~30-word pieces of real interview turns, some with injected PII.

    Windows start every ``words`` words; when that gives fewer than ``limit`` distinct pieces (the
    fixture gives ~3900), further passes start ``words/3`` and ``2*words/3`` words in, so the
    default load (~9000 turns) stays above the redactor's 8192-entry cache and is never served by it.
    """
    rng = random.Random(7)
    out: list[str] = []
    paths = corpus_paths(corpus)
    for offset in (0, words // 3, 2 * words // 3):
        for path in paths:
            with open(path) as fh:
                for line in fh:
                    for turn in json.loads(line)["turns"]:
                        w = turn["text"].split()
                        for i in range(offset, max(offset + 1, len(w) - words + 1), words):
                            if i < len(w):
                                out.append(" ".join(w[i:i + words]))
                    if len(out) > limit:
                        break
            if len(out) > limit:
                break
        out = list(dict.fromkeys(out))  # distinct texts: identical events would share a derived id
        if len(out) >= limit:
            break
    rng.shuffle(out)
    for i in range(0, len(out), 10):  # 10% of turns carry PII
        name = NAMES[i % len(NAMES)]
        out[i] = f"{out[i]} I'm {name}, write to {name.split()[0].lower()}@example.com or call 415-555-{i % 10000:04d}."
    return out[:limit]


class Mix:
    """The event mix: 45% code_edit, 25% run (60% with a preview), 30% turns."""

    def __init__(self, texts: list[str], seed: int = 1):
        self.texts = texts
        self.rng = random.Random(seed)
        self.n = 0

    def event(self, session_id: str, ts: str) -> dict:
        self.n += 1
        r = self.rng.random()
        if r < 0.45:
            return {"type": "code_edit", "ts": ts, "sessionId": session_id, "file": "solution.py", "language": "python",
                    "diffChars": self.rng.randint(1, 80), "beforeHash": f"{self.n:x}", "afterHash": f"{self.n + 1:x}",
                    "cursor": {"line": self.rng.randint(1, 200), "column": self.rng.randint(0, 80)}}
        if r < 0.70:
            ev = {"type": "run", "ts": ts, "sessionId": session_id, "status": self.rng.choice(["success", "error"]),
                  "durationMs": round(self.rng.uniform(20, 900), 1), "outputHash": f"o{self.n:x}"}
            if self.rng.random() < 0.6:
                key = "stdoutPreview" if ev["status"] == "success" else "stderrPreview"
                ev[key] = preview(self.rng, STDOUT if ev["status"] == "success" else STDERR)
            return ev
        return {"type": "turn", "ts": ts, "sessionId": session_id,
                "role": self.rng.choice(["interviewer", "candidate"]),
                "text": self.texts[self.n % len(self.texts)], "tokens": 40}  # cycles through distinct texts


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process (from /proc; 0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, cwd=ROOT, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def isolated_stack(prefix: str, services: tuple[str, ...]) -> tuple[Settings, Path]:
    """Settings on their own topic prefix, after checking that ``services`` of the running local stack
    answer, applying migrations and creating the prefix's topics; and the folder for process logs."""
    cfg = Settings(TOPIC_PREFIX=prefix)
    try:
        asyncio.run(check_services(cfg, services, timeout=10))
    except ServiceUnavailable as exc:
        raise SystemExit(f"{exc}") from None
    upgrade(cfg)
    create_topics(cfg)
    log_dir = cfg.TWIN_VAR_DIR / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    return cfg, log_dir


def stop_all(procs: list[subprocess.Popen], cfg: Settings, prefix: str) -> None:
    """Stop the benchmark's processes and delete its topics (best effort)."""
    for p in procs:
        stop(p)
    try:
        asyncio.run(_delete_topics(cfg, prefix))
    except Exception as exc:  # noqa: BLE001 - cleanup is best effort
        console.print(f"[yellow]could not delete bench topics: {exc}[/]")


WORKER_CMD = [sys.executable, "-m", "processors.engine.app", "worker", "-l", "info", "--without-web"]


def gateway_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "gateway.main:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log"]


def ready_check(worker_logs: list[Path], marker: str, url: str):
    """``check()`` for :func:`wait_until`: every worker log says Faust is ready and ``marker`` (its agents
    warmed up), and the gateway answers ``/readyz``."""
    def check() -> bool:
        for log in worker_logs:
            text = log.read_text(errors="replace") if log.exists() else ""
            if "Worker]: Ready" not in text or marker not in text:
                return False
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
    return check


def write_result(path: str | Path, result: dict) -> None:
    """The benchmark's JSON (and say where it went)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    console.print(f"wrote {out}")


def wait_until(what: str, check, timeout: float, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        for p, log in zip(procs, logs):
            if p.poll() is not None:
                raise SystemExit(f"{log.stem} exited during start-up:\n{log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not ready after {timeout:.0f}s")
        time.sleep(0.3)


async def load(url: str, tenant: str, sessions: list[str], mix: Mix, rate: float, seconds: float, clients: int,
               batch: int) -> dict:
    """Open-loop load: each client sends one batch every clients*batch/rate seconds."""
    interval = clients * batch / rate
    http_ms: list[float] = []
    sent = errors = 0
    started = time.perf_counter()

    async def client(k: int, http: httpx.AsyncClient) -> None:
        nonlocal sent, errors
        next_at = started + k * interval / clients
        while next_at < started + seconds:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sid = sessions[(k + sent) % len(sessions)]
            ts = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
            events = [mix.event(sid, ts) for _ in range(batch)]
            t0 = time.perf_counter()
            resp = await http.post("/api/interviews/session/telemetry", json={"interviewSessionId": sid,
                                                                              "events": events})
            http_ms.append((time.perf_counter() - t0) * 1000)
            if resp.status_code == 202:
                sent += batch
            else:
                errors += 1
            next_at += interval

    async with httpx.AsyncClient(base_url=url, timeout=60, headers=bearer_headers(Settings(), tenant, ["capture"], "bench"),
                                 limits=httpx.Limits(max_connections=clients)) as http:
        await asyncio.gather(*(client(k, http) for k in range(clients)))
    wall = time.perf_counter() - started
    return {"sent": sent, "errors": errors, "send_seconds": round(wall, 2), "offered_rate": round(sent / wall, 1),
            "http_p50_ms": round(pct(http_ms, 50), 1), "http_p95_ms": round(pct(http_ms, 95), 1)}


def measure_store(dsn: str, tenant: str, expected: int, drain_timeout: float) -> dict:
    """Wait until the events are stored (or the drain timeout), then read throughput and lag."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        deadline = time.monotonic() + drain_timeout
        stored = 0
        while time.monotonic() < deadline:
            stored = conn.execute("SELECT count(*) FROM telemetry_events WHERE tenant=%s", (tenant,)).fetchone()[0]
            if stored >= expected:
                break
            time.sleep(1)
        lags = [r[0] for r in conn.execute(
            "SELECT extract(epoch FROM received_at - ts) FROM telemetry_events WHERE tenant=%s", (tenant,))]
        first, last = conn.execute("SELECT min(received_at), max(received_at) FROM telemetry_events WHERE tenant=%s",
                                   (tenant,)).fetchone()
        # Sustained rate: events stored per second between the first and the last insert, and over
        # the busiest steady minute-free stretch (per-second buckets, median of full seconds).
        per_second = [r[0] for r in conn.execute(
            "SELECT count(*) FROM telemetry_events WHERE tenant=%s GROUP BY date_trunc('second', received_at)"
            " ORDER BY date_trunc('second', received_at)", (tenant,))]
        by_5s = [float(r[1]) for r in conn.execute(
            "SELECT floor(extract(epoch FROM ts) / 5) AS bucket,"
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - ts))"
            " FROM telemetry_events WHERE tenant=%s GROUP BY bucket ORDER BY bucket", (tenant,))]
        retained = conn.execute("SELECT purge_telemetry(now() + interval '1 second', %s)", (tenant,)).fetchone()[0]
    span = (last - first).total_seconds() if first and last else 0.0
    steady = per_second[2:-2] if len(per_second) > 6 else per_second
    lags_f = [float(x) for x in lags]
    return {"stored": stored, "lost": max(0, expected - stored), "store_span_s": round(span, 2),
            "sustained_eps": round(stored / span, 1) if span else 0.0,
            "steady_median_eps": round(pct(steady, 50), 1) if steady else 0.0,
            "lag_p50_s": round(pct(lags_f, 50), 3), "lag_p95_s": round(pct(lags_f, 95), 3),
            "lag_max_s": round(max(lags_f), 3) if lags_f else float("nan"),
            "lag_p95_by_5s": [round(x, 2) for x in by_5s], "purged_after": int(retained)}


def redaction_sample(texts: list[str], n: int) -> list[str]:
    """``n`` turn texts plus ``n/2`` run previews, shuffled: what the redaction agent sees."""
    rng = random.Random(3)
    previews = [preview(rng, STDOUT + STDERR) for _ in range(n // 2)]
    sample = texts[:n] + previews
    rng.shuffle(sample)
    return sample


def batched_redactor(cfg: Settings, ner_prefilter: bool | None = None):
    """The agent's PiiRedactor with its cache off, warmed up (comparisons measure batching and
    pipeline trimming alone; the agent also caches)."""
    from processors.pii import PiiRedactor, TenantTerms

    prefilter = cfg.PII_NER_PREFILTER if ner_prefilter is None else ner_prefilter
    ours = PiiRedactor(cfg.PII_ENTITIES, cfg.PII_SPACY_MODEL, cfg.PII_SCORE_THRESHOLD, TenantTerms(), prefilter,
                       cache_size=0, ner_window=cfg.PII_NER_WINDOW if prefilter else 0)
    ours.redact(["Warm up, Maria: maria@example.com"] * 8, "bench")
    return ours


def plain_redactor(cfg: Settings):
    """Plain Presidio (default pipeline and recognizers, one call per text), warmed up."""
    from processors.pii import PlainPresidio

    plain = PlainPresidio(cfg.PII_ENTITIES, cfg.PII_SPACY_MODEL, cfg.PII_SCORE_THRESHOLD)
    plain.redact("Warm up, Maria: maria@example.com")
    return plain


def time_batched(redactor, sample: list[str], batch: int) -> tuple[float, list[str]]:
    """(ms per text, outputs) of ``redactor.redact`` over ``sample`` in calls of ``batch`` texts."""
    t0 = time.perf_counter()
    out: list[str] = []
    for i in range(0, len(sample), batch):
        out += [r.text for r in redactor.redact(sample[i:i + batch], "bench")]
    return (time.perf_counter() - t0) * 1000 / len(sample), out


def time_plain(plain, sample: list[str]) -> tuple[float, list[str]]:
    """(ms per text, outputs) of plain Presidio, one analyze + anonymize call per text."""
    t0 = time.perf_counter()
    out = [plain.redact(t) for t in sample]
    return (time.perf_counter() - t0) * 1000 / len(sample), out


def redaction_cost(cfg: Settings, texts: list[str], n: int, batch: int) -> dict:
    """ms per text: the agent's batched redaction vs plain Presidio one call per text, same texts."""
    sample = redaction_sample(texts, n)
    ours_ms, batched = time_batched(batched_redactor(cfg), sample, batch)
    plain_ms, single = time_plain(plain_redactor(cfg), sample)
    nopf_ms, _ = time_batched(batched_redactor(cfg, ner_prefilter=False), sample, batch)
    same = sum(a == b for a, b in zip(batched, single))
    return {"texts": len(sample), "batched_ms_per_text": round(ours_ms, 3),
            "batched_no_prefilter_ms_per_text": round(nopf_ms, 3), "plain_ms_per_text": round(plain_ms, 3),
            "speedup": round(plain_ms / ours_ms, 2), "identical_output_share": round(same / len(sample), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=1000, help="offered events per second")
    ap.add_argument("--seconds", type=float, default=30, help="how long the load lasts")
    ap.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    ap.add_argument("--batch", type=int, default=50, help="events per request")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1, help="worker processes (one consumer group)")
    ap.add_argument("--drain", type=float, default=120, help="max seconds to wait for the backlog after the load")
    ap.add_argument("--redaction-texts", type=int, default=400)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/telemetry.json"))
    add_corpus_option(ap)
    args = ap.parse_args()
    corpus = corpus_paths(args.corpus)  # fail before starting anything

    run_id = uuid.uuid4().hex[:6]
    prefix = f"bench-telemetry-{run_id}."
    cfg, log_dir = isolated_stack(prefix, ("kafka", "postgres"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"TOPIC_PREFIX": prefix, "TWIN_AGENTS": AGENTS}
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []
    tenant = f"bench-{run_id}"
    try:
        for w in range(args.workers):
            logs.append(log_dir / f"bench-telemetry-worker{w}.log")
            procs.append(spawn(WORKER_CMD, env, logs[-1]))
        logs.append(log_dir / "bench-telemetry-gateway.log")
        procs.append(spawn(gateway_cmd(port), env, logs[-1]))
        console.print(f"[dim]starting {args.workers} worker(s) ({AGENTS}) and a gateway on {url} ...[/]")

        wait_until("worker and gateway", ready_check(logs[:-1], "pii redactor warm", url), 240, procs, logs)
        texts = turn_texts(corpus=os.pathsep.join(map(str, corpus)))
        sessions = []
        with httpx.Client(base_url=url, headers=bearer_headers(cfg, tenant, ["capture"], "bench"), timeout=30) as http:
            for i in range(args.sessions):
                sid = f"{tenant}-s{i}"
                resp = http.post("/api/interviews/session", json={"sessionId": sid, "interviewerId": "bench",
                                                                  "consentRecording": True})
                resp.raise_for_status()
                sessions.append(sid)
            # Warm-up (not measured): one small batch through the whole path.
            warm_tenant = f"{tenant}-warm"
            warm_headers = bearer_headers(cfg, warm_tenant, ["capture"], "bench")
            http.post("/api/interviews/session", json={"sessionId": f"{warm_tenant}-s", "interviewerId": "bench",
                                                       "consentRecording": True}, headers=warm_headers)
            http.post("/api/interviews/session/telemetry", headers=warm_headers, json={
                "interviewSessionId": f"{warm_tenant}-s",
                "events": [Mix(texts, 9).event(f"{warm_tenant}-s", datetime.now(timezone.utc).isoformat())
                           for _ in range(50)]})
            time.sleep(3)
        console.print(f"[dim]load: {args.rate:.0f} events/s for {args.seconds:.0f}s, {args.clients} clients x "
                      f"{args.batch} events/request, {args.sessions} sessions[/]")
        load_before = os.getloadavg()[0]
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        sent = asyncio.run(load(url, tenant, sessions, Mix(texts), args.rate, args.seconds, args.clients, args.batch))
        load_during = os.getloadavg()[0]
        stored = measure_store(cfg.POSTGRES_DSN, tenant, sent["sent"], args.drain)
        cpu = [round(cpu_seconds(p.pid) - c, 2) for p, c in zip(procs, cpu0)]
        stored["cpu_s_workers"] = cpu[:-1]
        stored["cpu_s_gateway"] = cpu[-1]
        stored["worker_cpu_ms_per_event"] = round(sum(cpu[:-1]) * 1000 / max(1, stored["stored"]), 3)
        stored["gateway_cpu_ms_per_event"] = round(cpu[-1] * 1000 / max(1, sent["sent"]), 3)
    finally:
        stop_all(procs, cfg, prefix)
    console.print("[dim]measuring redaction cost per text (batched vs plain Presidio) ...[/]")
    cost = redaction_cost(cfg, texts, args.redaction_texts, cfg.PII_BATCH_MESSAGES)

    result = {"config": {"rate": args.rate, "seconds": args.seconds, "clients": args.clients, "batch": args.batch,
                         "sessions": args.sessions, "workers": args.workers, "cpus": os.cpu_count(),
                         "loadavg_1m_before": round(load_before, 2), "loadavg_1m_end_of_load": round(load_during, 2),
                         "mix": "45% code_edit, 25% run (60% with preview), 30% turn (~30 words, 10% with PII)",
                         "corpus": [p.name if p == DEFAULT_CORPUS else str(p) for p in corpus],
                         "distinct_turn_texts": len(texts)},
              "load": sent, "pipeline": stored, "redaction": cost}
    table = Table(title="telemetry: gateway → Kafka → redaction → PostgreSQL")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("machine: cpus / 1-min load before, at end of load", f"{os.cpu_count()} / {load_before:.1f}, {load_during:.1f}"),
        ("offered load (events/s)", f"{sent['offered_rate']:.0f}  ({sent['sent']} events, {sent['errors']} errors)"),
        ("sustained, stored (events/s)", f"{stored['sustained_eps']:.0f}"),
        ("steady median per second", f"{stored['steady_median_eps']:.0f}"),
        ("stored / lost", f"{stored['stored']} / {stored['lost']}"),
        ("end-to-end lag p50 / p95 (s)", f"{stored['lag_p50_s']:.3f} / {stored['lag_p95_s']:.3f}"),
        ("end-to-end lag max (s)", f"{stored['lag_max_s']:.3f}"),
        ("CPU per event: worker / gateway (ms)",
         f"{stored['worker_cpu_ms_per_event']} / {stored['gateway_cpu_ms_per_event']}"),
        ("lag p95 per 5 s of load (s)", " ".join(f"{x:.1f}" for x in stored["lag_p95_by_5s"])),
        ("HTTP p50 / p95 (ms per batch)", f"{sent['http_p50_ms']} / {sent['http_p95_ms']}"),
        ("redaction, batched (ms/text)", f"{cost['batched_ms_per_text']:.2f}"),
        ("redaction, batched, no NER prefilter (ms/text)", f"{cost['batched_no_prefilter_ms_per_text']:.2f}"),
        ("redaction, plain Presidio 1 call/text (ms/text)", f"{cost['plain_ms_per_text']:.2f}"),
        ("speed-up / identical output", f"{cost['speedup']}x / {cost['identical_output_share']:.1%}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    write_result(args.out, result)


async def _delete_topics(cfg: Settings, prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=cfg.KAFKA_BOOTSTRAP)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


if __name__ == "__main__":
    main()
