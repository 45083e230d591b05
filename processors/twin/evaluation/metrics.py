"""Metrics that compare a system's reply with what the real interviewer said (spec §2, §10).

All of them run offline on the bundled all-MiniLM-L6-v2 and scikit-learn, and none is clipped:

* **BERTScore** – greedy matching of contextual word-piece embeddings, IDF-weighted (Zhang et al.
  2020), ``F1`` rescaled as ``(F - b) / (1 - b)`` with ``b`` the mean F1 of random pairs of real
  lines, so an unrelated line scores about 0 and an identical one 1;
* **cosine** of the sentence embeddings, rescaled against the same random pairs;
* **style** – 1 − mean |difference| of the seven ``style.extract_style`` features, rescaled against
  random pairs of the *same* interviewer's lines (0 = chance for this person, 1 = identical);
* three **match rates** on the combined similarity (``beaten_share``): cross-session and
  same-session (the reply against the interviewer's other real lines as distractors) and
  **rank-same** (is the reply closer to its own moment's real line than to the session's others);
* **indistinguishability** – ``2·(1 − AUC)`` of a discriminator that sees the reply *in its
  context* (relation to the candidate's turn, the previous line, the session so far), cross-validated
  by session over several seeds, with its AUC interval;
* **classifier agreement** – the auxiliary style classifier's view (a detail: it was trained on the
  train lines that retrieval systems emit, so no headline number uses it);
* ``bootstrap_mean`` / ``bootstrap_diff`` – standard errors by resampling sessions.

Usage::

    scorer = PairScorer.fit(embedder, reference_lines, groups, speakers=interviewers)
    s = scorer.score(replies, real_lines)
    s["combined"], s["bertscore"], s["cosine"], s["style"]
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from processors.twin.style import FEATURES, extract_style
from processors.twin.text import content_words, stem, stem_set

__all__ = [
    "COMBINED_WEIGHTS",
    "AttributionModel",
    "Baselines",
    "Indistinguishability",
    "PairScorer",
    "Situation",
    "TokenStore",
    "beaten_share",
    "bertscore",
    "bootstrap_diff",
    "bootstrap_mean",
    "classifier_agreement",
    "cosine_pairs",
    "discriminator_auc",
    "discriminator_oof",
    "greedy_match",
    "idf_table",
    "indistinguishability",
    "indistinguishability_over_seeds",
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


def idf_table(texts: Sequence[str], word_pieces: Callable[[str], list[str]]) -> IdfTable:
    """IDF over ``texts`` (the reference lines), as BERTScore's ``idf=True`` computes it.

    ``word_pieces`` splits a text as the model reads it (``Embedder.word_pieces``).
    """
    df: Counter[str] = Counter()
    for t in texts:
        df.update(set(word_pieces(t)))
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


def style_agreement(cands: Sequence[str], refs: Sequence[str]) -> np.ndarray:
    """``style_similarity`` of each pair, each line scored on its own.

    Neither line is scored against the candidate's turn: with it, ``followUp`` would rise with
    word overlap, and a reply that pastes the candidate's phrases would earn style for parroting
    (the discriminator sees that overlap instead, where parroting is caught).
    """
    cache: dict[str, np.ndarray] = {}

    def vec(text: str) -> np.ndarray:
        if text not in cache:
            cache[text] = extract_style(text).as_array()
        return cache[text]

    return np.array([1.0 - float(np.abs(vec(c) - vec(r)).mean()) if c.strip() and r.strip() else 0.0
                     for c, r in zip(cands, refs)], dtype=np.float64)


# --------------------------------------------------------------------------- the scorer
@dataclass
class Baselines:
    """Mean raw scores of random pairs of real lines (what "unrelated" scores).

    ``bertscore`` and ``cosine`` come from pairs of any two interviewers' lines of different
    sessions; ``style`` from pairs of the *same* interviewer's lines of different sessions, so a
    rescaled style of 0 means "no closer than a random line of this person", not "unlike anyone".
    """

    bertscore: float
    cosine: float
    style: float
    pairs: int


def _random_pairs(n: int, groups: Sequence[Any], rng: random.Random, n_pairs: int, lines: Sequence[str],
                  same: Sequence[Any] | None = None) -> tuple[list[int], list[int]]:
    # Pairs from different groups (sessions); with ``same``, only pairs that share that label.
    a_idx, b_idx = [], []
    attempts = 0
    while len(a_idx) < n_pairs and attempts < n_pairs * 50:
        attempts += 1
        i, j = rng.randrange(n), rng.randrange(n)
        if i == j or groups[i] == groups[j] or lines[i] == lines[j]:
            continue
        if same is not None and same[i] != same[j]:
            continue
        a_idx.append(i)
        b_idx.append(j)
    return a_idx, b_idx


@dataclass
class PairScorer:
    """Scores pairs of lines with every similarity; fit once per run (IDF and baselines).

    ``combined`` is what every match rate ranks by: a weighted sum of BERTScore, cosine and style,
    each rescaled so that random pairs of real lines score 0 and identical lines 1.
    """

    embedder: Any
    store: TokenStore
    idf: IdfTable | None
    baselines: Baselines
    weights: dict[str, float] = field(default_factory=lambda: dict(COMBINED_WEIGHTS))

    @classmethod
    def fit(cls, embedder, reference_lines: Sequence[str], groups: Sequence[str] | None = None, *,
            speakers: Sequence[str] | None = None, n_pairs: int = 300, seed: int = 0,
            use_idf: bool = True) -> "PairScorer":
        """IDF from ``reference_lines``; baselines from ``n_pairs`` random pairs of them.

        Pairs are drawn from different ``groups`` (sessions) when groups are given, so a baseline
        pair is never two halves of one exchange; the style baseline pairs lines of the same
        ``speakers`` entry (interviewer) when given.
        """
        keep = [i for i, t in enumerate(reference_lines) if t and t.strip()]
        lines = [reference_lines[i] for i in keep]
        if len(lines) < 2:
            raise ValueError("need at least two reference lines to fit the scorer")
        grp = [list(groups)[i] for i in keep] if groups is not None else list(range(len(lines)))
        spk = [list(speakers)[i] for i in keep] if speakers is not None else [0] * len(lines)
        idf = idf_table(lines, embedder.word_pieces) if use_idf else None
        store = TokenStore(embedder)
        rng = random.Random(seed)  # nosec B311  # seeded for reproducible pairs, not secrets
        a_idx, b_idx = _random_pairs(len(lines), grp, rng, n_pairs, lines)
        if not a_idx:  # one group only: pairs of different lines
            for _ in range(n_pairs):
                i, j = rng.sample(range(len(lines)), 2)
                a_idx.append(i)
                b_idx.append(j)
        a, b = [lines[i] for i in a_idx], [lines[j] for j in b_idx]
        bs = float(bertscore(a, b, store, idf).mean())
        cs = float(cosine_pairs(a, b, embedder).mean())
        sa, sb = _random_pairs(len(lines), grp, rng, n_pairs, lines, same=spk)
        if not sa:
            sa, sb = a_idx, b_idx
        st = float(style_agreement([lines[i] for i in sa], [lines[j] for j in sb]).mean())
        return cls(embedder, store, idf, Baselines(bs, cs, st, len(a)))

    def score(self, cands: Sequence[str], refs: Sequence[str]) -> dict[str, np.ndarray]:
        """Per pair: ``bertscore``/``cosine``/``style`` (rescaled), their ``*_raw`` values, ``combined``."""
        cands, refs = list(cands), list(refs)
        bs_raw = bertscore(cands, refs, self.store, self.idf)
        cs_raw = cosine_pairs(cands, refs, self.embedder)
        st_raw = style_agreement(cands, refs)
        bs = rescale(bs_raw, self.baselines.bertscore)
        cs = rescale(cs_raw, self.baselines.cosine)
        st = rescale(st_raw, self.baselines.style)
        w = self.weights
        combined = w["bertscore"] * bs + w["cosine"] * cs + w["style"] * st
        return {"bertscore": bs, "bertscore_raw": bs_raw, "cosine": cs, "cosine_raw": cs_raw, "style": st,
                "style_raw": st_raw, "combined": combined, "semantic": 0.5 * (bs + cs)}

    def combined(self, cands: Sequence[str], refs: Sequence[str]) -> np.ndarray:
        """Only the ``combined`` similarity of each pair."""
        return self.score(cands, refs)["combined"] if len(cands) else np.zeros(0)


# --------------------------------------------------------------------------- match rates
def beaten_share(system: np.ndarray, distractors: Sequence[np.ndarray]) -> np.ndarray:
    """Per turn, the share of ``distractors[i]`` strictly below ``system[i]``; ties count half.

    A turn with no distractors is NaN (left out of means). Every match rate is this share; they
    differ in what is compared:

    * **cross-session / same-session match**: ``system[i]`` = sim(reply, real line i),
      ``distractors[i]`` = sim(d, real line i) for the same interviewer's real lines d of other
      test sessions / of the same session;
    * **rank-same**: ``system[i]`` = sim(reply, real line i), ``distractors[i]`` = sim(reply, d)
      for the session's other real lines d — is the reply closer to *its own* moment's line than to
      the session's other lines? A constant reply scores exactly 0.5 over a session, topic words
      shared by the whole session gain nothing, and a verbatim copy scores about 1.
    """
    out = np.full(len(system), np.nan)
    for i, (s, d) in enumerate(zip(system, distractors)):
        d = np.asarray(d, dtype=np.float64)
        if d.size:
            out[i] = float(((s > d + 1e-9).sum() + 0.5 * (np.abs(s - d) <= 1e-9).sum()) / d.size)
    return out



# --------------------------------------------------------------------------- statistics
def bootstrap_mean(values: Sequence[float], groups: Sequence[Any], *, n: int = 1000, seed: int = 0
                   ) -> tuple[float | None, float | None]:
    """Mean of ``values`` (NaN left out) and its standard error by bootstrap over ``groups``.

    Sessions, not turns, are resampled: turns of one session are not independent, and an SE from
    turns would be too small. The SE is None with fewer than two groups.
    """
    v = np.asarray(values, dtype=np.float64)
    g = np.asarray([str(x) for x in groups])
    ok = ~np.isnan(v)
    v, g = v[ok], g[ok]
    if not v.size:
        return None, None
    mean = float(v.mean())
    uniq = sorted(set(g.tolist()))
    if len(uniq) < 2:
        return mean, None
    sums = np.array([v[g == u].sum() for u in uniq])
    counts = np.array([(g == u).sum() for u in uniq], dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniq), size=(n, len(uniq)))
    means = sums[draws].sum(axis=1) / np.maximum(counts[draws].sum(axis=1), 1)
    return mean, float(means.std(ddof=1))


def bootstrap_diff(a: Sequence[float], b: Sequence[float], groups: Sequence[Any], *, n: int = 1000,
                   seed: int = 0) -> tuple[float | None, float | None]:
    """Mean of the paired difference ``a - b`` per turn and its SE by bootstrap over sessions."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return bootstrap_mean(d, groups, n=n, seed=seed)


