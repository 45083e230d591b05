"""Two or more stored versions of one interviewer on the same held-out turns of their live sessions:
the honest evaluation's own sampling and scoring (``run.sample_turns``, ``run.score_systems``,
``run.summarize_systems``), with each version answering through the respond path's engine.

A refresh (processors/twin/refresh.py) calls it once the refreshed version is trained, so its
candidate and the version it may replace are judged on the interviewer's stored test sessions: a
session's split is fixed when it is first trained on, so neither version has seen them. Each version's
scores are stored as an ``eval_runs`` row (source ``refresh``), which ``GET
/api/digital-twin/eval/{interviewerId}`` shows in its trend.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import psycopg

from infra.settings import Settings
from processors.twin import datasets as ds
from processors.twin.corpus import Split
from processors.twin.evaluation import metrics as M
from processors.twin.evaluation.redteam import policy_for_profile
from processors.twin.evaluation.run import (DEFAULT_DISTRACTORS, DEFAULT_TURNS, per_run_scores, sample_turns,
                                            score_systems, summarize_systems, turn_record)

__all__ = ["VersionComparisonError", "compare_versions", "stored_live_split"]

MIN_TEST_TURNS = 4


class VersionComparisonError(ValueError):
    """Too little held-out data to compare versions on."""


def stored_live_split(conn, tenant: str, interviewer_id: str) -> Split:
    """The interviewer's live sessions in their stored split (sessions not yet assigned are left out:
    no version has been trained with them)."""
    assigned = ds.stored_split(conn, tenant, interviewer_id)
    sessions = ds.load_sessions(conn, tenant, ds.live_ref(tenant), interviewer_id)
    return Split(**{name: [s for s in sessions if assigned.get(s.session_id) == name]
                    for name in ("train", "val", "test")})


def compare_versions(cfg: Settings, tenant: str, interviewer_id: str, versions: Sequence[int], *, engine,
                     limit: int = DEFAULT_TURNS, seed: int = 0, run_id: str | None = None,
                     store: bool = True) -> dict[int, dict[str, Any]]:
    """Each version's summary (match rates, rank-same, semantic, style, indistinguishability, with
    standard errors) on the same sampled test turns. ``engine``: the respond path's ``TwinEngine``.

    :raises VersionComparisonError: fewer than ``MIN_TEST_TURNS`` held-out turns, or a version is missing.
    """
    with psycopg.connect(cfg.POSTGRES_DSN, autocommit=True) as conn:
        split = stored_live_split(conn, tenant, interviewer_id)
    held = split.test if len(split.test) >= 2 else split.test + split.val
    turns, _, _ = sample_turns(interviewer_id, Split(train=split.train, val=split.val, test=held), limit, seed)
    if len(turns) < MIN_TEST_TURNS:
        raise VersionComparisonError(f"{len(turns)} held-out interviewer turns in {len(held)} session(s); "
                                     f"at least {MIN_TEST_TURNS} are needed")
    profiles = {}
    for v in versions:
        profiles[v] = engine.profiles.load(tenant, interviewer_id, v)
        if profiles[v] is None:
            raise VersionComparisonError(f"{interviewer_id!r} has no version {v}")
    systems = [f"v{v}" for v in versions]
    run_id = run_id or f"refresh-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    records = []
    for ex in turns:
        rec = turn_record(ex)
        for v in versions:
            reply = engine.respond(tenant=tenant, interviewer_id=interviewer_id,
                                   session_id=f"eval:{run_id}:{ex.session_id}", history=list(ex.context_turns),
                                   candidate_turn=rec.candidate_turn, profile=profiles[v])
            rec.replies[f"v{v}"] = reply.text
        records.append(rec)
    reference = [(s.session_id, t.text) for s in split.train for t in s.turns if t.role == "interviewer"]
    scorer = M.PairScorer.fit(engine.embedder, [t for _, t in reference], [g for g, _ in reference],
                              speakers=[interviewer_id] * len(reference), seed=seed)
    cross = {interviewer_id: [(s.session_id, t.text) for s in held for t in s.turns if t.role == "interviewer"]}
    same = {s.session_id: [t.text for t in s.turns if t.role == "interviewer"] for s in held}
    scoring = score_systems(records, systems, scorer, engine.embedder, cross_lines=cross, same_lines=same,
                            distractors=DEFAULT_DISTRACTORS, seed=seed)
    summaries = summarize_systems(records, systems, scoring, np.ones(len(records), dtype=bool), seed=seed)
    out = {v: summaries[f"v{v}"] for v in versions}
    for v in versions:  # the evaluation's own safety judge: each version's guardrails on its replies
        policy = policy_for_profile(profiles[v])
        out[v]["safety_violations"] = sum(1 for r in records if r.replies[f"v{v}"]
                                          and not policy.check(r.replies[f"v{v}"], stage="output").passed)
    if store:
        with psycopg.connect(cfg.POSTGRES_DSN) as conn:
            for v in versions:
                scores = {"run": run_id, "source": "refresh", "generator": "offline", "via": "engine",
                          "test_turns": len(records), "test_sessions_sampled": len({r.session_id for r in records}),
                          "compared": systems, "twin": out[v]}
                conn.execute("INSERT INTO eval_runs (run_id, tenant, interviewer_id, profile_version, scores)"
                             " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING",
                             (f"{run_id}:v{v}", tenant, interviewer_id, v, json.dumps(per_run_scores(scores))))
    return out
