"""`twin`: the command line for operators and developers.

    twin up                      start the local stack (Kafka, PostgreSQL, Redis, Weaviate)
    twin topics create           create every catalogue topic
    twin db upgrade              apply SQL migrations
    twin gateway / twin worker   run the HTTP gateway / the Faust agents
    twin demo                    the main job: stack, gateway, workers, a justice's twin on a real held-out argument

Every subcommand has --help. Settings come from the environment or .env (see `twin config show`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from infra.settings import Settings, settings

if TYPE_CHECKING:  # the demo's types; the module itself imports them only when the demo runs
    from processors.twin.corpus import Split, Transcript

app = typer.Typer(help=__doc__, no_args_is_help=True, rich_markup_mode="rich", add_completion=False)
topics_app = typer.Typer(help="The Kafka topic catalogue (schemas/topics.py).", no_args_is_help=True)
db_app = typer.Typer(help="PostgreSQL schema migrations.", no_args_is_help=True)
config_app = typer.Typer(help="Settings (show); tenant/interviewer configuration and flags (get, set, unset, reset).",
                         no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

console = Console()
err = Console(stderr=True)

ALL_SERVICES = ("postgres", "redis", "kafka", "weaviate")


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def connect_db(cfg: Settings | None = None, **kwargs):
    """A PostgreSQL connection for a command, or exit 1 saying where the database was expected."""
    import psycopg
    from rich.markup import escape

    from infra.db import connect

    cfg = cfg or settings
    try:
        return connect(cfg, **{"connect_timeout": 5, **kwargs})
    except psycopg.OperationalError as exc:
        _fail(escape(f"PostgreSQL is not reachable at {cfg.POSTGRES_HOST}:{cfg.POSTGRES_PORT} "
                     f"(POSTGRES_HOST/POSTGRES_PORT): {exc}; start it with `infra/up`"))


def _status_table(status: dict[str, dict[str, object]]) -> Table:
    table = Table(title="local stack")
    table.add_column("service")
    table.add_column("state")
    table.add_column("endpoint")
    for name, info in status.items():
        table.add_row(name, "[green]up[/]" if info["up"] else "[red]down[/]", str(info["endpoint"]))
    return table


@app.command()
def up(services: Optional[list[str]] = typer.Argument(None, help=f"Subset of {', '.join(ALL_SERVICES)}; all by default.")) -> None:
    """Install (once), start and health-check the local stack; apply migrations; create topics.

    Idempotent: services already running are left alone, so a second `twin up` takes seconds.
    """
    from infra.stack import Stack, StackError

    chosen = tuple(services or ALL_SERVICES)
    unknown = set(chosen) - set(ALL_SERVICES)
    if unknown:
        _fail(f"unknown service(s) {sorted(unknown)}; choose from {', '.join(ALL_SERVICES)}")
    stack = Stack(settings, echo=console.print)
    try:
        stack.up(chosen)
    except StackError as exc:
        _fail(str(exc))
    console.print(_status_table(stack.status()))


@app.command()
def down() -> None:
    """Stop every service `twin up` started (data stays in var/)."""
    from infra.stack import Stack

    Stack(settings, echo=console.print).down()


@app.command()
def status() -> None:
    """Show which services answer, and where."""
    from infra.stack import Stack

    console.print(_status_table(Stack(settings, echo=console.print).status()))


@topics_app.command("create")
def topics_create() -> None:
    """Create every catalogue topic that does not exist yet (with TOPIC_PREFIX)."""
    from infra.kafka_admin import create_topics

    try:
        created = create_topics(settings)
    except Exception as exc:  # noqa: BLE001 - report any broker problem in one line
        _fail(f"cannot reach Kafka at {settings.KAFKA_BOOTSTRAP} ({type(exc).__name__}: {exc}); run `twin up`")
    console.print(f"{len(created)} topic(s) created" + (": " + ", ".join(created) if created else ""))


@topics_app.command("list")
def topics_list() -> None:
    """Print the catalogue: name, record, key, partitions, retention, producers → consumers."""
    from schemas.topics import TOPICS

    table = Table(title="topic catalogue")
    for col in ("topic", "record", "key", "parts", "retention", "policy", "producers", "consumers"):
        table.add_column(col)
    for t in TOPICS:
        retention = "forever" if t.retention_ms is None else f"{t.retention_ms / 86_400_000:g} d"
        table.add_row(settings.topic(t.name), t.record, t.key or "-", str(t.partitions), retention,
                      t.cleanup_policy, ", ".join(t.producers), ", ".join(t.consumers))
    console.print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending SQL migrations from infra/migrations (idempotent)."""
    from infra.db import upgrade

    try:
        applied = upgrade(settings)
    except Exception as exc:  # noqa: BLE001
        _fail(f"{type(exc).__name__}: {exc}")
    console.print(f"{len(applied)} migration(s) applied" +
                  (": " + ", ".join(f"{m.version:04d}_{m.name}" for m in applied) if applied else ""))


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (secrets masked)."""
    table = Table(title="settings")
    table.add_column("name")
    table.add_column("value")
    for key, value in sorted(settings.public_dict().items()):
        table.add_row(key, str(value))
    console.print(table)


@app.command()
def gateway(host: str = typer.Option(None, help="Bind address (GATEWAY_HOST)."),
            port: int = typer.Option(None, help="Port (GATEWAY_PORT)."),
            workers: int = typer.Option(1, help="Uvicorn worker processes.")) -> None:
    """Run the HTTP gateway (FastAPI under uvicorn); HTTPS when GATEWAY_TLS_CERT/KEY are set."""
    import uvicorn

    from infra.stack import gateway_tls_options

    uvicorn.run("gateway.main:app", host=host or settings.GATEWAY_HOST, port=port or settings.GATEWAY_PORT,
                workers=workers, log_level="info", **gateway_tls_options(settings))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(ctx: typer.Context,
           agents: str = typer.Option("", help="Comma-separated agent names to run (default: all)."),
           loglevel: str = typer.Option("info", "-l", "--loglevel", help="crit|error|warn|info|debug")) -> None:
    """Run a Faust worker with the agents (extra arguments go to `faust worker`)."""
    if agents:
        settings.TWIN_AGENTS = agents  # read by processors.engine.app at import, just below
    from processors.engine.app import main as run_worker

    sys.argv = ["twin-worker", "worker", "-l", loglevel, "--without-web", *ctx.args]
    run_worker()


DEMO_CORPUS = "infra/samples/scotus_oyez_slice.jsonl"  # public-record oral arguments (its README: source, licence)
DEMO_TURNS = 8
DEMO_DISTRACTORS = 20  # other real lines of the justice each twin line is ranked against
MIN_REPLAY_WORDS = 5  # shorter turns are interruptions ("Your --"): kept in the history, not replayed
ADVOCATE_CHARS = 160  # the advocate's turn is shown cut to this; the twin is asked with all of it


@dataclass
class DemoCorpus:
    """The demo's justice (the one with the most sessions in DEMO_CORPUS) and their sessions split by time."""

    justice: str
    split: Split

    @property
    def name(self) -> str:
        return self.justice.replace("_", " ").title()

    @property
    def held_out(self) -> list[Transcript]:
        return self.split.test


