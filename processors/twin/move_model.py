"""A learned model of the interviewer's next move, fitted on one interviewer's transcripts.

``MoveModel`` predicts the move that ``label_move`` gives the interviewer's real reply, from
what is known before that reply: the candidate's turn (length, content words, whether it asks
back or was cut off, the end of it embedded with MiniLM and reduced with PCA), the position in
the session, the interviewer's rhythm so far (recent turn lengths, share of interjections) and,
in the "full" feature set, previous moves, topic depth and answer quality. The interviewer's own
move rates are the classifier's intercepts. ``fit_move_model`` fits a few candidates on the train
split and keeps the best on the validation split; ``decide_next_move(..., move_probs=...)`` then
uses its distribution as the base that the controls steer::

    model, metrics = fit_move_model(split, get_embedder())
    probs = model.predict_proba(history, "We sharded by tenant id.")
    decision = decide_next_move(history, "We sharded by tenant id.", stats, controls, move_probs=probs)
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from processors.twin.corpus import Split, Transcript, Turn, exchanges
from processors.twin.policy import (
    DECIDABLE_MOVES,
    CandidateModel,
    Controls,
    ConversationState,
    Move,
    PolicyDecision,
    PolicyStats,
    _answer_quality,
    _word_count,
    adjust_for_rubric,
    decide_next_move,
    label_move,
)
from processors.twin.style import extract_style
from processors.twin.text import lexical_similarity, sentences, stem_set, words

__all__ = [
    "COMPACT_FEATURES", "DEFAULT_CANDIDATES", "EMBED_WORDS", "FEATURE_NAMES", "MAX_TRAIN_TURNS", "MoveModel",
    "MoveModelConfig", "conversation_features", "fit_move_model", "labelled_moments",
]

# The embedded text is the end of the candidate's turn: what the interviewer reacts to, and
# MiniLM's cost grows with length (a whole podcast answer costs ~5x its last 24 words).
EMBED_WORDS = 24
_MOVES_WITH_OPEN: tuple[Move, ...] = (Move.OPEN, *DECIDABLE_MOVES)

FEATURE_NAMES: tuple[str, ...] = (
    "interviewer_turns_log", "session_share_est", "past_p90",
    *(f"last_move={m.value}" for m in _MOVES_WITH_OPEN), "last_move=none",
    *(f"second_last_move={m.value}" for m in _MOVES_WITH_OPEN),
    *(f"session_rate={m.value}" for m in DECIDABLE_MOVES),
    "turns_on_topic", "turns_on_topic_log", "topic_similarity", "topic_shift",
    "exchanges_on_question",
    "candidate_words_log", "candidate_content_words_log", "candidate_question_form", "candidate_ends_question",
    "candidate_cut_off", "candidate_missing", "answer_quality", "answer_confidence", "answer_specificity",
    "answer_struggling", "candidate_skill", "mean_answer_words_log", "candidate_recent_words_log",
    "answer_vs_question_overlap", "question_words_log", "question_form", "question_challenge", "question_follow_up",
    "interviewer_recent_words_log", "interviewer_short_share", "interviewer_long_share",
)
# The features that carry most of the signal. On the development corpora (forward-chaining
# cross-validation over training sessions) the full set, with previous moves, topic depth and
# answer quality, was no better and overfitted the smaller interviewers; both are candidates.
COMPACT_FEATURES: tuple[str, ...] = (
    "interviewer_turns_log", "session_share_est",
    "candidate_words_log", "candidate_content_words_log", "candidate_question_form", "candidate_ends_question",
    "candidate_cut_off", "candidate_missing", "candidate_recent_words_log",
    "interviewer_recent_words_log", "interviewer_short_share", "interviewer_long_share",
)
_COMPACT_COLUMNS = [FEATURE_NAMES.index(n) for n in COMPACT_FEATURES]
# An interviewer turn of at most this many words is an interjection ("Right.", "And then?").
_SHORT_TURN_WORDS = 8
_LONG_TURN_WORDS = 40


@dataclass(frozen=True)
class Moment:
    """One interviewer decision point: the turns before it, the candidate's turn and the real move."""

    history: tuple[Turn, ...]
    candidate_text: str
    move: Move


