"""`twin keys` and `twin audit`: API keys and the audit log (registered on ``infra.cli.app``).

These act on PostgreSQL directly (operators run them next to the database); every key change is
itself written to the audit log with actor ``cli:<os user>``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from infra import apikeys
from infra.audit import AuditQuery, cli_actor, query, record
from infra.cli import app, connect_db

console = Console()
err = Console(stderr=True)

keys_app = typer.Typer(help="Per-tenant API keys (stored hashed; the token is shown once).", no_args_is_help=True)
audit_app = typer.Typer(help="The append-only audit log.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option(..., help="Tenant the key acts for."),
    scopes: str = typer.Option(",".join(apikeys.SCOPES), help=f"Comma-separated, of: {', '.join(apikeys.SCOPES)}."),
    name: str = typer.Option("key", help="A label: who or what holds the key."),
    interviewer: Optional[list[str]] = typer.Option(None, help="Limit the key to this interviewer (repeatable)."),
    expires_days: Optional[int] = typer.Option(None, min=1, help="Expire after this many days (default: never)."),
    as_json: bool = typer.Option(False, "--json", help="Print the token and key as JSON."),
) -> None:
    """Create a key and print its token (only now: only a hash is stored)."""
    try:
        scope_list = apikeys.normalise_scopes(scopes.split(","))
        if not apikeys.TENANT_RE.match(tenant):
            raise ValueError(f"tenant id {tenant!r} must be 1-64 of [A-Za-z0-9_.-], starting with a letter or digit")
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    with connect_db() as conn:
        cred = apikeys.issue_key(conn, tenant, name, scope_list, interviewer or None,
                                 timedelta(days=expires_days) if expires_days else None)
        record(conn, tenant, cli_actor(), "keys.create", "api_key", cred.key.key_id,
               detail={"scopes": list(scope_list), "interviewers": interviewer or None, "name": name})
        conn.commit()
    if as_json:
        console.print_json(json.dumps({"token": cred.token, "key": cred.key.public()}))
    else:
        console.print(f"key [bold]{cred.key.key_id}[/] for tenant [bold]{tenant}[/], scopes {', '.join(scope_list)}")
        console.print(f"token (shown once): [bold green]{cred.token}[/]")


@keys_app.command("list")
def keys_list(tenant: Optional[str] = typer.Option(None, help="Only this tenant."),
              include_revoked: bool = typer.Option(False, help="Also revoked keys.")) -> None:
    """List keys (never their secrets)."""
    with connect_db() as conn:
        keys = apikeys.list_keys(conn, tenant, include_revoked)
    table = Table(title="API keys")
    for col in ("key id", "tenant", "name", "scopes", "interviewers", "created", "expires", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(k.key_id, k.tenant, k.name, ",".join(k.scopes), ",".join(k.interviewers or ()) or "all",
                      f"{k.created_at:%Y-%m-%d %H:%M}", f"{k.expires_at:%Y-%m-%d}" if k.expires_at else "never",
                      f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key id (the part after twk_ and before the dot)."),
                tenant: Optional[str] = typer.Option(None, help="Refuse unless the key belongs to this tenant.")) -> None:
    """Revoke a key; every gateway stops accepting it at once (announced on Redis)."""
    from infra.settings import settings

    with connect_db() as conn:
        key = apikeys.revoke_key(conn, key_id, tenant)
        if key is None:
            err.print(f"[red]error:[/] no live key {key_id!r}" + (f" in tenant {tenant!r}" if tenant else ""))
            raise typer.Exit(1)
        record(conn, key.tenant, cli_actor(), "keys.revoke", "api_key", key_id)
        conn.commit()
    console.print(f"revoked {key_id} ({key.tenant}/{key.name})")
    if not apikeys.announce_revocation(settings, key_id):
        err.print(f"[yellow]warning:[/] Redis unreachable ({settings.REDIS_URL}): gateways keep accepting the key"
                  f" for up to AUTH_CACHE_TTL_S={settings.AUTH_CACHE_TTL_S}s")


def _when(value: Optional[str]) -> Optional[datetime]:
    """An ISO time, or a relative one like 24h / 7d / 30m."""
    if not value:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if value[-1] in units and value[:-1].isdigit():
        return datetime.now(timezone.utc) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither an ISO time nor like 24h / 7d / 30m") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@audit_app.command("query")
def audit_query(
    tenant: Optional[str] = typer.Option(None, help="Only this tenant (default: all)."),
    actor: Optional[str] = typer.Option(None, help="Exact actor, e.g. key:<id>:<name> or cli:<user>."),
    action: Optional[str] = typer.Option(None, help="Substring of the action, e.g. DELETE or /respond."),
    resource_type: Optional[str] = typer.Option(None, help="e.g. session, interviewer, recording."),
    resource_id: Optional[str] = typer.Option(None, help="e.g. a session id."),
    outcome: Optional[str] = typer.Option(None, help="ok, denied, unauthenticated, not_found, rejected, error."),
    since: Optional[str] = typer.Option(None, help="ISO time or relative (24h, 7d)."),
    until: Optional[str] = typer.Option(None, help="ISO time or relative."),
    limit: int = typer.Option(50, min=1, max=10_000, help="At most this many records, newest first."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
) -> None:
    """Who did what, when, to which resource, and how it ended."""
    q = AuditQuery(tenant=tenant, actor=actor, action=action, resource_type=resource_type, resource_id=resource_id,
                   outcome=outcome, since=_when(since), until=_when(until), limit=limit)
    with connect_db() as conn:
        rows = query(conn, q)
    if as_json:
        for row in rows:
            print(json.dumps(row, default=str))
        return
    table = Table(title=f"audit log ({len(rows)} records, newest first)")
    for col in ("time", "tenant", "actor", "action", "resource", "outcome", "trace"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["ts"][:19], r["tenant"], r["actor"], r["action"], f"{r['resourceType']}:{r['resourceId']}",
                      r["outcome"], (r["traceId"] or "")[:16])
    console.print(table)
