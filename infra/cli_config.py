"""`twin config get|set|unset|reset`: the tenant's and interviewers' configuration and feature flags.

    twin config get --tenant acme                                   # the tenant layer as stored
    twin config get --tenant acme --interviewer dana --effective    # what applies to dana, and from where
    twin config set --tenant acme --interviewer dana verbosity=terse tools=false
    twin config set --tenant acme prohibitedTopics+=salary "companyGuidelines=[\"Never promise an offer.\"]"
    twin config unset --tenant acme --interviewer dana controls.verbosity
    twin config reset --tenant acme --interviewer dana              # remove the layer: inherit everything

Keys are dotted paths of the layer (``controls.verbosity``, ``flags.tools``, ``prohibitedTopics``); a
control or flag name alone is enough. Values are JSON when they parse as JSON, else text; list keys
take comma-separated text, and ``key+=value`` appends to a list. Every write is validated (the
admin API's model), bumps the layer's version, is written to the audit log and is live on the next
respond request of every worker (processors/twin/config.py). Registered on `twin config` by the
last lines of infra/cli.py.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from infra.cli import _fail as _fail_markup
from infra.cli import config_app, console
from infra.settings import settings

__all__ = ["config_get", "config_set", "config_unset", "config_reset", "parse_assignments"]

TenantOpt = typer.Option(None, "--tenant", "-t", help="Tenant (default: DEFAULT_TENANT).")
InterviewerOpt = typer.Option(None, "--interviewer", "-i", help="An interviewer's layer (default: the tenant's).")
IfVersionOpt = typer.Option(None, "--if-version", help="Refuse the write unless the layer is at this version.")

_CONTROLS = ("challengeLevel", "coachingRatio", "verbosity", "tone", "locked")
_FLAGS = ("tools", "disabledTools", "guardrails", "generator", "adapters")
_SPLIT_LISTS = {"prohibitedTopics", "controls.locked", "flags.disabledTools"}
_LISTS = _SPLIT_LISTS | {"companyGuidelines"}


def _fail(message: str) -> None:
    _fail_markup(escape(message))


def _path(key: str) -> list[str]:
    key = key.strip()
    if "." not in key:
        if key in _CONTROLS:
            return ["controls", key]
        if key in _FLAGS:
            return ["flags", key]
    return key.split(".")


def _value(path: list[str], raw: str) -> Any:
    dotted = ".".join(path)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    if dotted in _LISTS and not isinstance(value, list):
        value = [v.strip() for v in raw.split(",") if v.strip()] if dotted in _SPLIT_LISTS else [raw]
    return value


def _get(data: dict[str, Any], path: list[str]) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _put(data: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
    data[path[-1]] = value


def parse_assignments(assignments: list[str], current: dict[str, Any]) -> dict[str, Any]:
    """``key=value`` / ``key+=value`` arguments as a merge patch over ``current`` (the stored layer)."""
    patch: dict[str, Any] = {}
    for item in assignments:
        eq = item.find("=")
        append = eq > 0 and item[eq - 1] == "+"
        key, raw = item[: eq - 1 if append else eq], item[eq + 1:]
        if eq <= 0 or not key.strip():
            raise ValueError(f"{item!r}: expected key=value (or key+=value for a list)")
        path = _path(key)
        value = _value(path, raw)
        if append:
            if ".".join(path) not in _LISTS:
                raise ValueError(f"{key}: += only works on list keys ({', '.join(sorted(_LISTS))})")
            before = _get(patch, path) or _get(current, path) or []
            value = [*before, *[v for v in value if v not in before]]
        _put(patch, path, value)
    return patch


def _store():
    from processors.twin.config import ConfigStore

    try:
        return ConfigStore.from_settings(settings)
    except Exception as exc:  # noqa: BLE001
        _fail(f"cannot open the configuration store: {type(exc).__name__}: {exc}")


def _layer_table(layer) -> Table:
    who = f"interviewer {layer.interviewer_id}" if layer.interviewer_id else "tenant layer"
    table = Table(title=f"{layer.tenant}: {who}, version {layer.version}"
                        + (f" ({layer.updated_by}, {layer.updated_at:%Y-%m-%d %H:%M:%S})" if layer.updated_at else ""))
    table.add_column("key")
    table.add_column("value")
    for key, value in _flatten(layer.config.stored()):
        table.add_row(key, escape(json.dumps(value)))
    if not layer.config.stored():
        table.add_row("[dim](nothing set: everything inherited)[/]", "")
    return table


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _run(work):
    import psycopg

    try:
        return work()
    except psycopg.OperationalError as exc:
        _fail(f"PostgreSQL is not reachable at {settings.POSTGRES_HOST}:{settings.POSTGRES_PORT}: {exc}; "
              "start it with `infra/up`")


@config_app.command("get")
def config_get(tenant: Optional[str] = TenantOpt, interviewer: Optional[str] = InterviewerOpt,
               effective: bool = typer.Option(False, "--effective", help="What applies after every layer, and from "
                                                                         "which layer each value comes."),
               as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show a configuration layer (or, with --effective, the resolved configuration)."""
    tenant = tenant or settings.DEFAULT_TENANT
    store = _store()
    try:
        if effective:
            conf = _run(lambda: store.load(tenant, interviewer))
            if as_json:
                console.print_json(conf.model_dump_json())
                return
            table = Table(title=f"{tenant}{' / ' + interviewer if interviewer else ''}: effective configuration "
                                f"{conf.version}")
            for col in ("key", "value", "from"):
                table.add_column(col)
            data = conf.model_dump(mode="json", include={"controls", "flags", "prohibitedTopics", "companyGuidelines"})
            for key, value in _flatten(data):
                source = conf.sources.get(key, "all layers" if key in _LISTS else "")
                table.add_row(key, escape(json.dumps(value)), source)
            console.print(table)
        else:
            layer = _run(lambda: store.layer(tenant, interviewer))
            if as_json:
                console.print_json(json.dumps({"tenant": tenant, "interviewerId": interviewer,
                                               "version": layer.version, "config": layer.config.stored()}))
            else:
                console.print(_layer_table(layer))
    finally:
        store.close()


