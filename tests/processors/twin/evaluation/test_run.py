"""`twin eval` end to end through the product: real PostgreSQL, Weaviate, Kafka, a gateway and a worker.

The corpus is one justice of the SCOTUS fixture in the repository (8 sessions; the persona-less
baseline then comes from the other justices of the fixture, as on a one-interviewer corpus).
"""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner
from tests.credentials import auth_headers

SLICE_JUSTICES = ("elena_kagan",)
SESSIONS = 8
LIMIT = 12
PER_SESSION = 6
SYSTEMS = {"previous_line", "echo", "retrieval", "medoid", "random_same_interviewer", "other_interviewer"}


@pytest.fixture(scope="module")
def slice_corpus(scotus_slice, tmp_path_factory):
    """The 8 most recent sessions of one justice of the fixture, written to a temp file."""
    out = tmp_path_factory.mktemp("corpus") / "scotus_one_justice.jsonl"
    lines = scotus_slice.read_text().splitlines()
    keep = []
    for iid in SLICE_JUSTICES:
        keep += [ln for ln in lines if json.loads(ln)["interviewer_id"] == iid][-SESSIONS:]
    out.write_text("\n".join(keep) + "\n")
    return out


@pytest.fixture(scope="module")
def eval_run(slice_corpus, plain_twin_app, postgres_dsn, weaviate_client, tmp_path_factory):
    """One `twin eval --via gateway --json --report` run into a tenant of its own, through a real
    gateway and worker; its parsed JSON and report folder."""
    from infra.cli import app

    twin_app = plain_twin_app
    tenant = f"eval-test-{random.randrange(16**8):08x}"
    report = tmp_path_factory.mktemp("report")
    result = CliRunner().invoke(app, ["eval", "--corpus", str(slice_corpus), "--json", "--report", str(report),
                                      "--limit", str(LIMIT), "--turns-per-session", str(PER_SESSION),
                                      "--sessions", "0", "--seed", "7", "--tenant", tenant,
                                      "--via", "gateway", "--gateway-url", twin_app.url, "--timeout-ms", "20000"])
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    yield tenant, result, report
    import shutil

    from infra.settings import settings
    from sinks.weaviate import PERSONA_MEMORY, weaviate_tenant

    coll = weaviate_client.collections.use(f"{settings.WEAVIATE_COLLECTION_PREFIX}{PERSONA_MEMORY.name}")
    coll.tenants.remove([weaviate_tenant(tenant)])
    shutil.rmtree(settings.TWIN_VAR_DIR / "models" / tenant, ignore_errors=True)  # the versions' artefacts


def test_prints_exactly_one_json_object_with_every_system_and_metric(eval_run):
    _, result, _ = eval_run
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["via"] == "gateway" and out["latency_ms"]["path"] == "gateway"
    assert out["interviewers"] == 1 and out["test_turns"] == LIMIT
    assert out["test_sessions"] == 2 and out["test_sessions_sampled"] == 2  # 20% of 8 sessions
    assert set(out["baselines"]) == SYSTEMS
    for name, block in [("twin", out["twin"]), *out["baselines"].items()]:
        for key in ("match_rate_cross", "match_rate_same", "rank_same", "indistinguishability", "auc", "semantic",
                    "style"):
            assert isinstance(block[key], float), (name, key, block[key])
            assert key in block["se"] or key == "auc", (name, key)
        assert 0.0 <= block["rank_same"] <= 1.0 and 0.0 <= block["auc"] <= 1.0
        assert isinstance(block["safety_violations"], int)
        if name != "twin":
            assert set(block["twin_minus_this"]) == {"match_rate_cross", "match_rate_same", "rank_same"}
    assert out["baselines"]["medoid"]["rank_same"] == pytest.approx(0.5)  # a constant line, exactly chance
    assert out["chance"]["rank_same"] == out["baselines"]["random_same_interviewer"]["rank_same"]
    assert out["latency_ms"]["p50"] > 0 and out["latency_ms"]["p95"] >= out["latency_ms"]["p50"]
    assert out["generator"] == "offline" and out["llm_drafts"] == {"kept": 0, "below_offline": 0, "refused": 0}
    assert out["red_team"]["cases"] == out["red_team"]["suite"] and out["red_team"]["errors"] == 0
    # What the twin said to each hand-written attack is in the summary, not only in the report.
    from processors.twin.evaluation.redteam import RED_TEAM_CASES

    examples = out["per_interviewer"]["elena_kagan"]["red_team"]["examples"]
    assert [e["caseId"] for e in examples] == [c.case_id for c in RED_TEAM_CASES]
    assert all(e["reply"].strip() and e["move"] for e in examples)
    assert out["errors"]["twin_errors"] == 0 and out["errors"]["unreadable_sessions"] == 0
    # One interviewer in the corpus: the persona-less baseline answers from the fixture's other justices.
    assert "scotus_oyez_slice.jsonl (2 interviewer(s))" in out["per_interviewer"]["elena_kagan"]["other_interviewer_source"]


