"""`twin canary`: canary deployments of interviewer profile versions (registered on ``infra.cli.app``).

    twin train dana --dataset ds_x --no-activate       # a candidate version, not serving yet
    twin canary start dana --share 0.1                 # the newest version answers 10% of sessions
    twin canary status dana                            # arms, scores, safety rates, the last decision
    twin canary evaluate                               # score and decide now (the controller does it periodically)
    twin canary promote dana | twin canary rollback dana

The same code as the admin API and the canary controller (processors/twin/canary.py); every change
is written with its audit record (actor ``cli:<os user>``).
"""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from infra.audit import cli_actor
from infra.cli import app, connect_db
from infra.settings import settings
from processors.twin import canary as canaries

__all__ = ["canary_app"]

console = Console()
err = Console(stderr=True)

canary_app = typer.Typer(help="Canary deployments: try a profile version on a share of sessions, then promote or "
                              "roll back.", no_args_is_help=True)
app.add_typer(canary_app, name="canary")

TenantOpt = typer.Option(None, "--tenant", "-t", help="Tenant (default: DEFAULT_TENANT).")
JsonOpt = typer.Option(False, "--json", help="Print JSON.")


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def _run(work):
    """``work(conn)`` in one transaction; a CanaryError exits 1 with its message."""
    with connect_db() as conn:
        try:
            out = work(conn)
        except canaries.CanaryError as exc:
            conn.rollback()
            _fail(str(exc))
        conn.commit()
        return out


def _arm(a: dict | None) -> str:
    if not a:
        return "-"
    mean = "-" if a.get("meanScore") is None else f"{a['meanScore']:.3f}"
    rate = "-" if a.get("safetyRate") is None else f"{a['safetyRate']:.3f}"
    return f"v{a['version']}: {a['scored']}/{a['samples']} scored, mean {mean}, safety rate {rate}"


def _show(c: canaries.Canary, candidate: canaries.ArmStats | None = None,
          baseline: canaries.ArmStats | None = None) -> None:
    colour = {"running": "cyan", "promoted": "green", "rolled_back": "red", "aborted": "yellow"}[c.status]
    console.print(f"[bold]{c.interviewer_id}[/] canary {c.canary_id}: [{colour}]{c.status}[/] - candidate "
                  f"v{c.candidate_version} on {c.share:.0%} of sessions, baseline v{c.baseline_version}")
    th = c.thresholds
    console.print(f"  decide after {th.min_samples} samples per arm (promote after {th.promote_at}); roll back when "
                  f"the mean score is lower by > {th.score_margin:g} or the safety rate higher by > "
                  f"{th.safety_margin:g} (p < {th.safety_alpha:g}); auto-promote {'on' if th.auto_promote else 'off'}", highlight=False)
    if candidate is not None and baseline is not None:
        console.print(f"  candidate {_arm(candidate.to_json())}", highlight=False)
        console.print(f"  baseline  {_arm(baseline.to_json())}", highlight=False)
    if c.reason:
        console.print(f"  {'decision' if c.status != 'running' else 'last evaluation'}: {c.reason}", highlight=False)
    elif c.result and c.result.get("reason"):
        console.print(f"  last evaluation: {c.result['reason']}", highlight=False)


@canary_app.command("status")
def canary_status(interviewer: Optional[str] = typer.Argument(None, help="Interviewer id (default: every canary "
                                                                          "of the tenant)."),
                  tenant: Optional[str] = TenantOpt, as_json: bool = JsonOpt) -> None:
    """The interviewer's running (else latest) canary with its arms so far, or the tenant's canaries."""
    tenant = tenant or settings.DEFAULT_TENANT
    if interviewer is None:
        rows = _run(lambda conn: canaries.history(conn, tenant))
        if as_json:
            print(json.dumps([c.public() for c in rows], default=str))
            return
        table = Table(title=f"canaries of {tenant}")
        for col in ("interviewer", "canary", "candidate", "baseline", "share", "status", "started", "reason"):
            table.add_column(col, overflow="fold")
        for c in rows:
            table.add_row(c.interviewer_id, c.canary_id[:12], f"v{c.candidate_version}", f"v{c.baseline_version}",
                          f"{c.share:.0%}", c.status, f"{c.started_at:%Y-%m-%d %H:%M}", c.reason or "")
        console.print(table)
        return

    def work(conn):
        latest = canaries.current(conn, tenant, interviewer)
        return (latest, *canaries.arm_stats(conn, latest)) if latest else None

    found = _run(work)
    if found is None:
        _fail(f"{interviewer!r} never had a canary in tenant {tenant!r}")
    latest, cand, base = found
    if as_json:
        print(json.dumps({**latest.public(), "candidate": cand.to_json(), "baseline": base.to_json()}, default=str))
        return
    _show(latest, cand, base)


