"""`twin import`, `twin import-audio`, `twin train`, `twin profile ...`, `twin datasets list`: learning an interviewer.

    twin import ../shared/corpora/scotus_oyez/dev.jsonl --tenant acme --dataset scotus \
        --consent-attested --consent-note "public record (Oyez)"   # who attests that it may train a twin
    twin import notes.txt --tenant acme --interviewer dana --consent-attested   # Interviewer:/Candidate: text
    twin import --live --tenant acme                                 # live sessions -> live:acme
    twin train elena_kagan --tenant acme --dataset ds_scotus         # in this process
    twin train elena_kagan --tenant acme --dataset ds_scotus --via-kafka   # through the trainer agent
    twin profile show elena_kagan --tenant acme                      # the style profile as tables

Registered on the main `twin` app by the last line of infra/cli.py.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rich.markup import escape

from infra.cli import _fail as _fail_markup
from infra.cli import app, connect_db, console, err
from infra.settings import settings

__all__ = ["profile_app", "datasets_app"]

profile_app = typer.Typer(help="Inspect and switch trained interviewer profiles (versions).", no_args_is_help=True)
datasets_app = typer.Typer(help="Imported training datasets.", no_args_is_help=True)
app.add_typer(profile_app, name="profile")
app.add_typer(datasets_app, name="datasets")

TenantOpt = typer.Option(None, "--tenant", "-t", help="Tenant (default: DEFAULT_TENANT).")
MAX_PRINTED_ERRORS = 50


def _fail(message: str) -> None:
    """Exit 1 with the message; it is printed literally (data and paths may contain [brackets])."""
    _fail_markup(escape(message))


def _tenant(value: str | None) -> str:
    return value or settings.DEFAULT_TENANT


def _progress(quiet: bool = False) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[note]}"), console=console, transient=False, disable=quiet)


# --------------------------------------------------------------------------- import


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


def _import_summary(report) -> None:
    table = Table(title=f"imported into {report.dataset_ref} (tenant {report.tenant})")
    for col, justify in (("interviewer", "left"), ("sessions", "right"), ("new", "right"), ("turns", "right"),
                         ("interviewer turns", "right")):
        table.add_column(col, justify=justify)
    for iid, s in sorted(report.per_interviewer.items()):
        table.add_row(iid, str(s["sessions"]), str(s["new"]), str(s["turns"]), str(s["interviewerTurns"]))
    table.add_section()
    table.add_row("[bold]total[/]", str(report.stored), str(report.imported),
                  str(sum(s["turns"] for s in report.per_interviewer.values())),
                  str(sum(s["interviewerTurns"] for s in report.per_interviewer.values())))
    console.print(table)
    outcome = Table(show_header=True, title="outcome")
    for col in ("read", "new", "updated", "unchanged", "skipped", "removed", "failed", "redacted entities"):
        outcome.add_column(col, justify="right")
    redacted = ", ".join(f"{k} {v}" for k, v in sorted(report.redactions.items())) or "0"
    outcome.add_row(str(report.sessions_read), str(report.imported), str(report.updated), str(report.unchanged),
                    str(report.skipped), str(report.removed), f"[red]{report.failed}[/]" if report.failed else "0", redacted)
    console.print(outcome)


@app.command("import")
def import_(file: Optional[Path] = typer.Argument(None, help="JSON Lines transcripts or Interviewer:/Candidate: text."),
            tenant: Optional[str] = TenantOpt,
            dataset: Optional[str] = typer.Option(None, "--dataset", "-d",
                                                  help="Dataset name; stored as ds_<name> (default: the file stem)."),
            interviewer: Optional[str] = typer.Option(None, "--interviewer",
                                                      help="Interviewer id for plain text without a header."),
            live: bool = typer.Option(False, "--live", help="Copy the tenant's live sessions into live:<tenant>."),
            consent_attested: bool = typer.Option(
                False, "--consent-attested", help="Attest that every session of the file may be used for training "
                "(the participants consented, or it is public record). Required to import a file."),
            consent_note: Optional[str] = typer.Option(None, "--consent-note",
                                                       help="The basis of the attestation, stored with it."),
            as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables.")) -> None:
    """Import transcripts into a dataset, redacting PII first (one transaction per session).

    Malformed lines are reported with their line number and skipped; the rest still imports.
    Exit code: 0 all lines stored, 2 some lines failed, 1 nothing stored or a service/file problem.
    """
    from infra.audit import cli_actor, record
    from processors.twin import datasets as ds

    tenant = _tenant(tenant)
    if live == (file is not None):
        _fail("give a FILE to import, or --live (not both)")
    printed = 0

    def show_error(item) -> None:
        nonlocal printed
        if item.error and printed < MAX_PRINTED_ERRORS and not as_json:
            progress.console.print(f"[red]✗[/] {escape(item.error)}")
            printed += 1

    with connect_db(autocommit=True) as conn:
        try:
            if live:
                with _progress(as_json) as progress:
                    task = progress.add_task("live sessions", total=None, note="")

                    def on_live(item) -> None:
                        progress.advance(task)
                        show_error(item)

                    report = ds.sync_live_sessions(conn, tenant, progress=on_live)
            else:
                if not file.is_file():
                    _fail(f"no such file: {file}")
                if not consent_attested:
                    # A file carries no per-session consent: the importer attests it, or nothing trains on it.
                    _fail("importing a file needs --consent-attested: confirm that every session in it may be used "
                          "to train a twin (participants consented, or public record; say which with --consent-note)."
                          " Live sessions carry their own consent (twin import --live).")
                redact = ds.default_redactor(tenant)
                total = _count_lines(file)
                with _progress(as_json) as progress:
                    task = progress.add_task(f"importing {file.name}", total=total, note="")

                    def on_item(item) -> None:
                        progress.update(task, completed=min(total, item.line),
                                        note=f"{item.transcript.session_id}" if item.transcript else "")
                        show_error(item)

                    actor = cli_actor()
                    report = ds.import_file(conn, file, tenant, dataset or file.stem, interviewer_id=interviewer,
                                            redact=redact, progress=on_item, consent_attested_by=actor,
                                            consent_note=consent_note)
                    progress.update(task, completed=total, note="")
                record(conn, tenant, actor, "dataset.consent_attested", "dataset", report.dataset_ref,
                       detail={"file": file.name, "note": consent_note, "sessions": report.stored})
        except ds.RedactionUnavailable as exc:
            _fail(str(exc))
        except ds.DatasetError as exc:
            _fail(str(exc))
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
    else:
        if report.failed > printed:
            err.print(f"[red]… and {report.failed - printed} more failed line(s)[/]")
        _import_summary(report)
    if report.stored == 0 and report.sessions_read:
        raise typer.Exit(1)
    if report.failed:
        raise typer.Exit(2)


@app.command("import-audio")
def import_audio(audio: list[Path] = typer.Argument(..., help="Interview recordings (wav, mp3, m4a, mp4...)."),
                 interviewer: str = typer.Option(..., "--interviewer", help="Interviewer id for the sessions."),
                 out: Path = typer.Option(..., "--out", "-o", help="JSON Lines file to append the sessions to."),
                 interviewer_speaker: Optional[str] = typer.Option(
                     None, help="Diarisation label of the interviewer (default: the speaker asking most questions)."),
                 whisper_model: str = typer.Option("small", help="faster-whisper model size or local path."),
                 diarization_model: Optional[str] = typer.Option(
                     None, help="pyannote pipeline (local path or hub id; default pyannote/speaker-diarization-3.1)."),
                 language: Optional[str] = typer.Option(None, help="Spoken language (default: detected).")) -> None:
    """Transcribe and diarise recordings into the transcript format (needs the `audio` extra)."""
    from processors.twin.audio import AudioUnavailable, transcribe_to_jsonl

    try:
        with _progress() as progress:
            task = progress.add_task("transcribing", total=len(audio), note="")

            def tick(path: Path) -> None:
                progress.update(task, advance=1, note=path.name)

            sessions = transcribe_to_jsonl(audio, out, interviewer_id=interviewer,
                                           interviewer_speaker=interviewer_speaker, whisper_model=whisper_model,
                                           diarization_model=diarization_model, language=language, progress=tick)
    except AudioUnavailable as exc:
        _fail(str(exc))
    table = Table(title=f"appended to {out}")
    for col in ("session", "turns", "interviewer turns", "speakers"):
        table.add_column(col)
    for s in sessions:
        table.add_row(s["session_id"], str(len(s["turns"])),
                      str(sum(1 for t in s["turns"] if t["role"] == "interviewer")),
                      ", ".join(s.get("meta", {}).get("speakers", [])))
    console.print(table)
    console.print(f"next: twin import {out} --tenant <tenant> --consent-attested")


# --------------------------------------------------------------------------- train


def _check_trainable(conn, tenant: str, interviewer_id: str, dataset_ref: str) -> None:
    from processors.twin import datasets as ds

    if ds.is_live(dataset_ref):
        if dataset_ref != ds.live_ref(tenant):
            _fail(f"dataset {dataset_ref!r} does not exist for tenant {tenant!r}")
        try:
            ds.require_training_consent(conn, tenant, dataset_ref, interviewer_id)
        except ds.ConsentMissing as exc:
            _fail(str(exc))
        return
    if not ds.dataset_exists(conn, tenant, dataset_ref):
        known = ", ".join(d["datasetRef"] for d in ds.list_datasets(conn, tenant)) or "none"
        _fail(f"dataset {dataset_ref!r} does not exist for tenant {tenant!r} (known: {known}); import one with "
              f"`twin import FILE --tenant {tenant}`")
    found = ds.dataset_interviewers(conn, tenant, dataset_ref)
    if interviewer_id not in found:
        _fail(f"no sessions of interviewer {interviewer_id!r} in {dataset_ref} "
              f"(it has: {', '.join(found) or 'none'})")
    try:
        ds.require_training_consent(conn, tenant, dataset_ref, interviewer_id)
    except ds.ConsentMissing as exc:
        _fail(str(exc))


def _train_summary(row: dict[str, Any]) -> None:
    result = row.get("result") or {}
    table = Table(title=f"training job {row['job_id']}")
    table.add_column("")
    table.add_column("")
    clf = result.get("styleClassifier") or {}
    ft = result.get("fineTune") or {}
    rows = [
        ("status", f"[green]{row['status']}[/]" if row["status"] == "succeeded" else f"[red]{row['status']}[/]"),
        ("message", escape(row.get("message") or "")),
        ("version", str(result.get("version", row.get("version") or "-"))),
        ("split (train/val/test)", "/".join(str((result.get("split") or {}).get(k, "-")) for k in ("train", "val", "test"))
         + (" (stored split reused)" if result.get("splitReused") else "")),
        ("exemplars indexed", str(result.get("exemplars", "-"))),
        ("persona docs", str(result.get("docs", "-"))),
        ("style classifier", clf.get("path") or clf.get("error") or "-"),
        ("classifier val AUC", "-" if clf.get("valAuc") is None else str(clf["valAuc"])),
        ("fine-tune file", f"{ft.get('train')} ({ft.get('examples')} examples, "
                           f"{'valid' if ft.get('valid') else 'INVALID'})" if ft.get("train") else "-"),
        ("artefacts", result.get("artefactDir") or "-"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


@app.command("train")
def train(interviewer: str = typer.Argument(..., help="Interviewer id."),
          tenant: Optional[str] = TenantOpt,
          dataset: str = typer.Option(..., "--dataset", "-d", help="ds_<name> (from twin import) or live:<tenant>."),
          val: float = typer.Option(0.1, help="Validation share (first split only)."),
          test: float = typer.Option(0.2, help="Test share of the final sessions (first split only)."),
          resplit: bool = typer.Option(False, help="Forget the stored split and split again."),
          fine_tune: bool = typer.Option(False, "--fine-tune", help="Start an OpenAI fine-tune (needs OPENAI_API_KEY)."),
          base_model: Optional[str] = typer.Option(None, help="Fine-tune base model."),
          activate: bool = typer.Option(True, help="Make the new version answer."),
          classifier: bool = typer.Option(True, help="Train the auxiliary style classifier."),
          docs: Optional[Path] = typer.Option(None, help="JSON Lines persona docs: {kind, key, text} per line."),
          config: Optional[str] = typer.Option(None, help="JSON object merged into the interviewer configuration."),
          via_kafka: bool = typer.Option(False, "--via-kafka", help="Queue on training.jobs for a worker to run."),
          timeout: float = typer.Option(1800, help="With --via-kafka: seconds to wait for the job.")) -> None:
    """Train a new version of one interviewer's twin (same job as POST /api/digital-twin/train)."""
    from pydantic import ValidationError

    from processors.twin.datasets import dataset_ref_for
    from processors.twin.options import TrainingOptions
    from schemas.models import TrainingJob

    tenant = _tenant(tenant)
    dataset = dataset_ref_for(dataset)
    raw: dict[str, Any] = {"val": val, "test": test, "resplit": resplit, "fineTune": fine_tune, "activate": activate,
                           "classifier": classifier}
    if base_model:
        raw["baseModel"] = base_model
    try:
        if docs is not None:
            raw["docs"] = [json.loads(line) for line in docs.read_text().splitlines() if line.strip()]
        if config:
            raw["config"] = json.loads(config)
        options = TrainingOptions.model_validate(raw)
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        _fail(f"bad options: {exc}")
    job = TrainingJob(jobId=str(uuid.uuid4()), tenant=tenant, interviewerId=interviewer, datasetRef=dataset,
                      options=options.model_dump(mode="json"))
    with connect_db(autocommit=True) as conn:
        _check_trainable(conn, tenant, interviewer, dataset)
        if via_kafka:
            row = _train_via_kafka(conn, job, timeout)
        else:
            row = _train_here(conn, job)
    _train_summary(row)
    if row["status"] != "succeeded":
        raise typer.Exit(1)


