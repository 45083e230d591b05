"""GET /api/digital-twin/eval/:id and the blinded rating API, against real PostgreSQL."""

import json

import pytest
from tests.credentials import api_key, auth_headers

BASE = "/api/digital-twin/eval"


def _scores(match: float, indist: float, violations: int = 0) -> dict:
    return {"run": "r", "generator": "offline", "test_turns": 10, "via": "gateway",
            "twin": {"match_rate": match, "match_rate_cross": match, "match_rate_same": match - 0.1,
                     "rank_same": match - 0.2, "semantic": 0.2, "style": 0.8, "indistinguishability": indist,
                     "safety_violations": violations, "se": {"rank_same": 0.02}},
            "baselines": {"random_same_interviewer": {"match_rate": 0.5}, "other_interviewer": {"match_rate": 0.55}},
            "red_team": {"cases": 10, "violations": 1}, "latency_ms": {"p50": 80, "p95": 200}}


@pytest.fixture
def seeded(pg, tenant):
    """Two runs of interviewer `kagan` and three offline samples of one session in `tenant`."""
    pg.execute("INSERT INTO tenants (tenant, name) VALUES (%s, %s)", (tenant, tenant))
    pg.execute("INSERT INTO interviewers (tenant, interviewer_id) VALUES (%s, 'kagan')", (tenant,))
    for i, (match, indist) in enumerate(((0.6, 0.4), (0.7, 0.5)), start=1):
        pg.execute("INSERT INTO eval_runs (run_id, tenant, interviewer_id, profile_version, scores, created_at)"
                   " VALUES (%s, %s, 'kagan', %s, %s, now() - make_interval(mins => %s))",
                   (f"{tenant}-run{i}:kagan", tenant, i, json.dumps(_scores(match, indist, violations=i - 1)), 10 - i))
    for i in range(3):
        ctx = {"history": [{"role": "interviewer", "text": f"Question {i}?"}], "candidateTurn": f"Answer {i}.",
               "turnIndex": 2 * i + 1}
        pg.execute("INSERT INTO eval_samples (sample_id, tenant, interviewer_id, session_id, correlation_id, context,"
                   " twin_text, real_text, scores, run_id, source) VALUES (%s, %s, 'kagan', 's1', %s, %s, %s, %s, '{}',"
                   " %s, 'offline')",
                   (f"{tenant}-smp{i}", tenant, f"c{i}", json.dumps(ctx), f"twin line {i}", f"real line {i}",
                    f"{tenant}-run2"))
    return tenant


@pytest.fixture
async def eval_api(api_factory, tmp_path, tenant):
    async with api_factory(OBJECT_STORE_URL=tmp_path.as_uri(), EVAL_MIN_HUMAN_RATINGS=2) as client:
        yield client


async def test_returns_latest_scores_and_trend(eval_api, seeded):
    resp = await eval_api.get(f"{BASE}/kagan", headers=auth_headers(seeded))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["latestScores"]["matchRate"] == 0.7
    assert body["latestScores"]["matchRateSame"] == pytest.approx(0.6)
    assert body["latestScores"]["rankSame"] == pytest.approx(0.5)
    assert "similarity" not in body["latestScores"]  # named for what it is: a match rate
    assert body["latestScores"]["indistinguishability"] == 0.5  # no human ratings yet: the discriminator's
    assert body["latestScores"]["safety"] == pytest.approx(1 - 2 / 20)  # 1 turn + 1 red-team case of 20 checked
    assert [p["matchRate"] for p in body["trend"]] == [0.6, 0.7]
    assert [p["profileVersion"] for p in body["trend"]] == [1, 2]
    assert body["details"]["indistinguishabilitySource"] == "discriminator"
    assert body["details"]["baselines"]["random_same_interviewer"]["matchRate"] == 0.5
    assert body["details"]["standardErrors"] == {"rank_same": 0.02} and body["details"]["via"] == "gateway"


async def test_unknown_interviewer_and_another_tenants_both_answer_404(eval_api, seeded):
    missing = await eval_api.get(f"{BASE}/nobody-{seeded}", headers=auth_headers(seeded))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_interviewer"
    other = await eval_api.get(f"{BASE}/kagan", headers=auth_headers(f"{seeded}-other"))
    assert other.status_code == 404 and other.json() == missing.json() | {
        "error": {**missing.json()["error"], "message": other.json()["error"]["message"]}}


