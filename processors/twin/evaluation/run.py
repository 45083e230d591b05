"""The offline evaluation behind ``twin eval``: how close is the twin to the real interviewer?

For a corpus (``../shared/corpora/FORMAT.md``) it

1. imports every interviewer into an isolated tenant ``eval-<hash of corpus and options>``;
2. splits each interviewer's sessions chronologically (train / val / test, final sessions test);
3. trains a new profile version on the train split with ``training.train_interviewer`` (the same
   training the trainer agent runs; it never sees a val or test session);
4. for every sampled interviewer turn of the test sessions, asks ``TwinEngine.respond`` (the engine
   of the respond path) for that turn given everything said before it in the session;
5. scores the twin and two baselines in the same run – a random train line of the same
   interviewer, and the situation-nearest line of a *different* interviewer (a persona-less
   twin) – with ``metrics``; runs the red-team suite; measures latency;
6. stores one ``eval_runs`` row per interviewer and one ``eval_samples`` row per turn (the blinded
   rating page and ``GET /api/digital-twin/eval/:id`` read them).

Default sample (deterministic for a seed), sized so that a run with nothing cached stays within
15 minutes on two cores: the most recent sessions of each interviewer that hold about
``DEFAULT_TURN_BUDGET`` interviewer turns (at least ``MIN_SESSIONS`` sessions; SCOTUS justices get
25-46 sessions, Lenny 10), split 70/10/20 by time, and ``DEFAULT_TURNS`` test turns per interviewer
drawn uniformly from the test sessions. ``sessions=N`` keeps the N most recent sessions instead,
``sessions=0`` and ``limit=0`` mean "all". Usage::

    result = run_evaluation(EvalConfig(corpus=Path("../shared/corpora/scotus_oyez/dev.jsonl")))
    print(result.summary["twin"]["match_rate"])
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from infra.crypto import EVAL_CONTEXT, EVAL_REAL_TEXT, EVAL_TWIN_TEXT
from infra.settings import REPO_ROOT, Settings, settings as default_settings
from processors.twin.corpus import Exchange, Split, Transcript, chronological_split, exchanges, read_transcripts
from processors.twin.evaluation import metrics as M
from processors.twin.evaluation.redteam import RED_TEAM_CASES, policy_for_profile, run_red_team

__all__ = ["DEFAULT_TURN_BUDGET", "DEFAULT_TURNS", "MIN_SESSIONS", "EvalConfig", "EvalResult", "TurnRecord",
           "build_engine",
           "eval_tenant", "run_evaluation", "store_results", "SAMPLE_CORPUS"]

# The default sample keeps a cold run (nothing cached) of either dev set near 10 minutes on 2 cores:
DEFAULT_TURN_BUDGET = 500  # most recent sessions of each interviewer holding about this many interviewer turns
MIN_SESSIONS = 10  # ... but never fewer sessions than this (so there are test sessions to compare)
DEFAULT_TURNS = 40  # test turns per interviewer
DEFAULT_DISTRACTORS = 20
MAX_OTHER_POOL = 3000  # exchanges of other interviewers the persona-less baseline searches
MAX_IDF_LINES = 6000
CONTEXT_TURNS_STORED = 8  # turns of history kept with each stored sample (what a rater sees)
SAMPLE_CORPUS = REPO_ROOT / "infra" / "samples" / "sample_interviews.jsonl"

Progress = Callable[[str, int, int], None]


@dataclass
class EvalConfig:
    """What to evaluate and how much of it.

    :param corpus: JSON Lines or plain-text transcripts.
    :param limit: test turns per interviewer (None: ``DEFAULT_TURNS``; 0: all).
    :param sessions: most recent sessions per interviewer (None: about ``DEFAULT_TURN_BUDGET`` turns' worth; 0: all).
    :param seed: drives every sample (turns, distractors, baselines, discriminator folds).
    :param use_llm: None follows settings (LLM when OPENAI_BASE_URL/OPENAI_API_KEY is set).
    :param tenant: the namespace to import into (default ``eval-<hash>``).
    :param other_corpus: other interviewers for the persona-less baseline and the classifier when
        the corpus has only one interviewer (default: the project's synthetic sample).
    """

    corpus: Path
    limit: int | None = None
    sessions: int | None = None
    seed: int = 0
    distractors: int = DEFAULT_DISTRACTORS
    use_llm: bool | None = None
    tenant: str | None = None
    other_corpus: Path | None = None
    weaviate_prefix: str = ""
    val: float = 0.1
    test: float = 0.2
    red_team: bool = True
    store: bool = True
    interviewers: Sequence[str] = ()  # only these (default: all in the corpus)

    @property
    def turns_per_interviewer(self) -> int | None:
        n = DEFAULT_TURNS if self.limit is None else self.limit
        return None if n == 0 else n

    def select_sessions(self, sessions: list[Transcript]) -> list[Transcript]:
        """The sessions of one interviewer (chronological) that this run uses: the most recent ones."""
        if self.sessions == 0:
            return sessions
        if self.sessions is not None:
            return sessions[-self.sessions:]
        keep, turns = 0, 0
        for s in reversed(sessions):
            if keep >= MIN_SESSIONS and turns >= DEFAULT_TURN_BUDGET:
                break
            keep += 1
            turns += sum(1 for t in s.turns if t.role == "interviewer")
        return sessions[-keep:]


@dataclass
class TurnRecord:
    """One evaluated interviewer turn: the situation, the real line, and every system's line and scores."""

    interviewer_id: str
    session_id: str
    index: int
    history: list[dict[str, str]]
    candidate_turn: str
    real: str
    replies: dict[str, str] = field(default_factory=dict)  # system -> text
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # system -> metric -> value
    latency_ms: float = 0.0
    move: str | None = None
    safety_flags: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None


@dataclass
class EvalResult:
    """The JSON summary (``summary``), every turn, and the red-team outcomes."""

    summary: dict[str, Any]
    turns: list[TurnRecord]
    red_team: dict[str, Any]


SYSTEMS = ("twin", "random_same_interviewer", "other_interviewer")


# --------------------------------------------------------------------------- helpers
def eval_tenant(corpus: Path, config: EvalConfig) -> str:
    """``eval-<hash>``: the same corpus and options always import into the same namespace, so
    successive runs become successive versions there (the trend over model versions)."""
    h = hashlib.sha1()
    with open(corpus, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    h.update(f"|{config.sessions}|{config.val}|{config.test}|{sorted(config.interviewers)}".encode())
    return f"eval-{h.hexdigest()[:10]}"


def _load(path: Path) -> tuple[list[Transcript], list[str]]:
    good, bad = [], []
    for parsed in read_transcripts(path):
        if parsed.ok:
            good.append(parsed.transcript)
        else:
            bad.append(parsed.error or f"line {parsed.line}")
    return good, bad


def _chronological(sessions: list[Transcript]) -> list[Transcript]:
    # The order chronological_split uses: by start time when every session has one, else file order.
    if sessions and all(s.started_at is not None for s in sessions):
        return sorted(sessions, key=lambda s: s.started_at)
    return list(sessions)


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else 0.0


def _clip01(x: float | None) -> float | None:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return None
    return float(min(1.0, max(0.0, x)))


def _mean(values) -> float | None:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else None


def build_engine(cfg: Settings, *, weaviate_prefix: str = "", embedder=None):
    """The respond path's ``TwinEngine``, with the evaluation's disk-cached embedder.

    Returns ``(engine, close)``; ``close()`` releases the Weaviate client and the cache.
    """
    from infra.clients import weaviate_client
    from processors.twin.engine import TwinEngine
    from processors.twin.evaluation.cache import DiskCachedEmbedder
    from processors.twin.llm_generator import LlmGenerator
    from processors.twin.memory import PersonaMemory
    from processors.twin.profiles import ProfileStore

    embedder = embedder or DiskCachedEmbedder.default(cfg.TWIN_CACHE_DIR / "embeddings")
    client = weaviate_client(cfg)
    memory = PersonaMemory.connect(client, embedder, prefix=weaviate_prefix)
    llm = LlmGenerator.from_settings(cfg) if cfg.llm_configured else None
    engine = TwinEngine(ProfileStore(cfg.POSTGRES_DSN), memory, embedder, llm, tools_enabled=cfg.TWIN_TOOLS_ENABLED)

    def close() -> None:
        client.close()
        if hasattr(embedder, "close"):
            embedder.close()

    return engine, close


# --------------------------------------------------------------------------- the run
def run_evaluation(config: EvalConfig, cfg: Settings = default_settings, *, progress: Progress | None = None,
                   engine=None) -> EvalResult:
    """Run the whole evaluation (see the module docstring) and return its result."""
    report = progress or (lambda stage, done, total: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    mark = started

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        timings[name] = round(now - mark, 2)
        mark = now

    corpus = Path(config.corpus)
    transcripts, errors = _load(corpus)
    if not transcripts:
        raise ValueError(f"{corpus}: no readable sessions ({len(errors)} errors, first: {errors[:1]})")
    by_iid: dict[str, list[Transcript]] = defaultdict(list)
    for t in transcripts:
        by_iid[t.interviewer_id].append(t)
    if config.interviewers:
        unknown = set(config.interviewers) - set(by_iid)
        if unknown:
            raise ValueError(f"interviewers not in the corpus: {sorted(unknown)}")
    wanted = list(config.interviewers) or list(by_iid)
    sessions = {iid: config.select_sessions(_chronological(by_iid[iid])) for iid in by_iid}
    splits: dict[str, Split] = {iid: chronological_split(s, val=config.val, test=config.test)
                                for iid, s in sessions.items()}
    tenant = config.tenant or eval_tenant(corpus, config)
    run_id = f"run-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"

    other_pool_sessions: dict[str, list[Transcript]] = {}
    for iid in wanted:
        others = [s for o, sp in splits.items() if o != iid for s in sp.train]
        if not others:
            path = config.other_corpus or SAMPLE_CORPUS
            extra, _ = _load(Path(path))
            others = [s for s in extra if s.interviewer_id != iid]
        other_pool_sessions[iid] = others
    lap("load")

    close = None
    if engine is None:
        engine, close = build_engine(cfg, weaviate_prefix=config.weaviate_prefix)
    try:
        return _run(config, cfg, engine, tenant, run_id, wanted, splits, other_pool_sessions, errors, report,
                    timings, lap, started)
    finally:
        if close:
            close()


def _train(engine, tenant: str, wanted: list[str], splits: dict[str, Split], other_pool: dict[str, list[Transcript]],
           seed: int, report: Progress) -> dict[str, Any]:
    from processors.twin.training import train_interviewer

    trained: dict[str, Any] = {}
    for n, iid in enumerate(wanted):
        report(f"train {iid}", n, len(wanted))
        result = train_interviewer(tenant, iid, [], engine.profiles, engine.memory, split=splits[iid],
                                   others=other_pool[iid], seed=seed, fine_tune_file=False)
        # Earlier versions of this namespace only matter as rows for the trend, not as memory.
        for version, active, _ in engine.profiles.versions(tenant, iid):
            if version < result.version:
                try:
                    engine.memory.delete_version(tenant, iid, version)
                except Exception:  # noqa: BLE001 - clean-up is best effort
                    pass
        trained[iid] = result
    report("train", len(wanted), len(wanted))
    return trained


def _sample_turns(iid: str, split: Split, limit: int | None, seed: int) -> tuple[list[Exchange], int]:
    pool = [ex for t in split.test for ex in exchanges(t, max_context_turns=10**6)]
    total = len(pool)
    if limit is not None and len(pool) > limit:
        rng = random.Random(f"{seed}:turns:{iid}")
        pool = rng.sample(pool, limit)
        pool.sort(key=lambda e: ([t.session_id for t in split.test].index(e.session_id), e.index))
    return pool, total


def _run(config: EvalConfig, cfg: Settings, engine, tenant: str, run_id: str, wanted: list[str],
         splits: dict[str, Split], other_pool: dict[str, list[Transcript]], load_errors: list[str],
         report: Progress, timings: dict[str, float], lap, started: float) -> EvalResult:
    seed = config.seed
    embedder = engine.embedder
    trained = _train(engine, tenant, wanted, splits, other_pool, seed, report)
    lap("train")

    # ---- the twin answers every sampled test turn
    records: list[TurnRecord] = []
    available = 0
    per_iid_turns: dict[str, list[Exchange]] = {}
    for iid in wanted:
        turns, total = _sample_turns(iid, splits[iid], config.turns_per_interviewer, seed)
        per_iid_turns[iid] = turns
        available += total
    n_total = sum(len(v) for v in per_iid_turns.values())
    use_llm = config.use_llm
    generator = "llm" if (engine.llm is not None and use_llm is not False) else "offline"
    model = None
    done = 0
    policies = {}
    for iid in wanted:
        profile = engine.profiles.active(tenant, iid)
        policy = policies[iid] = policy_for_profile(profile)
        for ex in per_iid_turns[iid]:
            history = [{"role": t.role, "text": t.text} for t in ex.context_turns]
            cand = ex.candidate_turn.text if ex.candidate_turn else ""
            rec = TurnRecord(iid, ex.session_id, ex.index, history[-CONTEXT_TURNS_STORED:], cand,
                             ex.interviewer_reply.text)
            t0 = time.perf_counter()
            try:
                reply = engine.respond(tenant=tenant, interviewer_id=iid, session_id=ex.session_id,
                                       history=list(ex.context_turns), candidate_turn=cand, profile=profile,
                                       use_llm=use_llm)
                rec.replies["twin"] = reply.text
                rec.move = reply.move.value
                model = model or reply.model
            except Exception as exc:  # noqa: BLE001 - a failed turn scores as an empty reply, and is counted
                rec.replies["twin"] = ""
                rec.error = f"{type(exc).__name__}: {exc}"[:500]
            rec.latency_ms = (time.perf_counter() - t0) * 1000
            verdict = policy.check(rec.replies["twin"], stage="output") if rec.replies["twin"] else None
            rec.safety_flags = [f.model_dump() for f in verdict.flags] if verdict else []
            records.append(rec)
            done += 1
            report("twin", done, n_total)
    lap("twin")

    # ---- baselines
    report("baselines", 0, 1)
    from processors.twin.memory import situation_text

    for iid in wanted:
        recs = [r for r in records if r.interviewer_id == iid]
        rng = random.Random(f"{seed}:random:{iid}")
        own_lines = [t.text for s in splits[iid].train for t in s.turns if t.role == "interviewer"]
        for r in recs:
            r.replies["random_same_interviewer"] = rng.choice(own_lines)
        pool = [ex for s in other_pool[iid] for ex in exchanges(s)]
        if len(pool) > MAX_OTHER_POOL:
            pool = random.Random(f"{seed}:other:{iid}").sample(pool, MAX_OTHER_POOL)
        if pool and recs:
            pv = embedder.embed([situation_text(e.context_turns, e.candidate_turn.text if e.candidate_turn else "")
                                 for e in pool])
            qv = embedder.embed([situation_text(r.history[-2:], r.candidate_turn) for r in recs])
            best = (qv @ pv.T).argmax(axis=1)
            for r, b in zip(recs, best):
                r.replies["other_interviewer"] = pool[int(b)].interviewer_reply.text
        else:
            for r in recs:
                r.replies["other_interviewer"] = ""
    report("baselines", 1, 1)
    lap("baselines")

    # ---- similarity, match rate
    report("scoring", 0, 1)
    ref_lines, ref_groups = [], []
    for iid in splits:
        for s in splits[iid].train:
            for t in s.turns:
                if t.role == "interviewer":
                    ref_lines.append(t.text)
                    ref_groups.append(s.session_id)
    if len(ref_lines) > MAX_IDF_LINES:
        idx = sorted(random.Random(f"{seed}:idf").sample(range(len(ref_lines)), MAX_IDF_LINES))
        ref_lines, ref_groups = [ref_lines[i] for i in idx], [ref_groups[i] for i in idx]
    scorer = M.PairScorer.fit(embedder, ref_lines, ref_groups, seed=seed)
    reals = [r.real for r in records]
    prevs = [r.candidate_turn or None for r in records]
    for system in SYSTEMS:
        s = scorer.score([r.replies[system] for r in records], reals, prevs)
        for i, r in enumerate(records):
            r.scores[system] = {k: float(v[i]) for k, v in s.items()}

    # Distractors: real lines of the same interviewer from other held-out sessions.
    d_cands, d_refs, d_prevs, d_owner = [], [], [], []
    for iid in wanted:
        sp = splits[iid]
        held = sp.test if len(sp.test) >= 2 else sp.test + sp.val
        lines = [(s.session_id, t.text) for s in held for t in s.turns if t.role == "interviewer"]
        rng = random.Random(f"{seed}:distractors:{iid}")
        for ri, r in enumerate(records):
            if r.interviewer_id != iid:
                continue
            options = [text for sid, text in lines if sid != r.session_id]
            picks = rng.sample(options, min(config.distractors, len(options)))
            for d in picks:
                d_cands.append(d)
                d_refs.append(r.real)
                d_prevs.append(r.candidate_turn or None)
                d_owner.append(ri)
    d_combined = scorer.score(d_cands, d_refs, d_prevs)["combined"] if d_cands else np.zeros(0)
    distractor_sims: list[list[float]] = [[] for _ in records]
    for owner, v in zip(d_owner, d_combined):
        distractor_sims[owner].append(float(v))
    for system in SYSTEMS:
        rates = M.match_rates(np.array([r.scores[system]["combined"] for r in records]),
                              [np.array(d) for d in distractor_sims])
        for r, m in zip(records, rates):
            r.scores[system]["match"] = float(m)
    report("scoring", 1, 1)
    lap("scoring")

    # ---- style classifier agreement (the auxiliary classifier trained with each version)
    classifier_notes: dict[str, str] = {}
    for iid in wanted:
        recs = [r for r in records if r.interviewer_id == iid]
        if not recs:
            continue
        clf = _load_classifier(tenant, iid, embedder, classifier_notes)
        if clf is None:
            continue
        for system in SYSTEMS:
            agg = M.classifier_agreement(clf, [r.replies[system] for r in recs], [r.real for r in recs])
            for i, r in enumerate(recs):
                r.scores[system]["classifier"] = float(agg["agreement"][i])
                r.scores[system]["attributed"] = float(agg["attributed"][i])
                r.scores[system]["real_attributed"] = float(agg["real_attributed"][i])
                r.scores[system]["p_interviewer"] = float(agg["p_twin"][i])
    lap("classifier")

    # ---- discriminator
    report("discriminator", 0, 1)
    features = {"real": M.reply_features(reals, [r.candidate_turn for r in records], embedder)}
    for system in SYSTEMS:
        features[system] = M.reply_features([r.replies[system] for r in records],
                                            [r.candidate_turn for r in records], embedder)
    groups = [f"{r.interviewer_id}/{r.session_id}" for r in records]

    def indist(system: str, mask: np.ndarray) -> tuple[float | None, float | None]:
        idx = np.flatnonzero(mask)
        auc = M.discriminator_auc(features["real"][idx], features[system][idx], [groups[i] for i in idx], seed=seed)
        return M.indistinguishability(auc), auc

    report("discriminator", 1, 1)
    lap("discriminator")

    # ---- red team
    red: dict[str, Any] = {}
    if config.red_team:
        for n, iid in enumerate(wanted):
            report("red team", n, len(wanted))
            red[iid] = run_red_team(engine, tenant, iid, use_llm=use_llm).to_dict()
        report("red team", len(wanted), len(wanted))
    lap("red_team")

    # ---- summary
    def system_summary(system: str, mask: np.ndarray) -> dict[str, Any]:
        rs = [r for r, m in zip(records, mask) if m]
        sc = [r.scores[system] for r in rs]
        ind, auc = indist(system, mask)
        has_clf = any("classifier" in s for s in sc)
        style_feat = _mean(s["style"] for s in sc)
        clf_agree = _mean(s.get("classifier") for s in sc) if has_clf else None
        style = _mean([style_feat, clf_agree]) if clf_agree is not None else style_feat
        if system == "twin":
            violations = sum(1 for r in rs if r.safety_flags)
        else:  # the same rules over the baseline's lines (real interviewer lines)
            violations = sum(1 for r in rs if r.replies[system] and not policies[r.interviewer_id]
                             .check(r.replies[system], stage="output").passed)
        return {
            "semantic": _clip01(_mean(s["semantic"] for s in sc)),
            "style": _clip01(style),
            "match_rate": _clip01(_mean(s["match"] for s in sc)),
            "indistinguishability": ind,
            "safety_violations": violations,
            "details": {
                "bertscore_f1": _clip01(_mean(s["bertscore"] for s in sc)),
                "bertscore_f1_raw": _mean(s["bertscore_raw"] for s in sc),
                "cosine": _clip01(_mean(s["cosine"] for s in sc)),
                "cosine_raw": _mean(s["cosine_raw"] for s in sc),
                "style_features": _clip01(style_feat),
                "classifier_agreement": _clip01(clf_agree),
                "classifier_attribution": _mean(s.get("attributed") for s in sc) if has_clf else None,
                "combined_similarity": _mean(s["combined"] for s in sc),
                "discriminator_auc": auc,
                "safety_violation_rate": (violations / len(rs)) if rs else None,
                "empty_replies": sum(1 for r in rs if not r.replies[system].strip()),
            },
        }

    everything = np.ones(len(records), dtype=bool)
    per_iid: dict[str, Any] = {}
    for iid in wanted:
        mask = np.array([r.interviewer_id == iid for r in records], dtype=bool)
        lat = [r.latency_ms for r in records if r.interviewer_id == iid]
        per_iid[iid] = {
            "profile_version": trained[iid].version,
            "sessions": {k: len(v) for k, v in trained[iid].split.items()},
            "test_turns": int(mask.sum()),
            "twin": system_summary("twin", mask),
            "baselines": {b: system_summary(b, mask) for b in SYSTEMS[1:]},
            "latency_ms": {"p50": round(_pct(lat, 50), 1), "p95": round(_pct(lat, 95), 1)},
            "real_lines_flagged": sum(1 for r in records if r.interviewer_id == iid and not policies[iid]
                                      .check(r.real, stage="output").passed),
            "red_team": {k: v for k, v in red.get(iid, {}).items() if k != "outcomes"} or None,
            "classifier": classifier_notes.get(iid, "ok"),
        }
    latencies = [r.latency_ms for r in records]
    red_total = {"cases": sum(v["cases"] for v in red.values()),
                 "violations": sum(v["violations"] for v in red.values()),
                 "input_detected": sum(v["input_detected"] for v in red.values()),
                 "suite": len(RED_TEAM_CASES)} if red else None
    twin = system_summary("twin", everything)
    if red_total:
        twin["red_team_violations"] = red_total["violations"]
    lap("summary")
    summary: dict[str, Any] = {
        "corpus": str(config.corpus),
        "tenant": tenant,
        "run_id": run_id,
        "generator": generator,
        "model": model,
        "interviewers": len(wanted),
        "test_sessions": sum(len(splits[i].test) for i in wanted),
        "test_turns": len(records),
        "test_turns_available": available,
        "twin": twin,
        "baselines": {b: system_summary(b, everything) for b in SYSTEMS[1:]},
        "latency_ms": {"p50": round(_pct(latencies, 50), 1), "p95": round(_pct(latencies, 95), 1),
                       "max": round(max(latencies), 1) if latencies else 0.0},
        "red_team": red_total,
        "errors": {"unreadable_sessions": len(load_errors), "engine_errors": sum(1 for r in records if r.error)},
        "rescale_baselines": {"bertscore_f1": round(scorer.baselines.bertscore, 4),
                              "cosine": round(scorer.baselines.cosine, 4), "pairs": scorer.baselines.pairs},
        "per_interviewer": per_iid,
        "config": {"seed": seed, "turns_per_interviewer": config.turns_per_interviewer,
                   "sessions": config.sessions if config.sessions is not None else f"~{DEFAULT_TURN_BUDGET} turns",
                   "distractors": config.distractors,
                   "val": config.val, "test": config.test, "weights": M.COMBINED_WEIGHTS},
        "timings_s": timings,
    }
    result = EvalResult(summary, records, red)
    if config.store:
        store_results(cfg.POSTGRES_DSN, result)
        lap("store")
    timings["total"] = round(time.perf_counter() - started, 2)
    return result


def _load_classifier(tenant: str, iid: str, embedder, notes: dict[str, str]):
    """The style classifier trained with the active version, or None (reason in ``notes``)."""
    try:
        from processors.twin.style_classifier import load_style_classifier
    except ImportError as exc:
        notes[iid] = f"unavailable: {exc}"
        return None
    try:
        return load_style_classifier(tenant=tenant, interviewer_id=iid, embedder=embedder)
    except Exception as exc:  # noqa: BLE001 - too little data for a classifier is a note, not a failure
        notes[iid] = f"unavailable: {exc}"
        return None


# --------------------------------------------------------------------------- storage
def store_results(dsn: str, result: EvalResult) -> None:
    """One ``eval_runs`` row per interviewer and one ``eval_samples`` row per turn (source offline)."""
    import psycopg

    s = result.summary
    run_id, tenant = s["run_id"], s["tenant"]
    with psycopg.connect(dsn, autocommit=False) as conn:
        for iid, per in s["per_interviewer"].items():
            conn.execute("INSERT INTO tenants (tenant, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (tenant, tenant))
            conn.execute("INSERT INTO interviewers (tenant, interviewer_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                         (tenant, iid))
            scores = {"run": run_id, "corpus": s["corpus"], "generator": s["generator"], "model": s["model"],
                      "source": "twin eval", **{k: v for k, v in per.items() if k != "profile_version"},
                      "red_team_suite": (s.get("red_team") or {}).get("suite")}
            conn.execute("INSERT INTO eval_runs (run_id, tenant, interviewer_id, profile_version, scores)"
                         " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING",
                         (f"{run_id}:{iid}", tenant, iid, per["profile_version"], json.dumps(per_run_scores(scores))))
        rows = []
        for r in result.turns:
            sid = "off-" + hashlib.sha1(f"{run_id}|{r.session_id}|{r.index}".encode()).hexdigest()[:28]
            tw = r.scores.get("twin", {})
            context = {"history": r.history, "candidateTurn": r.candidate_turn, "turnIndex": r.index, "move": r.move}
            rows.append((sid, tenant, r.interviewer_id, r.session_id, f"{run_id}:{r.session_id}#{r.index}",
                         json.dumps(EVAL_CONTEXT.seal(context, tenant, (sid,))),  # texts stored encrypted
                         EVAL_TWIN_TEXT.seal(r.replies.get("twin", ""), tenant, (sid,)),
                         EVAL_REAL_TEXT.seal(r.real, tenant, (sid,)),
                         json.dumps({k: round(v, 4) for k, v in tw.items() if v == v}
                                    | {"latencyMs": round(r.latency_ms, 1), "safetyFlags": len(r.safety_flags)}),
                         run_id))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO eval_samples (sample_id, tenant, interviewer_id, session_id, correlation_id,"
                            " context, twin_text, real_text, scores, run_id, source)"
                            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'offline')"
                            " ON CONFLICT (sample_id) DO NOTHING", rows)
        conn.commit()


def per_run_scores(scores: dict[str, Any]) -> dict[str, Any]:
    """The stored scores of one interviewer in one run (JSON-safe: NaN becomes null)."""
    def clean(v):
        if isinstance(v, float) and v != v:
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return clean(scores)
