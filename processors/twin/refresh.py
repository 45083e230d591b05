"""Periodic refresh of an interviewer's twin: new consented live sessions train a new version, which
goes to a canary, never straight to live. The refresh agent (processors/twin_refresh.py) calls
:func:`tick` on a timer; ``twin refresh status|run|pause|resume`` calls the same functions.

A refresh of one interviewer, one row of ``refresh_runs``:

1. **Due** (:func:`due`) when the policy (configuration ``refresh``, tenant layer then interviewer layer;
   :class:`processors.twin.config.EffectiveRefresh`) is enabled and not paused, the newest version was
   trained on the tenant's live sessions (``live:<tenant>``), no training job, canary or refresh of the
   interviewer is open, and either ``minNewSessions`` consented, ended live sessions are new (no
   version has been trained with them: no training has assigned them a split before that version was
   made), or it is ``maxDays`` old and at least one is.
2. **Training**: a training job on ``live:<tenant>`` with ``activate=false`` (:func:`start_refresh`; the
   caller publishes it on ``training.jobs``). The job copies the consented live sessions in and drops the
   ones whose consent was withdrawn or that were erased (``datasets.sync_live_sessions``), and the stored
   chronological split extends: old test sessions never become training data.
3. **Canary** (:func:`advance`): once the job succeeded, a canary of the new version against the active
   one at ``canaryShare``, decided by the canary controller's rules. Beside it, the honest evaluation
   scores both versions on the interviewer's stored test sessions (:func:`compare_run`).
4. **Decided**: the canary's status (promoted, rolled_back, aborted) is the refresh's. A failed job or
   a canary that cannot start ends the refresh as ``failed``.

Every step writes an audit record (actor ``refresh_controller`` unless an operator ran it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg

from infra import audit
from processors.twin import canary as canaries
from processors.twin.config import TENANT_LAYER, ConfigStore, EffectiveRefresh
from processors.twin.datasets import live_ref

__all__ = ["CONTROLLER", "RefreshError", "RefreshStatus", "RefreshRun", "status", "due", "start_refresh",
           "advance", "tick", "set_paused", "runs", "pending_comparisons", "compare_run", "HISTORY_SQL",
           "OFFLINE_SQL", "history"]

CONTROLLER = "refresh_controller"
OPEN = ("training", "canary")


class RefreshError(ValueError):
    """A refresh cannot start (``code`` is machine-readable)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class RefreshRun:
    run_id: str
    tenant: str
    interviewer_id: str
    reason: str
    new_sessions: int
    baseline_version: int
    job_id: str
    candidate_version: int | None
    canary_id: str | None
    status: str
    message: str | None
    started_by: str
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"], out["updated_at"] = self.created_at.isoformat(), self.updated_at.isoformat()
        return out


_RUN_COLUMNS = ("run_id, tenant, interviewer_id, reason, new_sessions, baseline_version, job_id, candidate_version,"
                " canary_id, status, message, started_by, created_at, updated_at")


def runs(conn, tenant: str, interviewer_id: str | None = None, limit: int = 20) -> list[RefreshRun]:
    """The newest refreshes of a tenant (or of one interviewer), newest first."""
    sql = f"SELECT {_RUN_COLUMNS} FROM refresh_runs WHERE tenant=%s"  # nosec B608  # constant column list
    args: list[Any] = [tenant]
    if interviewer_id is not None:
        sql += " AND interviewer_id=%s"
        args.append(interviewer_id)
    rows = conn.execute(sql + " ORDER BY created_at DESC LIMIT %s", (*args, limit)).fetchall()
    return [RefreshRun(*r) for r in rows]


