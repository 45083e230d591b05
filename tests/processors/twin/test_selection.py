"""The learned response selector on real public-record sessions (the in-repo SCOTUS slice)."""

from __future__ import annotations

import numpy as np
import pytest

from processors.twin.corpus import chronological_split, exchanges
from processors.twin.offline_generator import Exemplar
from processors.twin.selection import (CONTEXT_WEIGHT_GRID, FEATURE_NAMES, FIT_FEATURE_NAMES, FIT_WEIGHT_GRID,
                                       HUB_PENALTY, SPECIFICITY_GRID, ResponseSelector, fit_features, fit_selector,
                                       moment_query)

JUSTICE = "ruth_bader_ginsburg"


@pytest.fixture(scope="module")
def split(scotus):
    sessions = [t for t in scotus if t.interviewer_id == JUSTICE]
    return chronological_split(sessions, val=0.15, test=0.15)


@pytest.fixture(scope="module")
def selector(split, embedder) -> ResponseSelector:
    return fit_selector(split.train, embedder, val=split.val, max_moments=60, max_val_turns=40, seed=0)


def test_fit_records_what_it_learned_from(selector, split):
    meta = selector.meta
    predicted = ["reply_vs_predicted"] if selector.predictor is not None else []
    assert meta["replyPredictor"] == bool(predicted)
    assert meta["contextLines"] and selector.uses_context
    assert meta["features"] == [*FEATURE_NAMES, "reply_vs_context", *predicted]
    assert meta["moments"] == 60
    assert set(meta["weights"]) == set(meta["features"])
    assert meta["poolLines"] == sum(1 for t in split.train for _ in exchanges(t))
    assert len(selector.vectors) == meta["poolLines"]
    assert not meta["usesMoveModel"]
    assert meta["saidBefore"]
    # Typicality is no longer a feature (its column stays, at zero, so every version has one layout).
    assert meta["typicality"] is False and meta["weights"]["typicality"] == 0.0
    assert set(meta["fitWeights"]) == set(FIT_FEATURE_NAMES) | {"said_before", "reply_vs_context", *predicted}
    # With or without the reply predictor, and the label's specificity: whichever option's selected lines
    # scored best on validation.
    others = meta["valOtherOptions"]
    assert len(others) == 2 * len(SPECIFICITY_GRID) - 1  # with and without the predictor, each specificity
    assert all(meta["val"]["chosenScore"] >= o["chosenScore"] for o in others)
    assert meta["specificity"] in SPECIFICITY_GRID
    assert 0 < meta["val"]["chosenBeaten"] < 1
    assert selector.fit_model is not None and selector.temperature == 0.0
    mrr = meta["val"]["realLineMrr"]
    assert set(mrr) == {str(w) for w in FIT_WEIGHT_GRID} and all(0 < v <= 1 for v in mrr.values())
    # Fit weight, context weight and own-thread switch: the combination whose selected lines beat the most
    # of the justice's other lines and of the session's other real lines on the validation split (the first
    # such, lightest weights first).
    grid = meta["val"]["grid"]
    assert len(grid) == len(FIT_WEIGHT_GRID) * len(CONTEXT_WEIGHT_GRID) * 2
    best = max(grid, key=lambda g: g["beaten"] + g["rankSame"])
    assert 0 < best["beatenSe"] < 0.2 and all(0 <= g["rankSame"] <= 1 for g in grid)
    assert (selector.fit_weight, selector.context_weight, selector.own_thread) == \
        (best["fitWeight"], best["contextWeight"], best["ownThread"])
    assert meta["val"]["chosenScore"] == best["beaten"] + best["rankSame"]
    assert meta["val"]["chosenBeaten"] == best["beaten"]


def test_fit_model_prefers_the_real_line_to_misplaced_ones(selector, split, embedder):
    """Held-out moments: the justice's real next line is scored above the same session's lines from other
    moments and above lines of other sessions more often than chance (the fit model never saw them)."""
    from processors.twin.selection import CandidateSet
    from processors.twin.text import stem_set

    wins, total = 0, 0
    for session in split.val:
        moments = list(exchanges(session, max_context_turns=10**6))
        lines = [m.interviewer_reply.text for m in moments]
        others = [e.interviewer_reply.text for t in split.train[:3] for e in exchanges(t)][:30]
        for k, ex in enumerate(moments[1:], start=1):
            misplaced = [x for j, x in enumerate(lines) if abs(j - k) > 2][:10] + others
            texts = [ex.interviewer_reply.text, *misplaced]
            vecs = embedder.embed_cached(texts)
            cands = CandidateSet(texts, vecs, vecs, np.zeros(len(texts)), [None] * len(texts),
                                 np.ones(len(texts)), [stem_set(x) for x in texts])
            query = moment_query(embedder, list(ex.context_turns), ex.candidate_turn.text if ex.candidate_turn else "")
            assert fit_features(query, cands).shape == (len(texts), len(FIT_FEATURE_NAMES) + 2)  # + said, context
            scores = selector.fit_scores(query, cands)
            wins += int((scores[0] > scores[1:]).sum())
            total += len(texts) - 1
    assert total > 200
    assert wins / total > 0.6, wins / total


