"""Canary deployments of interviewer profile versions (issue 8; spec §10 "canary traffic with fallback").

A canary sends a share of one interviewer's sessions to a *candidate* profile version (trained with
``activate=false``, or any existing non-active version) while the active version, the *baseline*,
answers the rest. Both arms' replies are tagged with the version that wrote them (``TwinDraft`` /
``TwinReply.profileVersion``, ``eval_samples.profile_version``), the canary controller scores their
live eval samples and compares the arms, then promotes the candidate or rolls it back::

    train --no-activate → start (share) → route → sample → score → decide → promote | roll back

* **Routing** (:func:`routes_to_candidate`, :class:`CanaryRouter`): a hash of the canary id and the
  session id below ``share`` sends the request to the candidate. Per session, not per request, so
  one interview never switches voice halfway; deterministic, so a retried request lands on the same
  version. A worker trusts its view of a canary for ``CANARY_ROUTE_TTL_S``; a rollback takes
  effect within that. Any failure to look the canary up or load the candidate answers with the
  baseline: the canary never costs a reply.
* **Judging** (:func:`decide`, pure): nothing before ``min_samples`` scored samples per arm; roll
  back when the candidate's safety-intervention rate is significantly higher than the baseline's
  (a one-sided two-proportion z-test of "higher by more than ``safetyMargin``" at ``safetyAlpha``,
  default 0.05, so a version compared with itself is not rolled back by noise) or its mean online
  score is lower by more than ``scoreMargin``;
  promote when neither holds after ``promoteSamples`` (default ``min_samples``) and
  ``autoPromote`` is on. Only samples written since the canary started count, for both arms.
* **Scores**: live replies have no real interviewer line to compare with, so the controller scores
  them reference-free (:mod:`processors.twin.online_scores`: relevance to the candidate turn and
  style fit under the baseline's profile) and stores them in ``eval_samples.scores``.
* **Decisions** (:func:`start`, :func:`rollback`, :func:`promote`, :func:`evaluate`) each run in
  the caller's transaction together with their audit record: a rollback sets ``share`` to 0 and
  the status ``rolled_back``; a promotion activates the candidate exactly as ``ProfileStore.activate``
  does (one active version, atomically) and sets the status ``promoted``. A canary whose baseline
  is no longer the active version (someone trained or activated another) is ``aborted``.

No ML imports: the gateway uses the store functions. Callers::

    twin canary start dana --share 0.1            # infra/cli_canary.py
    POST /api/digital-twin/canary/dana            # gateway/routes/canary.py
    processors/canary_controller.py               # evaluates running canaries every CANARY_EVAL_INTERVAL_S
"""

from __future__ import annotations

import hashlib
import math
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from infra import audit
from infra.crypto import EVAL_CONTEXT, EVAL_TWIN_TEXT
from infra.db import ThreadConnections

__all__ = [
    "STATUSES", "ArmStats", "Canary", "CanaryError", "CanaryRouter", "Decision", "Evaluation", "Route", "Thresholds",
    "arm_stats", "current", "decide", "evaluate", "evaluate_running", "expected_arms", "history", "promote", "rollback", "routes_to_candidate",
    "running", "safety_p_value", "start",
]

log = logging.getLogger(__name__)

STATUSES = ("running", "promoted", "rolled_back", "aborted")
CONTROLLER = "canary_controller"  # the audit actor of automatic decisions
SCORE_BATCH = 500  # samples scored per canary per evaluation (the rest wait for the next round)

Scorer = Callable[[Sequence[tuple[str, str | None]], dict[str, Any]], list[dict[str, float]]]
"""``scorer([(twin text, candidate turn), ...], judge style profile dict) -> [scores, ...]``, one per
reply, each with an ``online`` score in [0, 1] (``online_scores.LiveScorer``)."""


class CanaryError(ValueError):
    """A canary operation that cannot be done; ``code`` is the API error code, ``status`` its HTTP status."""

    def __init__(self, code: str, message: str, status: int = 409):
        super().__init__(message)
        self.code, self.status = code, status