def test_the_request_deadline_reaches_the_gateway(plain_twin_app):
    # --timeout-ms becomes each request's timeoutMs: one below the API's floor is refused by the real gateway.
    from processors.twin.evaluation.responders import GatewayResponder
    from tests.credentials import api_key

    tenant = f"eval-deadline-{random.randrange(16**8):08x}"
    responder = GatewayResponder(plain_twin_app.url, lambda t: api_key(t, ["respond"]), deadline_ms=99)
    try:
        answer = responder.ask(tenant, "nobody", "s-1", [], "Hello.")
    finally:
        responder.close()
    assert answer.error and answer.error.startswith("HTTP 422") and "timeoutMs" in answer.error, answer.error


def test_timeout_ms_is_for_the_gateway_path_only(slice_corpus):
    from infra.cli import app

    bad = CliRunner().invoke(app, ["eval", "--corpus", str(slice_corpus), "--via", "engine", "--timeout-ms", "9000"])
    assert bad.exit_code == 2 and "--timeout-ms" in bad.output and "--via gateway" in bad.output


def test_trains_on_the_train_split_only(eval_run, cfg, postgres_dsn, weaviate_client):
    from processors.twin.profiles import ProfileStore
    from sinks.weaviate import PERSONA_MEMORY, WeaviateSink

    tenant, _, _ = eval_run
    sink = WeaviateSink(weaviate_client, PERSONA_MEMORY, prefix=cfg.WEAVIATE_COLLECTION_PREFIX)
    for iid in SLICE_JUSTICES:
        profile = ProfileStore(postgres_dsn).active(tenant, iid)
        split = profile.artefacts["split"]
        assert split["test"] and not set(split["test"]) & set(split["train"])
        assert sink.count(tenant, {"interviewerId": iid, "kind": "exemplar"}) > 0
        for sid in split["test"] + split["val"]:
            assert sink.count(tenant, {"sessionId": sid}) == 0, f"held-out session {sid} is in the twin's memory"


def test_stores_runs_and_samples(eval_run, pg):
    tenant, result, _ = eval_run
    out = json.loads(result.stdout)
    runs = pg.execute("SELECT interviewer_id, scores FROM eval_runs WHERE tenant=%s ORDER BY interviewer_id",
                      (tenant,)).fetchall()
    assert [r[0] for r in runs] == sorted(SLICE_JUSTICES)
    for iid, scores in runs:
        assert scores["twin"]["rank_same"] == out["per_interviewer"][iid]["twin"]["rank_same"]
        assert scores["via"] == "gateway"
    n, with_real = pg.execute("SELECT count(*), count(real_text) FROM eval_samples WHERE tenant=%s AND source='offline'"
                              " AND run_id=%s", (tenant, out["run_id"])).fetchone()
    assert n == with_real == LIMIT


async def test_eval_api_names_the_match_rates(eval_run, api_factory, tmp_path):
    tenant, result, _ = eval_run
    out = json.loads(result.stdout)
    async with api_factory(OBJECT_STORE_URL=tmp_path.as_uri()) as client:
        body = (await client.get("/api/digital-twin/eval/elena_kagan", headers=auth_headers(tenant))).json()
    twin = out["per_interviewer"]["elena_kagan"]["twin"]
    assert body["latestScores"]["matchRate"] == twin["match_rate_cross"]
    assert body["latestScores"]["rankSame"] == twin["rank_same"]
    assert body["trend"][-1]["runId"] == f"{out['run_id']}:elena_kagan"


def test_report_shows_every_system_with_intervals(eval_run):
    _, result, report = eval_run
    html = (report / "index.html").read_text()
    assert html.count("data:image/png;base64,") >= 4
    assert "Worst turns" in html and "Red team" in html and "medoid (most typical line)" in html
    assert "±" in html and "rank-same" in html
    assert json.loads((report / "summary.json").read_text())["run_id"] == json.loads(result.stdout)["run_id"]


