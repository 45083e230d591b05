"""Metrics that compare the twin's reply with what the real interviewer said (spec §2, §10).

All of them run offline on the bundled all-MiniLM-L6-v2 and scikit-learn:

* **BERTScore** – greedy matching of contextual word-piece embeddings, IDF-weighted (Zhang et al.
  2020), ``F1`` rescaled as ``(F - b) / (1 - b)`` with ``b`` the mean F1 of random pairs of real
  lines, so an unrelated line scores about 0 and an identical one 1;
* **cosine** of the sentence embeddings, rescaled against the same random pairs;
* **style agreement** – 1 − mean |difference| of the seven ``style.extract_style`` features;
* **classifier agreement** – the auxiliary style classifier (``style_classifier``) attributes the
  twin's line to the interviewer as it does the real line, with the same style labels;
* **match rate** – for each turn, the share of distractors (real lines of the same interviewer from
  other sessions) that the twin's reply beats on combined similarity to the real reply: 0.5 is
  chance, a verbatim copy 1.0;
* **indistinguishability** – ``2·(1 − AUC)`` (capped to [0, 1]) of a discriminator trained,
  cross-validated across sessions, to tell the real reply from the twin's in the same context.

Usage::

    scorer = PairScorer.fit(embedder, reference_lines, groups)   # IDF + random-pair baselines
    s = scorer.score(twin_replies, real_replies, candidate_turns)
    s["combined"], s["bertscore"], s["cosine"], s["style"]
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from processors.twin.style import FEATURES, extract_style, style_similarity
from processors.twin.text import content_words, stem

__all__ = [
    "COMBINED_WEIGHTS",
    "AttributionModel",
    "Baselines",
    "PairScorer",
    "TokenStore",
    "bertscore",
    "classifier_agreement",
    "cosine_pairs",
    "discriminator_auc",
    "greedy_match",
    "idf_table",
    "indistinguishability",
    "match_rates",
    "reply_features",
    "rescale",
    "style_agreement",
    "style_labels",
]

# How the match rate combines the three similarities (each 0 = unrelated, 1 = identical).
COMBINED_WEIGHTS = {"bertscore": 0.35, "cosine": 0.35, "style": 0.30}


# --------------------------------------------------------------------------- BERTScore
class TokenStore:
    """Contextual word-piece embeddings per text, computed once per run (length-sorted batches)."""

    def __init__(self, embedder):
        self.embedder = embedder
        self._cache: dict[str, Any] = {}

    def get(self, texts: Sequence[str]) -> list[Any]:
        """``TokenEmbeddings`` of each text (``processors.twin.embeddings``)."""
        todo = sorted({t for t in texts if t not in self._cache}, key=len)
        if todo:
            for t, te in zip(todo, self.embedder.token_embeddings(todo)):
                self._cache[t] = te
        return [self._cache[t] for t in texts]


@dataclass
class IdfTable:
    """Inverse document frequency of word pieces: ``log((M + 1) / (df + 1))``."""

    idf: dict[str, float]
    default: float

    def weights(self, tokens: Sequence[str]) -> np.ndarray:
        return np.array([self.idf.get(t, self.default) for t in tokens], dtype=np.float32)


def idf_table(texts: Sequence[str], tokenizer) -> IdfTable:
    """IDF over ``texts`` (the reference lines), as BERTScore's ``idf=True`` computes it."""
    df: Counter[str] = Counter()
    for t in texts:
        # Word pieces as the model sees them: the same 256-piece cut as the embeddings.
        ids = tokenizer(t, add_special_tokens=False, truncation=True, max_length=256)["input_ids"]
        df.update(set(tokenizer.convert_ids_to_tokens(ids)))
    m = len(texts)
    return IdfTable({tok: math.log((m + 1) / (c + 1)) for tok, c in df.items()}, math.log(m + 1))


def greedy_match(cand, ref, idf: IdfTable | None = None) -> tuple[float, float, float]:
    """Precision, recall and F1 of greedy cosine matching between two ``TokenEmbeddings``."""
    if len(cand.tokens) == 0 or len(ref.tokens) == 0:
        return 0.0, 0.0, 0.0
    sim = cand.vectors @ ref.vectors.T
    wc = idf.weights(cand.tokens) if idf else np.ones(len(cand.tokens), dtype=np.float32)
    wr = idf.weights(ref.tokens) if idf else np.ones(len(ref.tokens), dtype=np.float32)
    if wc.sum() <= 0:
        wc = np.ones_like(wc)
    if wr.sum() <= 0:
        wr = np.ones_like(wr)
    p = float((sim.max(axis=1) * wc).sum() / wc.sum())
    r = float((sim.max(axis=0) * wr).sum() / wr.sum())
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f


def bertscore(cands: Sequence[str], refs: Sequence[str], store: TokenStore, idf: IdfTable | None = None) -> np.ndarray:
    """Raw BERTScore F1 of each (candidate, reference) pair."""
    ct, rt = store.get(cands), store.get(refs)
    return np.array([greedy_match(c, r, idf)[2] for c, r in zip(ct, rt)], dtype=np.float64)