def labelled_moments(sessions: Sequence[Transcript]) -> list[Moment]:
    """Every interviewer turn after the opening, labelled with ``label_move`` as in ``exchanges``.

    The history is the whole session before the candidate's turn (the engine passes the whole
    session too), not the exchange's context window, so the turn index is the real one.
    """
    out: list[Moment] = []
    for tr in sessions:
        for ex in exchanges(tr):
            prev_i = ex.previous_interviewer_turn
            move = label_move(ex.interviewer_reply, ex.candidate_turn, prev_i)
            if move == Move.OPEN:
                continue  # decided by rule, never predicted
            cut = ex.index - 1 if ex.candidate_turn is not None else ex.index
            text = ex.candidate_turn.text if ex.candidate_turn is not None else ""
            out.append(Moment(tuple(tr.turns[:cut]), text, move))
    return out


def _one_hot(move: Move | None, moves: Sequence[Move]) -> list[float]:
    return [1.0 if move == m else 0.0 for m in moves]


def _mean_log_words(texts: Sequence[str]) -> float:
    return float(np.mean([math.log1p(_word_count(t)) for t in texts])) if texts else 0.0


def conversation_features(history: Sequence[Turn], candidate_text: str, session_p50: float,
                          session_p90: float) -> np.ndarray:
    """The non-embedding features of one decision point, in ``FEATURE_NAMES`` order.

    Only what is known when the interviewer must answer: the session's length is not, so the
    position is the interviewer-turn index over the interviewer's median session length.
    """
    state = ConversationState.from_history(history, candidate_text or None)
    candidate = CandidateModel.from_history(history, candidate_text or None)
    moves = state.previous_moves
    done = state.interviewer_turns
    last = moves[-1] if moves else None
    second = moves[-2] if len(moves) >= 2 else None
    decided = Counter(m for m in moves if m != Move.OPEN)
    n_decided = sum(decided.values())
    rates = [decided[m] / n_decided if n_decided else 0.0 for m in DECIDABLE_MOVES]

    text = candidate_text.strip()
    if text:
        quality, confidence, specificity, stuck = _answer_quality(text)
        # Whether the turn ends by asking back; its last sentences are enough (and cheap).
        form = extract_style(" ".join(sentences(text)[-2:])).question_form
    else:
        quality, confidence, specificity, stuck, form = 0.0, 1.0, 0.0, False, 0.0
    q_at = next((i for i in range(len(history) - 1, -1, -1) if history[i].role == "interviewer"), None)
    if q_at is not None:
        question = history[q_at]
        prev_c = history[q_at - 1].text if q_at > 0 and history[q_at - 1].role == "candidate" else None
        q_style = extract_style(question.text, prev_c)
        q_feats = [math.log1p(q_style.word_count), q_style.question_form, q_style.challenge, q_style.follow_up]
        overlap = lexical_similarity(text, question.text) if text else 0.0
    else:
        q_feats, overlap = [0.0, 0.0, 0.0, 0.0], 0.0
    # The interviewer's own rhythm so far: short interjections or long questions come in runs.
    mine = [_word_count(t.text) for t in history if t.role == "interviewer"]
    theirs = [t.text for t in history if t.role == "candidate"]

    row = [
        math.log1p(done), min(3.0, (done + 1) / session_p50) if session_p50 else 0.0,
        1.0 if session_p90 and done >= session_p90 else 0.0,
        *_one_hot(last, _MOVES_WITH_OPEN), 1.0 if last is None else 0.0,
        *_one_hot(second, _MOVES_WITH_OPEN),
        *rates,
        float(min(state.turns_on_topic, 10)), math.log1p(state.turns_on_topic), state.topic_similarity,
        1.0 if state.topic_shift_detected else 0.0,
        float(min(state.exchanges_on_question, 5)),
        # A reply can only reuse the answer's words if it has some: the follow-up signal.
        math.log1p(len(words(text))), math.log1p(len(stem_set(text))),
        form, 1.0 if text.endswith("?") else 0.0,
        # Transcripts mark an answer cut off by the interviewer with a dash: they are mid-exchange.
        1.0 if text.endswith(("--", "—", "-", "...", "…")) else 0.0,
        0.0 if text else 1.0, quality, confidence, specificity, 1.0 if stuck else 0.0,
        candidate.skill, math.log1p(candidate.mean_answer_words), _mean_log_words(theirs[-3:]),
        overlap, *q_feats,
        float(np.mean([math.log1p(n) for n in mine[-3:]])) if mine else 0.0,
        float(np.mean([n <= _SHORT_TURN_WORDS for n in mine])) if mine else 0.0,
        float(np.mean([n > _LONG_TURN_WORDS for n in mine])) if mine else 0.0,
    ]
    return np.asarray(row, dtype=np.float32)


