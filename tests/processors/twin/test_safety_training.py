"""Pure logic of training the learned safety checks (processors/twin/safety_models.py): how a positive
row teaches, how real lines spend the false-positive budget, the written phrasings, the corpus reader.
No model is loaded here."""

from __future__ import annotations

import json

import numpy as np

from processors.twin import safety_models as sm
from processors.twin import safety_phrasings as ph


def test_a_wrapped_violation_teaches_through_its_own_sentence():
    phrasing = "Are you trying to be this bad, or does it come naturally?"
    text = "You don't believe in the parol evidence rule? " + phrasing
    assert sm._violating_units(text, phrasing) == [phrasing]
    # Nothing holds the phrasing's words: the whole text, rather than nothing.
    assert sm._violating_units("Completely different words here.", phrasing) == ["Completely different words here."]


def test_the_training_set_has_no_wrapper_sentence_as_a_positive():
    rows = [
        {"text": "Are you married to anyone at the moment?", "label": "prohibited_question", "topic": "marital_status", "stage": "output",
         "source": "synthetic:x", "family": "f1", "group": "g1"},
        {"text": "Thanks for that, it helps us plan the team. Are you married to anyone at the moment?", "label": "prohibited_question",
         "topic": "marital_status", "stage": "output", "source": "synthetic:x", "family": "f1", "group": "g1"},
        {"text": "What did the statute say? It said nothing about marriage.", "label": "none", "topic": "",
         "stage": "output", "source": "scotus_oyez:s#1", "family": "f2", "group": "g2"},
    ]
    texts, labels, _, _ = sm._training_set(rows, "prohibited_question", np.random.default_rng(0))
    positives = {t for t, y in zip(texts, labels) if y}
    assert positives == {"Are you married to anyone at the moment?"}
    # A negative's sentences are negatives too; the third-person turn of a question is a negative.
    negatives = {t for t, y in zip(texts, labels) if not y}
    assert "It said nothing about marriage." in negatives and "is he married to anyone at the moment?" in negatives


def test_clauses_are_cut_at_a_semicolon_or_a_comma_before_a_connective():
    assert sm.clause_units(["That is hard for a woman, so explain the cache again."]) == [
        "That is hard for a woman", "so explain the cache again."]
    assert sm.clause_units(["The statute says one thing; the regulation says another."]) == [
        "The statute says one thing", "the regulation says another."]
    # One clause, a comma before no connective, and pieces under four words: nothing to add.
    assert sm.clause_units(["Walk me through the cache."]) == []
    assert sm.clause_units(["For a man of ordinary prudence, would that warning have been enough?"]) == []
    assert sm.clause_units(["Yes, and so what?"]) == []


def test_only_the_bias_head_scores_clauses_after_the_shared_units():
    text = "Thanks for the answer so far. That is hard for a woman, so explain the cache again."
    shared = sm.LearnedChecks._units_for(text)
    assert "That is hard for a woman" not in shared
    for head in sm.HEADS:
        units = sm.LearnedChecks._units_for(text, head)
        if head in sm.CLAUSE_HEADS:
            assert units[:len(shared)] == shared and "That is hard for a woman" in units[len(shared):]
        else:
            assert units == shared


def test_the_version_names_how_lines_are_cut(monkeypatch):
    before = sm.units_recipe()
    monkeypatch.setattr(sm, "CLAUSE_HEADS", frozenset({"bias", "toxicity"}))
    assert sm.units_recipe() != before


def test_family_folds_keep_a_template_family_together():
    rows = [
        {"text": "Are you married?", "label": "prohibited_question", "topic": "marital_status", "stage": "output",
         "source": "synthetic:x", "family": "marital_direct", "group": "g1"},
        {"text": "Is there a wife at home?", "label": "prohibited_question", "topic": "marital_status",
         "stage": "output", "source": "synthetic:x", "family": "marital_direct", "group": "g2"},
    ]
    _, _, _, by_group = sm._training_set(rows, "prohibited_question", np.random.default_rng(0))
    _, _, _, by_family = sm._training_set(rows, "prohibited_question", np.random.default_rng(0), fold_by="family")
    assert set(by_group) == {"g1", "g2"} and set(by_family) == {"marital_direct"}
    # The written phrasings' templates fold by their kind (every template of "age" in one fold).
    ex = sm.head_examples(rows, "prohibited_question", np.random.default_rng(0), [], [], fold_by="family")
    written = {g for g, t in zip(ex.groups, ex.texts) if t.startswith("Out of curiosity, what year were you born")}
    assert written == {"age"}


def test_a_real_line_spends_the_budget_once_whatever_its_number_of_sentences():
    scores = np.array([0.9, 0.1, 0.2, 0.95, 0.3, 0.4])
    line_ids = np.array([0, 0, 0, 1, -1, -1])
    keep = np.ones(6, dtype=bool)
    folded = sorted(sm._line_max(scores, line_ids, keep).tolist())
    assert folded == [0.3, 0.4, 0.9, 0.95]  # two single items, then line 0 and line 1 at their highest
    keep[3] = False
    assert sorted(sm._line_max(scores, line_ids, keep).tolist()) == [0.3, 0.4, 0.9]


