"""`twin refresh`: periodic refresh of interviewers' twins (registered on ``infra.cli.app``).

    twin config set --tenant acme refresh.enabled=true       # tenant default; per interviewer too
    twin refresh status [dana]        # sessions no version has learnt from, next refresh, canary, last decision
    twin refresh run dana             # refresh now: a training job on live:<tenant>, then a canary
    twin refresh pause dana | twin refresh resume dana
    twin refresh report dana --out var/refresh-report   # HTML: decisions, both versions' scores, the trend

The same code as the refresh_controller agent (processors/twin/refresh.py); every change is written
with its audit record (actor ``cli:<os user>``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from infra.audit import cli_actor
from infra.cli import _fail, app, connect_db, console
from infra.cli_canary import JsonOpt, TenantOpt
from infra.settings import settings
from processors.twin import refresh as refreshes
from processors.twin.datasets import live_ref

__all__ = ["refresh_app"]

refresh_app = typer.Typer(help="Periodic refresh: new consented live sessions train a new version, which a canary "
                               "then promotes or rolls back.", no_args_is_help=True)
app.add_typer(refresh_app, name="refresh")


def _configs():
    from processors.twin.config import ConfigStore

    return ConfigStore(settings.POSTGRES_DSN)


def _interviewers(conn, tenant: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT DISTINCT interviewer_id FROM interviewer_profiles WHERE tenant=%s"
                                       " ORDER BY 1", (tenant,)).fetchall()]


def _statuses(tenant: str, interviewer: str | None) -> list[refreshes.RefreshStatus]:
    configs = _configs()
    with connect_db() as conn:
        names = [interviewer] if interviewer else _interviewers(conn, tenant)
        return [refreshes.status(conn, tenant, name, configs.load(tenant, name).refresh) for name in names]


def _policy(st: refreshes.RefreshStatus) -> str:
    p = st.policy
    if not p.enabled:
        return "off"
    rule = f"{p.minNewSessions} sessions or {p.maxDays:g} days, canary {p.canaryShare:.0%}"
    return ("paused; " if p.paused else "") + rule


@refresh_app.command("status")
def refresh_status(interviewer: Optional[str] = typer.Argument(None, help="Interviewer id (default: every "
                                                                          "interviewer of the tenant)."),
                   tenant: Optional[str] = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Per interviewer: the policy, new sessions (no version has learnt from them), when the next refresh is due,
    what is running and the last refresh's outcome."""
    tenant = tenant or settings.DEFAULT_TENANT
    rows = _statuses(tenant, interviewer)
    if interviewer and rows[0].newest_version is None:
        _fail(f"{interviewer!r} has no trained version in tenant {tenant!r}")
    if as_json:
        print(json.dumps([st.to_json() for st in rows], default=str))
        return
    if not rows:
        console.print(f"no trained interviewer in tenant {tenant!r}", highlight=False)
        return
    table = Table(title=f"refresh of {tenant}")
    for col in ("interviewer", "policy", "versions", "new sessions", "next refresh", "running", "last refresh"):
        table.add_column(col, overflow="fold")
    for st in rows:
        reason = refreshes.due(st)
        if reason:
            upcoming = f"due: {reason}"
        elif not st.policy.enabled or st.policy.paused:
            upcoming = "-"
        elif st.trained_on != live_ref(tenant):
            upcoming = f"never: trained on {st.trained_on or 'unknown data'}, not {live_ref(tenant)}"
        else:
            at = st.next_refresh_at
            upcoming = (f"at {st.policy.minNewSessions} sessions"
                        + (f" or from {at:%Y-%m-%d %H:%M}Z" if at else ""))
        last = st.last_run
        last_text = (f"{last.status} v{last.candidate_version or '?'} ({last.created_at:%Y-%m-%d %H:%M}): "
                     f"{last.message or last.reason}") if last else "-"
        table.add_row(st.interviewer_id, _policy(st), f"newest v{st.newest_version}, active v{st.active_version}",
                      str(st.new_sessions), upcoming, st.busy or "-", last_text)
    console.print(table)