@dataclass
class RefreshStatus:
    """Where one interviewer's refresh stands."""

    tenant: str
    interviewer_id: str
    policy: EffectiveRefresh
    newest_version: int | None
    newest_version_at: datetime | None
    trained_on: str | None  # the dataset ref of the newest version
    active_version: int | None
    new_sessions: int  # consented, ended live sessions no version has been trained with
    busy: str | None  # why nothing can start now (a job, canary or refresh is open), or None
    last_run: RefreshRun | None

    @property
    def next_refresh_at(self) -> datetime | None:
        """When the age rule makes it due (if a session is new by then)."""
        if self.newest_version_at is None:
            return None
        return self.newest_version_at + timedelta(days=self.policy.maxDays)

    def to_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "interviewerId": self.interviewer_id, "policy": self.policy.model_dump(),
                "newestVersion": self.newest_version, "activeVersion": self.active_version,
                "newestVersionAt": self.newest_version_at.isoformat() if self.newest_version_at else None,
                "trainedOn": self.trained_on, "newSessions": self.new_sessions, "busy": self.busy,
                "nextRefreshAt": self.next_refresh_at.isoformat() if self.next_refresh_at else None,
                "lastRun": self.last_run.to_json() if self.last_run else None}


def status(conn, tenant: str, interviewer_id: str, policy: EffectiveRefresh) -> RefreshStatus:
    newest = conn.execute(
        "SELECT version, created_at, artefacts->'provenance'->>'datasetRef' FROM interviewer_profiles"
        " WHERE tenant=%s AND interviewer_id=%s ORDER BY version DESC LIMIT 1", (tenant, interviewer_id)).fetchone()
    active = conn.execute("SELECT version FROM interviewer_profiles WHERE tenant=%s AND interviewer_id=%s AND active",
                          (tenant, interviewer_id)).fetchone()
    new_sessions = 0
    if newest is not None:
        # New: no training has split it yet, or only one after the newest version was made (a job that
        # failed). A training job stores every session's split before it makes its version.
        new_sessions = int(conn.execute(
            "SELECT count(*) FROM sessions s LEFT JOIN interviewer_splits sp ON sp.tenant = s.tenant"
            " AND sp.interviewer_id = s.interviewer_id AND sp.session_id = s.session_id"
            " WHERE s.tenant=%s AND s.interviewer_id=%s AND s.consent_training AND s.status = 'ended'"
            " AND (sp.session_id IS NULL OR sp.assigned_at > %s)", (tenant, interviewer_id, newest[1])).fetchone()[0])
    last = runs(conn, tenant, interviewer_id, limit=1)
    busy = None
    job = conn.execute("SELECT job_id, status FROM training_jobs WHERE tenant=%s AND interviewer_id=%s"
                       " AND status IN ('queued', 'running') LIMIT 1", (tenant, interviewer_id)).fetchone()
    if last and last[0].status in OPEN:
        busy = f"refresh {last[0].run_id} is {last[0].status}"
    elif job is not None:
        busy = f"training job {job[0]} is {job[1]}"
    elif canaries.running(conn, tenant, interviewer_id) is not None:
        busy = "a canary is running"
    return RefreshStatus(tenant, interviewer_id, policy, newest[0] if newest else None, newest[1] if newest else None,
                         newest[2] if newest else None, active[0] if active else None, new_sessions, busy,
                         last[0] if last else None)


def due(st: RefreshStatus, now: datetime | None = None) -> str | None:
    """Why the interviewer is due for a refresh now, or None (the rules of this module's docstring)."""
    p = st.policy
    if not p.enabled or p.paused or st.busy or st.newest_version is None or st.active_version is None:
        return None
    if st.trained_on != live_ref(st.tenant):
        return None
    if st.new_sessions >= p.minNewSessions:
        return f"{st.new_sessions} new consented sessions (threshold {p.minNewSessions})"
    now = now or datetime.now(timezone.utc)
    if st.new_sessions and st.next_refresh_at is not None and now >= st.next_refresh_at:
        return f"v{st.newest_version} is over {p.maxDays:g} days old and {st.new_sessions} session(s) are new"
    return None