def _write(tenant: str, interviewer: Optional[str], action: str, change, if_version: Optional[int],
           detail: dict[str, Any]) -> None:
    from pydantic import ValidationError

    from infra.audit import cli_actor
    from processors.twin.config import ConfigConflict, TwinConfig

    store = _store()
    try:
        current = _run(lambda: store.layer(tenant, interviewer))
        try:
            target = change(current.config.stored())
            config = None if target is None else TwinConfig.model_validate(target)
        except ValueError as exc:  # ValidationError is a ValueError
            if isinstance(exc, ValidationError):
                lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
                _fail("invalid configuration: " + "; ".join(lines))
            _fail(str(exc))
        try:
            layer = _run(lambda: store.write(tenant, interviewer, config, cli_actor(), expected_version=if_version,
                                             audit={"action": action, "detail": detail}))
        except ConfigConflict as exc:
            _fail(f"not written: {exc}")
        console.print(f"[green]✓[/] version {layer.version}" + (" (layer removed)" if config is None else ""))
        if config is not None:
            console.print(_layer_table(layer))
    finally:
        store.close()


@config_app.command("set")
def config_set(assignments: list[str] = typer.Argument(..., help="key=value or key+=value (lists)."),
               tenant: Optional[str] = TenantOpt, interviewer: Optional[str] = InterviewerOpt,
               if_version: Optional[int] = IfVersionOpt) -> None:
    """Set configuration keys of the tenant's or an interviewer's layer (validated, audited, live at once)."""
    from processors.twin.config import merge_patch

    tenant = tenant or settings.DEFAULT_TENANT

    def change(current: dict[str, Any]) -> dict[str, Any]:
        return merge_patch(current, parse_assignments(assignments, current))

    _write(tenant, interviewer, "config.set", change, if_version, {"set": assignments})


@config_app.command("unset")
def config_unset(keys: list[str] = typer.Argument(..., help="Keys to remove (inherited again)."),
                 tenant: Optional[str] = TenantOpt, interviewer: Optional[str] = InterviewerOpt,
                 if_version: Optional[int] = IfVersionOpt) -> None:
    """Remove keys from a layer, so they are inherited again."""
    from processors.twin.config import merge_patch

    tenant = tenant or settings.DEFAULT_TENANT

    def change(current: dict[str, Any]) -> dict[str, Any]:
        patch: dict[str, Any] = {}
        for key in keys:
            _put(patch, _path(key), None)
        return merge_patch(current, patch)

    _write(tenant, interviewer, "config.unset", change, if_version, {"unset": keys})


@config_app.command("reset")
def config_reset(tenant: Optional[str] = TenantOpt, interviewer: Optional[str] = InterviewerOpt,
                 if_version: Optional[int] = IfVersionOpt) -> None:
    """Remove the whole layer (the interviewer then inherits the tenant's, the tenant the defaults)."""
    tenant = tenant or settings.DEFAULT_TENANT
    _write(tenant, interviewer, "config.reset", lambda current: None, if_version, {})
