"""`twin eval` end to end on a slice of the SCOTUS dev set: real PostgreSQL, Weaviate and the engine."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner
from tests.credentials import auth_headers

SLICE_JUSTICES = ("elena_kagan", "ruth_bader_ginsburg")
SESSIONS = 8
LIMIT = 6


@pytest.fixture(scope="module")
def slice_corpus(corpora_dir, tmp_path_factory):
    """The 8 most recent sessions of two justices, written to a temp file (never into the repo)."""
    out = tmp_path_factory.mktemp("corpus") / "scotus_slice.jsonl"
    lines = (corpora_dir / "scotus_oyez" / "dev.jsonl").read_text().splitlines()
    keep = []
    for iid in SLICE_JUSTICES:
        keep += [ln for ln in lines if json.loads(ln)["interviewer_id"] == iid][-SESSIONS:]
    out.write_text("\n".join(keep) + "\n")
    return out


@pytest.fixture(scope="module")
def eval_run(slice_corpus, postgres_dsn, weaviate_client, tmp_path_factory):
    """One `twin eval --json --report` run into a tenant of its own; its parsed JSON and report folder."""
    from infra.cli import app

    tenant = f"eval-test-{random.randrange(16**8):08x}"
    report = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(app, ["eval", "--corpus", str(slice_corpus), "--json", "--report", str(report),
                                      "--limit", str(LIMIT), "--sessions", "0", "--seed", "7", "--tenant", tenant,
                                      "--offline"])
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    yield tenant, result, report
    import shutil

    from infra.settings import settings
    from sinks.weaviate import PERSONA_MEMORY, weaviate_tenant

    coll = weaviate_client.collections.use(PERSONA_MEMORY.name)
    coll.tenants.remove([weaviate_tenant(tenant)])
    shutil.rmtree(settings.TWIN_VAR_DIR / "models" / tenant, ignore_errors=True)  # the versions' artefacts


def test_prints_exactly_one_json_object_with_the_required_fields(eval_run):
    _, result, _ = eval_run
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["interviewers"] == 2 and out["test_turns"] == 2 * LIMIT
    assert out["test_sessions"] == 2 * 2  # 20% of 8 sessions, per justice
    for name, block in [("twin", out["twin"]), *out["baselines"].items()]:
        for key in ("semantic", "style", "match_rate", "indistinguishability"):
            assert block[key] is None or 0.0 <= block[key] <= 1.0, (name, key, block[key])
        assert isinstance(block["safety_violations"], int)
    assert set(out["baselines"]) == {"random_same_interviewer", "other_interviewer"}
    assert out["latency_ms"]["p50"] > 0 and out["latency_ms"]["p95"] >= out["latency_ms"]["p50"]
    assert out["twin"]["match_rate"] is not None and out["generator"] == "offline"
    assert out["red_team"]["cases"] == 2 * out["red_team"]["suite"]
    assert out["twin"]["details"]["classifier_agreement"] is not None  # the version's style classifier was used
    assert out["errors"] == {"unreadable_sessions": 0, "engine_errors": 0}


def test_trains_on_the_train_split_only(eval_run, postgres_dsn, weaviate_client):
    from processors.twin.profiles import ProfileStore
    from sinks.weaviate import PERSONA_MEMORY, WeaviateSink

    tenant, _, _ = eval_run
    sink = WeaviateSink(weaviate_client, PERSONA_MEMORY)
    for iid in SLICE_JUSTICES:
        profile = ProfileStore(postgres_dsn).active(tenant, iid)
        split = profile.artefacts["split"]
        assert split["test"] and not set(split["test"]) & set(split["train"])
        assert sink.count(tenant, {"interviewerId": iid, "kind": "exemplar"}) > 0
        for sid in split["test"] + split["val"]:
            assert sink.count(tenant, {"sessionId": sid}) == 0, f"held-out session {sid} is in the twin's memory"


def test_stores_runs_and_samples_and_the_eval_api_shows_them(eval_run, pg):
    tenant, result, _ = eval_run
    out = json.loads(result.stdout)
    runs = pg.execute("SELECT interviewer_id, scores FROM eval_runs WHERE tenant=%s ORDER BY interviewer_id",
                      (tenant,)).fetchall()
    assert [r[0] for r in runs] == sorted(SLICE_JUSTICES)
    for iid, scores in runs:
        assert scores["twin"]["match_rate"] == out["per_interviewer"][iid]["twin"]["match_rate"]
    n, with_real = pg.execute("SELECT count(*), count(real_text) FROM eval_samples WHERE tenant=%s AND source='offline'"
                              " AND run_id=%s", (tenant, out["run_id"])).fetchone()
    assert n == with_real == 2 * LIMIT


async def test_eval_api_returns_the_stored_numbers(eval_run, api_factory, tmp_path):
    tenant, result, _ = eval_run
    out = json.loads(result.stdout)
    async with api_factory(OBJECT_STORE_URL=tmp_path.as_uri()) as client:
        body = (await client.get("/api/digital-twin/eval/elena_kagan", headers=auth_headers(tenant))).json()
    assert body["latestScores"]["similarity"] == out["per_interviewer"]["elena_kagan"]["twin"]["match_rate"]
    assert body["trend"][-1]["runId"] == f"{out['run_id']}:elena_kagan"


def test_report_has_plots_and_the_worst_turns(eval_run):
    _, result, report = eval_run
    html = (report / "index.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
    assert "Worst turns" in html and "Red team" in html
    assert json.loads((report / "summary.json").read_text())["run_id"] == json.loads(result.stdout)["run_id"]


def test_the_turn_sample_is_deterministic_for_a_seed(scotus):
    from processors.twin.corpus import chronological_split
    from processors.twin.evaluation.run import _sample_turns

    split = chronological_split([t for t in scotus if t.interviewer_id == "elena_kagan"])
    a, total = _sample_turns("elena_kagan", split, 10, seed=1)
    b, _ = _sample_turns("elena_kagan", split, 10, seed=1)
    c, _ = _sample_turns("elena_kagan", split, 10, seed=2)
    key = lambda xs: [(x.session_id, x.index) for x in xs]  # noqa: E731
    assert key(a) == key(b) != key(c) and len(a) == 10 and total > 10