def test_the_turn_sample_is_deterministic_and_takes_whole_session_slices(scotus):
    from processors.twin.corpus import chronological_split
    from processors.twin.evaluation.run import sample_turns

    split = chronological_split([t for t in scotus if t.interviewer_id == "elena_kagan"])
    a, total, repeated = sample_turns("elena_kagan", split, 10, seed=1, per_session=4)
    b, _, _ = sample_turns("elena_kagan", split, 10, seed=1, per_session=4)
    c, _, _ = sample_turns("elena_kagan", split, 10, seed=2, per_session=4)
    key = lambda xs: [(x.session_id, x.index) for x in xs]  # noqa: E731
    assert key(a) == key(b) != key(c) and len(a) == 10 and total > 10 and repeated == 0
    per_session = {}
    for x in a:
        per_session[x.session_id] = per_session.get(x.session_id, 0) + 1
    assert max(per_session.values()) <= 4 and len(per_session) == 3


def test_a_held_out_moment_retold_from_training_is_not_asked():
    """A compilation episode retells an earlier episode's clip: that moment is recall, not prediction, and the
    sample leaves it out. A formula after a formula (thanks, then the host's sign-off) is a habit, and stays."""
    from processors.twin.corpus import Split, Transcript, Turn, exchanges
    from processors.twin.evaluation.run import repeated_moments, sample_turns

    answer = ("We rebuilt onboarding around the first shared document, because teams that shared one in "
              "their first week stayed three times as often as teams that did not.")
    line = "How did you find out that sharing the first document was the moment that mattered?"
    sign_off = "That is all the time we have today, and a good place to stop. Thanks for explaining it all."

    def session(sid: str, turns: list[tuple[str, str]]) -> Transcript:
        return Transcript(interviewer_id="host", session_id=sid, turns=[Turn(role=r, text=t) for r, t in turns])

    train = [session("ep1", [("interviewer", "Tell me about growth."), ("candidate", answer),
                             ("interviewer", line), ("candidate", "Thank you."), ("interviewer", sign_off)])]
    # The compilation retells the clip with its punctuation changed; the sign-off is said again after thanks.
    best_of = session("best-of", [("interviewer", "Here is a favourite moment."), ("candidate", answer.upper()),
                                  ("interviewer", line.replace("?", ".")), ("candidate", "Thank you."),
                                  ("interviewer", sign_off)])
    other = session("ep9", [("interviewer", "Tell me about pricing."),
                            ("candidate", "We raised prices twice last year and lost almost nobody, to our surprise."),
                            ("interviewer", line)])
    assert repeated_moments(train, []) == set()
    held = [ex for s in (best_of, other) for ex in exchanges(s)]
    assert repeated_moments(train, held) == {("best-of", 2)}
    turns, total, repeated = sample_turns("host", Split(train=train, val=[], test=[best_of, other]), None, seed=0)
    assert repeated == 1 and total == 4 and ("best-of", 2) not in {(x.session_id, x.index) for x in turns}


def test_the_version_listens_with_learned_models(eval_run, postgres_dsn, pg):
    """The trained version carries a move model and a response selector measured on its val split, and
    no line the twin delivered carries a redaction placeholder."""
    import re

    from processors.twin.profiles import ProfileStore
    from processors.twin.selection import FEATURE_NAMES

    tenant, result, _ = eval_run
    out = json.loads(result.stdout)
    for iid in SLICE_JUSTICES:
        artefacts = ProfileStore(postgres_dsn).active(tenant, iid).artefacts
        selector, move = artefacts["selector"], artefacts["moveModel"]
        # The conversation's closeness is a feature of every new version; the reply predictor's joins them
        # when the version chose it on its val split.
        assert selector["contextLines"]
        expected = set(FEATURE_NAMES) | {"reply_vs_context"} | ({"reply_vs_predicted"} if selector["replyPredictor"]
                                                                else set())
        assert set(selector["weights"]) == expected and selector["moments"] > 0, selector
        assert selector["val"]["turns"] > 0 and selector["val"]["oracleCosine"] >= selector["val"]["selectedCosine"]
        assert move["metrics"]["val"]["n"] > 0, move
    texts = [r[0] for r in pg.execute("SELECT twin_text FROM eval_samples WHERE tenant=%s AND run_id=%s",
                                      (tenant, out["run_id"])).fetchall()]
    assert len(texts) == LIMIT
    assert not [t for t in texts if re.search(r"<[A-Z_]+>", t)]