def _job_row(conn, job_id: str) -> dict[str, Any]:
    cur = conn.execute("SELECT job_id, status, progress, message, version, result FROM training_jobs WHERE job_id=%s",
                       (job_id,))
    row = cur.fetchone()
    return dict(zip([d.name for d in cur.description], row)) if row else {"job_id": job_id, "status": "unknown"}


def _train_here(conn, job) -> dict[str, Any]:
    from processors.twin.jobs import JobRunner

    with _progress() as progress:
        task = progress.add_task(f"training {job.interviewerId}", total=100, note="loading models")
        runner = JobRunner(settings, publish=lambda s: progress.update(
            task, completed=round(100 * s.progress), note=s.message or ""))
        try:
            try:
                runner.warm_up()
            except Exception as exc:  # noqa: BLE001 - Weaviate down or the model missing: one clear line
                _fail(f"cannot start training: {type(exc).__name__}: {exc} (is Weaviate up? `infra/up`)")
            runner.run(job)
        finally:
            runner.close()
    return _job_row(conn, job.jobId)


def send_training_job(conn, job) -> None:
    """Publish a queued job's ``TrainingJob`` on ``training.jobs``; when Kafka does not take it, mark
    its row failed (no worker would ever run it) and exit with the reason."""
    from infra.clients import kafka_producer
    from schemas.codec import encode_model
    from schemas.topics import TRAINING_JOBS, key_for

    async def send() -> None:
        producer = kafka_producer(settings)
        await producer.start()
        try:
            await producer.send_and_wait(settings.topic(TRAINING_JOBS.name), encode_model(job),
                                         key=key_for(TRAINING_JOBS, job.model_dump()))
        finally:
            await producer.stop()

    try:
        asyncio.run(asyncio.wait_for(send(), 20))
    except Exception as exc:  # noqa: BLE001
        from processors.twin.jobs import NOT_QUEUED_SQL

        conn.execute(NOT_QUEUED_SQL, ("Kafka unreachable", job.jobId))
        conn.commit()
        _fail(f"cannot reach Kafka at {settings.KAFKA_BOOTSTRAP} ({type(exc).__name__}: {exc}); run `infra/up`")