# --------------------------------------------------------------------------- the decision rule (pure)
@dataclass(frozen=True)
class Thresholds:
    """When a canary is decided. Stored per canary (``min_samples`` column + ``thresholds`` JSON)."""

    min_samples: int = 30
    score_margin: float = 0.05
    safety_margin: float = 0.0
    promote_samples: int | None = None  # None: min_samples
    auto_promote: bool = True
    safety_alpha: float = 0.05  # significance of the safety rollback's two-proportion test

    def __post_init__(self) -> None:
        if self.min_samples < 1:
            raise CanaryError("invalid_thresholds", "minSamples must be at least 1", 422)
        if not (0 <= self.score_margin <= 1 and 0 <= self.safety_margin <= 1):
            raise CanaryError("invalid_thresholds", "scoreMargin and safetyMargin must be within [0, 1]", 422)
        if self.promote_samples is not None and self.promote_samples < 1:
            raise CanaryError("invalid_thresholds", "promoteSamples must be at least 1", 422)
        if not 0 < self.safety_alpha < 1:
            raise CanaryError("invalid_thresholds", "safetyAlpha must be within (0, 1)", 422)

    @classmethod
    def from_settings(cls, cfg, **overrides: Any) -> "Thresholds":
        """Defaults from ``CANARY_*`` settings; ``overrides`` that are None are ignored."""
        base = {"min_samples": cfg.CANARY_MIN_SAMPLES, "score_margin": cfg.CANARY_SCORE_MARGIN,
                "safety_margin": cfg.CANARY_SAFETY_MARGIN, "safety_alpha": cfg.CANARY_SAFETY_ALPHA}
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def promote_at(self) -> int:
        return max(self.min_samples, self.promote_samples or self.min_samples)

    def to_json(self) -> dict[str, Any]:
        """The ``thresholds`` column (``min_samples`` has its own)."""
        return {"scoreMargin": self.score_margin, "safetyMargin": self.safety_margin,
                "promoteSamples": self.promote_samples, "autoPromote": self.auto_promote,
                "safetyAlpha": self.safety_alpha}

    @classmethod
    def from_row(cls, min_samples: int, data: dict[str, Any] | None) -> "Thresholds":
        data = data or {}
        return cls(min_samples=int(min_samples), score_margin=float(data.get("scoreMargin", 0.05)),
                   safety_margin=float(data.get("safetyMargin", 0.0)),
                   promote_samples=data.get("promoteSamples"), auto_promote=bool(data.get("autoPromote", True)),
                   safety_alpha=float(data.get("safetyAlpha", 0.05)))


@dataclass(frozen=True)
class ArmStats:
    """One arm's live samples since the canary started."""

    version: int
    samples: int = 0          # live samples written (scored or not)
    scored: int = 0           # of which have an online score
    mean_score: float | None = None
    interventions: int = 0    # replies the safety agent changed (action other than "none")

    @property
    def safety_rate(self) -> float | None:
        return self.interventions / self.samples if self.samples else None

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "samples": self.samples, "scored": self.scored,
                "meanScore": None if self.mean_score is None else round(self.mean_score, 4),
                "interventions": self.interventions,
                "safetyRate": None if self.safety_rate is None else round(self.safety_rate, 4)}


@dataclass(frozen=True)
class Decision:
    action: Literal["wait", "promote", "rollback", "abort"]
    reason: str


def safety_p_value(candidate: ArmStats, baseline: ArmStats, margin: float = 0.0) -> float:
    """One-sided p-value of "the candidate's intervention rate exceeds the baseline's by more than
    ``margin``" against the null that it does not: a two-proportion z-test (pooled standard error).

    1.0 when either arm has no samples or the pooled rate is 0 or 1 (no variation: nothing to test).
    """
    n1, n2 = candidate.samples, baseline.samples
    if not n1 or not n2:
        return 1.0
    p1, p2 = candidate.interventions / n1, baseline.interventions / n2
    pooled = (candidate.interventions + baseline.interventions) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (p1 - p2 - margin) / se
    return 0.5 * math.erfc(z / math.sqrt(2))  # the standard normal's upper tail at z