# --------------------------------------------------------------------------- discriminator
@dataclass(frozen=True)
class Situation:
    """What the discriminator knows of a turn besides the reply: the candidate's turn, the
    interviewer's previous line in the session, everything said before (the session so far) and the
    interviewer's earlier lines in it."""

    candidate_turn: str = ""
    previous_line: str = ""
    session_so_far: str = ""
    interviewer_lines: tuple[str, ...] = ()


def _overlap(mine: set[str], text: str) -> float:
    theirs = {stem(w) for w in content_words(text)}
    return len(mine & theirs) / len(mine) if mine else 0.0


def reply_features(replies: Sequence[str], situations: Sequence[Situation], embedder) -> np.ndarray:
    """What the discriminator sees of a reply in its context.

    The reply's sentence embedding, its style features (scored alone), length and question form,
    and its relation to the context: cosine to and content-word overlap with the candidate's turn,
    with the interviewer's previous line and with the session so far, and whether it repeats the previous
    line or any line the interviewer already said in the session (real interviewers do that for about
    one line in 200; a reader notices). A real line relates to its moment in a typical way; a parrot, a
    repeated line or a line from another conversation does not.
    """
    replies = [x if x.strip() else "." for x in replies]
    sits = list(situations)
    r = embedder.embed_cached(replies)
    cand = embedder.embed_cached([s.candidate_turn or "." for s in sits])
    prev = embedder.embed_cached([s.previous_line or "." for s in sits])
    # The model reads 256 word pieces (~1,000 characters): the end of the session is what matters.
    sess = embedder.embed_cached([(s.session_so_far or ".")[-1000:] for s in sits])
    rows = []
    for text, sit, rv, cv, pv, sv_ in zip(replies, sits, r, cand, prev, sess):
        st = extract_style(text)
        mine = stem_set(text)
        relation = [
            float(rv @ cv) if sit.candidate_turn else 0.0, _overlap(mine, sit.candidate_turn),
            float(rv @ pv) if sit.previous_line else 0.0, _overlap(mine, sit.previous_line),
            float(rv @ sv_) if sit.session_so_far else 0.0, _overlap(mine, sit.session_so_far),
            1.0 if sit.previous_line and text.strip() == sit.previous_line.strip() else 0.0,
            1.0 if text.strip() in {x.strip() for x in sit.interviewer_lines} else 0.0,
        ]
        rows.append(np.concatenate([rv, st.as_array(),
                                    [math.log1p(st.word_count) / math.log1p(200), float(text.rstrip().endswith("?"))],
                                    relation]))
    return np.asarray(rows, dtype=np.float32)