@canary_app.command("start")
def canary_start(
    interviewer: str = typer.Argument(...),
    share: float = typer.Option(..., min=0.0, max=1.0, help="Share of sessions the candidate answers, in (0, 1]."),
    version: Optional[int] = typer.Option(None, "--version", "-v", help="Candidate version (default: the newest, "
                                                                          "when it is not active)."),
    min_samples: Optional[int] = typer.Option(None, min=1, help="Samples per arm before deciding (CANARY_MIN_SAMPLES)."),
    score_margin: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="CANARY_SCORE_MARGIN."),
    safety_margin: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="CANARY_SAFETY_MARGIN."),
    safety_alpha: Optional[float] = typer.Option(None, min=0.0, max=1.0, help="Significance a safety rise must reach "
                                                                             "to roll back (CANARY_SAFETY_ALPHA)."),
    promote_samples: Optional[int] = typer.Option(None, min=1, help="Samples per arm before promoting."),
    auto_promote: bool = typer.Option(True, help="Promote automatically when the candidate is as good."),
    tenant: Optional[str] = TenantOpt, as_json: bool = JsonOpt,
) -> None:
    """Start a canary of a non-active version against the active one."""
    tenant = tenant or settings.DEFAULT_TENANT
    try:
        th = canaries.Thresholds.from_settings(settings, min_samples=min_samples, score_margin=score_margin,
                                               safety_margin=safety_margin, promote_samples=promote_samples,
                                               auto_promote=auto_promote, safety_alpha=safety_alpha)
    except canaries.CanaryError as exc:
        _fail(str(exc), 2)
    started = _run(lambda conn: canaries.start(conn, tenant, interviewer, share=share, thresholds=th,
                                               actor=cli_actor(), candidate_version=version))
    if as_json:
        print(json.dumps(started.public(), default=str))
        return
    _show(started)


def _decide(kind: str, interviewer: str, tenant: Optional[str], reason: Optional[str], as_json: bool) -> None:
    tenant = tenant or settings.DEFAULT_TENANT
    op = canaries.promote if kind == "promote" else canaries.rollback
    closed = _run(lambda conn: op(conn, tenant, interviewer, actor=cli_actor(), reason=reason))
    if as_json:
        print(json.dumps(closed.public(), default=str))
        return
    _show(closed)


@canary_app.command("promote")
def canary_promote(interviewer: str = typer.Argument(...), reason: Optional[str] = typer.Option(None),
                   tenant: Optional[str] = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Make the running canary's candidate the active version now."""
    _decide("promote", interviewer, tenant, reason, as_json)


@canary_app.command("rollback")
def canary_rollback(interviewer: str = typer.Argument(...), reason: Optional[str] = typer.Option(None),
                    tenant: Optional[str] = TenantOpt, as_json: bool = JsonOpt) -> None:
    """Stop the running canary now: every session goes back to the active version."""
    _decide("rollback", interviewer, tenant, reason, as_json)


@canary_app.command("evaluate")
def canary_evaluate(interviewer: Optional[str] = typer.Argument(None, help="Only this interviewer's canary."),
                    tenant: Optional[str] = typer.Option(None, "--tenant", "-t", help="Only this tenant (default: all)."),
                    apply: bool = typer.Option(True, "--apply/--dry-run",
                                               help="Act on the decision, or only show it (nothing is stored)."),
                    as_json: bool = JsonOpt) -> None:
    """Score new samples and decide every running canary now, as the canary controller does."""
    from infra.db import connect
    from processors.twin.online_scores import LiveScorer

    if interviewer and not tenant:
        tenant = settings.DEFAULT_TENANT
    connect_db().close()  # a clear message when PostgreSQL is down
    evaluations = canaries.evaluate_running(lambda: connect(settings), LiveScorer(), actor=cli_actor(), apply=apply,
                                            tenant=tenant, interviewer_id=interviewer, wait_for_lock=True)
    if as_json:
        print(json.dumps([e.public() for e in evaluations], default=str))
        return
    if not evaluations:
        console.print("no running canary" + (f" for {interviewer!r}" if interviewer else ""))
    for ev in evaluations:
        _show(ev.canary, ev.candidate, ev.baseline)
        verb = "applied" if ev.applied else ("would " + ev.decision.action if not apply else ev.decision.action)
        console.print(f"  → {verb}: {ev.decision.reason}", highlight=False)