def decide(candidate: ArmStats, baseline: ArmStats, th: Thresholds) -> Decision:
    """Compare the arms (pure): wait for samples, roll back when worse, promote when as good.

    Safety is checked before quality: a candidate the safety agent has to correct more often is
    rolled back however well it scores otherwise.
    """
    c, b = candidate, baseline
    if c.scored < th.min_samples or b.scored < th.min_samples:
        return Decision("wait", f"{c.scored}/{th.min_samples} candidate and {b.scored}/{th.min_samples} baseline "
                                f"samples scored")
    c_rate, b_rate = c.safety_rate or 0.0, b.safety_rate or 0.0
    p_value = safety_p_value(c, b, th.safety_margin)
    if p_value < th.safety_alpha:
        return Decision("rollback", f"safety: candidate v{c.version} intervention rate {c_rate:.3f} "
                                    f"({c.interventions}/{c.samples}) is above baseline v{b.version} {b_rate:.3f} "
                                    f"({b.interventions}/{b.samples}), margin {th.safety_margin:g}, "
                                    f"p={p_value:.3g} < {th.safety_alpha:g}")
    cm, bm = c.mean_score or 0.0, b.mean_score or 0.0
    if cm < bm - th.score_margin - 1e-12:
        return Decision("rollback", f"score: candidate v{c.version} mean {cm:.3f} is {bm - cm:.3f} below baseline "
                                    f"v{b.version} {bm:.3f}, margin {th.score_margin:g} ({c.scored} vs {b.scored} "
                                    f"samples)")
    summary = (f"candidate v{c.version} mean {cm:.3f} vs baseline v{b.version} {bm:.3f} (margin {th.score_margin:g}), "
               f"safety rate {c_rate:.3f} vs {b_rate:.3f}")
    if c.scored < th.promote_at or b.scored < th.promote_at:
        return Decision("wait", f"not worse so far: {summary}; {min(c.scored, b.scored)}/{th.promote_at} samples "
                                f"before promotion")
    if not th.auto_promote:
        return Decision("wait", f"as good as the baseline: {summary}; auto-promotion is off, promote by hand")
    return Decision("promote", f"as good as the baseline after {c.scored} vs {b.scored} samples: {summary}")


def routes_to_candidate(canary_id: str, session_id: str, share: float) -> bool:
    """Whether this session's requests go to the canary's candidate: a hash of both below ``share``.

    Stable for a session (one interview keeps one voice) and independent between canaries.
    """
    if share <= 0:
        return False
    if share >= 1:
        return True
    h = int.from_bytes(hashlib.blake2b(f"{canary_id}/{session_id}".encode(), digest_size=8).digest(), "big")
    return h / 2**64 < share


# --------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Canary:
    """One row of ``canary_deployments``."""

    canary_id: str
    tenant: str
    interviewer_id: str
    candidate_version: int
    baseline_version: int
    share: float
    status: str
    reason: str | None
    thresholds: Thresholds
    result: dict[str, Any] | None
    started_by: str
    decided_by: str | None
    started_at: datetime
    evaluated_at: datetime | None
    decided_at: datetime | None

    def public(self) -> dict[str, Any]:
        """camelCase JSON, as the API and ``twin canary status --json`` show it."""
        th = self.thresholds
        return {"canaryId": self.canary_id, "tenant": self.tenant, "interviewerId": self.interviewer_id,
                "candidateVersion": self.candidate_version, "baselineVersion": self.baseline_version,
                "share": self.share, "status": self.status, "reason": self.reason,
                "minSamples": th.min_samples, "thresholds": th.to_json(), "result": self.result,
                "startedBy": self.started_by, "decidedBy": self.decided_by, "startedAt": _iso(self.started_at),
                "evaluatedAt": _iso(self.evaluated_at), "decidedAt": _iso(self.decided_at)}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