def _group_folds(groups: Sequence[str], folds: int, seed: int) -> list[np.ndarray]:
    # Sessions shuffled by the seed and dealt round-robin into folds: each seed cuts differently.
    uniq = sorted(set(groups))
    random.Random(seed).shuffle(uniq)  # nosec B311  # seeded for reproducible folds, not secrets
    fold_of = {g: i % folds for i, g in enumerate(uniq)}
    assign = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(assign == k) for k in range(folds)]


def discriminator_oof(real: np.ndarray, fake: np.ndarray, groups: Sequence[str], *, seed: int = 0,
                      folds: int = 5) -> np.ndarray | None:
    """Out-of-fold P(real) for every row of ``[real; fake]`` from a logistic regression.

    Row ``i`` of both is the same turn; folds never split a session (``groups``), so the
    discriminator is always judged on sessions it did not see. None with fewer than two sessions.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    groups = [str(g) for g in groups]
    n_groups = len(set(groups))
    if n_groups < 2 or len(real) < 4:
        return None
    x = np.vstack([real, fake])
    y = np.concatenate([np.ones(len(real)), np.zeros(len(fake))])
    g = groups + groups
    oof = np.full(len(y), 0.5)
    for test in _group_folds(g, min(folds, n_groups), seed):
        train = np.setdiff1d(np.arange(len(y)), test)
        if len(set(y[train])) < 2 or not len(test):
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000, random_state=seed))
        model.fit(x[train], y[train])
        oof[test] = model.predict_proba(x[test])[:, 1]
    return oof


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half); numpy only, fast enough to bootstrap."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def discriminator_auc(real: np.ndarray, fake: np.ndarray, groups: Sequence[str], *, seed: int = 0,
                      folds: int = 5) -> float | None:
    """ROC AUC of ``discriminator_oof`` (0.5: cannot tell; 1.0: always tells)."""
    oof = discriminator_oof(real, fake, groups, seed=seed, folds=folds)
    if oof is None:
        return None
    return _auc(np.concatenate([np.ones(len(real)), np.zeros(len(fake))]), oof)


def indistinguishability(auc: float | None) -> float | None:
    """``2·(1 − AUC)``, not capped: 1.0 when the discriminator does no better than chance, 0 when it
    always tells, and above 1 when its AUC falls below 0.5 (noise, shown as such)."""
    if auc is None:
        return None
    return float(2.0 * (1.0 - auc))


@dataclass
class Indistinguishability:
    """The discriminator's verdict over several seeds: mean AUC, its spread and a session interval."""

    value: float | None
    auc: float | None
    auc_seeds: list[float]
    auc_std: float | None
    auc_ci: tuple[float, float] | None
    se: float | None


