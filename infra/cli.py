"""`twin`: the command line for operators and developers.

    twin up                      start the local stack (Kafka, PostgreSQL, Redis, Weaviate)
    twin topics create           create every catalogue topic
    twin db upgrade              apply SQL migrations
    twin gateway / twin worker   run the HTTP gateway / the Faust agents
    twin demo                    the main job: stack, gateway, workers, a sample interview answered

Every subcommand has --help. Settings come from the environment or .env (see `twin config show`).
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from infra.settings import settings

app = typer.Typer(help=__doc__, no_args_is_help=True, rich_markup_mode="rich", add_completion=False)
topics_app = typer.Typer(help="The Kafka topic catalogue (schemas/topics.py).", no_args_is_help=True)
db_app = typer.Typer(help="PostgreSQL schema migrations.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

console = Console()
err = Console(stderr=True)

ALL_SERVICES = ("postgres", "redis", "kafka", "weaviate")


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


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
    """Run the HTTP gateway (FastAPI under uvicorn)."""
    import uvicorn

    uvicorn.run("gateway.main:app", host=host or settings.GATEWAY_HOST, port=port or settings.GATEWAY_PORT,
                workers=workers, log_level="info")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(ctx: typer.Context,
           agents: str = typer.Option("", help="Comma-separated agent names to run (default: all)."),
           loglevel: str = typer.Option("info", "-l", "--loglevel", help="crit|error|warn|info|debug")) -> None:
    """Run a Faust worker with the agents (extra arguments go to `faust worker`)."""
    if agents:
        os.environ["TWIN_AGENTS"] = agents
    from processors.engine.app import app as faust_app

    sys.argv = ["twin-worker", "worker", "-l", loglevel, "--without-web", *ctx.args]
    faust_app.main()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