def test_versions_fitted_with_typicality_keep_it(selector, split, embedder):
    """A selector whose meta says it was fitted with typicality (every version before it was dropped) still
    feeds the column to its model: only the stored choice decides."""
    import copy

    ex = list(exchanges(split.val[0], max_context_turns=10**6))[-1]
    query = moment_query(embedder, list(ex.context_turns), ex.candidate_turn.text if ex.candidate_turn else "")
    cands = selector.candidate_set([Exemplar.from_exchange(e) for e in exchanges(split.train[0])][:12], embedder)
    older = copy.copy(selector)
    older.meta = {**selector.meta, "typicality": True}
    older.model = copy.deepcopy(selector.model)
    older.model.coef_ = selector.model.coef_.copy()
    older.model.coef_[FEATURE_NAMES.index("typicality")] = 1.0
    gap = older.closeness(query, cands) - selector.closeness(query, cands)
    assert np.allclose(gap, cands.reply_vectors @ selector.typical, atol=1e-5)


def test_a_line_already_said_in_the_session_is_less_plausible(selector, split, embedder):
    """The fit model learned from the session's earlier lines among its negatives: the same line scores
    lower when the justice already said it here than when they did not (people rarely repeat a line)."""
    from dataclasses import replace

    assert selector.meta["fitWeights"]["said_before"] < 0
    session = split.val[0]
    ex = list(exchanges(session, max_context_turns=10**6))[-1]
    query = moment_query(embedder, list(ex.context_turns), ex.candidate_turn.text if ex.candidate_turn else "")
    earlier = sorted(query.said)[:5]
    assert earlier and all(x in query.said for x in earlier)
    cands = selector.candidate_set([Exemplar(reply=x, score=0.5) for x in earlier], embedder)
    said = selector.fit_scores(query, cands)
    not_said = selector.fit_scores(replace(query, said=frozenset()), cands)
    assert (said < not_said).all(), (said, not_said)


def test_selected_lines_fit_the_real_next_line_better_than_retrieval_top1(selector):
    """Held-out sessions: the selected lines beat more of the justice's other lines, and more of the
    session's other real lines, in closeness to what the justice really said next than the nearest
    situation's line does; their cosine stays under the ceiling of the best candidate. (Raw cosine is not
    the test: the justice's most typical lines win it.)"""
    val = selector.meta["val"]
    assert 30 <= val["turns"] <= 40, val
    assert val["chosenScore"] > val["retrievalTop1Score"] + 0.02, val
    assert val["selectedCosine"] < val["oracleCosine"], val


def test_scores_follow_the_moment(selector, split, embedder):
    """Stored vectors are used for known exemplars; an unknown line is embedded; scores are finite and
    the same for the same inputs."""
    session = split.val[0]
    ex = list(exchanges(session, max_context_turns=10**6))[3]
    history = list(ex.context_turns)
    cand = ex.candidate_turn.text if ex.candidate_turn else ""
    pool = [e for t in split.train for e in exchanges(t)][:20]
    exemplars = [Exemplar.from_exchange(e, score=0.5) for e in pool]
    exemplars.append(Exemplar(reply="A line nobody stored: what is the limiting principle here?", score=0.4))
    query = moment_query(embedder, history, cand)
    cands = selector.candidate_set(exemplars, embedder)
    assert np.allclose(cands.reply_vectors[0], selector.vectors[exemplars[0].exemplar_id][0])
    assert np.linalg.norm(cands.reply_vectors[-1]) == pytest.approx(1.0, abs=1e-3)
    first = selector.scores(query, cands)
    assert first.shape == (len(exemplars),) and np.isfinite(first).all()
    assert np.array_equal(first, selector.scores(query, cands))
    assert len(set(np.round(first, 6))) > 1  # it tells lines apart


def test_a_line_found_by_its_words_gets_its_moments_situation_score(selector, split, embedder):
    """Memory's line search scores a hit by its closeness to the conversation; the selector replaces that
    by the stored moment's situation closeness, as memory's moment search would have scored it."""
    ex = list(exchanges(split.val[0], max_context_turns=10**6))[4]
    query = moment_query(embedder, list(ex.context_turns), ex.candidate_turn.text if ex.candidate_turn else "")
    stored = [Exemplar.from_exchange(e, score=0.99) for e in list(exchanges(split.train[0]))[:5]]
    unknown = Exemplar(reply="Is there a limiting principle?", score=0.3)
    cands = selector.candidate_set([*stored, unknown], embedder, query.situation)
    expected = [float(selector.situations[e.exemplar_id] @ query.situation) for e in stored]
    assert np.allclose(cands.situation_scores[:-1], expected) and cands.situation_scores[-1] == pytest.approx(0.3)
    assert not np.allclose(cands.situation_scores[:-1], 0.99)