def _demo_corpus() -> DemoCorpus:
    """Read DEMO_CORPUS and split the busiest justice chronologically (final sessions held out)."""
    from collections import Counter

    from infra.settings import REPO_ROOT
    from processors.twin.corpus import chronological_split, read_transcripts

    sessions = [p.transcript for p in read_transcripts(REPO_ROOT / DEMO_CORPUS) if p.ok]
    if not sessions:
        _fail(f"no readable sessions in {DEMO_CORPUS}")
    counts = Counter(s.interviewer_id for s in sessions)
    justice = min(counts, key=lambda iid: (-counts[iid], iid))  # most sessions; ties by name
    return DemoCorpus(justice, chronological_split([s for s in sessions if s.interviewer_id == justice]))


def _demo_session(corpus: DemoCorpus, choice: str | None) -> Transcript:
    """The held-out session to replay: by id, by number (1 = the earliest held out), or the first."""
    held = corpus.held_out
    if not choice:
        return held[0]
    if choice.isdigit() and 1 <= int(choice) <= len(held):
        return held[int(choice) - 1]
    for s in held:
        if s.session_id == choice:
            return s
    listed = ", ".join(f"{n} = {s.session_id}" for n, s in enumerate(held, start=1))
    _fail(f"--session {choice!r} is not a held-out session of {corpus.justice}; choose one of: {listed}")


def _replayed_turns(session: Transcript, n: int) -> list[int]:
    """Indexes of the session's first ``n`` interviewer turns that answer the advocate and say something."""
    from processors.twin.text import words

    picked = [i for i, t in enumerate(session.turns) if t.role == "interviewer" and i > 0
              and session.turns[i - 1].role == "candidate" and len(words(t.text)) >= MIN_REPLAY_WORDS]
    return picked[:n]


