"""`twin eval`: how close is the twin to the real interviewer (registered on ``infra.cli.app``).

    twin eval --corpus ../shared/corpora/scotus_oyez/dev.jsonl              # table on the terminal
    twin eval --corpus ../shared/corpora/scotus_oyez/dev.jsonl --json       # exactly one JSON object
    twin eval --corpus FILE --report var/eval-report --limit 20 --seed 3    # HTML report with plots
    OPENAI_BASE_URL=http://127.0.0.1:8011/v1 twin eval --corpus FILE --llm --limit 10

See ``processors/twin/evaluation/run.py`` for what a run does and the default sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.cli import app
from infra.settings import settings

__all__ = ["eval_command"]

_err = Console(stderr=True)


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _table(summary: dict) -> Table:
    table = Table(title=f"twin eval: {summary['interviewers']} interviewer(s), {summary['test_sessions']} test"
                        f" sessions,"
                        f" {summary['test_turns']} turns ({summary['generator']})")
    table.add_column("system")
    for col in ("match rate", "semantic", "style", "indisting.", "safety viol."):
        table.add_column(col, justify="right")
    rows = [("twin", summary["twin"]), *((f"baseline: {k}", v) for k, v in summary["baselines"].items())]
    for name, s in rows:
        table.add_row(name, _fmt(s["match_rate"]), _fmt(s["semantic"]), _fmt(s["style"]),
                      _fmt(s["indistinguishability"]), _fmt(s["safety_violations"]))
    return table


@app.command("eval")
def eval_command(
    corpus: Path = typer.Option(..., "--corpus", exists=True, dir_okay=False, readable=True,
                                help="Transcripts (JSON Lines as in ../shared/corpora/FORMAT.md, or plain text)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout (progress on stderr)."),
    report: Optional[Path] = typer.Option(None, "--report", file_okay=False,
                                          help="Write an HTML report with plots into this folder."),
    limit: Optional[int] = typer.Option(None, "--limit", min=0,
                                        help="Test turns per interviewer (default 40; 0 = every test turn)."),
    sessions: Optional[int] = typer.Option(None, "--sessions", min=0,
                                           help="Most recent sessions per interviewer (default: those holding ~500 "
                                                "interviewer turns, at least 10; 0 = all)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every sample (turns, distractors, baselines, folds)."),
    distractors: int = typer.Option(20, "--distractors", min=1, help="Distractor lines per test turn."),
    llm: Optional[bool] = typer.Option(None, "--llm/--offline",
                                       help="Force the LLM or the offline generator (default: LLM when "
                                            "OPENAI_BASE_URL/OPENAI_API_KEY is set)."),
    tenant: Optional[str] = typer.Option(None, "--tenant", help="Namespace to import into (default eval-<hash>)."),
    interviewer: list[str] = typer.Option([], "--interviewer", help="Only this interviewer (repeatable)."),
    other_corpus: Optional[Path] = typer.Option(None, "--other-corpus", exists=True, dir_okay=False,
                                                help="Other interviewers for the persona-less baseline when the "
                                                     "corpus has one interviewer (default: the bundled sample)."),
    red_team: bool = typer.Option(True, "--red-team/--no-red-team", help="Run the red-team suite."),
    store: bool = typer.Option(True, "--store/--no-store", help="Write eval_runs/eval_samples rows."),
) -> None:
    """Import, split, train, ask the twin every test turn and compare with the real interviewer."""
    from infra.clients import ServiceUnavailable, check_services
    from processors.twin.evaluation.run import EvalConfig, run_evaluation

    if llm and not settings.llm_configured:
        _err.print("[bold red]error:[/] --llm needs OPENAI_BASE_URL (or OPENAI_API_KEY)")
        raise typer.Exit(2)
    try:
        asyncio.run(check_services(settings, ("postgres", "weaviate"), timeout=15))
    except ServiceUnavailable as exc:
        _err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1)
    if store:
        from infra.db import upgrade

        upgrade(settings)

    config = EvalConfig(corpus=corpus, limit=limit, sessions=sessions, seed=seed, distractors=distractors,
                        use_llm=llm, tenant=tenant, other_corpus=other_corpus,
                        weaviate_prefix=getattr(settings, "WEAVIATE_PREFIX", ""), red_team=red_team, store=store,
                        interviewers=tuple(interviewer))
    started = time.perf_counter()
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_err, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            key = stage.split(" ")[0]
            if key not in tasks:
                tasks[key] = bar.add_task(stage, total=max(total, 1))
            bar.update(tasks[key], completed=done, total=max(total, 1), description=stage)

        # Libraries may print; stdout belongs to the one JSON object.
        with contextlib.redirect_stdout(sys.stderr):
            result = run_evaluation(config, settings, progress=progress)
    summary = result.summary
    summary["timings_s"]["wall"] = round(time.perf_counter() - started, 2)
    if report is not None:
        from processors.twin.evaluation.report import write_report

        with contextlib.redirect_stdout(sys.stderr):
            path = write_report(result, report, dsn=settings.POSTGRES_DSN if store else None)
        summary["report"] = str(path)
    if as_json:
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
        sys.stdout.flush()
        return
    console = Console()
    console.print(_table(summary))
    lat = summary["latency_ms"]
    console.print(f"latency p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms; red team: "
                  f"{(summary.get('red_team') or {}).get('violations', '–')} violation(s); tenant {summary['tenant']},"
                  f" run {summary['run_id']}; {summary['timings_s']['wall']:.0f} s")
    if report is not None:
        console.print(f"report: {summary['report']}")