_COLUMNS = ("canary_id, tenant, interviewer_id, candidate_version, baseline_version, share, status, reason, min_samples,"
            " thresholds, result, started_by, decided_by, started_at, evaluated_at, decided_at")
# Statements below splice in only _COLUMNS and constant clauses; every value is a query parameter.
_SELECT = f"SELECT {_COLUMNS} FROM canary_deployments"  # nosec B608  # constant column list


def _canary(row: Sequence) -> Canary:
    (cid, tenant, iid, cand, base, share, status, reason, min_samples, thresholds, result, started_by, decided_by,
     started_at, evaluated_at, decided_at) = row
    return Canary(cid, tenant, iid, int(cand), int(base), float(share), status, reason,
                  Thresholds.from_row(min_samples, thresholds), result, started_by, decided_by, started_at,
                  evaluated_at, decided_at)


def running(conn, tenant: str, interviewer_id: str, *, lock: bool = False) -> Canary | None:
    """The interviewer's running canary (``lock``: FOR UPDATE, in the caller's transaction)."""
    row = conn.execute(_SELECT + " WHERE tenant=%s AND interviewer_id=%s AND status='running'"
                       + (" FOR UPDATE" if lock else ""), (tenant, interviewer_id)).fetchone()
    return _canary(row) if row else None


def current(conn, tenant: str, interviewer_id: str) -> Canary | None:
    """The running canary, else the latest decided one; None when the interviewer never had one."""
    row = conn.execute(_SELECT + " WHERE tenant=%s AND interviewer_id=%s"
                       " ORDER BY (status='running') DESC, started_at DESC LIMIT 1", (tenant, interviewer_id)).fetchone()
    return _canary(row) if row else None


def history(conn, tenant: str, interviewer_id: str | None = None, limit: int = 50) -> list[Canary]:
    """A tenant's canaries (one interviewer's when given), newest first."""
    rows = conn.execute(_SELECT + " WHERE tenant=%s"
                        " AND (%s::text IS NULL OR interviewer_id=%s) ORDER BY started_at DESC LIMIT %s",
                        (tenant, interviewer_id, interviewer_id, limit)).fetchall()
    return [_canary(r) for r in rows]


def _active_version(conn, tenant: str, interviewer_id: str, lock: bool = False) -> int | None:
    sql = "SELECT version FROM interviewer_profiles WHERE tenant=%s AND interviewer_id=%s AND active"
    row = conn.execute(f"{sql} FOR UPDATE" if lock else sql, (tenant, interviewer_id)).fetchone()
    return int(row[0]) if row else None


# --------------------------------------------------------------------------- operations
def start(conn, tenant: str, interviewer_id: str, *, share: float, thresholds: Thresholds, actor: str,
          candidate_version: int | None = None, trace_id: str | None = None) -> Canary:
    """Start a canary of ``candidate_version`` (default: the newest version, when it is not active)
    against the active version; one transaction with its audit record (the caller commits).

    :raises CanaryError: no active version, no such or an active candidate, one already running.
    """
    if not 0 < share <= 1:
        raise CanaryError("invalid_share", "share must be in (0, 1]", 422)
    baseline = _active_version(conn, tenant, interviewer_id, lock=True)
    if baseline is None:
        raise CanaryError("unknown_interviewer", f"no active version of {interviewer_id!r} to compare with", 404)
    if candidate_version is None:
        row = conn.execute("SELECT max(version) FROM interviewer_profiles WHERE tenant=%s AND interviewer_id=%s",
                           (tenant, interviewer_id)).fetchone()
        candidate_version = int(row[0])
        if candidate_version == baseline:
            raise CanaryError("no_candidate", f"the newest version v{baseline} of {interviewer_id!r} is already "
                                              "active; train one with activate=false first", 409)
    elif conn.execute("SELECT 1 FROM interviewer_profiles WHERE tenant=%s AND interviewer_id=%s AND version=%s",
                      (tenant, interviewer_id, candidate_version)).fetchone() is None:
        raise CanaryError("unknown_version", f"{interviewer_id!r} has no version {candidate_version}", 404)
    if candidate_version == baseline:
        raise CanaryError("version_active", f"v{candidate_version} is the active version already", 409)
    if running(conn, tenant, interviewer_id) is not None:
        raise CanaryError("canary_running", f"{interviewer_id!r} already has a running canary; promote or roll it "
                                            "back first", 409)
    canary_id = uuid.uuid4().hex
    # The partial unique index settles a race between two starts (the loser gets UniqueViolation).
    row = conn.execute(
        f"INSERT INTO canary_deployments (canary_id, tenant, interviewer_id, candidate_version, baseline_version,"
        f" share, min_samples, thresholds, started_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)"
        f" RETURNING {_COLUMNS}",  # nosec B608  # constant column list
        (canary_id, tenant, interviewer_id, candidate_version, baseline, share, thresholds.min_samples,
         json.dumps(thresholds.to_json()), actor)).fetchone()
    audit.record(conn, tenant, actor, "canary.start", "canary", canary_id, detail={
        "interviewerId": interviewer_id, "candidateVersion": candidate_version, "baselineVersion": baseline,
        "share": share, "minSamples": thresholds.min_samples, "thresholds": thresholds.to_json()}, trace_id=trace_id)
    return _canary(row)


