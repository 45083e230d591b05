"""Canary controller: every ``CANARY_EVAL_INTERVAL_S``, judge each running canary and act on it.

For each running canary it scores the new live eval samples of both arms, compares candidate and
baseline and rolls the candidate back or promotes it (``processors/twin/canary.py``: the decision
rule, the transaction, the audit record). There is no topic in or out: the inputs are the
``eval_samples`` rows the eval sampler writes, the outputs rows in PostgreSQL. Several workers may
run it; each canary is evaluated by one at a time (``FOR UPDATE SKIP LOCKED``). Run it with::

    twin worker --agents canary_controller       # or any worker running all agents
    twin canary evaluate                         # the same evaluation once, by hand
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from infra.metrics import CANARY_SHARE
from infra.settings import settings
from processors.engine.app import app, enabled
from processors.engine.metrics import run_periodic

__all__ = ["control_canaries", "evaluate_canaries"]

log = logging.getLogger(__name__)
AGENT = "canary_controller"
# One thread: scoring embeds text, and evaluations must not overlap within a worker.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="canary-controller")
_scorer = None


def evaluate_canaries() -> list:
    """The plain job: evaluate every running canary once; returns the evaluations."""
    global _scorer
    from infra.db import connect
    from processors.twin.canary import evaluate_running
    from processors.twin.online_scores import LiveScorer

    if _scorer is None:
        _scorer = LiveScorer()
    evaluations = evaluate_running(lambda: connect(settings), _scorer)
    for ev in evaluations:
        c = ev.canary
        CANARY_SHARE.labels(c.tenant, c.interviewer_id, str(c.candidate_version)).set(c.share)
        if ev.applied:
            log.warning("canary %s of %s/%s: %s (%s)", c.canary_id, c.tenant, c.interviewer_id, c.status,
                        ev.decision.reason)
    return evaluations


if enabled(AGENT):

    @app.timer(interval=settings.CANARY_EVAL_INTERVAL_S)
    async def control_canaries() -> None:
        """Score, compare and promote or roll back every running canary."""
        await run_periodic(AGENT, _executor, evaluate_canaries, "canary evaluation")
else:  # pragma: no cover - this worker runs other agents
    control_canaries = None