def _train_via_kafka(conn, job, timeout: float) -> dict[str, Any]:
    conn.execute("INSERT INTO training_jobs (job_id, tenant, interviewer_id, dataset_ref, options, status, message)"
                 " VALUES (%s, %s, %s, %s, %s, 'queued', 'queued')",
                 (job.jobId, job.tenant, job.interviewerId, job.datasetRef, json.dumps(job.options)))
    send_training_job(conn, job)
    deadline = time.monotonic() + timeout
    with _progress() as progress:
        task = progress.add_task(f"job {job.jobId[:8]} ({job.interviewerId})", total=100, note="queued")
        while True:
            row = _job_row(conn, job.jobId)
            progress.update(task, completed=round(100 * float(row.get("progress") or 0)), note=row.get("message") or "")
            if row["status"] in ("succeeded", "failed"):
                return row
            if time.monotonic() > deadline:
                _fail(f"job {job.jobId} is still {row['status']} after {timeout:.0f}s; "
                      f"is a worker running the training_jobs agent? (`twin worker --agents training_jobs`)")
            time.sleep(0.5)


# --------------------------------------------------------------------------- profiles


def _phrases_table(title: str, phrases) -> Table:
    table = Table(title=title)
    table.add_column("phrase")
    table.add_column("share", justify="right")
    table.add_column("count", justify="right")
    for p in phrases:
        table.add_row(escape(p.text), f"{p.share:.1%}", str(p.count))
    return table