def _train_demo(tenant: str, corpus: DemoCorpus) -> int:
    """Train the justice on the train split (the held-out sessions are never seen); returns the active
    version. Without the style classifier and the fine-tune files: replies use neither, and they would
    double the training time."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from processors.twin.engine import TwinEngine
    from processors.twin.training import train_interviewer

    engine = TwinEngine.from_settings(settings)
    with Progress(TextColumn(f"[bold]training {corpus.justice}[/] {{task.description}}"), BarColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("", total=1.0)
        try:
            result = train_interviewer(tenant, corpus.justice, [], engine.profiles, engine.memory,
                                       split=corpus.split, classifier=False, fine_tune_file=False,
                                       progress=lambda stage, f: bar.update(task, completed=f, description=stage))
        finally:
            engine.close()
    return result.version


@dataclass
class DemoJudge:
    """Scores a twin line against the real one with the evaluation's ``PairScorer``, fitted on the
    justice's train lines (``combined``: 0 = as alike as two random real lines, 1 = the same), and
    gives the cross-session match: the share of other real lines of the justice (from the other
    held-out sessions) that are less like the real line than the twin's line is."""

    scorer: Any
    distractor_scores: list[Any]  # per replayed turn: each distractor's ``combined`` against the real line

    @classmethod
    def fit(cls, corpus: DemoCorpus, replay: Transcript, reals: list[str]) -> "DemoJudge":
        import random

        from processors.twin.embeddings import get_embedder
        from processors.twin.evaluation.metrics import PairScorer

        train = [(s.session_id, t.text) for s in corpus.split.train for t in s.turns if t.role == "interviewer"]
        scorer = PairScorer.fit(get_embedder(), [t for _, t in train], [sid for sid, _ in train])
        pool = [t.text for s in corpus.held_out if s.session_id != replay.session_id
                for t in s.turns if t.role == "interviewer"]
        rng = random.Random(f"demo:{replay.session_id}")  # nosec B311  # reproducible sampling, not a secret
        drawn = [rng.sample(pool, min(DEMO_DISTRACTORS, len(pool))) for _ in reals]
        return cls(scorer, [scorer.combined(d, [real] * len(d)) for d, real in zip(drawn, reals)])

    def judge(self, twin_lines: list[str], reals: list[str]) -> tuple[list[float], list[float]]:
        """Per turn: the twin line's score and the share of distractors it beats (ties count half)."""
        from processors.twin.evaluation.metrics import beaten_share

        scores = self.scorer.combined(twin_lines, reals)
        return [float(x) for x in scores], [float(x) for x in beaten_share(scores, self.distractor_scores)]


def _wait_for_version(responder, tenant: str, justice: str, version: int, timeout_s: float = 30.0) -> None:
    """Workers cache the active profile for a few seconds: ask until the trained version answers."""
    import time
    import uuid

    deadline = time.monotonic() + timeout_s
    while True:
        answer = responder.ask(tenant, justice, f"demo-warmup-{uuid.uuid4().hex[:8]}", (), "Good morning.")
        if answer.error is None and answer.profile_version in (None, version):
            return
        if time.monotonic() > deadline:
            _fail(f"the twin did not answer with version {version} within {timeout_s:.0f}s "
                  f"(last: {answer.error or f'version {answer.profile_version}'})")
        time.sleep(1.0)