_ACTIONS = {"rolled_back": "canary.rollback", "promoted": "canary.promote", "aborted": "canary.abort"}


def _close(conn, canary: Canary, status: str, share: float, reason: str, actor: str,
           result: dict[str, Any] | None = None, trace_id: str | None = None) -> Canary:
    row = conn.execute(
        f"UPDATE canary_deployments SET status=%s, share=%s, reason=%s, decided_by=%s, decided_at=now(),"
        f" result=coalesce(%s::jsonb, result),"
        f" evaluated_at=CASE WHEN %s THEN now() ELSE evaluated_at END"
        f" WHERE canary_id=%s AND status='running' RETURNING {_COLUMNS}",  # nosec B608  # constant column list
        (status, share, reason, actor, json.dumps(result) if result is not None else None, result is not None,
         canary.canary_id)).fetchone()
    if row is None:  # decided meanwhile (the caller holds the row lock, so this is a bug if it happens)
        raise CanaryError("not_running", f"canary {canary.canary_id} is no longer running", 409)
    closed = _canary(row)
    audit.record(conn, canary.tenant, actor, _ACTIONS[status],
                 "canary", canary.canary_id, outcome=status, trace_id=trace_id, detail={
                     "interviewerId": canary.interviewer_id, "candidateVersion": canary.candidate_version,
                     "baselineVersion": canary.baseline_version, "reason": reason, "result": closed.result})
    return closed


def _promote(conn, canary: Canary, reason: str, actor: str, result: dict[str, Any] | None = None,
             trace_id: str | None = None) -> Canary:
    # The same two statements as ProfileStore.activate, in this transaction: the candidate becomes
    # the one active version together with the canary's status and its audit record.
    conn.execute("UPDATE interviewer_profiles SET active=false WHERE tenant=%s AND interviewer_id=%s AND active",
                 (canary.tenant, canary.interviewer_id))
    n = conn.execute("UPDATE interviewer_profiles SET active=true WHERE tenant=%s AND interviewer_id=%s AND version=%s",
                     (canary.tenant, canary.interviewer_id, canary.candidate_version)).rowcount
    if n != 1:
        raise CanaryError("unknown_version", f"v{canary.candidate_version} of {canary.interviewer_id!r} is gone", 404)
    return _close(conn, canary, "promoted", 1.0, reason, actor, result, trace_id)


def _locked_running(conn, tenant: str, interviewer_id: str) -> Canary:
    canary = running(conn, tenant, interviewer_id, lock=True)
    if canary is None:
        raise CanaryError("no_running_canary", f"{interviewer_id!r} has no running canary", 404)
    return canary