def rescale(values: np.ndarray | float, baseline: float) -> np.ndarray:
    """``(x - b) / (1 - b)``: ``b`` (random pairs) maps to 0 and 1 stays 1; not clipped."""
    return (np.asarray(values, dtype=np.float64) - baseline) / max(1e-9, 1.0 - baseline)


# --------------------------------------------------------------------------- cosine, style
def cosine_pairs(cands: Sequence[str], refs: Sequence[str], embedder) -> np.ndarray:
    """Cosine of the sentence embeddings of each pair (0 where either text is empty)."""
    if not cands:
        return np.zeros(0)
    a = embedder.embed_cached(list(cands))
    b = embedder.embed_cached(list(refs))
    sims = (a * b).sum(axis=1)
    empty = np.array([not (c.strip() and r.strip()) for c, r in zip(cands, refs)])
    sims[empty] = 0.0
    return sims.astype(np.float64)


def style_agreement(cands: Sequence[str], refs: Sequence[str],
                    previous_candidate: Sequence[str | None] | None = None) -> np.ndarray:
    """``style_similarity`` of each pair, both scored as replies to the same candidate turn."""
    prev = previous_candidate or [None] * len(cands)
    return np.array([style_similarity(extract_style(c, p), extract_style(r, p)) if c.strip() else 0.0
                     for c, r, p in zip(cands, refs, prev)], dtype=np.float64)


# --------------------------------------------------------------------------- the scorer
@dataclass
class Baselines:
    """Mean raw scores of random pairs of real lines (what "unrelated" scores)."""

    bertscore: float
    cosine: float
    pairs: int


@dataclass
class PairScorer:
    """Scores pairs of lines with every similarity; fit once per run (IDF and baselines)."""

    embedder: Any
    store: TokenStore
    idf: IdfTable | None
    baselines: Baselines
    weights: dict[str, float] = field(default_factory=lambda: dict(COMBINED_WEIGHTS))

    @classmethod
    def fit(cls, embedder, reference_lines: Sequence[str], groups: Sequence[str] | None = None, *,
            n_pairs: int = 150, seed: int = 0, use_idf: bool = True) -> "PairScorer":
        """IDF from ``reference_lines``; baselines from ``n_pairs`` random pairs of them.

        Pairs are drawn from different ``groups`` (sessions) when groups are given, so a
        baseline pair is never two halves of one exchange.
        """
        lines = [t for t in reference_lines if t and t.strip()]
        if len(lines) < 2:
            raise ValueError("need at least two reference lines to fit the scorer")
        grp = list(groups) if groups is not None else list(range(len(reference_lines)))
        grp = [g for t, g in zip(reference_lines, grp) if t and t.strip()]
        idf = idf_table(lines, embedder.model.tokenizer) if use_idf else None
        store = TokenStore(embedder)
        rng = random.Random(seed)
        a_idx, b_idx = [], []
        attempts = 0
        while len(a_idx) < n_pairs and attempts < n_pairs * 20:
            attempts += 1
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            if i == j or grp[i] == grp[j] or lines[i] == lines[j]:
                continue
            a_idx.append(i)
            b_idx.append(j)
        if not a_idx:  # one group only: pairs of different lines
            for _ in range(n_pairs):
                i, j = rng.sample(range(len(lines)), 2)
                a_idx.append(i)
                b_idx.append(j)
        a, b = [lines[i] for i in a_idx], [lines[j] for j in b_idx]
        bs = float(bertscore(a, b, store, idf).mean())
        cs = float(cosine_pairs(a, b, embedder).mean())
        return cls(embedder, store, idf, Baselines(bs, cs, len(a)))

    def score(self, cands: Sequence[str], refs: Sequence[str],
              previous_candidate: Sequence[str | None] | None = None) -> dict[str, np.ndarray]:
        """Per pair: ``bertscore``/``cosine`` (rescaled), their ``*_raw`` values, ``style``, ``combined``."""
        cands, refs = list(cands), list(refs)
        bs_raw = bertscore(cands, refs, self.store, self.idf)
        cs_raw = cosine_pairs(cands, refs, self.embedder)
        st = style_agreement(cands, refs, previous_candidate)
        bs = rescale(bs_raw, self.baselines.bertscore)
        cs = rescale(cs_raw, self.baselines.cosine)
        w = self.weights
        combined = w["bertscore"] * bs + w["cosine"] * cs + w["style"] * st
        return {"bertscore": bs, "bertscore_raw": bs_raw, "cosine": cs, "cosine_raw": cs_raw, "style": st,
                "combined": combined, "semantic": 0.5 * (bs + cs)}