def start_refresh(conn, st: RefreshStatus, reason: str, actor: str = CONTROLLER,
                  trace_id: str | None = None) -> tuple[RefreshRun, dict[str, Any]]:
    """Queue the training job of a refresh and record it (one transaction with its audit record; the
    caller commits, then publishes the returned job fields as a ``TrainingJob`` on ``training.jobs``).

    :raises RefreshError: a job, canary or refresh is open, or there is no active version.
    """
    if st.active_version is None:
        raise RefreshError("no_active_version", f"{st.interviewer_id!r} has no active version to refresh")
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"train/{st.tenant}/{st.interviewer_id}",))
    fresh = status(conn, st.tenant, st.interviewer_id, st.policy)  # under the lock the gateway's job creation takes
    if fresh.busy:
        raise RefreshError("busy", f"{st.interviewer_id!r}: {fresh.busy}")
    job_id, run_id = str(uuid.uuid4()), uuid.uuid4().hex
    options = {"activate": False}
    ref = live_ref(st.tenant)
    conn.execute("INSERT INTO training_jobs (job_id, tenant, interviewer_id, dataset_ref, options, status, message)"
                 " VALUES (%s, %s, %s, %s, %s, 'queued', 'queued by a refresh')",
                 (job_id, st.tenant, st.interviewer_id, ref, json.dumps(options)))
    insert = ("INSERT INTO refresh_runs (run_id, tenant, interviewer_id, reason, new_sessions, baseline_version,"
              " job_id, started_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING "
              + _RUN_COLUMNS)  # nosec B608  # constant column list
    row = conn.execute(
        insert,
        (run_id, st.tenant, st.interviewer_id, reason, fresh.new_sessions, st.active_version, job_id, actor)).fetchone()
    audit.record(conn, st.tenant, actor, "refresh.train", "interviewer", st.interviewer_id, detail={
        "runId": run_id, "jobId": job_id, "reason": reason, "newSessions": fresh.new_sessions,
        "baselineVersion": st.active_version}, trace_id=trace_id)
    return RefreshRun(*row), {"jobId": job_id, "tenant": st.tenant, "interviewerId": st.interviewer_id,
                              "datasetRef": ref, "options": options}


def _set(conn, run: RefreshRun, status_: str, message: str | None = None, **columns: Any) -> None:
    sets = ", ".join(f"{k}=%s" for k in columns)
    conn.execute(f"UPDATE refresh_runs SET status=%s, message=coalesce(%s, message), updated_at=now()"
                 f"{', ' + sets if sets else ''} WHERE run_id=%s",  # nosec B608  # column names are ours
                 (status_, message, *columns.values(), run.run_id))


def advance(conn, run: RefreshRun, policy: EffectiveRefresh, thresholds: canaries.Thresholds,
            actor: str = CONTROLLER) -> str:
    """Move one open refresh on: its job succeeded -> start the canary; failed -> ``failed``; its canary
    decided -> the decision. Returns the refresh's status (the caller commits)."""
    if run.status == "training":
        job = conn.execute("SELECT status, version, message FROM training_jobs WHERE job_id=%s",
                           (run.job_id,)).fetchone()
        if job is None or job[0] == "failed":
            message = f"training job failed: {job[2] if job else 'the job is gone'}"
            _set(conn, run, "failed", message)
            audit.record(conn, run.tenant, actor, "refresh.fail", "interviewer", run.interviewer_id, outcome="failed",
                         detail={"runId": run.run_id, "jobId": run.job_id, "message": message})
            return "failed"
        if job[0] != "succeeded":
            return "training"
        version = int(job[1])
        try:
            with conn.transaction():  # a savepoint: a canary that cannot start fails the refresh, not the tick
                c = canaries.start(conn, run.tenant, run.interviewer_id, share=policy.canaryShare,
                                   thresholds=thresholds, actor=actor, candidate_version=version)
        except canaries.CanaryError as exc:
            _set(conn, run, "failed", f"canary did not start: {exc}", candidate_version=version)
            audit.record(conn, run.tenant, actor, "refresh.fail", "interviewer", run.interviewer_id, outcome="failed",
                         detail={"runId": run.run_id, "candidateVersion": version, "message": str(exc)})
            return "failed"
        _set(conn, run, "canary", f"canary {c.canary_id} at {policy.canaryShare:g}", candidate_version=version,
             canary_id=c.canary_id)
        return "canary"
    if run.status == "canary":
        row = conn.execute("SELECT status, reason FROM canary_deployments WHERE canary_id=%s",
                           (run.canary_id,)).fetchone()
        if row is None:
            return _ended(conn, run, "aborted", "the canary is gone", actor)
        if row[0] == "running":
            return "canary"
        return _ended(conn, run, row[0], row[1], actor)
    return run.status