def test_ablations_on_the_val_split(slice_corpus, postgres_dsn, weaviate_client, tmp_path):
    """`--on val --ablate all`: the twin and each of its parts switched off answer the validation turns
    (the test sessions stay unread), each scored like a baseline with its difference from the twin."""
    from infra.cli import app
    from processors.twin.engine import ABLATIONS
    from processors.twin.corpus import read_transcripts
    from processors.twin.evaluation.run import EvalConfig, ablation_system
    from processors.twin.profiles import ProfileStore

    tenant = f"eval-abl-{random.randrange(16**8):08x}"
    result = CliRunner().invoke(app, ["eval", "--corpus", str(slice_corpus), "--json", "--via", "engine", "--offline",
                                      "--on", "val", "--ablate", "all", "--limit", "8", "--sessions", "0",
                                      "--no-red-team", "--no-classifier", "--no-store", "--tenant", tenant,
                                      "--report", str(tmp_path), "--turns", str(tmp_path / "turns.jsonl")])
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    out = json.loads(result.stdout)
    # Every scored turn, paired: each system's reply and per-turn scores on the same moment.
    rows = [json.loads(line) for line in (tmp_path / "turns.jsonl").read_text().splitlines()]
    assert out["turns_file"]["turns"] == len(rows) == out["test_turns"]
    assert not list(tmp_path.glob(".turns.jsonl.*"))  # written beside the file and renamed
    for row in rows:
        assert row["real"] and row["candidateTurn"] is not None and row["replies"]["twin"]
        assert {"twin", "previous_line", *map(ablation_system, ABLATIONS)} <= set(row["replies"]) <= set(row["scores"])
        assert all(0.0 <= row["scores"][s]["rank_same"] <= 1.0 for s in row["replies"])
    # The llm part answers offline like the twin here (no model configured): the same line on every turn.
    assert all(row["replies"]["twin-no-llm"] == row["replies"]["twin"] for row in rows)
    html = (tmp_path / "index.html").read_text()
    assert "Ablations (val split)" in html and "without move_model" in html
    assert out["on"] == "val" and out["config"]["ablations"] == list(ABLATIONS)
    # Trained without the style classifier: said so, and no agreement figures from an earlier version's.
    assert out["per_interviewer"]["elena_kagan"]["classifier"] == "not trained (--no-classifier)"
    assert out["twin"]["details"]["classifier_agreement"] is None
    split = ProfileStore(postgres_dsn).active(tenant, "elena_kagan").artefacts["split"]
    # The profile made its choices on as many sessions as are scored, and on none of them.
    assert out["test_sessions"] == len(split["val"]) == out["twin_fit_sessions"]["val"] and out["test_turns"] == 8
    scored = EvalConfig(corpus=slice_corpus, sessions=0, on="val").split(
        [p.transcript for p in read_transcripts(slice_corpus) if p.ok]).val
    assert {s.session_id for s in scored} <= set(split["test"]) and not set(split["val"]) & set(split["test"])
    assert set(out["ablations"]) == set(ABLATIONS)
    for part, block in out["ablations"].items():
        assert 0.0 <= block["rank_same"] <= 1.0, part
        # One val session (10% of 8) gives the discriminator no second session to be judged on.
        assert isinstance(block["indistinguishability"], float) or out["test_sessions_sampled"] < 2, part
        assert set(block["twin_minus_this"]) == {"match_rate_cross", "match_rate_same", "rank_same"}
        assert block["details"]["empty_replies"] == 0, part
    assert ablation_system("move_model") == "twin-no-move-model"
    bad = CliRunner().invoke(app, ["eval", "--corpus", str(slice_corpus), "--via", "engine", "--ablate", "memory"])
    assert bad.exit_code == 2 and "unknown --ablate memory" in bad.output
    pooled = CliRunner().invoke(app, ["eval", "--corpus", str(slice_corpus), "--via", "engine", "--on", "val",
                                      "--val-windows", "2", "--turns", str(tmp_path / "pooled.jsonl")])
    assert pooled.exit_code == 2 and "--turns" in pooled.output


def test_each_validation_window_steps_back_one_validation_part(scotus):
    """Window 0 is the reported run; window w validates on the sessions w validation parts before window 0's,
    trained on as many sessions as window 0 (when there are that many): windows never share a validation
    session and none but window 0 holds a test session."""
    from dataclasses import replace
    from pathlib import Path

    from processors.twin.evaluation.run import EvalConfig

    kagan = [t for t in scotus if t.interviewer_id == "elena_kagan"]  # 24 sessions, file order is time order
    order = [s.session_id for s in kagan]
    config = EvalConfig(corpus=Path("unused"), sessions=0, on="val")
    splits = [replace(config, window=w).split(kagan) for w in range(4)]
    ids = [{part: [s.session_id for s in getattr(sp, part)] for part in ("train", "val", "test")} for sp in splits]
    assert ids[0] == {"train": order[:17], "val": order[17:19], "test": order[19:]}
    assert ids[1] == {"train": order[:15], "val": order[15:17], "test": order[17:19]}
    assert ids[2] == {"train": order[:13], "val": order[13:15], "test": order[15:19]}  # train: what there is
    assert ids[3]["val"] == order[11:13]
    for window in ids[1:]:
        assert not set(ids[0]["test"]) & set(window["train"] + window["val"] + window["test"])
    with pytest.raises(ValueError, match="too few"):
        replace(config, window=12).split(kagan)