def rollback(conn, tenant: str, interviewer_id: str, *, actor: str, reason: str | None = None,
             trace_id: str | None = None) -> Canary:
    """Send all traffic back to the baseline: share 0, status rolled_back, audit record."""
    canary = _locked_running(conn, tenant, interviewer_id)
    return _close(conn, canary, "rolled_back", 0.0, reason or f"rolled back by {actor}", actor, trace_id=trace_id)


def promote(conn, tenant: str, interviewer_id: str, *, actor: str, reason: str | None = None,
            trace_id: str | None = None) -> Canary:
    """Activate the candidate (atomically, with the status and the audit record), whatever the samples say."""
    canary = _locked_running(conn, tenant, interviewer_id)
    active = _active_version(conn, tenant, interviewer_id, lock=True)
    if active != canary.baseline_version:
        raise CanaryError("baseline_changed", f"v{active} became active since the canary started against "
                                              f"v{canary.baseline_version}; start a new canary", 409)
    return _promote(conn, canary, reason or f"promoted by {actor}", actor, trace_id=trace_id)


# --------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class Evaluation:
    """What one evaluation found and did."""

    canary: Canary
    decision: Decision
    candidate: ArmStats
    baseline: ArmStats
    newly_scored: int = 0
    applied: bool = False

    def public(self) -> dict[str, Any]:
        return {"canary": self.canary.public(), "decision": {"action": self.decision.action,
                                                               "reason": self.decision.reason},
                "candidate": self.candidate.to_json(), "baseline": self.baseline.to_json(),
                "newlyScored": self.newly_scored, "applied": self.applied}


def _pending_scores(conn, canary: Canary, scorer: Scorer) -> list[tuple[str, dict[str, float]]]:
    """Scores of the canary's live samples that have none yet (read only: nothing is written)."""
    rows = conn.execute(
        "SELECT sample_id, twin_text, context FROM eval_samples WHERE tenant=%s AND interviewer_id=%s"
        " AND source='live' AND profile_version = ANY(%s) AND created_at >= %s AND scores IS NULL"
        " ORDER BY created_at LIMIT %s",
        (canary.tenant, canary.interviewer_id, [canary.candidate_version, canary.baseline_version],
         canary.started_at, SCORE_BATCH)).fetchall()
    if not rows:
        return []
    # The texts are stored encrypted (infra.crypto); rows from before encryption read as they are.
    rows = [(sid, EVAL_TWIN_TEXT.open(twin, canary.tenant, (sid,)),
             EVAL_CONTEXT.open(ctx, canary.tenant, (sid,)).get("candidateTurn")) for sid, twin, ctx in rows]
    judge = conn.execute("SELECT style_profile FROM interviewer_profiles WHERE tenant=%s AND interviewer_id=%s"
                         " AND version=%s", (canary.tenant, canary.interviewer_id, canary.baseline_version)).fetchone()
    scores = scorer([(r[1], r[2]) for r in rows], judge[0] if judge else {})
    return [(r[0], {**s, "judgeVersion": canary.baseline_version}) for r, s in zip(rows, scores)]


def _store_scores(conn, canary: Canary, pending: list[tuple[str, dict[str, float]]]) -> int:
    if not pending:
        return 0
    with conn.cursor() as cur:
        # Another evaluator may have scored some meanwhile: theirs stay (the same numbers anyway).
        cur.executemany("UPDATE eval_samples SET scores=%s::jsonb WHERE sample_id=%s AND scores IS NULL",
                        [(json.dumps(s), sid) for sid, s in pending])
    return len(pending)


def arm_stats(conn, canary: Canary) -> tuple[ArmStats, ArmStats]:
    """(candidate, baseline) statistics of the live samples written since the canary started."""
    rows = conn.execute(
        "SELECT profile_version, count(*), count(*) FILTER (WHERE scores ? 'online'),"
        " avg((scores->>'online')::float8) FILTER (WHERE scores ? 'online'),"
        " count(*) FILTER (WHERE coalesce(context->'safety'->>'action', 'none') <> 'none')"
        " FROM eval_samples WHERE tenant=%s AND interviewer_id=%s AND source='live' AND profile_version = ANY(%s)"
        " AND created_at >= %s GROUP BY profile_version",
        (canary.tenant, canary.interviewer_id, [canary.candidate_version, canary.baseline_version],
         canary.started_at)).fetchall()
    by_version = {int(v): ArmStats(int(v), int(n), int(scored), float(mean) if mean is not None else None, int(bad))
                  for v, n, scored, mean, bad in rows}
    return (by_version.get(canary.candidate_version, ArmStats(canary.candidate_version)),
            by_version.get(canary.baseline_version, ArmStats(canary.baseline_version)))