def test_save_and_load_give_the_same_scores(selector, split, embedder, tmp_path):
    path = selector.save(tmp_path / "selector.joblib")
    again = ResponseSelector.load(path)
    ex = list(exchanges(split.val[0], max_context_turns=10**6))[5]
    query = moment_query(embedder, list(ex.context_turns), ex.candidate_turn.text if ex.candidate_turn else "")
    exemplars = [Exemplar.from_exchange(e) for t in split.train[:2] for e in exchanges(t)]
    a = selector.scores(query, selector.candidate_set(exemplars, embedder))
    b = again.scores(query, again.candidate_set(exemplars, embedder))
    assert np.allclose(a, b)
    assert again.fit_model is not None and (again.predictor is None) == (selector.predictor is None)
    assert again.meta == selector.meta and again.hubs == selector.hubs


def test_hub_lines_lose_what_they_won_too_often(selector, split, embedder):
    """The closeness model's first line at each train moment is counted; at request time a line loses
    HUB_PENALTY times log(1 + its count), so a line it puts first everywhere no longer wins everywhere."""
    assert selector.meta["hubPenalty"] == HUB_PENALTY > 0
    assert sum(selector.hubs.values()) == selector.meta["moments"]  # one first line per train moment
    assert set(selector.hubs) <= set(selector.vectors)
    hub, count = max(selector.hubs.items(), key=lambda kv: kv[1])
    assert count > 1 and selector.meta["hubTopCount"] == count
    ex = list(exchanges(split.val[0], max_context_turns=10**6))[3]
    query = moment_query(embedder, list(ex.context_turns), ex.candidate_turn.text if ex.candidate_turn else "")
    pool = [e for t in split.train for e in exchanges(t)]
    exemplars = [Exemplar.from_exchange(e) for e in pool if Exemplar.from_exchange(e).exemplar_id == hub]
    exemplars += [Exemplar.from_exchange(e) for e in pool[:10]]
    cands = selector.candidate_set(exemplars, embedder)
    penalty = selector.hub_penalty(cands)
    assert penalty[0] == pytest.approx(HUB_PENALTY * np.log1p(count))
    assert all(p == pytest.approx(HUB_PENALTY * np.log1p(selector.hubs.get(k, 0))) for p, k in zip(penalty, cands.keys))
    without = ResponseSelector(selector.model, selector.typical, selector.vectors, dict(selector.meta),
                               selector.fit_model, selector.predictor, selector.situations)  # no counts: no penalty
    assert np.allclose(without.scores(query, cands) - selector.scores(query, cands), penalty)


def test_one_session_is_not_enough(split, embedder):
    with pytest.raises(ValueError, match="two train sessions"):
        fit_selector(split.train[:1], embedder)


def test_the_reply_predictor_points_towards_what_is_said_next(split, embedder):
    """Held-out moments: the predicted reply is closer to the real next line than the interviewer's
    typical line is (it predicts something about this moment), and the selector fitted with it
    scores lines with its cosine as one more feature."""
    # No val: the predictor is used. Without context lines: the features of selectors fitted before them.
    sel = fit_selector(split.train, embedder, max_moments=40, seed=1, context_lines=False)
    assert sel.predictor is not None and sel.meta["features"] == [*FEATURE_NAMES, "reply_vs_predicted"]
    assert not sel.uses_context
    cands = sel.candidate_set([Exemplar.from_exchange(e) for t in split.train[:2] for e in exchanges(t)], embedder)
    gains = []
    for session in split.val:
        for ex in list(exchanges(session, max_context_turns=10**6))[1:]:
            query = moment_query(embedder, list(ex.context_turns), ex.candidate_turn.text if ex.candidate_turn else "")
            real = embedder.embed_cached([ex.interviewer_reply.text])[0]
            gains.append(float(sel.predictor.predict(query.as_row())[0] @ real - sel.typical @ real))
            assert np.isfinite(sel.scores(query, cands)).all()
            assert query.predicted is None and query.context is not None  # scoring never changes the caller's query
    assert len(gains) > 30 and np.mean(gains) > 0, np.mean(gains)


def test_linear_scores_equal_scikit_learn_s_own():
    """The matrix-product shortcut gives what the fitted models' own methods give (and others fall back)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from processors.twin.selection import _linear_scores

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 6)) * [1, 3, 0.1, 5, 1, 2] + [0, 4, 1, -2, 0, 0], rng.normal(size=80)
    rows = rng.normal(size=(7, 6)) * 3
    ridge = Ridge(alpha=1.0).fit(X, y)
    np.testing.assert_allclose(_linear_scores(ridge, rows), ridge.predict(rows), rtol=1e-10)
    fit = make_pipeline(StandardScaler(), LogisticRegression(C=0.3)).fit(X, y > 0)
    np.testing.assert_allclose(_linear_scores(fit, rows, "decision_function"), fit.decision_function(rows),
                               rtol=1e-10)
    forest = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, y)
    np.testing.assert_allclose(_linear_scores(forest, rows), forest.predict(rows))