def _ended(conn, run: RefreshRun, outcome: str, reason: str | None, actor: str) -> str:
    _set(conn, run, outcome, reason)
    audit.record(conn, run.tenant, actor, f"refresh.{outcome}", "interviewer", run.interviewer_id,
                 detail={"runId": run.run_id, "candidateVersion": run.candidate_version,
                         "baselineVersion": run.baseline_version, "canaryId": run.canary_id, "reason": reason})
    return outcome


def _candidates(conn) -> list[tuple[str, str]]:
    """(tenant, interviewer) pairs the controller looks at: an active version whose tenant or
    interviewer configuration mentions refresh at all (it is off by default), or an open refresh."""
    return [tuple(r) for r in conn.execute(
        "SELECT p.tenant, p.interviewer_id FROM interviewer_profiles p WHERE p.active AND EXISTS (SELECT 1"
        " FROM twin_config c WHERE c.tenant = p.tenant AND c.interviewer_id IN (%s, p.interviewer_id)"
        " AND c.config ? 'refresh')"
        " UNION SELECT tenant, interviewer_id FROM refresh_runs WHERE status IN ('training', 'canary')"
        " ORDER BY 1, 2", (TENANT_LAYER,)).fetchall()]


def tick(connect, configs: ConfigStore, thresholds: canaries.Thresholds, now: datetime | None = None,
         only: tuple[str, str] | None = None, force: bool = False, actor: str = CONTROLLER) -> list[dict[str, Any]]:
    """One round of the controller: advance every open refresh and start the due ones. Returns the
    training jobs to publish (``TrainingJob`` fields). ``only``: one (tenant, interviewer);
    ``force``: start it even if not due (``twin refresh run``; still never beside an open job, canary or
    refresh). Each interviewer is its own transaction: one that fails does not stop the others."""
    jobs: list[dict[str, Any]] = []
    with connect() as conn:
        pairs = [only] if only else _candidates(conn)
    for tenant, interviewer_id in pairs:
        policy = configs.load(tenant, interviewer_id).refresh
        with connect() as conn:
            with conn.transaction():
                for run in runs(conn, tenant, interviewer_id, limit=5):
                    if run.status in OPEN:
                        advance(conn, run, policy, thresholds, actor=actor)
            with conn.transaction():
                st = status(conn, tenant, interviewer_id, policy)
                reason = due(st, now)
                if reason is None and force and not st.busy and st.active_version is not None:
                    reason = f"run by {actor} ({st.new_sessions} new consented sessions)"
                if reason is None:
                    continue
                try:
                    with conn.transaction():  # a savepoint: losing a race leaves the round's other work
                        _, job = start_refresh(conn, st, reason, actor=actor)
                except (RefreshError, psycopg.errors.UniqueViolation):
                    continue  # another controller (or an operator's job) got there first
                jobs.append(job)
    return jobs


# A refresh's history as GET /api/digital-twin/eval/{interviewerId} and `twin refresh report` show it:
# run these two queries (tenant, interviewer[, limit]) and pass their rows to history().
HISTORY_SQL = ("SELECT r.run_id, r.status, r.reason, r.new_sessions, r.baseline_version, r.candidate_version,"
               " r.message, r.created_at, r.updated_at, c.canary_id, c.result FROM refresh_runs r"
               " LEFT JOIN canary_deployments c ON c.canary_id = r.canary_id WHERE r.tenant=%s AND r.interviewer_id=%s"
               " ORDER BY r.created_at DESC LIMIT %s")
OFFLINE_SQL = ("SELECT scores->>'run', profile_version, scores->'twin' FROM eval_runs WHERE tenant=%s"
               " AND interviewer_id=%s AND scores->>'source' = 'refresh'")