@refresh_app.command("run")
def refresh_run(interviewer: str = typer.Argument(...), tenant: Optional[str] = TenantOpt,
                as_json: bool = JsonOpt) -> None:
    """Refresh now, due or not: a training job on live:<tenant> (not activated), then the refresh
    controller starts its canary. Refused while a job, canary or refresh of the interviewer is open."""
    from infra.cli_data import send_training_job
    from schemas.models import TrainingJob

    tenant = tenant or settings.DEFAULT_TENANT
    actor = cli_actor()
    configs = _configs()
    with connect_db() as conn:
        st = refreshes.status(conn, tenant, interviewer, configs.load(tenant, interviewer).refresh)
        if st.newest_version is None:
            _fail(f"{interviewer!r} has no trained version in tenant {tenant!r}")
        if st.trained_on != live_ref(tenant):
            _fail(f"v{st.newest_version} of {interviewer!r} was trained on {st.trained_on!r}; a refresh trains on "
                  f"{live_ref(tenant)} (train on it once with `twin train {interviewer} --dataset {live_ref(tenant)}`)")
        try:
            run, job = refreshes.start_refresh(conn, st, f"run by {actor} ({st.new_sessions} new sessions)", actor)
        except refreshes.RefreshError as exc:
            conn.rollback()
            _fail(str(exc))
        conn.commit()
        send_training_job(conn, TrainingJob(**job))
    if as_json:
        print(json.dumps(run.to_json(), default=str))
        return
    console.print(f"refresh {run.run_id} of [bold]{interviewer}[/]: training job {run.job_id} queued on "
                  f"{live_ref(tenant)}; "
                  "`twin refresh status` follows it to its canary and decision", highlight=False)


@refresh_app.command("report")
def refresh_report(interviewer: str = typer.Argument(...), tenant: Optional[str] = TenantOpt,
                   out: Path = typer.Option(Path("var/refresh-report"), "--out", file_okay=False,
                                            help="Folder to write index.html into.")) -> None:
    """An HTML report of the interviewer's refreshes: each decision with both versions' live and offline
    scores, and the trend of its evaluation runs over versions."""
    from processors.twin.evaluation.report import render_refresh_report

    tenant = tenant or settings.DEFAULT_TENANT
    with connect_db() as conn:
        runs = refreshes.history(conn.execute(refreshes.HISTORY_SQL, (tenant, interviewer, 50)).fetchall(),
                                 conn.execute(refreshes.OFFLINE_SQL, (tenant, interviewer)).fetchall())
        trend = [{"version": v, "scores": scores.get("twin") or {}} for v, scores in conn.execute(
            "SELECT profile_version, scores FROM eval_runs WHERE tenant=%s AND interviewer_id=%s ORDER BY created_at",
            (tenant, interviewer)).fetchall()]
    if not runs and not trend:
        _fail(f"{interviewer!r} has no refresh and no evaluation run in tenant {tenant!r}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    path.write_text(render_refresh_report(tenant, interviewer, runs, trend), encoding="utf-8")
    console.print(f"wrote {path} ({len(runs)} refresh(es), {len(trend)} evaluation run(s))", highlight=False)


def _hold(interviewer: str, tenant: Optional[str], paused: bool) -> None:
    tenant = tenant or settings.DEFAULT_TENANT
    refreshes.set_paused(_configs(), tenant, interviewer, paused, cli_actor())
    console.print(f"refresh of [bold]{interviewer}[/] {'paused' if paused else 'resumed'}", highlight=False)


@refresh_app.command("pause")
def refresh_pause(interviewer: str = typer.Argument(...), tenant: Optional[str] = TenantOpt) -> None:
    """Hold the interviewer's automatic refresh (refresh.paused on its configuration); a running canary goes on."""
    _hold(interviewer, tenant, True)


@refresh_app.command("resume")
def refresh_resume(interviewer: str = typer.Argument(...), tenant: Optional[str] = TenantOpt) -> None:
    """Release a pause."""
    _hold(interviewer, tenant, False)
