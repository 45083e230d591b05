"""`twin eval`: how close is the twin to the real interviewer (registered on ``infra.cli.app``).

    twin eval --corpus ../shared/corpora/scotus_oyez/dev.jsonl              # through the gateway, a table
    twin eval --corpus ../shared/corpora/scotus_oyez/dev.jsonl --json       # exactly one JSON object
    twin eval --corpus FILE --report var/eval-report --limit 20 --seed 3    # HTML report with plots
    twin eval --corpus FILE --via engine                                    # in-process, for development
    twin eval --corpus FILE --timeout-ms 30000     # a gateway whose worker has a slow LLM (OPENAI_BASE_URL)
    OPENAI_BASE_URL=http://127.0.0.1:8011/v1 twin eval --corpus FILE --via engine --llm --limit 10
    twin eval --corpus FILE --via engine --on val --ablate all              # what each part is worth, on val
    twin eval --corpus FILE --via engine --on val --val-windows 4 --no-store --no-red-team  # choose methods here

See ``processors/twin/evaluation/run.py`` for what a run does and the default sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.cli import app
from infra.settings import settings

__all__ = ["eval_command", "sigterm_unwinds"]

_err = Console(stderr=True)


@contextlib.contextmanager
def sigterm_unwinds():
    """Within the block, SIGTERM (``kill``, a CI timeout) unwinds the stack as Ctrl-C does, so the
    gateway and worker a run started are stopped by its ``finally``: by default SIGTERM ends the
    process on the spot and leaves them running, and the next run would then ask them. Exit status
    143 (128 + SIGTERM). Only the main thread can set a handler; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def unwind(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, unwind)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Via(str, Enum):
    """Which path asks the twin: the product (gateway) or the in-process engine."""

    gateway = "gateway"
    engine = "engine"


class Split(str, Enum):
    test = "test"
    val = "val"


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _with_se(value, se) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" + (f" ±{se:.3f}" if se is not None else "")


COLUMNS = (("match cross", "match_rate_cross"), ("match same", "match_rate_same"), ("rank-same", "rank_same"),
           ("semantic", "semantic"), ("style", "style"), ("indisting.", "indistinguishability"))


def _table(summary: dict) -> Table:
    table = Table(title=f"twin eval via {summary['via']}: {summary['interviewers']} interviewer(s), "
                        f"{summary['test_sessions_sampled']} test sessions, {summary['test_turns']} turns "
                        f"({summary['generator']}, {summary.get('on', 'test')} split); · baselines; − the twin without "
                        f"that part; ± one standard error (bootstrap over sessions)")
    table.add_column("system", no_wrap=True)
    for col, _ in COLUMNS:
        table.add_column(col, justify="right")
    table.add_column("AUC", justify="right")
    table.add_column("safety viol.", justify="right")
    rows = [("twin", summary["twin"]), *((f"· {k}", v) for k, v in summary["baselines"].items()),
            *((f"− {k}", v) for k, v in (summary.get("ablations") or {}).items())]
    for name, s in rows:
        table.add_row(name, *(_with_se(s.get(key), s["se"].get(key)) for _, key in COLUMNS), _fmt(s.get("auc")),
                      _fmt(s["safety_violations"]))
    return table


def _pooled_table(pooled: dict) -> Table:
    windows = ", ".join(f"w{w['window']} {w['sessions']} sessions/{w['turns']} turns" for w in pooled["per_window"])
    table = Table(title=f"twin eval on {pooled['windows']} validation windows ({windows}); · baselines; − the twin "
                        f"without that part; ± one standard error; indistinguishability: mean of the windows'")
    table.add_column("system", no_wrap=True)
    for col, _ in COLUMNS:
        table.add_column(col, justify="right")
    table.add_column("indisting. by window", justify="right")
    rows = [("twin", pooled["twin"]), *((f"· {k}", v) for k, v in pooled["baselines"].items()),
            *((f"− {k}", v) for k, v in pooled["ablations"].items())]
    for name, s in rows:
        table.add_row(name, *(_with_se(s.get(key), s["se"].get(key)) for _, key in COLUMNS),
                      " ".join(_fmt(v) for v in s["indistinguishability_by_window"]))
    return table