async def test_rating_needs_a_valid_token_of_the_same_tenant(eval_api, seeded):
    assert (await eval_api.post(f"{BASE}/ratings/login")).status_code == 401
    assert (await eval_api.post(f"{BASE}/ratings/login", headers={"Authorization": "Bearer nope"})).status_code == 401
    token = api_key(seeded, scopes=["rater"], name="alice")
    ok = await eval_api.post(f"{BASE}/ratings/login", headers={"Authorization": f"Bearer {token}"})
    assert ok.json() == {"rater": "alice", "tenant": seeded}
    cross = await eval_api.get(f"{BASE}/ratings/next", headers={"Authorization": f"Bearer {token}",
                                                               "X-Tenant-Id": f"{seeded}-other"})
    assert cross.status_code == 403 and cross.json()["error"]["code"] == "tenant_mismatch"
    # A key without the rater scope cannot rate.
    capture_only = await eval_api.get(f"{BASE}/ratings/next", headers=auth_headers(seeded, scopes=["capture"]))
    assert capture_only.status_code == 403 and capture_only.json()["error"]["code"] == "insufficient_scope"


async def test_turn_ratings_are_blinded_stored_once_and_feed_indistinguishability(eval_api, seeded, pg):
    headers = auth_headers(seeded, scopes=["rater"], name="alice")
    seen = set()
    for _ in range(3):
        resp = await eval_api.get(f"{BASE}/ratings/next", params={"kind": "turn"}, headers=headers)
        assert resp.status_code == 200, resp.text
        item = resp.json()["item"]
        # Nothing but the two texts: no sample ids, scores, sources or run ids to give the answer away.
        assert set(item) == {"ratingId", "kind", "interviewerId", "context", "turns", "options"}
        assert [set(o) for o in item["options"]] == [{"option", "text", "replies"}] * 2
        texts = {o["text"] for o in item["options"]}
        n = texts.pop()[-1]
        assert {o["text"] for o in item["options"]} == {f"real line {n}", f"twin line {n}"}
        assert item["context"]["candidateTurn"] == f"Answer {n}."
        seen.add(n)
        real = next(o["option"] for o in item["options"] if o["text"].startswith("real"))
        again = await eval_api.get(f"{BASE}/ratings/next", params={"kind": "turn"}, headers=headers)
        assert again.json()["item"]["ratingId"] == item["ratingId"]  # a pending item is served again
        done = await eval_api.post(f"{BASE}/ratings/{item['ratingId']}", json={"choice": real}, headers=headers)
        assert done.status_code == 200 and done.json()["recorded"] is True
        twice = await eval_api.post(f"{BASE}/ratings/{item['ratingId']}", json={"choice": real}, headers=headers)
        assert twice.status_code == 409
    assert seen == {"0", "1", "2"}
    empty = await eval_api.get(f"{BASE}/ratings/next", params={"kind": "turn"}, headers=headers)
    assert empty.json() == {"item": None, "answered": 3}
    assert pg.execute("SELECT count(*), bool_and(correct) FROM eval_ratings WHERE tenant=%s", (seeded,)).fetchone() \
        == (3, True)
    scores = (await eval_api.get(f"{BASE}/kagan", headers=auth_headers(seeded))).json()
    # The rater always found the real line: humans can tell them apart, 2·(1 − 1.0) = 0.
    assert scores["details"]["human"]["turn"] == {"ratings": 3, "accuracy": 1.0, "indistinguishability": 0.0}
    assert scores["details"]["indistinguishabilitySource"] == "human"
    assert scores["latestScores"]["indistinguishability"] == 0.0


async def test_session_rating_shows_two_versions_of_the_same_turns(eval_api, seeded):
    headers = auth_headers(seeded, scopes=["rater"], name="alice")
    item = (await eval_api.get(f"{BASE}/ratings/next", params={"kind": "session"}, headers=headers)).json()["item"]
    assert item["kind"] == "session" and [t["candidateTurn"] for t in item["turns"]] == [
        "Answer 0.", "Answer 1.", "Answer 2."]
    versions = sorted(tuple(o["replies"]) for o in item["options"])
    assert versions == [tuple(f"real line {i}" for i in range(3)), tuple(f"twin line {i}" for i in range(3))]
    wrong = next(o["option"] for o in item["options"] if o["replies"][0].startswith("twin"))
    resp = await eval_api.post(f"{BASE}/ratings/{item['ratingId']}", json={"choice": wrong}, headers=headers)
    assert resp.status_code == 200
    scores = (await eval_api.get(f"{BASE}/kagan", headers=auth_headers(seeded))).json()
    assert scores["details"]["human"]["session"]["indistinguishability"] == 1.0  # fooled: capped at 1


async def test_rating_page_is_served(eval_api):
    resp = await eval_api.get(f"{BASE}/ratings/page")
    assert resp.status_code == 200 and "text/html" in resp.headers["content-type"]
    assert "Which one is the real interviewer?" in resp.text