def indistinguishability_over_seeds(real: np.ndarray, fake: np.ndarray, groups: Sequence[str], *,
                                    seeds: Sequence[int] = (0, 1, 2), folds: int = 5, n_boot: int = 500
                                    ) -> Indistinguishability:
    """``discriminator_oof`` for each seed (different session folds); the AUC of each, their mean
    and spread, and a 95% interval of the seed-averaged out-of-fold AUC by bootstrap over sessions."""
    oofs = [o for o in (discriminator_oof(real, fake, groups, seed=s, folds=folds) for s in seeds) if o is not None]
    if not oofs:
        return Indistinguishability(None, None, [], None, None, None)
    y = np.concatenate([np.ones(len(real)), np.zeros(len(fake))])
    aucs = [_auc(y, o) for o in oofs]
    mean_oof = np.mean(oofs, axis=0)
    g = np.array([str(x) for x in list(groups) + list(groups)])
    uniq = sorted(set(g.tolist()))
    rng = np.random.default_rng(seeds[0] if seeds else 0)
    rows_of = {u: np.flatnonzero(g == u) for u in uniq}
    boot = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), size=len(uniq))
        idx = np.concatenate([rows_of[uniq[k]] for k in pick])
        if len(set(y[idx])) == 2:
            boot.append(_auc(y[idx], mean_oof[idx]))
    auc = float(np.mean(aucs))
    ci = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))) if len(boot) > 10 else None
    se = float(2.0 * np.std(boot, ddof=1)) if len(boot) > 10 else None  # SE of 2·(1 − AUC)
    return Indistinguishability(indistinguishability(auc), auc, [round(a, 4) for a in aucs],
                                float(np.std(aucs, ddof=1)) if len(aucs) > 1 else None, ci, se)


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