def embed_text(candidate_text: str) -> str:
    """The part of the candidate's turn that is embedded: its last ``EMBED_WORDS`` words."""
    parts = candidate_text.split()
    return " ".join(parts[-EMBED_WORDS:])


@dataclass(frozen=True)
class MoveModelConfig:
    """Which classifier, on which features, with how many PCA components of the embedding."""

    kind: Literal["logreg", "hgb"] = "logreg"
    features: Literal["compact", "full"] = "compact"
    pca_dims: int = 8
    c: float = 0.03  # inverse L2 strength of the logistic regression

    @property
    def name(self) -> str:
        """Short label for metrics tables."""
        c = f", C={self.c:g}" if self.kind == "logreg" else ""
        return f"{self.kind}({self.features}, pca={self.pca_dims}{c})"


# Chosen by forward-chaining cross-validation on the training sessions of the development
# corpora; fit_move_model picks among them on the validation split. Few on purpose: each is
# fitted on every training run, and the more candidates, the more the winner's val score flatters it.
DEFAULT_CANDIDATES: tuple[MoveModelConfig, ...] = (
    MoveModelConfig("logreg", "compact", 8, 0.03),
    MoveModelConfig("logreg", "full", 16, 0.01),
    MoveModelConfig("hgb", "compact", 8),
)
# The most recent training turns a model is fitted on. Embedding is the cost of fitting (~12 ms
# of CPU per turn); beyond ~2000 turns validation accuracy hardly moves (a podcast host: 0.497
# with the last 1500 turns, 0.50 with all 6200).
MAX_TRAIN_TURNS = 2000


@dataclass
class _Matrix:
    """Features of many decision points: the hand-made part and the raw embeddings."""

    numeric: np.ndarray
    embedded: np.ndarray
    labels: list[Move] = field(default_factory=list)


def _featurize(moments: Sequence[Moment], embedder: Any, session_p50: float, session_p90: float) -> _Matrix:
    texts = [embed_text(m.candidate_text) for m in moments]
    # MiniLM runs in ONNX Runtime (outside the GIL) while the text features are computed in Python,
    # so the two overlap instead of adding up.
    with ThreadPoolExecutor(max_workers=1) as pool:
        embedding = pool.submit(_embed, embedder, texts)
        numeric = np.stack([conversation_features(m.history, m.candidate_text, session_p50, session_p90)
                            for m in moments]) if moments else np.zeros((0, len(FEATURE_NAMES)), np.float32)
        embedded = embedding.result()
    return _Matrix(numeric, embedded, [m.move for m in moments])


def _embed(embedder: Any, texts: Sequence[str]) -> np.ndarray:
    # A turn with no candidate text (two interviewer turns in a row) gets a zero vector.
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    idx = [i for i, t in enumerate(texts) if t]
    if idx:
        out[idx] = embedder.embed_cached([texts[i] for i in idx])
    return out