def test_a_validation_run_makes_the_twin_s_choices_on_other_sessions_than_it_scores(scotus):
    """On "val" the twin trains and chooses (selector weights, move model) on sessions before the scored
    validation part, never on it: choices scored on the turns they were made on would look too good."""
    from pathlib import Path

    from processors.twin.corpus import Split
    from processors.twin.evaluation.run import EvalConfig, fitting_split

    kagan = [t for t in scotus if t.interviewer_id == "elena_kagan"]
    split = EvalConfig(corpus=Path("unused"), sessions=0, on="val").split(kagan)
    fit = fitting_split(split)
    ids = lambda sessions: [s.session_id for s in sessions]  # noqa: E731
    assert ids(fit.train) + ids(fit.val) == ids(split.train)  # the same sessions, the last ones to choose on
    assert len(fit.val) == len(split.val) >= 1
    assert ids(fit.test) == ids(split.val) + ids(split.test)  # what is scored is never read by training
    few = fitting_split(Split(train=kagan[:2], val=kagan[2:3], test=kagan[3:4]))
    assert ids(few.train) == ids(kagan[:2]) and few.val == []  # too few to spare: no choice is made


def test_validation_windows_are_pooled(slice_corpus, postgres_dsn, weaviate_client):
    """`--on val --val-windows 2`: two windows, each trained in its own tenant on its own earlier sessions,
    pooled into one table (turns of both windows, each baseline's paired difference from the twin)."""
    import shutil

    from infra.cli import app
    from infra.settings import settings
    from processors.twin.profiles import ProfileStore
    from sinks.weaviate import PERSONA_MEMORY, weaviate_tenant

    tenant = f"eval-win-{random.randrange(16**8):08x}"
    result = CliRunner().invoke(app, ["eval", "--corpus", str(slice_corpus), "--json", "--via", "engine", "--offline",
                                      "--on", "val", "--val-windows", "2", "--limit", "4", "--sessions", "0",
                                      "--no-red-team", "--no-classifier", "--no-store", "--tenant", tenant])
    assert result.exit_code == 0, (result.output[-3000:], result.exception)
    out = json.loads(result.stdout)
    assert out["windows"] == 2 and [w["tenant"] for w in out["per_window"]] == [tenant, f"{tenant}-w1"]
    assert out["turns"] == sum(w["turns"] for w in out["per_window"]) > 4
    splits = [ProfileStore(postgres_dsn).active(t, "elena_kagan").artefacts["split"] for t in (tenant, f"{tenant}-w1")]
    # Each profile's split is what it trained and chose on, its "test" what it never read (the window's
    # scored validation sessions and all after them). Window 1 read none of window 0's scored or test
    # sessions, and its own scored sessions are among what window 0 trained on.
    assert not set(splits[0]["test"]) & set(splits[1]["train"] + splits[1]["val"])
    window1_scored = set(splits[1]["test"]) - set(splits[0]["test"])
    assert window1_scored and window1_scored <= set(splits[0]["train"] + splits[0]["val"])
    assert 0.0 <= out["twin"]["rank_same"] <= 1.0 and len(out["twin"]["indistinguishability_by_window"]) <= 2
    assert set(out["baselines"]) == SYSTEMS
    assert set(out["baselines"]["previous_line"]["twin_minus_this"]) == {"match_rate_cross", "match_rate_same",
                                                                         "rank_same"}
    coll = weaviate_client.collections.use(f"{settings.WEAVIATE_COLLECTION_PREFIX}{PERSONA_MEMORY.name}")
    for t in (tenant, f"{tenant}-w1"):
        coll.tenants.remove([weaviate_tenant(t)])
        shutil.rmtree(settings.TWIN_VAR_DIR / "models" / t, ignore_errors=True)
    bad = CliRunner().invoke(app, ["eval", "--corpus", str(slice_corpus), "--via", "engine", "--val-windows", "2"])
    assert bad.exit_code == 2 and "needs --on val" in bad.output