@app.command()
def demo(session: str = typer.Option(None, "--session", "-s",
                                     help="Held-out session to replay: its number (1 = the earliest held out) "
                                          "or its id. Default: 1."),
         turns: int = typer.Option(DEMO_TURNS, "--turns", "-n", min=1, help="How many of the justice's turns "
                                   "to replay (interruptions under five words are skipped)."),
         tenant: str = typer.Option(None, help="Tenant to train the justice in (DEFAULT_TENANT)."),
         retrain: bool = typer.Option(False, help="Train a new version even when one is active."),
         stop: bool = typer.Option(False, help="Stop gateway and worker afterwards (the stack keeps running)."),
         app_name: str = typer.Option("", "--app-name", hidden=True,
                                      help="Name of the gateway/worker pair (a second pair beside a running "
                                           "demo; it needs its own GATEWAY_PORT and WORKER_METRICS_PORT).")) -> None:
    """The main job: bring up the stack, train the twin of a Supreme Court
    justice on public-record oral arguments (infra/samples/scotus_oyez_slice.jsonl),
    start gateway + workers, and replay one of the justice's held-out arguments
    through POST /api/digital-twin/respond.

    The justice is the one with the most sessions in the file; the sessions are
    split by time and the twin learns from the earlier ones only. Each replayed
    turn is asked with everything said before it. The table shows the advocate's
    turn, what the justice really said, what the twin said, its score against the
    real line (0 = as alike as two random lines of the justice, 1 = the same) and
    the share of other real lines of the justice it beats (chance: 50%).
    """
    import statistics
    import uuid
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    from infra.apikeys import create_api_key
    from infra.stack import Stack, StackError
    from processors.twin.evaluation.responders import GatewayResponder
    from processors.twin.profiles import ProfileStore
    from processors.twin.training import TrainingError

    tenant = tenant or settings.DEFAULT_TENANT
    corpus = _demo_corpus()
    replay = _demo_session(corpus, session)
    picked = _replayed_turns(replay, turns)
    if not picked:
        _fail(f"session {replay.session_id} has no turn of {corpus.justice} to replay")
    reals = [replay.turns[i].text for i in picked]
    stack = Stack(settings, echo=console.print)
    try:
        stack.up()
        profiles = ProfileStore(settings.POSTGRES_DSN)
        try:
            profile = profiles.load(tenant, corpus.justice)
        finally:
            profiles.close()
        # The worker loads its models in the background meanwhile (it reads the profile per request).
        with ThreadPoolExecutor(1) as pool:
            starting = pool.submit(stack.start_app, app_name)
            # A version trained on another split might have seen the replayed session: train anew.
            if profile is None or retrain or profile.artefacts.get("split", {}).get("test") != \
                    [s.session_id for s in corpus.held_out]:
                version = _train_demo(tenant, corpus)
                console.print(f"trained [bold]{corpus.justice}[/] version {version} on {len(corpus.split.train)} "
                              f"sessions ({len(corpus.held_out)} held out)")
            else:
                version = profile.version
                console.print(f"[bold]{corpus.justice}[/] version {version} is active (--retrain trains anew)")
            judge = DemoJudge.fit(corpus, replay, reals)
            url = starting.result()
    except (StackError, TrainingError) as exc:
        _fail(str(exc))

    # A key that can only ask for replies, and only for an hour: what an interview UI would hold.
    responder = GatewayResponder(url, lambda t: create_api_key(settings, t, scopes=["respond"], name="demo",
                                                               expires_in=timedelta(hours=1)))
    replies = []
    conversation = f"demo-{uuid.uuid4().hex[:8]}-{replay.session_id}"
    try:
        _wait_for_version(responder, tenant, corpus.justice, version)
        for i in picked:
            history = [(t.role, t.text) for t in replay.turns[: i - 1]]
            answer = responder.ask(tenant, corpus.justice, conversation, history, replay.turns[i - 1].text)
            if answer.error:
                _fail(f"respond failed: {answer.error}")
            replies.append(answer)
    finally:
        responder.close()
    scores, beaten = judge.judge([a.text for a in replies], reals)

    console.print(_demo_table(corpus, replay, picked, replies, scores, beaten, url))
    console.print(f"[bold]{len(picked)} turns: mean score {statistics.fmean(scores):+.2f}; the twin beat a random "
                  f"other line of {corpus.name} {statistics.fmean(beaten):.0%} of the time (chance 50%).[/]")
    latencies = [a.latency_ms for a in replies]
    console.print(f"Latency p50 {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms. "
                  f"Gateway: {url}/docs")
    if stop:
        stack.stop_app(app_name)
    else:
        console.print("Gateway and worker keep running; `twin down` stops everything.")


def _demo_table(corpus: DemoCorpus, replay: Transcript, picked: list[int], replies: list[Any],
                scores: list[float], beaten: list[float], url: str) -> Table:
    """One row per replayed turn: advocate (shortened), the justice, the twin, score, share beaten."""
    import textwrap

    from rich.text import Text

    table = Table(title=f"twin of {corpus.name} on held-out argument {replay.session_id} (via {url})",
                  caption=f"score: 0 = as alike as two random lines of {corpus.name}, 1 = the real line; "
                          f"beats: share of {DEMO_DISTRACTORS} other real lines of theirs that are less like "
                          "the real line", show_lines=True)
    for col, width, justify in (("turn", 4, "right"), ("advocate said", 30, "left"),
                                (f"{corpus.name} said", 40, "left"), ("twin said", 40, "left"),
                                ("score", 6, "right"), ("beats", 5, "right")):
        table.add_column(col, max_width=width, justify=justify)
    for i, answer, score, share in zip(picked, replies, scores, beaten):
        advocate = textwrap.shorten(replay.turns[i - 1].text, ADVOCATE_CHARS, placeholder=" …")
        # Text, not markup: transcripts say "[Laughter]".
        twin = Text(answer.text) + Text(f"\n({answer.move or '-'}, {answer.generator or '-'})", style="dim")
        table.add_row(str(i + 1), Text(advocate, style="dim"), Text(replay.turns[i].text), twin,
                      f"{score:+.2f}", f"{share:.0%}")
    return table


