"""`twin demo` as a user runs it: the real command against the running stack, in this run's namespace.

It trains the justice with the most sessions in the shipped SCOTUS slice (infra/samples), starts its own
gateway and worker (their own pair name, ports and topic prefix, so a developer's running demo is never
touched), replays a held-out argument through the gateway and prints a table. The table must show the
justice's real lines of one held-out session, in order, next to non-empty twin lines that carry no
redaction placeholder, with scores whose mean is the summary line's.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
from collections import Counter

import pytest

from infra.settings import Settings
from infra.stack import Stack
from processors.twin.corpus import chronological_split, read_transcripts
from tests.conftest import REPO_ROOT, SCOTUS_SLICE, _free_port

PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]+>")  # what PII redaction puts in place of a name, an e-mail ...
MOVE = re.compile(r"\s*\([\w-]+, [\w-]+\)$")  # "(ask_followup, offline)" under each twin line
SUMMARY = re.compile(r"(\d+) turns: mean score ([+-]\d+\.\d\d); the twin beat a random other line of (.+?) "
                     r"(\d+)% of the time \(chance 50%\)")


def _norm(text: str) -> str:
    return " ".join(text.split())


def _rows(table_text: str) -> list[list[str]]:
    """The body rows of the rich table: one list of cell texts per row, wrapped lines joined."""
    rows: list[list[str]] = []
    current: list[list[str]] | None = None
    body = False
    for line in table_text.splitlines():
        if line.startswith("┡"):
            body, current = True, []
        elif body and line.startswith(("├", "└")):
            rows.append([_norm(" ".join(parts)) for parts in current])
            current = []
            if line.startswith("└"):
                break
        elif body and line.startswith("│"):
            cells = line.strip().strip("│").split("│")
            if not current:
                current = [[] for _ in cells]
            for parts, cell in zip(current, cells):
                parts.append(cell.strip())
    return rows


def _justice_sessions():
    sessions = [p.transcript for p in read_transcripts(SCOTUS_SLICE) if p.ok]
    counts = Counter(s.interviewer_id for s in sessions)
    justice = max(sorted(counts), key=lambda iid: counts[iid])
    return justice, chronological_split([s for s in sessions if s.interviewer_id == justice])


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_demo_replays_a_held_out_argument(cfg, process_env, postgres_dsn, redis_url, weaviate_client,
                                          kafka_bootstrap, tenant, unique_name):
    pair = f"demotest-{unique_name}"
    env = {**process_env, "TOPIC_PREFIX": f"{cfg.TOPIC_PREFIX}demo-{unique_name}.",
           "GATEWAY_PORT": str(_free_port()), "WORKER_METRICS_PORT": str(_free_port()), "COLUMNS": "200"}
    code = "import sys; from infra.cli import app; app(sys.argv[1:], prog_name='twin')"
    stack = Stack(Settings(), echo=lambda _: None)
    try:
        out = subprocess.run([sys.executable, "-c", code, "demo", "--tenant", tenant, "--app-name", pair, "--stop"],
                             env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=840)
    finally:  # the pair outlives the command when it failed half-way
        stack.stop_app(pair)
        shutil.rmtree(cfg.TWIN_VAR_DIR / "models" / tenant, ignore_errors=True)
    logs = [svc.log for svc in stack.app_services(pair)]
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:], f"logs: {logs}")
    for log in logs:  # kept for a post-mortem when the command failed
        log.unlink(missing_ok=True)

    justice, split = _justice_sessions()
    name = justice.replace("_", " ").title()
    assert f"twin of {name} on held-out argument" in out.stdout
    rows = _rows(out.stdout)
    assert len(rows) == 8, out.stdout  # the default number of turns
    turns, reals, twins = [int(r[0]) for r in rows], [r[2] for r in rows], [MOVE.sub("", r[3]) for r in rows]

    # The justice's real lines, in order, of one session the twin never trained on.
    (session,) = [s for s in split.test if all(_norm(s.turns[t - 1].text) == real for t, real in zip(turns, reals))]
    assert turns == sorted(turns) and all(session.turns[t - 1].role == "interviewer" for t in turns)
    assert session.session_id in out.stdout

    # The twin's lines: said, none the held-out line itself, and without a redaction placeholder.
    assert all(twins), rows
    assert not [t for t in twins if PLACEHOLDER.search(t)], twins
    assert not [t for t, r in zip(twins, reals) if t == r], "a held-out line came back: it leaked into training"

    scores = [float(r[4]) for r in rows]
    beaten = [float(r[5].rstrip("%")) / 100 for r in rows]
    assert all(-2 < s < 1.01 for s in scores) and all(0 <= b <= 1 for b in beaten)
    summary = SUMMARY.search(_norm(out.stdout))
    assert summary, out.stdout[-1500:]
    assert int(summary[1]) == 8 and summary[3] == name
    assert float(summary[2]) == pytest.approx(statistics.fmean(scores), abs=0.011)
    assert int(summary[4]) / 100 == pytest.approx(statistics.fmean(beaten), abs=0.03)