def history(rows: Sequence[Sequence[Any]], compared: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """Each refresh, newest first: why it started, its versions and status, its canary's last evaluation
    (both versions' live samples, mean online score and safety-intervention rate: ``candidate`` and
    ``baseline``), and both versions' honest-evaluation scores on the stored test sessions
    (``offline``, None until compared)."""
    offline: dict[str, dict[str, Any]] = {}
    for run, version, twin in compared:
        twin = twin or {}
        offline.setdefault(run, {})[f"v{version}"] = {
            "matchRate": twin.get("match_rate_cross"), "matchRateSame": twin.get("match_rate_same"),
            "rankSame": twin.get("rank_same"), "indistinguishability": twin.get("indistinguishability"),
            "semantic": twin.get("semantic"), "style": twin.get("style"),
            "safetyViolations": twin.get("safety_violations"), "standardErrors": twin.get("se")}
    out = []
    for run_id, status_, reason, new, base, cand, message, created, updated, canary_id, result in rows:
        arms = result or {}
        out.append({"runId": run_id, "status": status_, "reason": reason, "newSessions": new,
                    "baselineVersion": base, "candidateVersion": cand, "message": message,
                    "createdAt": created.isoformat(), "updatedAt": updated.isoformat(), "canaryId": canary_id,
                    "candidate": arms.get("candidate"), "baseline": arms.get("baseline"),
                    "offline": offline.get(f"refresh-{run_id}")})
    return out


def pending_comparisons(conn, limit: int = 5) -> list[RefreshRun]:
    """Refreshes whose version was trained and sent to a canary but not yet compared offline with the
    version it may replace (every attempt leaves a ``refresh.compare`` audit record)."""
    # The last week's refreshes only; the lookup uses audit_log's (tenant, resource_type, resource_id) index.
    sql = (f"SELECT {_RUN_COLUMNS} FROM refresh_runs r WHERE r.candidate_version IS NOT NULL"  # nosec B608  # constant
           " AND r.canary_id IS NOT NULL AND r.created_at > now() - interval '7 days' AND NOT EXISTS (SELECT 1"
           " FROM audit_log a WHERE a.tenant = r.tenant AND a.resource_type = 'refresh' AND a.resource_id = r.run_id"
           " AND a.action = 'refresh.compare') ORDER BY r.created_at LIMIT %s")
    return [RefreshRun(*row) for row in conn.execute(sql, (limit,)).fetchall()]


def compare_run(connect, cfg, run: RefreshRun, engine, actor: str = CONTROLLER) -> dict[str, Any]:
    """The honest evaluation's scores of a refresh's candidate and baseline on the interviewer's stored
    test sessions (``evaluation.versions.compare_versions``; stored as ``eval_runs`` rows
    ``refresh-<run>:v<N>``), recorded once with its audit record. Too little held-out data is
    ``skipped``, an error ``failed``: the canary decides either way."""
    from processors.twin.evaluation.versions import VersionComparisonError, compare_versions

    versions = [run.candidate_version, run.baseline_version]
    detail: dict[str, Any] = {"runId": run.run_id, "interviewerId": run.interviewer_id, "versions": versions}
    try:
        scores = compare_versions(cfg, run.tenant, run.interviewer_id, versions, engine=engine,
                                  run_id=f"refresh-{run.run_id}")
        outcome = "ok"
        detail["scores"] = {f"v{v}": {k: scores[v].get(k) for k in ("match_rate_cross", "match_rate_same",
                                                                     "rank_same", "indistinguishability")}
                            for v in versions}
    except VersionComparisonError as exc:
        outcome, detail["message"] = "skipped", str(exc)
    except Exception as exc:  # noqa: BLE001 - a failed comparison must not stop the refresh loop
        outcome, detail["message"] = "failed", f"{type(exc).__name__}: {exc}"
    with connect() as conn:
        audit.record(conn, run.tenant, actor, "refresh.compare", "refresh", run.run_id, outcome=outcome,
                     detail=detail)
    return {"outcome": outcome, **detail}


def set_paused(configs: ConfigStore, tenant: str, interviewer_id: str, paused: bool, actor: str) -> None:
    """Hold (or release) one interviewer's refresh: ``refresh.paused`` on its configuration layer."""
    layer = configs.layer(tenant, interviewer_id)
    config = layer.config.model_copy(deep=True)
    config.refresh.paused = True if paused else None
    configs.write(tenant, interviewer_id, config, actor=actor, expected_version=layer.version,
                  audit={"action": "refresh.pause" if paused else "refresh.resume",
                         "detail": {"interviewerId": interviewer_id}})