# --------------------------------------------------------------------------- match rate
def match_rates(system: np.ndarray, distractors: Sequence[np.ndarray]) -> np.ndarray:
    """Per turn, the share of distractors whose similarity to the real reply is below the system's.

    ``system[i]`` is the similarity of the system's reply to real reply ``i``; ``distractors[i]``
    those of the distractor lines to the same real reply. Ties count half; a turn without
    distractors is NaN (left out of means).
    """
    out = np.full(len(system), np.nan)
    for i, (s, d) in enumerate(zip(system, distractors)):
        d = np.asarray(d, dtype=np.float64)
        if d.size:
            out[i] = float(((s > d + 1e-9).sum() + 0.5 * (np.abs(s - d) <= 1e-9).sum()) / d.size)
    return out


# --------------------------------------------------------------------------- discriminator
def reply_features(replies: Sequence[str], candidate_turns: Sequence[str], embedder) -> np.ndarray:
    """What the discriminator sees of a reply in its context.

    The reply's sentence embedding, its style features and length, its cosine to the candidate
    turn it answers, and the share of its content words taken from that turn.
    """
    replies, cands = list(replies), [c or "" for c in candidate_turns]
    r = embedder.embed_cached([x if x.strip() else "." for x in replies])
    c = embedder.embed_cached([x if x.strip() else "." for x in cands])
    rows = []
    for text, cand, rv, cv in zip(replies, cands, r, c):
        sv = extract_style(text, cand or None)
        mine = {stem(w) for w in content_words(text)}
        theirs = {stem(w) for w in content_words(cand)}
        overlap = len(mine & theirs) / len(mine) if mine else 0.0
        rows.append(np.concatenate([rv, sv.as_array(), [math.log1p(sv.word_count) / math.log1p(200),
                                                        float(rv @ cv) if cand.strip() else 0.0, overlap]]))
    return np.asarray(rows, dtype=np.float32)


def discriminator_auc(real: np.ndarray, fake: np.ndarray, groups: Sequence[str], *, seed: int = 0,
                      folds: int = 5) -> float | None:
    """Out-of-fold ROC AUC of a logistic regression telling ``real`` rows from ``fake`` rows.

    Row ``i`` of both is the same turn; folds never split a session (``groups``), so the
    discriminator is always judged on sessions it did not see. None when there are fewer than
    two sessions.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    groups = list(groups)
    if len(set(groups)) < 2 or len(real) < 4:
        return None
    x = np.vstack([real, fake])
    y = np.concatenate([np.ones(len(real)), np.zeros(len(fake))])
    g = np.array(groups + groups)
    oof = np.full(len(y), 0.5)
    for train, test in GroupKFold(n_splits=min(folds, len(set(groups)))).split(x, y, g):
        if len(set(y[train])) < 2:
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000, random_state=seed))
        model.fit(x[train], y[train])
        oof[test] = model.predict_proba(x[test])[:, 1]
    return float(roc_auc_score(y, oof))


def indistinguishability(auc: float | None) -> float | None:
    """``2·(1 − AUC)`` capped to [0, 1]: 1.0 when the discriminator does no better than chance."""
    if auc is None:
        return None
    return float(min(1.0, max(0.0, 2.0 * (1.0 - auc))))


# --------------------------------------------------------------------------- style classifier
class AttributionModel(Protocol):
    """The auxiliary style classifier (``processors.twin.style_classifier.StyleClassifier``)."""

    def predict_interviewer(self, texts: Sequence[str]) -> np.ndarray: ...

    def predict_style(self, texts: Sequence[str]) -> list[dict[str, float]]: ...


def style_labels(styles: Sequence[dict[str, float]], threshold: float = 0.5) -> np.ndarray:
    """Binary style labels (direct, warm, verbose, question, follow-up, challenging, coaching)."""
    return np.array([[s.get(f, 0.0) >= threshold for f in FEATURES] for s in styles], dtype=bool)


def classifier_agreement(clf: AttributionModel, twin: Sequence[str], real: Sequence[str]) -> dict[str, np.ndarray]:
    """Per turn: P(interviewer) of both lines, whether the twin's is attributed, and agreement.

    ``agreement`` = half "same attribution decision as the real line" + half the share of the seven
    style labels the two lines share.
    """
    twin, real = list(twin), list(real)
    p_twin = np.asarray(clf.predict_interviewer([t if t.strip() else "." for t in twin]), dtype=np.float64)
    p_real = np.asarray(clf.predict_interviewer(real), dtype=np.float64)
    lt = style_labels(clf.predict_style([t if t.strip() else "." for t in twin]))
    lr = style_labels(clf.predict_style(real))
    same_labels = (lt == lr).mean(axis=1) if len(twin) else np.zeros(0)
    same_decision = ((p_twin >= 0.5) == (p_real >= 0.5)).astype(np.float64)
    return {"p_twin": p_twin, "p_real": p_real, "attributed": (p_twin >= 0.5).astype(np.float64),
            "real_attributed": (p_real >= 0.5).astype(np.float64), "labels": same_labels,
            "agreement": 0.5 * same_decision + 0.5 * same_labels}