class MoveModel:
    """Predicts the interviewer's next move (``DECIDABLE_MOVES``) from the conversation so far."""

    def __init__(self, config: MoveModelConfig | None = None, interviewer_id: str | None = None) -> None:
        self.config = config or MoveModelConfig()
        self.interviewer_id = interviewer_id
        self.classes: list[Move] = []
        self.class_counts: dict[str, int] = {}
        self.majority: Move | None = None
        self.session_p50 = 0.0
        self.session_p90 = 0.0
        self.n_train = 0
        self._pca: PCA | None = None
        self._clf: Any = None
        self._embedder: Any = None

    # -- fitting -----------------------------------------------------------------------------------

    def fit(self, train_sessions: Sequence[Transcript], embedder: Any, seed: int = 0) -> MoveModel:
        """Fit on the labelled moves of ``train_sessions`` (one interviewer's, oldest first; the
        last ``MAX_TRAIN_TURNS`` are used); returns self."""
        self._set_session_lengths(train_sessions)
        moments = labelled_moments(train_sessions)[-MAX_TRAIN_TURNS:]
        return self._fit_matrix(_featurize(moments, embedder, self.session_p50, self.session_p90), embedder, seed)

    def _set_session_lengths(self, sessions: Sequence[Transcript]) -> None:
        lengths = [sum(1 for t in tr.turns if t.role == "interviewer") for tr in sessions] or [0]
        self.session_p50 = float(np.percentile(lengths, 50))
        self.session_p90 = float(np.percentile(lengths, 90))
        if self.interviewer_id is None and sessions:
            self.interviewer_id = sessions[0].interviewer_id

    def _design(self, matrix: _Matrix) -> np.ndarray:
        numeric = matrix.numeric[:, _COMPACT_COLUMNS] if self.config.features == "compact" else matrix.numeric
        # float64 throughout: scikit-learn answers float32 input with float32 probabilities.
        if self._pca is None:
            return numeric.astype(np.float64)
        return np.hstack([numeric, self._pca.transform(matrix.embedded)]).astype(np.float64)

    def _fit_matrix(self, matrix: _Matrix, embedder: Any, seed: int) -> MoveModel:
        if not matrix.labels:
            raise ValueError("no labelled interviewer turns to fit a move model on")
        self._embedder = embedder
        counts = Counter(matrix.labels)
        self.class_counts = {m.value: counts[m] for m in DECIDABLE_MOVES}
        self.majority = counts.most_common(1)[0][0]
        self.n_train = len(matrix.labels)
        cfg = self.config
        dims = min(cfg.pca_dims, len(matrix.labels) - 1, matrix.embedded.shape[1])
        self._pca = PCA(n_components=dims, random_state=seed).fit(matrix.embedded) if dims > 0 else None
        x = self._design(matrix)
        y = np.array([m.value for m in matrix.labels])
        self.classes = [m for m in DECIDABLE_MOVES if counts[m]]
        if len(self.classes) == 1:
            self._clf = None  # one move only: nothing to learn beyond it
            return self
        if cfg.kind == "hgb":
            # Shallow and few: deeper boosting overfitted every interviewer in cross-validation.
            self._clf = HistGradientBoostingClassifier(
                max_iter=60, learning_rate=0.05, max_depth=3, min_samples_leaf=30,
                l2_regularization=1.0, early_stopping=False, random_state=seed).fit(x, y)
        else:
            self._clf = make_pipeline(StandardScaler(), LogisticRegression(C=cfg.c, max_iter=2000)).fit(x, y)
        return self

    # -- prediction --------------------------------------------------------------------------------

    def _proba_matrix(self, matrix: _Matrix) -> np.ndarray:
        """Rows of probabilities over ``DECIDABLE_MOVES``, smoothed so no move is impossible."""
        n = len(matrix.numeric)
        raw = np.zeros((n, len(DECIDABLE_MOVES)), dtype=np.float64)
        if self._clf is None:
            raw[:, DECIDABLE_MOVES.index(self.classes[0])] = 1.0
        else:
            p = self._clf.predict_proba(self._design(matrix))
            for j, cls in enumerate(self._clf.classes_):
                raw[:, DECIDABLE_MOVES.index(Move(cls))] = p[:, j]
        # Laplace-style floor, as PolicyStats smooths its rates: a move never seen in training
        # keeps a small chance, so controls (a coaching ratio asking for hints) can still act.
        k = len(DECIDABLE_MOVES)
        return (raw * self.n_train + 1.0) / (self.n_train + k)

    def predict_proba(self, history: Sequence[Turn], candidate_turn: str | Turn | None) -> dict[Move, float]:
        """Probability of each decidable move for the interviewer's reply to ``candidate_turn``."""
        if self._embedder is None:
            raise RuntimeError("move model is not fitted (or loaded without an embedder)")
        text = candidate_turn.text if isinstance(candidate_turn, Turn) else (candidate_turn or "")
        turns = [t if isinstance(t, Turn) else Turn.model_validate(t) for t in history]
        numeric = conversation_features(turns, text, self.session_p50, self.session_p90)[None, :]
        matrix = _Matrix(numeric, _embed(self._embedder, [embed_text(text)]))
        row = self._proba_matrix(matrix)[0]
        return {m: float(p) for m, p in zip(DECIDABLE_MOVES, row)}

    def predict(self, history: Sequence[Turn], candidate_turn: str | Turn | None) -> Move:
        """The most probable move."""
        probs = self.predict_proba(history, candidate_turn)
        return max(DECIDABLE_MOVES, key=lambda m: probs[m])

    # -- evaluation --------------------------------------------------------------------------------

    def _score_matrix(self, matrix: _Matrix) -> dict[str, Any]:
        if not matrix.labels:
            return {"n": 0, "accuracy": None, "majorityAccuracy": None, "macroF1": None}
        probs = self._proba_matrix(matrix)
        pred = [DECIDABLE_MOVES[i].value for i in probs.argmax(axis=1)]
        true = [m.value for m in matrix.labels]
        counts = Counter(true)
        majority = self.majority.value if self.majority else None
        return {
            "n": len(true),
            "accuracy": round(float(np.mean([p == t for p, t in zip(pred, true)])), 4),
            # The baseline: always the move that was commonest in training.
            "majorityMove": majority,
            "majorityAccuracy": round(counts[majority] / len(true), 4),
            # The same guess with hindsight (the commonest move of these turns): a stricter bar.
            "bestConstantAccuracy": round(counts.most_common(1)[0][1] / len(true), 4),
            "macroF1": round(float(f1_score(true, pred, average="macro", zero_division=0)), 4),
            "predicted": dict(Counter(pred).most_common()),
            "actual": dict(counts.most_common()),
        }

    def evaluate(self, sessions: Sequence[Transcript]) -> dict[str, Any]:
        """Agreement with ``label_move`` on ``sessions``: ``accuracy``, ``majorityAccuracy`` (always
        the training's commonest move, on the same turns), ``bestConstantAccuracy`` (the commonest
        move of these turns), ``macroF1`` and the number of turns ``n``."""
        if self._embedder is None:
            raise RuntimeError("move model is not fitted (or loaded without an embedder)")
        return self._score_matrix(_featurize(labelled_moments(sessions), self._embedder,
                                             self.session_p50, self.session_p90))

    # -- persistence -------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the fitted model with joblib (the embedder is not stored; ``load`` takes one)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v for k, v in self.__dict__.items() if k != "_embedder"}
        joblib.dump({"format": 1, "state": state}, path)
        return path

    @classmethod
    def load(cls, path: str | Path, embedder: Any = None) -> MoveModel:
        """Read a model written by ``save``; ``embedder`` defaults to the process-wide one."""
        data = joblib.load(Path(path))  # our own artefact (save), read from the version folder
        if data.get("format") != 1:
            raise ValueError(f"unknown move model format {data.get('format')!r} in {path}")
        model = cls()
        model.__dict__.update(data["state"])
        if embedder is None:
            from processors.twin.embeddings import get_embedder

            embedder = get_embedder()
        model._embedder = embedder
        return model