@profile_app.command("show")
def profile_show(interviewer: str = typer.Argument(..., help="Interviewer id."),
                 tenant: Optional[str] = TenantOpt,
                 version: Optional[int] = typer.Option(None, help="A version (default: the active one)."),
                 as_json: bool = typer.Option(False, "--json", help="Print the stored profile as JSON.")) -> None:
    """Print an interviewer's style profile, policy statistics and artefacts."""
    from processors.twin.profiles import ProfileStore
    from processors.twin.style import FEATURES

    tenant = _tenant(tenant)
    with connect_db(autocommit=True):
        pass  # fail early, with the usual message, when PostgreSQL is down
    store = ProfileStore(settings.POSTGRES_DSN, ttl_s=0)
    try:
        profile = store.load(tenant, interviewer, version)
        versions = store.versions(tenant, interviewer)
    finally:
        store.close()
    if profile is None:
        _fail(f"no {'version ' + str(version) if version else 'active profile'} for {interviewer!r} in tenant "
              f"{tenant!r}" + (f" (versions: {', '.join(str(v) for v, _, _ in versions)})" if versions else
                               "; train one with `twin train`"))
    if as_json:
        console.print_json(json.dumps({"version": profile.version, "style": profile.style.to_dict(),
                                       "policy": profile.policy.to_dict(), "artefacts": profile.artefacts}))
        return
    st, art = profile.style, profile.artefacts
    head = Table(title=f"{interviewer} (tenant {tenant}) v{profile.version}", show_header=False)
    head.add_column("")
    head.add_column("")
    split = art.get("split") or {}
    active = next((a for v, a, _ in versions if v == profile.version), False)
    head.add_row("active", "[green]yes[/]" if active else "no")
    head.add_row("versions", ", ".join(f"v{v}{'*' if a else ''}" for v, a, _ in versions))
    head.add_row("trained from", f"{(art.get('provenance') or {}).get('datasetRef', '-')} "
                                 f"(job {(art.get('provenance') or {}).get('jobId', '-')})")
    head.add_row("split train/val/test", "/".join(str(len(split.get(k, []))) for k in ("train", "val", "test")))
    head.add_row("interviewer turns", str(st.n_turns))
    head.add_row("words per turn", ", ".join(f"{k} {v:g}" for k, v in st.word_count.items()))
    head.add_row("rates", f"question {st.question_rate:.0%} · follow-up {st.follow_up_rate:.0%} · "
                          f"coaching {st.coaching_ratio:.0%} · challenge {st.challenge_level:.2f} · "
                          f"lead-in {st.lead_in_rate:.0%}")
    console.print(head)
    feats = Table(title="style features (per interviewer turn)")
    for col in ("feature", "mean", "std", ""):
        feats.add_column(col, justify="right" if col in ("mean", "std") else "left")
    for name in FEATURES:
        f = st.features.get(name)
        if f is not None:
            feats.add_row(name, f"{f.mean:.3f}", f"{f.std:.3f}", "█" * round(f.mean * 20))
    console.print(feats)
    for title, phrases in (("typical openings", st.openings), ("lead-ins", st.lead_ins), ("closings", st.closings),
                           ("question templates", st.question_templates)):
        if phrases:
            console.print(_phrases_table(title, phrases))
    pol = Table(title="policy: next-move rates")
    pol.add_column("move")
    pol.add_column("count", justify="right")
    pol.add_column("rate", justify="right")
    for move, rate in sorted(profile.policy.move_rates.items(), key=lambda kv: -kv[1]):
        pol.add_row(move, str(profile.policy.move_counts.get(move, 0)), f"{rate:.1%}")
    console.print(pol)
    arts = Table(title="artefacts", show_header=False)
    arts.add_column("")
    arts.add_column("")
    clf = art.get("styleClassifier") or {}
    ft = art.get("fineTune") or {}
    val_metrics = (clf.get("metrics") or {}).get("val") or {}
    arts.add_row("folder", art.get("dir", "-"))
    arts.add_row("style classifier", clf.get("path") or clf.get("error") or "-")
    if val_metrics.get("auc") is not None:
        arts.add_row("classifier (val)", f"AUC {val_metrics['auc']:.3f} · accuracy {val_metrics['accuracy']:.3f} · "
                                         f"n {val_metrics['n']}")
    arts.add_row("fine-tune file", f"{ft.get('train', '-')} ({ft.get('examples', 0)} examples, "
                                   f"{'valid' if ft.get('valid') else 'invalid'})" if ft else "-")
    openai = ft.get("openai") or {}
    if openai:
        arts.add_row("OpenAI fine-tune", openai.get("error") or f"{openai.get('jobId')} {openai.get('status')}")
    arts.add_row("fineTunedModel", str(profile.config.get("fineTunedModel") or "-"))
    stress = art.get("policyStress") or {}
    if stress.get("kinds"):
        arts.add_row("policy stress", ", ".join(
            f"{k} {v['expectationMet']:.0%}" for k, v in stress["kinds"].items() if v.get("expectationMet") is not None))
    arts.add_row("persona docs", ", ".join(f"{d['kind']}:{d['key']}" for d in art.get("docs", [])) or "-")
    console.print(arts)