def test_the_threshold_keeps_real_lines_within_the_budget_per_line():
    # 1,000 real lines of 3 units each, one unit of each scoring its line's value; 10 positives at 0.9.
    rng = np.random.default_rng(1)
    line_scores = rng.uniform(0, 0.8, 1000)
    units = np.repeat(line_scores, 3) * np.tile([1.0, 0.5, 0.2], 1000)
    scores = np.concatenate([units, np.full(10, 0.9)])
    y = np.concatenate([np.zeros(3000, dtype=int), np.ones(10, dtype=int)])
    register = np.concatenate([np.ones(3000, dtype=bool), np.zeros(10, dtype=bool)])
    ids = np.concatenate([np.repeat(np.arange(1000), 3), np.full(10, -1)])
    t = sm._choose_threshold(scores, y, 1.0, 0.01, register, 0.1, ids)
    assert (line_scores >= t).mean() <= 0.01
    assert (scores[y == 1] >= t).all()


def test_every_phrasing_is_filled_and_grouped_by_its_template():
    for table in (ph.TOXIC, ph.NOT_TOXIC, ph.PROHIBITED, ph.NOT_PROHIBITED):
        rows = list(ph.expand(table))
        assert rows and all("{" not in t and "}" not in t for t, _, _ in rows)
        assert {k for _, _, k in rows} == set(table)
        assert all(g.split(":")[0] == k for _, g, k in rows)
    assert {k for _, _, k in ph.expand(ph.PROHIBITED)} == set(sm.TOPICS)
    assert set(sm._TOXIC_DETAIL) == set(ph.TOXIC)


def test_the_augmentations_of_a_head_name_their_template_group():
    rows = sm._augmentations("toxicity")
    assert {y for _, y, _, _ in rows} == {0, 1}
    assert all(g for _, _, _, g in rows)
    assert {d for _, y, d, _ in rows if y} <= {"insult", "belittling", "profanity", "threat"}
    bias = sm._augmentations("bias")  # the written lines only: no templates for bias
    assert {d for _, y, d, _ in bias if y} == {"stereotype"}
    assert {d for _, y, d, _ in sm._augmentations("elicitation") if y} <= {
        "jailbreak", "prohibited_topic", "insult_request", "pii_request"}


def test_the_written_lines_are_labelled_staged_and_unique():
    rows = sm.read_written_lines()
    assert len(rows) > 1000
    labels = {"toxicity", "bias", "prohibited_question", "elicitation", "none"}
    assert {r["label"] for r in rows} == labels
    stages = {"elicitation": {"input"}, "none": {"input", "output"}}  # the other labels: what the twin says
    assert all(r["stage"] in stages.get(r["label"], {"output"}) for r in rows)
    assert {r["kind"] for r in rows if r["label"] == "prohibited_question"} == set(sm.TOPICS)
    texts = [r["text"].strip().lower() for r in rows]
    assert len(set(texts)) == len(texts) and all(texts)


def test_a_written_line_teaches_its_own_head_and_stays_out_of_the_heads_that_skip_its_label():
    tox = {t: y for t, y, _, _ in sm._augmentations("toxicity")}
    written = {r["text"]: r["label"] for r in sm.read_written_lines()}
    insult = next(t for t, lab in written.items() if lab == "toxicity")
    stereotype = next(t for t, lab in written.items() if lab == "bias")
    warm = next(t for t, lab in written.items() if lab == "none")
    assert tox[insult] == 1 and tox[warm] == 0 and stereotype not in tox
    # A candidate's attempt is elicitation's positive, never an output head's example.
    attempt = next(t for t, lab in written.items() if lab == "elicitation")
    assert attempt not in tox and {t: y for t, y, _, _ in sm._augmentations("elicitation")}[attempt] == 1


def _session(sid: str, iid: str, started: str, lines: list[str]) -> dict:
    turns = []
    for i, line in enumerate(lines):
        turns += [{"role": "interviewer", "text": line}, {"role": "candidate", "text": f"answer {i}"}]
    return {"interviewer_id": iid, "session_id": sid, "started_at": started, "turns": turns}


def test_corpus_lines_come_from_the_train_part_only(tmp_path):
    corpus = tmp_path / "court"
    corpus.mkdir()
    sessions = [_session(f"s{i}", "judge", f"2020-01-{i + 1:02d}", [f"session {i} line {k}?" for k in range(3)])
                for i in range(10)]
    (corpus / "dev.jsonl").write_text("\n".join(json.dumps(s) for s in sessions) + "\n", encoding="utf-8")
    train = sm.corpus_register_lines(tmp_path, 10_000, 0)
    held = sm.corpus_register_lines(tmp_path, 10_000, 0, part="heldout")
    assert {s for _, _, s in train} == {f"s{i}" for i in range(7)}  # chronological: the first 70%
    assert {s for _, _, s in held} == {"s7", "s8", "s9"}
    assert all(c == "court" for _, c, _ in train)
    assert len(sm.corpus_register_lines(tmp_path, 5, 0)) == 5
    assert sm.corpus_register_lines(tmp_path / "missing", 5, 0) == [] and sm.corpus_register_lines(None, 5, 0) == []