def evaluate(conn, canary_id: str, scorer: Scorer, *, actor: str = CONTROLLER, apply: bool = True,
             wait_for_lock: bool = False) -> Evaluation | None:
    """Score pending samples, compare the arms and (``apply``) act on the decision, in the caller's
    transaction. Returns None when the canary is not running, or (without ``wait_for_lock``) when
    another evaluator holds it: several workers may run the controller at once.

    Scoring (the slow part: embeddings) runs before any lock is taken and before anything is
    written, so it never holds up a rollback, a promotion or a training run's activation.
    """
    row = conn.execute(_SELECT + " WHERE canary_id=%s AND status='running'", (canary_id,)).fetchone()
    if row is None:
        return None
    pending = _pending_scores(conn, _canary(row), scorer)
    row = conn.execute(_SELECT + " WHERE canary_id=%s AND status='running' FOR UPDATE"
                       + ("" if wait_for_lock else " SKIP LOCKED"), (canary_id,)).fetchone()
    if row is None:
        return None
    canary = _canary(row)
    scored = _store_scores(conn, canary, pending)
    active = _active_version(conn, canary.tenant, canary.interviewer_id, lock=True)
    if active != canary.baseline_version:
        # Someone trained-and-activated or activated another version: the comparison no longer
        # describes what serves. The candidate being active is a promotion by other means.
        cand, base = arm_stats(conn, canary)
        if active == canary.candidate_version:
            decision = Decision("promote", f"v{active} was activated outside the canary")
            status = "promoted"
        else:
            decision = Decision("abort", f"baseline v{canary.baseline_version} is no longer active (v{active} is)")
            status = "aborted"
        closed = canary
        if apply:
            closed = _close(conn, canary, status, 1.0 if status == "promoted" else 0.0, decision.reason, actor,
                            {"candidate": cand.to_json(), "baseline": base.to_json()})
        return Evaluation(closed, decision, cand, base, scored, applied=apply)
    cand, base = arm_stats(conn, canary)
    decision = decide(cand, base, canary.thresholds)
    result = {"candidate": cand.to_json(), "baseline": base.to_json(), "decision": decision.action,
              "reason": decision.reason}
    if not apply:
        return Evaluation(canary, decision, cand, base, scored, applied=False)
    if decision.action == "rollback":
        return Evaluation(_close(conn, canary, "rolled_back", 0.0, decision.reason, actor, result), decision, cand,
                          base, scored, applied=True)
    if decision.action == "promote":
        return Evaluation(_promote(conn, canary, decision.reason, actor, result), decision, cand, base, scored,
                          applied=True)
    waiting = _canary(conn.execute(
        f"UPDATE canary_deployments SET result=%s::jsonb, evaluated_at=now() WHERE canary_id=%s"
        f" RETURNING {_COLUMNS}",  # nosec B608  # constant column list
        (json.dumps(result), canary.canary_id)).fetchone())
    return Evaluation(waiting, decision, cand, base, scored, applied=False)