@profile_app.command("list")
def profile_list(tenant: Optional[str] = TenantOpt) -> None:
    """List the tenant's trained interviewers and their active versions."""
    from processors.twin.profiles import ProfileStore

    tenant = _tenant(tenant)
    with connect_db(autocommit=True):
        pass
    store = ProfileStore(settings.POSTGRES_DSN, ttl_s=0)
    try:
        rows = store.interviewers(tenant)
    finally:
        store.close()
    table = Table(title=f"interviewers of {tenant}")
    for col in ("interviewer", "active version", "versions"):
        table.add_column(col)
    for iid, active, n in rows:
        table.add_row(iid, f"v{active}" if active else "-", str(n))
    console.print(table)


@profile_app.command("activate")
def profile_activate(interviewer: str = typer.Argument(...), version: int = typer.Argument(...),
                     tenant: Optional[str] = TenantOpt) -> None:
    """Make another version answer (roll back or forward)."""
    from processors.twin.profiles import ProfileStore

    tenant = _tenant(tenant)
    store = ProfileStore(settings.POSTGRES_DSN, ttl_s=0)
    try:
        store.activate(tenant, interviewer, version)
    except LookupError as exc:
        _fail(str(exc))
    finally:
        store.close()
    console.print(f"{interviewer} v{version} is now active for tenant {tenant}")


@datasets_app.command("list")
def datasets_list(tenant: Optional[str] = TenantOpt) -> None:
    """The tenant's datasets (refs to train on) with session counts."""
    from processors.twin.datasets import dataset_interviewers, list_datasets

    tenant = _tenant(tenant)
    with connect_db(autocommit=True) as conn:
        rows = list_datasets(conn, tenant)
        table = Table(title=f"datasets of {tenant}")
        for col in ("datasetRef", "kind", "source", "sessions", "turns", "interviewers"):
            table.add_column(col)
        for d in rows:
            who = dataset_interviewers(conn, tenant, d["datasetRef"])
            table.add_row(d["datasetRef"], d["kind"], d["source"] or "-", str(d["sessions"]), str(d["turns"]),
                          ", ".join(f"{k} ({v})" for k, v in who.items()))
    console.print(table)
