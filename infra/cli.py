"""`twin`: the command line for operators and developers.

    twin up                      start the local stack (Kafka, PostgreSQL, Redis, Weaviate)
    twin topics create           create every catalogue topic
    twin db upgrade              apply SQL migrations
    twin gateway / twin worker   run the HTTP gateway / the Faust agents
    twin demo                    the main job: stack, gateway, workers, a sample interview answered

Every subcommand has --help. Settings come from the environment or .env (see `twin config show`).
"""

from __future__ import annotations

import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from infra.settings import Settings, settings

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
    from processors.engine.app import app as faust_app

    sys.argv = ["twin-worker", "worker", "-l", loglevel, "--without-web", *ctx.args]
    faust_app.main()


SAMPLE_CORPUS = "infra/samples/sample_interviews.jsonl"
SAMPLE_INTERVIEWER = "dana"


def _train_sample(tenant: str) -> int:
    """Train the shipped synthetic interviewer (dana) for the demo; returns the active version."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from infra.settings import REPO_ROOT
    from processors.twin.corpus import read_transcripts
    from processors.twin.engine import TwinEngine
    from processors.twin.training import train_interviewer

    engine = TwinEngine.from_settings(settings)
    transcripts = [p.transcript for p in read_transcripts(REPO_ROOT / SAMPLE_CORPUS) if p.ok]
    with Progress(TextColumn("[bold]training dana[/] {task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("", total=1.0)
        try:
            result = train_interviewer(tenant, SAMPLE_INTERVIEWER, transcripts, engine.profiles, engine.memory,
                                       progress=lambda stage, f: bar.update(task, completed=f, description=stage))
        finally:
            engine.close()
    return result.version


@app.command()
def demo(tenant: str = typer.Option(None, help="Tenant to train the sample interviewer in (DEFAULT_TENANT)."),
         retrain: bool = typer.Option(False, help="Train a new version even when one is active."),
         stop: bool = typer.Option(False, help="Stop gateway and worker afterwards (the stack keeps running).")) -> None:
    """The main job: bring up the stack, train the sample interviewer, start gateway + workers, and
    replay a held-out sample interview through POST /api/digital-twin/respond.

    Each candidate turn of the held-out session is sent with everything said before it; the table
    shows what the twin answered next to what the real interviewer said.
    """
    import statistics

    import httpx

    from infra.settings import REPO_ROOT
    from infra.stack import Stack, StackError
    from processors.twin.corpus import read_transcripts
    from processors.twin.profiles import ProfileStore

    tenant = tenant or settings.DEFAULT_TENANT
    stack = Stack(settings, echo=console.print)
    try:
        stack.up()
        profiles = ProfileStore(settings.POSTGRES_DSN)
        try:
            profile = profiles.load(tenant, SAMPLE_INTERVIEWER)
            if profile is None or retrain:
                version = _train_sample(tenant)
                profile = profiles.load(tenant, SAMPLE_INTERVIEWER)
                console.print(f"trained [bold]{SAMPLE_INTERVIEWER}[/] version {version}")
        finally:
            profiles.close()
        url = stack.start_app()
    except StackError as exc:
        _fail(str(exc))
    held_out = set(profile.artefacts.get("split", {}).get("test", []))
    sessions = [p.transcript for p in read_transcripts(REPO_ROOT / SAMPLE_CORPUS) if p.ok]
    session = next((s for s in sessions if s.session_id in held_out), sessions[-1])
    table = Table(title=f"twin '{SAMPLE_INTERVIEWER}' on held-out session {session.session_id} (via {url})",
                  show_lines=True)
    for col, width in (("candidate said", 34), ("twin answered", 40), ("real interviewer said", 40), ("ms", 6)):
        table.add_column(col, max_width=width)
    latencies = []
    from datetime import timedelta

    from infra.apikeys import create_api_key

    # A key that can only ask for replies, and only for an hour: what an interview UI would hold.
    token = create_api_key(settings, tenant, scopes=["respond"], name="demo", expires_in=timedelta(hours=1))
    with httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        for i, turn in enumerate(session.turns):
            if turn.role != "interviewer" or i == 0 or session.turns[i - 1].role != "candidate":
                continue
            body = {"interviewerId": SAMPLE_INTERVIEWER, "sessionId": f"demo-{session.session_id}",
                    "history": [{"role": t.role, "text": t.text} for t in session.turns[: i - 1]],
                    "candidateTurn": session.turns[i - 1].text}
            resp = http.post("/api/digital-twin/respond", json=body)
            if resp.status_code != 200:
                _fail(f"respond answered {resp.status_code}: {resp.text}")
            reply = resp.json()
            latencies.append(reply["latencyMs"])
            move = reply["functionCalls"][0]["name"] if reply["functionCalls"] else ""
            table.add_row(session.turns[i - 1].text, f"{reply['text']}\n[dim]({move}, {reply['generator']})[/]",
                          turn.text, f"{reply['latencyMs']:.0f}")
    console.print(table)
    console.print(f"{len(latencies)} replies, latency p50 {statistics.median(latencies):.0f} ms, "
                  f"max {max(latencies):.0f} ms. Gateway: {url}/docs")
    if stop:
        stack.stop_app()
    else:
        console.print("Gateway and worker keep running; `twin down` stops everything.")


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
            _fail(f"no trained twin for {interviewer_id!r} in tenant {tenant!r}; train one first (`twin demo` trains 'dana')")
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


if __name__ == "__main__":  # pragma: no cover
    main()
from infra import cli_data  # noqa: E402,F401 - registers import/train/profile commands
from infra import cli_eval  # noqa: E402,F401 - registers the eval command
from infra import cli_admin  # noqa: E402,F401 - registers keys and audit commands
from infra import cli_config  # noqa: E402,F401 - registers config get/set/unset/reset
from infra import cli_canary  # noqa: E402,F401 - registers canary status/start/promote/rollback/evaluate
from infra import cli_retention  # noqa: E402,F401 - registers retention show/set/run
from infra import cli_crypto  # noqa: E402,F401 - registers crypto generate-key/status/rotate/encrypt-existing
