"""`twin retention ...`: a tenant's retention policy, and applying it by hand.

    twin retention show --tenant acme                  # days per kind (0 = forever) and where they come from
    twin retention set telemetry 90 --tenant acme      # 0 keeps forever; `default` returns to the setting
    twin retention run --tenant acme --dry-run         # what would go, per store; nothing changes
    twin retention run                                 # every tenant, for real (what the retention_sweep agent does)

The work is ``sinks.retention`` (the same function the agent and the gateway call); every deletion is
audited with actor ``cli:<os user>``. Registered on the main `twin` app by the last line of infra/cli.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from infra.cli import _fail as _fail_markup
from infra.cli import app, console
from infra.settings import settings

__all__ = ["retention_app"]

retention_app = typer.Typer(
    help="Retention per tenant and kind of data (erasure of one session: DELETE /api/interviews/session/{id}).",
    no_args_is_help=True)
TenantOpt = typer.Option(None, "--tenant", "-t", help="Tenant (default: DEFAULT_TENANT).")
app.add_typer(retention_app, name="retention")


def _fail(message: str) -> None:
    _fail_markup(escape(message))


def _tenant(value: str | None) -> str:
    return value or settings.DEFAULT_TENANT


async def _with_pool(work):
    from infra.clients import pg_pool

    pool = pg_pool(settings, min_size=1, max_size=2)
    try:
        await pool.open(wait=True, timeout=10)
    except Exception as exc:  # noqa: BLE001
        await pool.close()
        _fail(f"PostgreSQL is not reachable at {settings.POSTGRES_HOST}:{settings.POSTGRES_PORT} "
              f"(POSTGRES_HOST/POSTGRES_PORT): {exc}; start it with `infra/up`")
    try:
        return await work(pool)
    finally:
        await pool.close()


def _policy_table(policy) -> Table:
    from sinks.retention import KINDS, default_days

    defaults = default_days(settings)
    table = Table(title=f"retention of {policy.tenant}")
    for col in ("kind", "days", "source", "default"):
        table.add_column(col, justify="right" if col in ("days", "default") else "left")
    for kind in KINDS:
        days = policy.days[kind]
        table.add_row(kind, "forever" if days == 0 else str(days), policy.source[kind],
                      "forever" if defaults[kind] == 0 else str(defaults[kind]))
    return table


@retention_app.command("show")
def retention_show(tenant: Optional[str] = TenantOpt,
                   json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """A tenant's retention in days per kind of data (0 keeps forever)."""
    from sinks import retention

    policy = asyncio.run(_with_pool(lambda pool: retention.get_policy(pool, settings, _tenant(tenant))))
    if json_out:
        console.print_json(json.dumps(policy.to_dict()))
    else:
        console.print(_policy_table(policy))


@retention_app.command("set")
def retention_set(kind: str = typer.Argument(..., help="recordings, telemetry, vectors or eval."),
                  days: str = typer.Argument(..., help="Days to keep; 0 keeps forever; `default` for the setting."),
                  tenant: Optional[str] = TenantOpt) -> None:
    """Set a tenant's retention for one kind of data (audited)."""
    from infra.audit import cli_actor
    from sinks import retention

    if kind not in retention.KINDS:
        _fail(f"unknown kind {kind!r}; choose from {', '.join(retention.KINDS)}")
    if days == "default":
        value = None
    elif days.isdigit():
        value = int(days)
    else:
        _fail(f"days must be a whole number >= 0 or `default`, not {days!r}")
    policy = asyncio.run(_with_pool(lambda pool: retention.set_policy(pool, settings, _tenant(tenant), {kind: value},
                                                                      cli_actor())))
    console.print(_policy_table(policy))


def _report_tables(report) -> list[Table]:
    title = f"retention {'dry run: would delete' if report.dry_run else 'run: deleted'}"
    detail = Table(title=f"{title} ({report.tenants} tenant(s))")
    for col in ("tenant", "kind", "store", "what", "count"):
        detail.add_column(col, justify="right" if col == "count" else "left")
    for d in sorted(report.deletions, key=lambda d: (d.tenant, d.kind, d.store, d.what)):
        detail.add_row(escape(d.tenant), d.kind, d.store, escape(d.what), str(d.count))
    totals = Table(title="per store")
    totals.add_column("tenant")
    from sinks.retention import STORES

    for store in STORES:
        totals.add_column(store, justify="right")
    by_store = report.by_store()
    for t in sorted(by_store):
        totals.add_row(escape(t), *(str(by_store[t].get(s, 0)) for s in STORES))
    totals.add_row("[bold]all[/]", *(f"[bold]{report.total(store=s)}[/]" for s in STORES))
    return [detail, totals]


@retention_app.command("run")
def retention_run(tenant: Optional[str] = typer.Option(None, "--tenant", "-t",
                                                       help="One tenant (default: every tenant)."),
                  dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; change nothing."),
                  json_out: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Apply the retention policy now, in every store: PostgreSQL, Weaviate, object storage, Redis."""
    from infra.audit import cli_actor
    from sinks import retention

    async def go():
        try:
            async with retention.Stores.open(settings) as stores:
                return await retention.run(stores, tenant=tenant, dry_run=dry_run, actor=cli_actor())
        except (OSError, ConnectionError) as exc:
            _fail(f"a store is unreachable: {exc}; start the stack with `infra/up`")
        except Exception as exc:  # noqa: BLE001 - psycopg's pool timeout, an object store misconfiguration
            if isinstance(exc, typer.Exit):
                raise
            _fail(f"{type(exc).__name__}: {exc}")

    report = asyncio.run(go())
    if json_out:
        console.print_json(json.dumps(report.to_dict()))
    else:
        for table in _report_tables(report):
            console.print(table)
        for error in report.errors:
            console.print(f"[red]error:[/] {escape(error)}")
    if report.errors:
        raise typer.Exit(1)