@app.command()
def chat(interviewer_id: str = typer.Argument(..., help="Interviewer whose twin you talk to."),
         tenant: str = typer.Option(None, help="Tenant (DEFAULT_TENANT)."),
         gateway_url: str = typer.Option("", "--gateway", help="Talk through a running gateway at this URL "
                                         "instead of an in-process engine."),
         api_key: str = typer.Option("", envvar="TWIN_API_KEY", help="API key (respond scope) for --gateway."),
         verbosity: str = typer.Option("normal", help="terse | normal | verbose"),
         challenge: float = typer.Option(None, min=0, max=1, help="Challenge level 0..1."),
         coaching: float = typer.Option(None, min=0, max=1, help="Coaching ratio 0..1.")) -> None:
    """Talk to a twin in the terminal: type as the candidate; /reset starts over, /quit leaves."""
    import time

    tenant = tenant or settings.DEFAULT_TENANT
    controls = {"verbosity": verbosity, "challengeLevel": challenge, "coachingRatio": coaching}
    history: list[dict[str, str]] = []
    session_id = f"chat-{int(time.time())}"
    engine = http = None
    if gateway_url:
        import httpx

        if not api_key:
            _fail("--gateway needs an API key with the respond scope: --api-key or TWIN_API_KEY "
                  "(create one with `twin keys create --tenant T --scopes respond`)")
        http = httpx.Client(base_url=gateway_url, timeout=30, headers={"Authorization": f"Bearer {api_key}"})
    else:
        from processors.twin.engine import TwinEngine

        engine = TwinEngine.from_settings(settings)
        if engine.profiles.active(tenant, interviewer_id) is None:
            engine.close()
            _fail(f"no trained twin for {interviewer_id!r} in tenant {tenant!r}; train one first (`twin demo` trains elena_kagan)")
    console.print(f"[bold]{interviewer_id}[/] is listening. /reset to start over, /quit to leave.")
    try:
        while True:
            try:
                line = console.input("[bold cyan]you>[/] ").strip()
            except (EOFError, KeyboardInterrupt):
                break
            if line in ("/quit", "/exit"):
                break
            if line == "/reset":
                history.clear()
                continue
            started = time.perf_counter()
            if http is not None:
                resp = http.post("/api/digital-twin/respond", json={
                    "interviewerId": interviewer_id, "sessionId": session_id, "history": history,
                    "candidateTurn": line, "controls": {k: v for k, v in controls.items() if v is not None}})
                if resp.status_code != 200:
                    err.print(f"[red]{resp.status_code}[/] {resp.text}")
                    continue
                text, move = resp.json()["text"], resp.json()["functionCalls"][0]["name"]
            else:
                out = engine.respond(tenant=tenant, interviewer_id=interviewer_id, session_id=session_id,
                                     history=history, candidate_turn=line, controls=controls)
                text, move = out.text, out.move.value
            ms = (time.perf_counter() - started) * 1000
            console.print(f"[bold magenta]{interviewer_id}>[/] {text} [dim]({move}, {ms:.0f} ms)[/]")
            history += [{"role": "candidate", "text": line}, {"role": "interviewer", "text": text}]
    finally:  # nothing left open (no ResourceWarning at exit)
        if engine is not None:
            engine.close()
        if http is not None:
            http.close()


def main() -> None:  # pragma: no cover - console entry point
    app()

from infra import cli_data  # noqa: E402,F401 - registers import/train/profile commands
from infra import cli_eval  # noqa: E402,F401 - registers the eval command
from infra import cli_admin  # noqa: E402,F401 - registers keys and audit commands
from infra import cli_config  # noqa: E402,F401 - registers config get/set/unset/reset
from infra import cli_canary  # noqa: E402,F401 - registers canary status/start/promote/rollback/evaluate
from infra import cli_refresh  # noqa: E402,F401 - registers refresh status/run/pause/resume
from infra import cli_retention  # noqa: E402,F401 - registers retention show/set/run
from infra import cli_crypto  # noqa: E402,F401 - registers crypto generate-key/status/rotate/encrypt-existing


if __name__ == "__main__":  # pragma: no cover - python -m infra.cli
    # Run as a script this file is ``__main__``, and the command modules above registered their
    # commands on the ``app`` of the imported ``infra.cli``: that is the app to run.
    from infra.cli import main as _registered_main

    _registered_main()