@app.command("eval")
def eval_command(
    corpus: Path = typer.Option(..., "--corpus", exists=True, dir_okay=False, readable=True,
                                help="Transcripts (JSON Lines as in ../shared/corpora/FORMAT.md, or plain text)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout (progress on stderr)."),
    report: Optional[Path] = typer.Option(None, "--report", file_okay=False,
                                          help="Write an HTML report with plots into this folder."),
    turns_out: Optional[Path] = typer.Option(None, "--turns", dir_okay=False, writable=True,
                                             help="Also write every scored turn as JSON Lines: the moment, the real "
                                                  "line, each system's reply and per-turn scores (paired: where the "
                                                  "twin gains and loses). It holds the corpus's text: keep it out of "
                                                  "the repository."),
    limit: Optional[int] = typer.Option(None, "--limit", min=0,
                                        help="Test turns per interviewer (default 100, at most 30 per session; 0 = every "
                                             "test turn)."),
    turns_per_session: int = typer.Option(30, "--turns-per-session", min=2,
                                          help="At most this many test turns of one session (more sessions, "
                                               "honest standard errors)."),
    sessions: Optional[int] = typer.Option(None, "--sessions", min=0,
                                           help="Most recent sessions per interviewer (default: those holding ~500 "
                                                "interviewer turns, at least 25; 0 = all)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every sample (turns, distractors, baselines, folds)."),
    distractors: int = typer.Option(20, "--distractors", min=1, help="Distractor lines per test turn."),
    via: Via = typer.Option(Via.gateway, "--via",
                            help="gateway: ask every turn through POST /api/digital-twin/respond on the running "
                                 "stack (Kafka, configuration and the safety agent in the path; a gateway and worker "
                                 "are started when none answers). engine: the in-process engine (fast, for "
                                 "development; no safety agent)."),
    gateway_url: Optional[str] = typer.Option(None, "--gateway-url",
                                              help="Gateway to ask with --via gateway (default GATEWAY_HOST:PORT)."),
    timeout_ms: Optional[int] = typer.Option(None, "--timeout-ms", min=100, max=30_000,
                                             help="--via gateway: each request's deadline in ms (the API's "
                                                  "timeoutMs; default the gateway's RESPOND_TIMEOUT_MS, 5000). An "
                                                  "LLM on a small machine needs more: a late reply is a 504, "
                                                  "scored as an error."),
    llm: Optional[bool] = typer.Option(None, "--llm/--offline",
                                       help="Force the LLM or the offline generator (default: LLM when "
                                            "OPENAI_BASE_URL/OPENAI_API_KEY is set); --via engine only, the "
                                            "gateway's worker follows its own settings."),
    tenant: Optional[str] = typer.Option(None, "--tenant", help="Namespace to import into (default eval-<hash>)."),
    interviewer: list[str] = typer.Option([], "--interviewer", help="Only this interviewer (repeatable)."),
    other_corpus: Optional[Path] = typer.Option(None, "--other-corpus", exists=True, dir_okay=False,
                                                help="Other real interviewers for the persona-less baseline when "
                                                     "the corpus has one interviewer (default: the SCOTUS slice in "
                                                     "infra/samples)."),
    red_team: bool = typer.Option(True, "--red-team/--no-red-team", help="Run the red-team suite."),
    store: bool = typer.Option(True, "--store/--no-store", help="Write eval_runs/eval_samples rows."),
    on: Split = typer.Option(Split.test, "--on",
                             help="The split asked and scored: test (the figures to report, once) or val (to choose "
                                  "between methods without reading the test sessions; the twin then makes its "
                                  "own choices on the train sessions just before the scored ones)."),
    val_windows: int = typer.Option(1, "--val-windows", min=1,
                                    help="With --on val: pool this many chronological validation windows, each "
                                         "trained as the reported run is (window 1 validates on the sessions "
                                         "before window 0's validation part, window 2 on those before window 1's, "
                                         "...; no window holds a test session): one validation part is a few "
                                         "sessions, too few to choose a method on."),
    classifier: bool = typer.Option(True, "--classifier/--no-classifier",
                                    help="Train the auxiliary style classifier with each version (the "
                                         "classifier-agreement figures need it; replies never use it, and it is "
                                         "about 40% of a training)."),
    ablate: list[str] = typer.Option([], "--ablate",
                                     help="Also score the twin with this part switched off (repeatable; 'all' for "
                                          "each of grounding, selection, editing, move_model, tools, llm), answered "
                                          "by the in-process engine on the same turns (llm: the offline generator)."),
) -> None:
    """Import, split, train, ask the twin every test turn and compare with the real interviewer."""
    from infra.clients import ServiceUnavailable, check_services
    from processors.twin.evaluation.run import EvalConfig, run_evaluation, run_val_windows

    via = Via(via).value
    from processors.twin.engine import ABLATIONS

    ablations = list(ABLATIONS) if "all" in ablate else list(dict.fromkeys(ablate))
    unknown = sorted(set(ablations) - set(ABLATIONS))
    if unknown:
        _err.print(f"[bold red]error:[/] unknown --ablate {', '.join(unknown)}; known: {', '.join(ABLATIONS)}, all")
        raise typer.Exit(2)
    if llm is not None and via == "gateway":
        _err.print("[bold red]error:[/] --llm/--offline choose the generator of --via engine; the gateway's worker "
                   "uses its own settings (OPENAI_BASE_URL)")
        raise typer.Exit(2)
    if timeout_ms is not None and via != "gateway":
        _err.print("[bold red]error:[/] --timeout-ms is the gateway's request deadline: it needs --via gateway")
        raise typer.Exit(2)
    if val_windows > 1 and (Split(on).value != "val" or report is not None or turns_out is not None):
        _err.print("[bold red]error:[/] --val-windows pools validation runs: it needs --on val and no --report "
                   "or --turns")
        raise typer.Exit(2)
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
                        weaviate_prefix=settings.WEAVIATE_COLLECTION_PREFIX, red_team=red_team, store=store,
                        via=via, gateway_url=gateway_url, timeout_ms=timeout_ms, turns_per_session=turns_per_session,
                        interviewers=tuple(interviewer), on=Split(on).value, ablations=tuple(ablations),
                        classifier=classifier)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_err, transient=False) as bar:
        tasks: dict[str, int] = {}

        logged: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            key = stage.split(" ")[0]
            if key not in tasks:
                tasks[key] = bar.add_task(stage, total=max(total, 1))
            bar.update(tasks[key], completed=done, total=max(total, 1), description=stage)
            if not _err.is_terminal:  # a log file sees no bar: one line per stage and per tenth of it
                tenth = 10 * done // max(total, 1)
                if logged.get(stage) != tenth:
                    logged[stage] = tenth
                    _err.print(f"{time.perf_counter() - started:7.1f}s  {stage}: {done}/{total}")

        # Libraries may print; stdout belongs to the one JSON object.
        with contextlib.redirect_stdout(sys.stderr), sigterm_unwinds():
            try:
                if val_windows > 1:
                    _, pooled = run_val_windows(config, val_windows, settings, progress=progress)
                else:
                    result = run_evaluation(config, settings, progress=progress)
            except (RuntimeError, ValueError) as exc:
                _err.print(f"[bold red]error:[/] {exc}")
                raise typer.Exit(1)
    if val_windows > 1:
        pooled["wall_s"] = round(time.perf_counter() - started, 2)
        if as_json:
            sys.stdout.write(json.dumps(pooled, default=str) + "\n")
            sys.stdout.flush()
            return
        Console().print(_pooled_table(pooled))
        return
    summary = result.summary
    summary["timings_s"]["wall"] = round(time.perf_counter() - started, 2)
    if report is not None:
        from processors.twin.evaluation.report import write_report

        with contextlib.redirect_stdout(sys.stderr):
            path = write_report(result, report, dsn=settings.POSTGRES_DSN if store else None)
        summary["report"] = str(path)
    if turns_out is not None:
        from processors.twin.evaluation.run import write_turns

        summary["turns_file"] = {"path": str(turns_out), "turns": write_turns(result, turns_out)}
    if as_json:
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
        sys.stdout.flush()
        return
    console = Console()
    console.print(_table(summary))
    lat = summary["latency_ms"]
    chance = summary["chance"]
    console.print(f"chance (random line of the same interviewer): cross {_fmt(chance['match_rate_cross'])}, same "
                  f"{_fmt(chance['match_rate_same'])}, rank-same {_fmt(chance['rank_same'])}")
    red = summary.get("red_team") or {}
    redirects = f", {red['redirected']} of {red['cases']} redirected ({red['redirected_asking']} asking)" if red else ""
    console.print(f"latency ({lat['path']}) p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms; red team: "
                  f"{red.get('violations', '–')} violation(s){redirects}; tenant {summary['tenant']},"
                  f" run {summary['run_id']}; {summary['timings_s']['wall']:.0f} s")
    for iid, block in (summary.get("per_interviewer") or {}).items():
        for v in (block.get("red_team") or {}).get("violating", []):
            console.print(f"[red]red-team violation[/] {iid} {v['caseId']} ({v['category']}): "
                          f"{v['reply'] or v['error']!r}; {', '.join(f['rule'] for f in v['flags'])}")
    drafts = summary.get("llm_drafts") or {}
    if any(drafts.values()):
        console.print(f"LLM drafts: {drafts['kept']} delivered, {drafts['below_offline']} below the offline twin's "
                      f"line and {drafts['refused']} refused by the safety checks (both answered offline)")
    if report is not None:
        console.print(f"report: {summary['report']}")
    if turns_out is not None:
        console.print(f"turns: {summary['turns_file']['turns']} in {turns_out}")
