"""The auxiliary style classifier (spec §6): who said this line, and with which style.

Two heads:

* **speaker**: logistic regression, "this interviewer" (their train-split lines) against everything
  else: the candidates they spoke with (plus perturbed candidate turns), other interviewers of the
  same tenant, and paraphrase negatives of their own lines (same content, their style removed).
  Features: character 2-4-gram TF-IDF (verbal tics, "--" restarts, forms of address), plus the
  standardised seven style features of ``style.extract_style``, log length and the MiniLM sentence
  embedding at a small weight. On SCOTUS dev (12 sessions of one justice against another justice
  and the advocates) character n-grams carry most of the signal: validation AUC ~0.75, against
  ~0.65 for embedding + style features alone;
* **style**: ridge regression of the style features from the embedding alone, so a line gets
  directness/warmth/verbosity/... scores that generalise the heuristics to wordings they miss.

Training writes one joblib file (``style_classifier.joblib``) into the version's artefact folder;
the profile's artefacts record its path and validation metrics. The evaluation loads it with::

    clf = load_style_classifier(tenant="acme", interviewer_id="elena_kagan")   # active version
    p = clf.predict_interviewer(["Well, counsel, isn't that exactly the point?"])  # P(said by them)
    styles = clf.predict_style(["..."])   # [{"directness": 0.61, ...}]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from processors.twin.style import FEATURES, extract_style

__all__ = [
    "CLASSIFIER_FILE",
    "FORMAT_VERSION",
    "StyleClassifier",
    "StyleClassifierError",
    "TrainingLines",
    "load_style_classifier",
    "train_style_classifier",
]

CLASSIFIER_FILE = "style_classifier.joblib"
FORMAT_VERSION = 2
MIN_LINES_PER_CLASS = 5
# The embedding sees the first words of a line only: style shows early (lead-ins, question frames),
# and monologues of hundreds of words would cost most of the training time for little signal.
MAX_EMBED_WORDS = 64
DENSE_WEIGHT = 0.02  # scale of the standardised dense block next to the TF-IDF block


class StyleClassifierError(RuntimeError):
    """Too little data to train, or an artefact that cannot be loaded."""


@dataclass
class TrainingLines:
    """Lines for one split, by source (all plain strings)."""

    interviewer: list[str] = field(default_factory=list)
    candidate: list[str] = field(default_factory=list)
    other_interviewers: list[str] = field(default_factory=list)
    paraphrase_negatives: list[str] = field(default_factory=list)
    perturbed_candidate: list[str] = field(default_factory=list)

    def labelled(self) -> tuple[list[str], np.ndarray, list[str]]:
        """Texts, labels (1 = this interviewer) and the source of each text."""
        texts, labels, sources = [], [], []
        for source in ("interviewer", "candidate", "other_interviewers", "paraphrase_negatives",
                       "perturbed_candidate"):
            for t in getattr(self, source):
                if t and t.strip():
                    texts.append(t)
                    labels.append(1 if source == "interviewer" else 0)
                    sources.append(source)
        return texts, np.array(labels, dtype=np.int64), sources


@lru_cache(maxsize=16384)
def _style_row(text: str) -> tuple[float, ...]:
    # Cached: a training run meets the same lines in fitting, in validation and in the next version's run.
    v = extract_style(text)
    return (*v.as_array().tolist(), math.log1p(v.word_count) / math.log1p(200))


def _style_matrix(texts: Sequence[str]) -> np.ndarray:
    return np.asarray([_style_row(t) for t in texts], dtype=np.float32).reshape(len(texts), len(FEATURES) + 1)


class StyleClassifier:
    """A trained speaker + style model for one interviewer at one profile version."""

    def __init__(self, speaker, style, interviewer_id: str, metrics: dict[str, Any] | None = None,
                 embedder=None, meta: dict[str, Any] | None = None):
        self.speaker = speaker
        self.style = style
        self.interviewer_id = interviewer_id
        self.metrics = metrics or {}
        self.meta = meta or {}
        self._embedder = embedder

    @property
    def embedder(self):
        if self._embedder is None:
            from processors.twin.embeddings import get_embedder

            self._embedder = get_embedder()
        return self._embedder

    def _features(self, texts: Sequence[str], style: np.ndarray | None = None):
        emb = _embed(self.embedder, texts)
        return emb, _speaker_matrix(self.speaker, texts, emb, style)

    def predict_interviewer(self, texts: Sequence[str]) -> np.ndarray:
        """Probability that this interviewer said each line (float array, one per text)."""
        if not texts:
            return np.zeros(0, dtype=np.float64)
        _, x = self._features(texts)
        return self.speaker["lr"].predict_proba(x)[:, 1]

    def predict_style(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Predicted style features of each line, each clipped to [0, 1] (camelCase names)."""
        if not texts:
            return []
        emb, _ = self._features(texts)
        pred = np.clip(self.style.predict(emb), 0.0, 1.0)
        return [{name: round(float(row[i]), 4) for i, name in enumerate(FEATURES)} for row in pred]

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Both heads: ``{"pInterviewer": float, "style": {...}}`` per line."""
        if not texts:
            return []
        emb, x = self._features(texts)
        p = self.speaker["lr"].predict_proba(x)[:, 1]
        st = np.clip(self.style.predict(emb), 0.0, 1.0)
        return [{"pInterviewer": round(float(pi), 4),
                 "style": {name: round(float(row[i]), 4) for i, name in enumerate(FEATURES)}}
                for pi, row in zip(p, st)]

    def save(self, path: str | Path) -> Path:
        """Write the joblib artefact (atomically: temp file, then rename)."""
        import joblib

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        joblib.dump({"format": FORMAT_VERSION, "interviewerId": self.interviewer_id, "speaker": self.speaker,
                     "style": self.style, "features": list(FEATURES), "metrics": self.metrics, "meta": self.meta},
                    tmp)
        tmp.replace(path)
        return path


def _embed(embedder, texts: Sequence[str]) -> np.ndarray:
    heads = [" ".join(t.split()[:MAX_EMBED_WORDS]) for t in texts]
    # Cached: training embeds these lines again as turn tails and move-model texts (most lines are short).
    return np.asarray(embedder.embed_cached(heads), dtype=np.float32).reshape(len(texts), -1)


def _speaker_matrix(speaker: dict[str, Any], texts: Sequence[str], emb: np.ndarray, style: np.ndarray | None = None):
    """The speaker head's input; ``style`` is ``_style_matrix(texts)`` when the caller has it already (the
    style features are the slow part of training: a regex pass per cue and line)."""
    from scipy.sparse import csr_matrix, hstack

    if style is None:
        style = _style_matrix(texts)
    dense = speaker["scaler"].transform(np.hstack([emb, style])) * speaker["denseWeight"]
    return hstack([speaker["tfidf"].transform(list(texts)), csr_matrix(dense)]).tocsr()


def _fit_heads(texts: list[str], labels: np.ndarray, embedder, seed: int):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    emb = _embed(embedder, texts)
    style = _style_matrix(texts)
    speaker: dict[str, Any] = {
        "tfidf": TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2,
                                 max_features=50_000).fit(texts),
        "scaler": StandardScaler().fit(np.hstack([emb, style])),
        "denseWeight": DENSE_WEIGHT,
    }
    lr = LogisticRegression(C=4.0, max_iter=3000, class_weight="balanced", random_state=seed)
    lr.fit(_speaker_matrix(speaker, texts, emb, style), labels)
    speaker["lr"] = lr
    style_head = Ridge(alpha=1.0, random_state=seed)
    style_head.fit(emb, style[:, : len(FEATURES)])
    return speaker, style_head


def _evaluate(clf: StyleClassifier, lines: TrainingLines) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, roc_auc_score

    texts, labels, sources = lines.labelled()
    if len(texts) == 0 or labels.min() == labels.max():
        return {"n": len(texts), "note": "validation needs lines of both classes"}
    truth = _style_matrix(texts)
    emb, x = clf._features(texts, truth)
    p = clf.speaker["lr"].predict_proba(x)[:, 1]
    pred = (p >= 0.5).astype(int)
    by_source = {}
    for src in sorted(set(sources)):
        idx = [i for i, s in enumerate(sources) if s == src]
        by_source[src] = {"n": len(idx), "accuracy": round(float(accuracy_score(labels[idx], pred[idx])), 4)}
    truth = truth[:, : len(FEATURES)]
    style_pred = np.clip(clf.style.predict(emb), 0, 1)
    return {
        "n": len(texts),
        "accuracy": round(float(accuracy_score(labels, pred)), 4),
        "f1": round(float(f1_score(labels, pred)), 4),
        "auc": round(float(roc_auc_score(labels, p)), 4),
        "bySource": by_source,
        "styleMae": {name: round(float(mean_absolute_error(truth[:, i], style_pred[:, i])), 4)
                     for i, name in enumerate(FEATURES)},
    }


def train_style_classifier(interviewer_id: str, train: TrainingLines, val: TrainingLines | None = None, *,
                           embedder=None, seed: int = 0) -> StyleClassifier:
    """Fit both heads on ``train``; metrics on ``val`` (the interviewer's validation sessions).

    :raises StyleClassifierError: fewer than ``MIN_LINES_PER_CLASS`` lines of either class.
    """
    if embedder is None:
        from processors.twin.embeddings import get_embedder

        embedder = get_embedder()
    texts, labels, sources = train.labelled()
    pos, neg = int(labels.sum()), int(len(labels) - labels.sum())
    if pos < MIN_LINES_PER_CLASS or neg < MIN_LINES_PER_CLASS:
        raise StyleClassifierError(
            f"too little data for the style classifier: {pos} interviewer and {neg} other lines "
            f"(need {MIN_LINES_PER_CLASS} of each)")
    speaker, style_head = _fit_heads(texts, labels, embedder, seed)
    counts = {src: sources.count(src) for src in sorted(set(sources))}
    clf = StyleClassifier(speaker, style_head, interviewer_id, embedder=embedder,
                          meta={"trainCounts": counts, "seed": seed, "embedding": "all-MiniLM-L6-v2"})
    clf.metrics = {"train": {"n": len(texts), "positives": pos, "negatives": neg},
                   "val": _evaluate(clf, val) if val is not None else None}
    return clf


def load_style_classifier(path: str | Path | None = None, *, tenant: str | None = None,
                          interviewer_id: str | None = None, version: int | None = None, dsn: str | None = None,
                          embedder=None) -> StyleClassifier:
    """Load a classifier from its file, or from the profile of ``tenant``/``interviewer_id``.

    Without ``path``, the profile's artefacts name the file (the active version unless
    ``version`` is given; ``dsn`` defaults to ``settings.POSTGRES_DSN``).
    """
    import joblib

    if path is None:
        if not (tenant and interviewer_id):
            raise StyleClassifierError("give a path, or a tenant and interviewer_id")
        from infra.settings import settings
        from processors.twin.profiles import ProfileStore

        store = ProfileStore(dsn or settings.POSTGRES_DSN)
        try:
            profile = store.load(tenant, interviewer_id, version)
        finally:
            store.close()  # its connection, else left to the garbage collector (a ResourceWarning)
        if profile is None:
            raise StyleClassifierError(f"no profile for {tenant}/{interviewer_id}"
                                       + (f" v{version}" if version else " (active)"))
        info = profile.artefacts.get("styleClassifier") or {}
        if not info.get("path"):
            raise StyleClassifierError(f"profile {tenant}/{interviewer_id} v{profile.version} has no style "
                                       f"classifier ({info.get('error', 'not trained')})")
        path = info["path"]
    path = Path(path)
    if not path.is_file():
        raise StyleClassifierError(f"style classifier file not found: {path}")
    data = joblib.load(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
        raise StyleClassifierError(f"{path} is not a style classifier of format {FORMAT_VERSION}")
    return StyleClassifier(data["speaker"], data["style"], data["interviewerId"], data.get("metrics"),
                           embedder=embedder, meta=data.get("meta"))