def _policy_agreement(stats: PolicyStats, moments: Sequence[Moment]) -> float | None:
    """How often the rule-based ``decide_next_move`` picks the labelled move."""
    if not moments:
        return None
    hits = sum(decide_next_move(list(m.history), m.candidate_text or None, stats, Controls(), seed=0).move == m.move
               for m in moments)
    return round(hits / len(moments), 4)


def rubric_check_on_val(stats: PolicyStats, moments: Sequence[Moment], probs: np.ndarray,
                        embedder: Any) -> dict[str, Any]:
    """Whether the generic technical rubric's verdicts fit this interviewer (the engine's ``rubric_of``).

    On the validation turns where the engine would grade the answer (``tools.tool_for``), the move decided
    from the move model's probabilities (``probs``, one row per moment) agrees with the real move so often
    before a verdict revises it (``policy.adjust_for_rubric``) and so often after. The verdicts apply when
    the revisions make more moves right than wrong by more than two standard errors of the paired
    difference (a turn or two either way among a few dozen is noise). Graded as a technical answer, a
    justice's turn gets verdicts that say nothing of what the justice does next.
    """
    from processors.twin.tools import tool_for
    from processors.twin.tools.rubric import rubric_check

    graded: list[tuple[Moment, PolicyDecision]] = []
    for m, row in zip(moments, probs):
        decision = decide_next_move(list(m.history), m.candidate_text or None, stats, Controls(), seed=0,
                                    move_probs={mv: float(p) for mv, p in zip(DECIDABLE_MOVES, row)})
        if tool_for(decision.move.value, m.candidate_text) == "rubric_check":
            graded.append((m, decision))
    # One answer at a time: in one batch their sentences pad to each other's length, slower on a CPU.
    turned = [adjust_for_rubric(d, rubric_check(m.candidate_text, embedder=embedder)).move for m, d in graded]
    before = np.array([d.move == m.move for m, d in graded], dtype=float)
    after = np.array([t == m.move for (m, _), t in zip(graded, turned)], dtype=float)
    diff = after - before
    se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return {"gradedTurns": len(graded), "revised": sum(t != d.move for (_, d), t in zip(graded, turned)),
            "agreeBefore": int(before.sum()), "agreeAfter": int(after.sum()),
            "applies": bool(len(diff) > 1 and diff.mean() > 2 * se)}


