"""The auxiliary style classifier: who said a line, with which style; save/load round trip."""

import numpy as np
import pytest

from processors.twin.augment import paraphrase_negatives
from processors.twin.corpus import chronological_split
from processors.twin.style import FEATURES
from processors.twin.style_classifier import (
    StyleClassifierError,
    TrainingLines,
    load_style_classifier,
    train_style_classifier,
)


def _lines(sessions, role):
    return [t.text for s in sessions for t in s.turns if t.role == role]


@pytest.fixture(scope="module")
def trained(scotus, embedder):
    # Every Kagan (24) and Scalia (14) session of the fixture: Kagan's last 30% and Scalia's last 4 are held out.
    kagan = chronological_split([t for t in scotus if t.interviewer_id == "elena_kagan"], val=0.3, test=0.0)
    scalia = [t for t in scotus if t.interviewer_id == "antonin_scalia"]
    assert (len(kagan.train) + len(kagan.val), len(scalia)) == (24, 14)
    train = TrainingLines(interviewer=_lines(kagan.train, "interviewer"), candidate=_lines(kagan.train, "candidate"),
                          other_interviewers=_lines(scalia[:10], "interviewer"),
                          paraphrase_negatives=[a.text for a in paraphrase_negatives(_lines(kagan.train, "interviewer"))])
    val = TrainingLines(interviewer=_lines(kagan.val, "interviewer"), candidate=_lines(kagan.val, "candidate"),
                        other_interviewers=_lines(scalia[10:], "interviewer"))
    return train_style_classifier("elena_kagan", train, val, embedder=embedder, seed=0), val


def test_tells_the_interviewer_from_others_on_held_out_sessions(trained):
    clf, _ = trained
    val = clf.metrics["val"]
    # 0.78 on these sessions. With fewer (10 Kagan + 6 Scalia, as on the 80-session dev sets, where that
    # gave 0.72) the fixture's 3 validation sessions give 0.61: the threshold needs the whole fixture.
    assert val["auc"] >= 0.7, val
    assert set(val["bySource"]) == {"interviewer", "candidate", "other_interviewers"}
    assert set(val["styleMae"]) == set(FEATURES) and max(val["styleMae"].values()) < 0.35


def test_predictions_shape_and_range(trained):
    clf, val = trained
    p = clf.predict_interviewer(val.interviewer[:3] + val.candidate[:3])
    assert p.shape == (6,) and np.all((p >= 0) & (p <= 1))
    styles = clf.predict_style(["Why? Give me one concrete example."])
    assert set(styles[0]) == set(FEATURES) and all(0 <= v <= 1 for v in styles[0].values())
    assert clf.predict_interviewer([]).shape == (0,) and clf.predict([]) == []


def test_save_and_load_give_identical_predictions(trained, tmp_path, embedder):
    clf, val = trained
    path = clf.save(tmp_path / "style_classifier.joblib")
    again = load_style_classifier(path, embedder=embedder)
    texts = val.interviewer[:4] + val.other_interviewers[:4]
    assert np.allclose(again.predict_interviewer(texts), clf.predict_interviewer(texts))
    assert again.metrics == clf.metrics and again.interviewer_id == "elena_kagan"


def test_too_little_data_and_bad_files_are_clear_errors(tmp_path, embedder):
    with pytest.raises(StyleClassifierError, match="too little data"):
        train_style_classifier("x", TrainingLines(interviewer=["Why?"] * 3, candidate=["Because."] * 10),
                               embedder=embedder)
    with pytest.raises(StyleClassifierError, match="not found"):
        load_style_classifier(tmp_path / "missing.joblib")
    with pytest.raises(StyleClassifierError, match="tenant and interviewer_id"):
        load_style_classifier()


def test_loading_by_tenant_closes_its_database_connection(postgres_dsn):
    # The evaluation loads one per interviewer and window: an unclosed connection each time was a
    # ResourceWarning at every window's end (and a server connection held until collected).
    import gc
    import uuid
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            load_style_classifier(tenant=f"nobody-{uuid.uuid4().hex[:8]}", interviewer_id="x", dsn=postgres_dsn)
        except StyleClassifierError as exc:
            assert "no profile" in str(exc)
        else:
            raise AssertionError("an unknown tenant has no profile")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