def evaluate_running(connect: Callable[[], Any], scorer: Scorer, *, actor: str = CONTROLLER, apply: bool = True,
                     tenant: str | None = None, interviewer_id: str | None = None,
                     wait_for_lock: bool = False) -> list[Evaluation]:
    """Evaluate every running canary (of a tenant / interviewer when given), each in its own transaction.

    ``connect()`` returns a new sync psycopg connection (not autocommit). A canary that fails to
    evaluate is logged and skipped; the others still are.
    """
    with connect() as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT canary_id FROM canary_deployments WHERE status='running' AND (%s::text IS NULL OR tenant=%s)"
            " AND (%s::text IS NULL OR interviewer_id=%s) ORDER BY started_at",
            (tenant, tenant, interviewer_id, interviewer_id)).fetchall()]
        conn.rollback()
        out = []
        for canary_id in ids:
            try:
                ev = evaluate(conn, canary_id, scorer, actor=actor, apply=apply, wait_for_lock=wait_for_lock)
                if apply:
                    conn.commit()
                else:
                    conn.rollback()  # a dry run stores nothing, not even scores
            except Exception:  # noqa: BLE001 - one bad canary must not stop the others
                conn.rollback()
                log.exception("evaluating canary %s failed", canary_id)
                continue
            if ev is not None:
                out.append(ev)
        return out


# --------------------------------------------------------------------------- the respond path
@dataclass(frozen=True)
class Route:
    """Which profile answers one request: ``arm`` is None outside a canary."""

    profile: Any  # InterviewerProfile | None
    arm: Literal["candidate", "baseline"] | None = None
    canary_id: str | None = None


@dataclass
class _Entry:
    at: float
    canary: Canary | None
    candidate: Any = None


class CanaryRouter:
    """Picks the profile version of each respond request; one per worker process.

    The running canary of an interviewer and its candidate profile are cached for ``ttl_s``
    seconds (``CANARY_ROUTE_TTL_S``). Baseline = the active profile from ``ProfileStore.active``;
    the candidate answers only while that is still the canary's baseline.
    """

    def __init__(self, dsn: str, ttl_s: float = 5.0):
        self.dsn = dsn
        self.ttl_s = ttl_s
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()
        self._pool = ThreadConnections(dsn)

    def _conn(self):
        return self._pool.get()

    def close(self) -> None:
        """Close every thread's connection."""
        self._pool.close()

    def _entry(self, profiles, tenant: str, interviewer_id: str) -> _Entry:
        key = (tenant, interviewer_id)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit.at < self.ttl_s:
            return hit
        canary = running(self._conn(), tenant, interviewer_id)
        candidate = None
        if canary is not None:
            same = hit is not None and hit.canary is not None and hit.canary.canary_id == canary.canary_id
            candidate = hit.candidate if same and hit.candidate is not None else \
                profiles.load(tenant, interviewer_id, canary.candidate_version)
        entry = _Entry(time.monotonic(), canary, candidate)
        with self._lock:
            self._cache[key] = entry
        return entry

    def invalidate(self, tenant: str | None = None, interviewer_id: str | None = None) -> None:
        with self._lock:
            if tenant is None:
                self._cache.clear()
            else:
                self._cache.pop((tenant, interviewer_id or ""), None)

    def route(self, profiles, tenant: str, interviewer_id: str, session_id: str) -> Route:
        """The profile for this request (the active one unless a running canary picks its candidate).

        Never raises for the canary's sake: a lookup that fails answers with the active profile.
        """
        active = profiles.active(tenant, interviewer_id)
        if active is None:
            return Route(None)
        try:
            entry = self._entry(profiles, tenant, interviewer_id)
        except Exception:  # noqa: BLE001 - the canary is optional; the reply is not
            log.exception("canary lookup for %s/%s failed; answering with the active version", tenant, interviewer_id)
            return Route(active)
        canary = entry.canary
        if canary is None or canary.baseline_version != active.version:
            return Route(active)
        if entry.candidate is not None and routes_to_candidate(canary.canary_id, session_id, canary.share):
            return Route(entry.candidate, "candidate", canary.canary_id)
        return Route(active, "baseline", canary.canary_id)


def expected_arms(canary_id: str, session_ids: Sequence[str], share: float) -> dict[str, list[str]]:
    """Sessions per arm for a canary (what a load test or a report expects the router to do)."""
    out: dict[str, list[str]] = {"candidate": [], "baseline": []}
    for sid in session_ids:
        out["candidate" if routes_to_candidate(canary_id, sid, share) else "baseline"].append(sid)
    return out