def fit_move_model(split: Split, embedder: Any, seed: int = 0,
                   candidates: Sequence[MoveModelConfig] = DEFAULT_CANDIDATES) -> tuple[MoveModel, dict[str, Any]]:
    """Fit every candidate on ``split.train``, keep the most accurate on ``split.val``.

    Returns the chosen model and its metrics (camelCase, for the version's artefacts): the val
    scores of ``MoveModel.evaluate``, the rule-based ``decide_next_move``'s agreement on the
    same turns, each candidate's val accuracy and the seconds spent. The test split is never
    read. Without val turns the first candidate is kept and the val scores are empty.
    """
    if not candidates:
        raise ValueError("no move model candidates to choose from")
    started = time.perf_counter()
    probe = MoveModel(candidates[0])
    probe._set_session_lengths(split.train)
    train_moments = labelled_moments(split.train)[-MAX_TRAIN_TURNS:]
    val_moments = labelled_moments(split.val)
    # One featurizing pass (one embedding batch) for both, cut apart afterwards.
    both = _featurize([*train_moments, *val_moments], embedder, probe.session_p50, probe.session_p90)
    n = len(train_moments)
    train = _Matrix(both.numeric[:n], both.embedded[:n], both.labels[:n])
    val = _Matrix(both.numeric[n:], both.embedded[n:], both.labels[n:])
    featurized = time.perf_counter()

    best: tuple[float, MoveModel, dict[str, Any]] | None = None
    table: dict[str, Any] = {}
    for cfg in candidates:
        model = MoveModel(cfg, probe.interviewer_id)
        model.session_p50, model.session_p90 = probe.session_p50, probe.session_p90
        model._fit_matrix(train, embedder, seed)
        scores = model._score_matrix(val)
        table[cfg.name] = {"accuracy": scores["accuracy"], "macroF1": scores["macroF1"]}
        key = scores["accuracy"] if scores["accuracy"] is not None else -1.0
        if best is None or key > best[0]:  # ties keep the earlier candidate
            best = (key, model, scores)
        if not val.labels:
            break
    _, model, scores = best  # type: ignore[misc]  # candidates is not empty
    stats = PolicyStats.fit(split.train)
    metrics = {
        "interviewerId": model.interviewer_id,
        "chosen": model.config.name,
        "trainTurns": model.n_train,
        "val": scores,
        "policyAgreement": _policy_agreement(stats, val_moments),
        "rubricCheck": rubric_check_on_val(stats, val_moments, model._proba_matrix(val), embedder),
        "candidates": table,
        "seconds": {"features": round(featurized - started, 2), "total": round(time.perf_counter() - started, 2)},
    }
    return model, metrics
