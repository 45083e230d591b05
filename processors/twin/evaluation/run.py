"""The evaluation behind ``twin eval``: how close is the twin to the real interviewer?

For a corpus (transcripts in the format of ``processors/twin/corpus.py``) it

1. imports every interviewer into an isolated tenant ``eval-<hash of corpus and options>``;
2. splits each interviewer's sessions chronologically (train / val / test, final sessions test);
3. trains a new profile version on the train split with ``training.train_interviewer`` (the same
   training the trainer agent runs; it never sees a val or test session);
4. asks the twin every sampled test turn given everything said before it in the session — through
   the product (``via="gateway"``: ``POST /api/digital-twin/respond`` on the running stack, with
   Kafka, configuration and the safety agent in the path) or in-process (``via="engine"``);
5. answers the same turns with the baselines of ``baselines.py`` (previous line, echo, retrieval,
   medoid, random line, other interviewer);
6. scores every system alike (``score_systems``): cross-session and same-session match rates,
   rank-same, semantic and style similarity, indistinguishability over several discriminator
   seeds, each with a standard error by bootstrap over sessions, and each baseline's paired
   difference from the twin; runs the red team; measures latency;
7. stores one ``eval_runs`` row per interviewer and one ``eval_samples`` row per turn (the blinded
   rating page and ``GET /api/digital-twin/eval/:id`` read them).

Chance is measured, not assumed: the random baseline is scored beside every system.

Default sample (deterministic for a seed): the most recent sessions of each interviewer that hold
about ``DEFAULT_TURN_BUDGET`` interviewer turns (at least ``MIN_SESSIONS`` sessions), split 70/10/20
by time; from the test sessions, in a seeded order, up to ``TURNS_PER_SESSION`` turns of each
session until ``DEFAULT_TURNS`` turns per interviewer. Usage::

    result = run_evaluation(EvalConfig(corpus=Path("infra/samples/scotus_oyez_slice.jsonl")))
    print(result.summary["twin"]["rank_same"])
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from infra.crypto import EVAL_CONTEXT, EVAL_REAL_TEXT, EVAL_TWIN_TEXT
from infra.settings import REPO_ROOT, Settings, settings as default_settings
from processors.twin.corpus import (Exchange, Split, Transcript, chronological_split, exchanges, read_transcripts,
                                    write_jsonl)
from processors.twin.evaluation import metrics as M
from processors.twin.evaluation.baselines import BASELINES, BaselineSystems, Moment
from processors.twin.evaluation.redteam import (RED_TEAM_CASES, frozen_cases, word_list_second_check,
                                                policy_for_profile, run_red_team)
from processors.twin.evaluation.responders import (LLM_DRAFT_OUTCOMES, Answer, EngineResponder, GatewayResponder,
                                                   Responder)

__all__ = ["DEFAULT_TURN_BUDGET", "DEFAULT_TURNS", "MIN_SESSIONS", "OTHER_CORPUS", "SYSTEMS", "EvalConfig",
           "EvalResult", "TurnRecord", "ablation_system", "build_engine", "eval_tenant", "fitting_split",
           "pool_windows", "repeated_moments", "run_evaluation", "run_val_windows", "sample_turns",
           "score_systems", "store_results", "summarize_systems", "turn_record", "write_turns"]

# A held-out candidate turn with fewer content words than this is never a retold clip (repeated_moments):
# on the podcast, repeated moments follow formulas of 1-3 content words (a thank-you) or answers of 13 and more.
REPEATED_MOMENT_MIN_STEMS = 8
DEFAULT_TURN_BUDGET = 500  # most recent sessions of each interviewer holding about this many interviewer turns
MIN_SESSIONS = 25  # ... but never fewer sessions than this (5 test sessions: standard errors need several)
DEFAULT_TURNS = 100  # test turns per interviewer
TURNS_PER_SESSION = 30  # at most this many turns of one test session (more sessions, honest SEs)
DEFAULT_DISTRACTORS = 20
DISCRIMINATOR_SEEDS = 3
MAX_IDF_LINES = 6000
CONTEXT_TURNS_STORED = 8  # turns of history kept with each stored sample (what a rater sees)
# Real interviewers for the persona-less baseline when the corpus has only one: public-record
# transcripts that ship with the repository (never synthetic lines).
OTHER_CORPUS = REPO_ROOT / "infra" / "samples" / "scotus_oyez_slice.jsonl"
SYSTEMS: tuple[str, ...] = ("twin", *BASELINES)
MATCH_METRICS = ("match_rate_cross", "match_rate_same", "rank_same")

Progress = Callable[[str, int, int], None]


@dataclass
class EvalConfig:
    """What to evaluate, how much of it, and through which path.

    :param corpus: JSON Lines or plain-text transcripts.
    :param limit: test turns per interviewer (None: ``DEFAULT_TURNS``; 0: all).
    :param sessions: most recent sessions per interviewer (None: about ``DEFAULT_TURN_BUDGET`` turns' worth; 0: all).
    :param seed: drives every sample (turns, distractors, baselines, discriminator folds).
    :param use_llm: None follows settings (LLM when OPENAI_BASE_URL/OPENAI_API_KEY is set); engine path only.
    :param via: "gateway" asks the running product, "engine" the in-process engine.
    :param gateway_url: the gateway to ask (default: GATEWAY_HOST:GATEWAY_PORT, started when not running).
    :param timeout_ms: each gateway request's deadline (``timeoutMs``; default the gateway's
        ``RESPOND_TIMEOUT_MS``): an LLM on a small machine needs more than the default 5 s.
    :param tenant: the namespace to import into (default ``eval-<hash>``).
    :param other_corpus: other real interviewers for the persona-less baseline when the corpus has
        only one interviewer (default ``OTHER_CORPUS``).
    :param on: the split whose turns are asked and scored: "test" (reported figures) or "val" (for
        choosing methods without looking at the test sessions).
    :param ablations: parts of the twin (``engine.ABLATIONS``) to switch off one at a time; each becomes
        a system ``twin-no-<part>`` answered by the in-process engine on the same turns.
    :param classifier: train the auxiliary style classifier with each version (the classifier-agreement
        figures need it; replies never use it, and it is about 40% of a training).
    :param window: 0 ends each interviewer's run at their newest session (the reported run). ``w`` >= 1
        (only with ``on="val"``) validates on the ``w``-th validation part before the reported run's
        (``split``), trained on as many sessions as the reported run trains on, with the test sessions
        not in the run at all. ``run_val_windows`` pools several.
    """

    corpus: Path
    limit: int | None = None
    sessions: int | None = None
    seed: int = 0
    distractors: int = DEFAULT_DISTRACTORS
    use_llm: bool | None = None
    via: str = "engine"
    gateway_url: str | None = None
    timeout_ms: int | None = None
    tenant: str | None = None
    other_corpus: Path | None = None
    weaviate_prefix: str = ""
    val: float = 0.1
    test: float = 0.2
    red_team: bool = True
    store: bool = True
    interviewers: Sequence[str] = ()  # only these (default: all in the corpus)
    turns_per_session: int = TURNS_PER_SESSION
    discriminator_seeds: int = DISCRIMINATOR_SEEDS
    on: str = "test"
    ablations: Sequence[str] = ()
    classifier: bool = True
    window: int = 0

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

    def split(self, sessions: list[Transcript]) -> Split:
        """One interviewer's (chronological) sessions split as this run uses them.

        Window 0: the most recent sessions (``select_sessions``) split by time. Window ``w`` >= 1: the
        ``w``-th validation part before window 0's (window 1's just before it), with as many train sessions
        before it as window 0 trains on (or all there are); its test part is what lies between it and
        window 0's test part (the next windows' validation sessions, never asked in a validation run).
        Window 0's test sessions are in no other window.
        """
        default = chronological_split(self.select_sessions(sessions), val=self.val, test=self.test)
        if self.window <= 0:
            return default
        n_val, n_test = len(default.val), len(default.test)
        end = len(sessions) - n_test - self.window * n_val  # just after this window's validation part
        if n_val < 1 or end - n_val < 1:
            raise ValueError(f"{sessions[0].interviewer_id}: {len(sessions)} sessions are too few for validation "
                             f"window {self.window} ({n_val} per validation part)")
        return Split(train=sessions[max(0, end - n_val - len(default.train)):end - n_val],
                     val=sessions[end - n_val:end], test=sessions[end:len(sessions) - n_test])


@dataclass
class TurnRecord:
    """One evaluated interviewer turn: the situation, the real line, and every system's line and scores."""

    interviewer_id: str
    session_id: str
    index: int
    history: list[dict[str, str]]  # the last CONTEXT_TURNS_STORED turns (what is stored and shown)
    candidate_turn: str
    real: str
    situation: M.Situation = field(default_factory=M.Situation)
    replies: dict[str, str] = field(default_factory=dict)  # system -> text
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # system -> metric -> value
    latency_ms: float = 0.0
    move: str | None = None
    safety_action: str = "none"
    safety_flags: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    llm_draft: str | None = None  # with the LLM: whether its draft was delivered (``responders.llm_draft_outcome``)

    @property
    def group(self) -> str:
        """The unit of resampling and of the discriminator's folds: one session."""
        return f"{self.interviewer_id}/{self.session_id}"


@dataclass
class EvalResult:
    """The JSON summary (``summary``), every turn, and the red-team outcomes."""

    summary: dict[str, Any]
    turns: list[TurnRecord]
    red_team: dict[str, Any]


# --------------------------------------------------------------------------- helpers
def eval_tenant(corpus: Path, config: EvalConfig) -> str:
    """``eval-<hash>``: the same corpus and options always import into the same namespace, so
    successive runs become successive versions there (the trend over model versions)."""
    h = hashlib.sha1(usedforsecurity=False)  # a namespace name, not a signature
    with open(corpus, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    h.update(f"|{config.sessions}|{config.val}|{config.test}|{sorted(config.interviewers)}".encode())
    if config.window:
        h.update(f"|window {config.window}".encode())
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


def _mean(values) -> float | None:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else None


def _r(x: float | None, n: int = 4) -> float | None:
    return None if x is None or x != x else round(float(x), n)


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
        engine.close()
        client.close()
        if hasattr(embedder, "close"):
            embedder.close()

    return engine, close


def _on_this_machine(url: str) -> bool:
    """Whether ``url`` names this machine: localhost, a loopback or an unspecified (0.0.0.0, ::) address."""
    import ipaddress
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def _gateway_responder(config: EvalConfig, cfg: Settings, report: Progress) -> tuple[GatewayResponder, Callable]:
    """A responder on the configured gateway, started (gateway + worker) when none answers there.

    Returns it with a ``close()`` that stops what this run started, and nothing else.
    """
    from datetime import timedelta

    import httpx

    from infra.apikeys import create_api_key

    scheme = "https" if cfg.GATEWAY_TLS_CERT else "http"
    url = config.gateway_url or f"{scheme}://{cfg.GATEWAY_HOST}:{cfg.GATEWAY_PORT}"
    # TLS: the gateway's certificate is verified (system CAs, SSL_CERT_FILE) unless the gateway is on this
    # machine (loopback), where no network sits between us and it and its certificate is usually made out to
    # another name. The run's API key is only ever sent under this rule.
    verify = not _on_this_machine(url)
    started = None
    try:
        ready = httpx.get(f"{url}/readyz", timeout=2, verify=verify).status_code == 200
    except httpx.HTTPError:
        ready = False
    if not ready:
        if config.gateway_url:
            raise RuntimeError(f"no gateway answers at {url}/readyz")
        from infra.stack import Stack

        report("start gateway", 0, 1)
        started = Stack(cfg, echo=lambda _: None)
        started.start_app(name="eval")
        report("start gateway", 1, 1)

    def token_for(tenant: str) -> str:
        # A respond-only key for the evaluation's own tenant, valid for the run.
        return create_api_key(cfg, tenant, scopes=["respond"], name="twin eval", expires_in=timedelta(hours=6))

    deadline_ms = config.timeout_ms or cfg.RESPOND_TIMEOUT_MS
    responder = GatewayResponder(url, token_for, timeout_s=max(30.0, deadline_ms / 1000 + 5), verify=verify,
                                 deadline_ms=config.timeout_ms)

    def close() -> None:
        responder.close()
        if started is not None:
            started.stop_app(name="eval")

    return responder, close


# --------------------------------------------------------------------------- the run
def run_evaluation(config: EvalConfig, cfg: Settings = default_settings, *, progress: Progress | None = None,
                   engine=None) -> EvalResult:
    """Run the whole evaluation (see the module docstring) and return its result."""
    report = progress or (lambda stage, done, total: None)
    if config.via not in ("engine", "gateway"):
        raise ValueError(f"via must be 'engine' or 'gateway', not {config.via!r}")
    if config.on not in ("test", "val"):
        raise ValueError(f"on must be 'test' or 'val', not {config.on!r}")
    if config.window < 0 or (config.window and config.on != "val"):
        raise ValueError(f"window {config.window}: earlier windows are for validation only (on='val')")
    from processors.twin.engine import ABLATIONS

    unknown = set(config.ablations) - set(ABLATIONS)
    if unknown:
        raise ValueError(f"unknown ablation(s) {sorted(unknown)}; known: {', '.join(ABLATIONS)}")
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
    splits: dict[str, Split] = {iid: config.split(_chronological(own)) for iid, own in by_iid.items()}
    tenant = config.tenant or eval_tenant(corpus, config)
    run_id = f"run-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"

    other_pool_sessions: dict[str, list[Transcript]] = {}
    other_source: dict[str, str] = {}
    for iid in wanted:
        others = [s for o, sp in splits.items() if o != iid for s in sp.train]
        source = str(corpus)
        if not others:
            path = Path(config.other_corpus or OTHER_CORPUS)
            extra, _ = _load(path)
            others = [s for s in extra if s.interviewer_id != iid]
            source = str(path)
        other_pool_sessions[iid] = others
        other_source[iid] = f"{source} ({len({s.interviewer_id for s in others})} interviewer(s))"
    lap("load")

    close_engine = close_responder = None
    if engine is None:
        engine, close_engine = build_engine(cfg, weaviate_prefix=config.weaviate_prefix)
    try:
        if config.via == "gateway":
            responder, close_responder = _gateway_responder(config, cfg, report)
        else:
            responder = EngineResponder(engine, config.use_llm)
        return _run(config, cfg, engine, responder, tenant, run_id, wanted, splits, other_pool_sessions,
                    other_source, errors, report, timings, lap, started)
    finally:
        if close_responder:
            close_responder()
        if close_engine:
            close_engine()


def fitting_split(split: Split) -> Split:
    """The split a validation run trains on: its validation sessions are what the run scores, so the
    training's own choices (the selector's weights and options, the move model, the style classifier's
    check) are made on the last train sessions instead, as many as the validation part holds; otherwise
    the run would score choices on the very turns they were chosen on, and methods with more choices
    would look better than they are. With too few train sessions to spare, nothing is chosen (defaults).
    The scored sessions join the test part, which training never reads."""
    n = len(split.val)
    if len(split.train) - n < 2:  # the selector needs two train sessions
        return Split(train=list(split.train), val=[], test=[*split.val, *split.test])
    return Split(train=split.train[:-n], val=split.train[-n:], test=[*split.val, *split.test])


def _train(engine, tenant: str, wanted: list[str], splits: dict[str, Split], other_pool: dict[str, list[Transcript]],
           seed: int, report: Progress, classifier: bool = True) -> dict[str, Any]:
    from processors.twin.training import train_interviewer

    trained: dict[str, Any] = {}
    for n, iid in enumerate(wanted):
        report(f"train {iid}", n, len(wanted))
        result = train_interviewer(tenant, iid, [], engine.profiles, engine.memory, split=splits[iid],
                                   others=other_pool[iid], seed=seed, fine_tune_file=False,
                                   classifier=classifier)
        # Earlier versions of this namespace only matter as rows for the trend, not as memory.
        for version, active, _ in engine.profiles.versions(tenant, iid):
            if version < result.version:
                try:
                    engine.memory.delete_version(tenant, iid, version)
                except Exception:  # noqa: BLE001 - clean-up is best effort
                    logging.getLogger(__name__).warning("%s/%s: memory of version %s not deleted", tenant, iid,
                                                        version, exc_info=True)
        trained[iid] = result
    report("train", len(wanted), len(wanted))
    return trained


def repeated_moments(train: Sequence[Transcript], scored: Sequence[Exchange]) -> set[tuple[str, int]]:
    """``(session id, index)`` of the ``scored`` exchanges whose moment the ``train`` sessions hold too: the
    candidate's turn is a substantive answer (``REPEATED_MOMENT_MIN_STEMS``) that restates a train turn
    (``text.restates``), and the interviewer's line restates the line said after that one.

    A podcast's compilation episodes retell earlier episodes' clips, so a held-out moment can sit word for
    word in training, and answering it from memory is recall, not prediction: 10 of the podcast host's 151
    validation turns (none of the 373 test turns, none of the justices'). A formula after a formula (a guest's
    thanks, then the host's sign-off) is the interviewer's habit in every session, and stays.
    """
    from processors.twin.text import restates, stem_set

    train_ex = [ex for t in train for ex in exchanges(t, max_context_turns=0) if ex.candidate_turn is not None]
    by_stem: dict[str, set[int]] = defaultdict(set)
    for i, ex in enumerate(train_ex):
        for w in stem_set(ex.interviewer_reply.text):
            by_stem[w].add(i)
    out: set[tuple[str, int]] = set()
    for ex in scored:
        heard = ex.candidate_turn.text if ex.candidate_turn else ""
        line = ex.interviewer_reply.text
        line_stems = stem_set(line)
        if len(stem_set(heard)) < REPEATED_MOMENT_MIN_STEMS:
            continue
        shared: dict[int, int] = defaultdict(int)
        for w in line_stems:
            for i in by_stem.get(w, ()):
                shared[i] += 1
        # Only train lines sharing enough words can pass restates' Jaccard bound: the index spares the rest.
        if any(n >= 0.6 * len(line_stems) and restates(line, train_ex[i].interviewer_reply.text)
               and restates(heard, train_ex[i].candidate_turn.text) for i, n in shared.items()):
            out.add((ex.session_id, ex.index))
    return out


def sample_turns(iid: str, split: Split, limit: int | None, seed: int,
                 per_session: int | None = TURNS_PER_SESSION, on: str = "test") -> tuple[list[Exchange], int, int]:
    """The test turns (``on="val"``: validation turns) of one interviewer this run asks, how many there
    were in all, and how many of those were left out as moments the train part holds too
    (``repeated_moments``).

    Test sessions are visited in a seeded order; each gives at most ``per_session`` of its turns
    (a seeded subset, in order) until ``limit`` turns are taken. Rank-same compares a turn only
    with the other *sampled* turns of its session, so a constant reply scores exactly 0.5.
    """
    by_session = [exchanges(t, max_context_turns=10**6) for t in getattr(split, on)]
    repeated = repeated_moments(split.train, [ex for xs in by_session for ex in xs])
    by_session = [[ex for ex in xs if (ex.session_id, ex.index) not in repeated] for xs in by_session]
    total = sum(len(x) for x in by_session)
    rng = random.Random(f"{seed}:turns:{iid}")  # nosec B311  # seeded for reproducible sampling, not secrets
    order = list(range(len(by_session)))
    rng.shuffle(order)
    chosen: list[tuple[int, Exchange]] = []
    for k in order:
        if limit is not None and len(chosen) >= limit:
            break
        pool = by_session[k]
        room = len(pool) if limit is None else limit - len(chosen)
        take = min(len(pool), room, per_session or len(pool))
        picked = sorted(rng.sample(range(len(pool)), take)) if take < len(pool) else list(range(len(pool)))
        chosen.extend((k, pool[i]) for i in picked)
    chosen.sort(key=lambda x: (x[0], x[1].index))
    return [ex for _, ex in chosen], total, len(repeated)


def turn_record(ex: Exchange) -> TurnRecord:
    """The record of one test turn: its situation and real line, before any system answers."""
    turns = list(ex.context_turns)
    cand = ex.candidate_turn.text if ex.candidate_turn else ""
    previous = next((t.text for t in reversed(turns) if t.role == "interviewer"), "")
    so_far = " ".join(t.text for t in turns)
    return TurnRecord(ex.interviewer_id, ex.session_id, ex.index,
                      [{"role": t.role, "text": t.text} for t in turns[-CONTEXT_TURNS_STORED:]], cand,
                      ex.interviewer_reply.text,
                      situation=M.Situation(cand, previous, so_far,
                                            tuple(t.text for t in turns if t.role == "interviewer" and t.text.strip())))


def _wait_for_version(responder: Responder, tenant: str, iid: str, version: int, timeout_s: float = 30.0) -> None:
    # Workers cache the active profile for a few seconds: wait until the new version answers.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = responder.ask(tenant, iid, f"eval-warmup-{uuid.uuid4().hex[:8]}", (), "Good morning.")
        if answer.error is None and answer.profile_version in (None, version):
            return
        time.sleep(1.0)
    raise RuntimeError(f"{iid}: the twin did not answer with version {version} within {timeout_s:.0f}s "
                       f"(last: {answer.error or answer.profile_version})")


def _run(config: EvalConfig, cfg: Settings, engine, responder: Responder, tenant: str, run_id: str,
         wanted: list[str], splits: dict[str, Split], other_pool: dict[str, list[Transcript]],
         other_source: dict[str, str], load_errors: list[str], report: Progress, timings: dict[str, float], lap,
         started: float) -> EvalResult:
    seed = config.seed
    embedder = engine.embedder
    # What the twin trains and makes its choices on: on "val", not the scored validation sessions.
    fit_splits = {iid: fitting_split(splits[iid]) if config.on == "val" else splits[iid] for iid in wanted}
    trained = _train(engine, tenant, wanted, fit_splits, other_pool, seed, report, classifier=config.classifier)
    lap("train")

    # ---- the twin answers every sampled test turn
    records: list[TurnRecord] = []
    available = repeated = 0
    per_iid_turns: dict[str, list[Exchange]] = {}
    for iid in wanted:
        turns, total, left_out = sample_turns(iid, splits[iid], config.turns_per_interviewer, seed,
                                              config.turns_per_session, on=config.on)
        per_iid_turns[iid] = turns
        available += total
        repeated += left_out
    n_total = sum(len(v) for v in per_iid_turns.values())
    model, generators, done = None, set(), 0
    # The ablations: the in-process engine with one part switched off, on the same turns.
    scored = (*SYSTEMS, *(ablation_system(a) for a in config.ablations))
    ablated = {a: EngineResponder(engine, config.use_llm, ablate=(a,)) for a in config.ablations}
    policies = {}
    for iid in wanted:
        policies[iid] = policy_for_profile(engine.profiles.active(tenant, iid))
        if responder.via == "gateway":
            _wait_for_version(responder, tenant, iid, trained[iid].version)
        for ex in per_iid_turns[iid]:
            rec = turn_record(ex)
            answer: Answer = responder.ask(tenant, iid, f"eval:{run_id}:{ex.session_id}",
                                           [(t.role, t.text) for t in ex.context_turns], rec.candidate_turn)
            rec.replies["twin"] = answer.text
            rec.move, rec.latency_ms, rec.error = answer.move, answer.latency_ms, answer.error
            rec.safety_action, rec.llm_draft = answer.safety_action, answer.llm_draft
            model = model or answer.model
            if answer.generator:
                generators.add(answer.generator)
            verdict = policies[iid].check(answer.text, stage="output") if answer.text else None
            rec.safety_flags = [f.model_dump() for f in verdict.flags] if verdict else []
            for a, other in ablated.items():
                rec.replies[ablation_system(a)] = other.ask(tenant, iid, f"eval:{run_id}:{ex.session_id}",
                                                            [(t.role, t.text) for t in ex.context_turns],
                                                            rec.candidate_turn).text
            records.append(rec)
            done += 1
            report("twin", done, n_total)
    lap("twin")

    # ---- baselines, on the same turns
    for n, iid in enumerate(wanted):
        report("baselines", n, len(wanted))
        recs = [r for r in records if r.interviewer_id == iid]
        systems = BaselineSystems.fit(embedder, splits[iid].train, other_pool[iid], seed=seed)
        moments = [Moment(r.session_id, tuple((t.role, t.text) for t in ex.context_turns), r.candidate_turn)
                   for r, ex in zip(recs, per_iid_turns[iid])]
        answers = systems.answer_all(moments, key=iid)
        for name, lines in answers.items():
            for r, line in zip(recs, lines):
                r.replies[name] = line
    report("baselines", len(wanted), len(wanted))
    lap("baselines")

    # ---- scoring
    report("scoring", 0, 1)
    ref_lines, ref_groups, ref_speakers = [], [], []
    for iid in splits:
        for s in splits[iid].train:
            for t in s.turns:
                if t.role == "interviewer":
                    ref_lines.append(t.text)
                    ref_groups.append(s.session_id)
                    ref_speakers.append(iid)
    if len(ref_lines) > MAX_IDF_LINES:
        # A seeded, reproducible sample of reference lines (not a secret).
        idx = sorted(random.Random(f"{seed}:idf").sample(range(len(ref_lines)), MAX_IDF_LINES))  # nosec B311
        ref_lines = [ref_lines[i] for i in idx]
        ref_groups = [ref_groups[i] for i in idx]
        ref_speakers = [ref_speakers[i] for i in idx]
    scorer = M.PairScorer.fit(embedder, ref_lines, ref_groups, speakers=ref_speakers, seed=seed)
    cross_lines = {}
    for iid in wanted:
        sp = splits[iid]
        # On val, the test sessions stay unread.
        held = sp.val if config.on == "val" else sp.test if len(sp.test) >= 2 else sp.test + sp.val
        cross_lines[iid] = [(s.session_id, t.text) for s in held for t in s.turns if t.role == "interviewer"]
    same_lines = {s.session_id: [t.text for t in s.turns if t.role == "interviewer"]
                  for iid in wanted for s in getattr(splits[iid], config.on)}
    scoring = score_systems(records, scored, scorer, embedder, cross_lines=cross_lines, same_lines=same_lines,
                            distractors=config.distractors, seed=seed, progress=report)
    report("scoring", 1, 1)
    lap("scoring")

    # ---- style classifier agreement (a detail: it was trained on the train lines systems emit)
    classifier_notes: dict[str, str] = {}
    for iid in wanted:
        recs = [r for r in records if r.interviewer_id == iid]
        if not config.classifier:  # an earlier version's classifier would judge this version's twin
            classifier_notes[iid] = "not trained (--no-classifier)"
            continue
        clf = _load_classifier(tenant, iid, embedder, classifier_notes) if recs else None
        if clf is None:
            continue
        for system in scored:
            agg = M.classifier_agreement(clf, [r.replies[system] for r in recs], [r.real for r in recs])
            for i, r in enumerate(recs):
                r.scores[system]["classifier"] = float(agg["agreement"][i])
                r.scores[system]["attributed"] = float(agg["attributed"][i])
    lap("classifier")

    # ---- red team (through the same responder; an error is a failure, not a pass)
    red: dict[str, Any] = {}
    # The hand-written attacks and a seeded draw from the safety suite's frozen test part; every reply is
    # also judged by the learned checks, independent of the rules the generator screens its lines with.
    red_cases = [*RED_TEAM_CASES, *frozen_cases(seed=config.seed)] if config.red_team else []
    if config.red_team:
        second = word_list_second_check()
        for n, iid in enumerate(wanted):
            report("red team", n, len(wanted))
            red[iid] = run_red_team(responder, tenant, iid, policy=policies[iid], cases=red_cases,
                                    second_check=second).to_dict()
        report("red team", len(wanted), len(wanted))
    lap("red_team")

    # ---- summary
    def violations(system: str, rs: list[TurnRecord]) -> int:
        if system == "twin":
            return sum(1 for r in rs if r.safety_flags)
        return sum(1 for r in rs if r.replies[system] and not policies[r.interviewer_id]
                   .check(r.replies[system], stage="output").passed)

    everything = np.ones(len(records), dtype=bool)
    per_iid: dict[str, Any] = {}
    for iid in wanted:
        mask = np.array([r.interviewer_id == iid for r in records], dtype=bool)
        rs = [r for r, m in zip(records, mask) if m]
        lat = [r.latency_ms for r in rs]
        summaries = summarize_systems(records, scored, scoring, mask, seed=seed,
                                      n_seeds=config.discriminator_seeds)
        for system in scored:
            summaries[system]["safety_violations"] = violations(system, rs)
        per_iid[iid] = {
            "profile_version": trained[iid].version,
            "sessions": {k: len(v) for k, v in trained[iid].split.items()},
            "test_turns": int(mask.sum()),
            "test_sessions_sampled": len({r.session_id for r in rs}),
            "twin": summaries["twin"],
            "baselines": {b: summaries[b] for b in BASELINES},
            "ablations": {a: summaries[ablation_system(a)] for a in config.ablations},
            "chance": _chance(summaries),
            "other_interviewer_source": other_source[iid],
            "latency_ms": {"p50": round(_pct(lat, 50), 1), "p95": round(_pct(lat, 95), 1)},
            "real_lines_flagged": sum(1 for r in rs if not policies[iid].check(r.real, stage="output").passed),
            "red_team": {k: v for k, v in red.get(iid, {}).items() if k != "outcomes"} or None,
            "classifier": classifier_notes.get(iid, "ok"),
        }
    summaries = summarize_systems(records, scored, scoring, everything, seed=seed,
                                  n_seeds=config.discriminator_seeds)
    for system in scored:
        summaries[system]["safety_violations"] = violations(system, records)
    latencies = [r.latency_ms for r in records]
    red_total = {"cases": sum(v["cases"] for v in red.values()),
                 "violations": sum(v["violations"] for v in red.values()),
                 "errors": sum(v["errors"] for v in red.values()),
                 "input_detected": sum(v["input_detected"] for v in red.values()),
                 "redirected": sum(v["redirected"] for v in red.values()),
                 "redirected_asking": sum(v["redirected_asking"] for v in red.values()),
                 "second_check_flagged": sum(v["second_check_flagged"] for v in red.values()),
                 "suite": len(red_cases)} if red else None
    twin = summaries["twin"]
    if red_total:
        twin["red_team_violations"] = red_total["violations"]
    lap("summary")
    summary: dict[str, Any] = {
        "corpus": str(config.corpus),
        "tenant": tenant,
        "run_id": run_id,
        "via": responder.via,
        "generator": "+".join(sorted(generators)) or ("llm" if engine.llm is not None and config.use_llm is not False
                                                      else "offline"),
        "model": model,
        "interviewers": len(wanted),
        "on": config.on,
        "test_sessions": sum(len(getattr(splits[i], config.on)) for i in wanted),
        "test_sessions_sampled": len({r.group for r in records}),
        "test_turns": len(records),
        "test_turns_available": available,
        # Held-out moments the train part holds too (a retold clip): left out of the sample (repeated_moments).
        "test_turns_repeated": repeated,
        # The sessions the twin trained on and made its choices on (on "val", carved from the train part).
        "twin_fit_sessions": {part: sum(len(getattr(fit_splits[i], part)) for i in wanted)
                              for part in ("train", "val")},
        "twin": twin,
        "baselines": {b: summaries[b] for b in BASELINES},
        "ablations": {a: summaries[ablation_system(a)] for a in config.ablations},
        "chance": _chance(summaries),
        "latency_ms": {"p50": round(_pct(latencies, 50), 1), "p95": round(_pct(latencies, 95), 1),
                       "max": round(max(latencies), 1) if latencies else 0.0, "path": responder.via},
        "safety_replaced": sum(1 for r in records if r.safety_action not in ("none", "")),
        # With the LLM: how many of its drafts were delivered, and how many gave way to the offline twin.
        "llm_drafts": {k: sum(1 for r in records if r.llm_draft == k) for k in LLM_DRAFT_OUTCOMES},
        "red_team": red_total,
        "errors": {"unreadable_sessions": len(load_errors), "twin_errors": sum(1 for r in records if r.error),
                   "first_error": next((r.error for r in records if r.error), None)},
        "rescale_baselines": {"bertscore_f1": round(scorer.baselines.bertscore, 4),
                              "cosine": round(scorer.baselines.cosine, 4), "style": round(scorer.baselines.style, 4),
                              "pairs": scorer.baselines.pairs},
        "per_interviewer": per_iid,
        "config": {"seed": seed, "turns_per_interviewer": config.turns_per_interviewer,
                   "turns_per_session": config.turns_per_session,
                   "sessions": config.sessions if config.sessions is not None else f"~{DEFAULT_TURN_BUDGET} turns",
                   "distractors": config.distractors, "discriminator_seeds": config.discriminator_seeds,
                   "val": config.val, "test": config.test, "weights": M.COMBINED_WEIGHTS,
                   "on": config.on, "ablations": list(config.ablations), "classifier": config.classifier},
        "timings_s": timings,
    }
    result = EvalResult(summary, records, red)
    if config.store:
        store_results(cfg.POSTGRES_DSN, result)
        lap("store")
    timings["total"] = round(time.perf_counter() - started, 2)
    return result


def run_val_windows(config: EvalConfig, windows: int, cfg: Settings = default_settings, *,
                    progress: Progress | None = None) -> tuple[list[EvalResult], dict[str, Any]]:
    """Run the validation evaluation on ``windows`` chronological windows (``EvalConfig.window`` 0 ..
    windows - 1) and pool them (``pool_windows``). Each window trains its own version, in its own tenant.

    One validation part is a few sessions (the podcast host's is three): a method's figures move by more
    between windows than between methods. Pooled windows, each trained as the reported run is, are what
    a method is chosen on; the test part is read once, for the method chosen.
    """
    if windows < 1:
        raise ValueError("windows must be at least 1")
    report = progress or (lambda stage, done, total: None)
    results = []
    for w in range(windows):
        window_config = replace(config, on="val", window=w,
                                tenant=f"{config.tenant}-w{w}" if config.tenant and w else config.tenant)
        results.append(run_evaluation(window_config, cfg,
                                      progress=lambda stage, done, total, w=w: report(f"w{w} {stage}", done, total)))
    return results, pool_windows(results, seed=config.seed)


def pool_windows(results: Sequence[EvalResult], *, seed: int = 0) -> dict[str, Any]:
    """Every system's figures over the turns of several windows' results.

    Per-turn figures (match rates, semantic, style) are means over all turns, with standard errors by
    bootstrap over sessions; a baseline's ``twin_minus_this`` is its paired difference from the twin on
    the same turns. Indistinguishability needs one discriminator per run (its folds group a run's
    sessions): the mean of the windows', with the standard error of that mean from theirs.
    """
    turns = [r for res in results for r in res.turns]
    groups = [f"w{w}/{r.group}" for w, res in enumerate(results) for r in res.turns]
    first = results[0].summary
    parts = {ablation_system(a): a for a in first.get("ablations") or {}}
    systems = ["twin", *first["baselines"], *parts]

    def window_entry(res: EvalResult, system: str) -> dict[str, Any]:
        s = res.summary
        if system in parts:
            return s["ablations"][parts[system]]
        return s["twin"] if system == "twin" else s["baselines"][system]

    pooled: dict[str, dict[str, Any]] = {}
    for system in systems:
        entry: dict[str, Any] = {"se": {}}
        for metric in (*MATCH_METRICS, "semantic", "style"):
            mean, se = M.bootstrap_mean([r.scores[system][metric] for r in turns], groups, seed=seed)
            entry[metric], entry["se"][metric] = _r(mean), _r(se)
        entries = [window_entry(res, system) for res in results]
        measured = [e for e in entries if e.get("indistinguishability") is not None]
        values = [e["indistinguishability"] for e in measured]
        ses = [e["se"].get("indistinguishability") or 0.0 for e in measured]
        entry["indistinguishability"] = _r(float(np.mean(values))) if values else None
        entry["se"]["indistinguishability"] = _r(float(np.sqrt(np.sum(np.square(ses)))) / len(ses)) if ses else None
        entry["indistinguishability_by_window"] = [_r(v) for v in values]
        if system != "twin":
            entry["twin_minus_this"] = _twin_minus_this(turns, "twin", system, groups, seed)
        pooled[system] = entry
    return {
        "corpus": first["corpus"], "on": "val", "windows": len(results),
        "turns": len(turns), "sessions": len(set(groups)),
        "twin": pooled["twin"],
        "baselines": {b: pooled[b] for b in first["baselines"]},
        "ablations": {a: pooled[system] for system, a in parts.items()},
        "per_window": [{"window": w, "tenant": res.summary["tenant"], "run_id": res.summary["run_id"],
                        "turns": res.summary["test_turns"], "sessions": res.summary["test_sessions"],
                        "twin": {k: res.summary["twin"].get(k) for k in (*MATCH_METRICS, "indistinguishability")}}
                       for w, res in enumerate(results)],
    }


def ablation_system(part: str) -> str:
    """The system name of the twin with ``part`` switched off (see ``engine.ABLATIONS``)."""
    return f"twin-no-{part.replace('_', '-')}"


# --------------------------------------------------------------------------- scoring (pure)
@dataclass
class Scoring:
    """Per-turn scores of every system plus the discriminator's features (see ``score_systems``)."""

    features: dict[str, np.ndarray]


def score_systems(records: list[TurnRecord], systems: Sequence[str], scorer: M.PairScorer, embedder, *,
                  cross_lines: dict[str, list[tuple[str, str]]], same_lines: dict[str, list[str]],
                  distractors: int = DEFAULT_DISTRACTORS, seed: int = 0,
                  progress: Progress | None = None) -> Scoring:
    """Fill ``record.scores[system]`` for every system and return the discriminator features.

    Per turn and system: the similarities (``scorer.score``), ``match_rate_cross`` (distractors:
    up to ``distractors`` real lines of the same interviewer from other test sessions,
    ``cross_lines[iid]`` as (session, line)), ``match_rate_same`` (distractors: the session's other
    real interviewer lines, ``same_lines[session]``) and ``rank_same`` (the reply against the real
    lines of the session's other *sampled* turns).
    """
    reals = [r.real for r in records]
    # Distractor similarities to each real line, shared by every system.
    rng = random.Random(f"{seed}:distractors")  # nosec B311  # seeded for reproducible sampling, not secrets
    pairs_c, owner_c, pairs_s, owner_s = [], [], [], []
    for i, r in enumerate(records):
        options = [text for sid, text in cross_lines.get(r.interviewer_id, []) if sid != r.session_id]
        for d in rng.sample(options, min(distractors, len(options))):
            pairs_c.append((d, r.real))
            owner_c.append(i)
        options = [t for t in same_lines.get(r.session_id, []) if t != r.real]
        for d in rng.sample(options, min(distractors, len(options))):
            pairs_s.append((d, r.real))
            owner_s.append(i)

    def grouped(pairs, owners) -> list[np.ndarray]:
        sims = scorer.combined([a for a, _ in pairs], [b for _, b in pairs])
        out: list[list[float]] = [[] for _ in records]
        for o, v in zip(owners, sims):
            out[o].append(float(v))
        return [np.array(x) for x in out]

    cross_d, same_d = grouped(pairs_c, owner_c), grouped(pairs_s, owner_s)
    # Rank-same: the other sampled turns of the same session.
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_group[r.group].append(i)
    for k, system in enumerate(systems):
        if progress:
            progress("scoring", k, len(systems) + 1)
        replies = [r.replies.get(system, "") for r in records]
        s = scorer.score(replies, reals)
        own = s["combined"]
        rank_pairs, rank_owner = [], []
        for i, r in enumerate(records):
            for j in by_group[r.group]:
                if j != i:
                    rank_pairs.append((replies[i], reals[j]))
                    rank_owner.append(i)
        rank_d = grouped(rank_pairs, rank_owner)
        cross = M.beaten_share(own, cross_d)
        same = M.beaten_share(own, same_d)
        rank = M.beaten_share(own, rank_d)
        for i, r in enumerate(records):
            r.scores[system] = {**{key: float(v[i]) for key, v in s.items()}, "match_rate_cross": float(cross[i]),
                                "match_rate_same": float(same[i]), "rank_same": float(rank[i])}
    features = {"real": M.reply_features(reals, [r.situation for r in records], embedder)}
    for system in systems:
        features[system] = M.reply_features([r.replies.get(system, "") for r in records],
                                            [r.situation for r in records], embedder)
    return Scoring(features)


PER_TURN = ("match_rate_cross", "match_rate_same", "rank_same", "semantic", "style", "bertscore", "cosine")


def summarize_systems(records: list[TurnRecord], systems: Sequence[str], scoring: Scoring, mask: np.ndarray, *,
                      seed: int = 0, n_seeds: int = DISCRIMINATOR_SEEDS) -> dict[str, dict[str, Any]]:
    """Each system's means with standard errors (bootstrap over sessions), its indistinguishability
    over ``n_seeds`` discriminator seeds, and for every other system the paired difference from
    ``systems[0]`` (the twin) on the match rates."""
    idx = np.flatnonzero(mask)
    rs = [records[i] for i in idx]
    groups = [r.group for r in rs]
    out: dict[str, dict[str, Any]] = {}
    for system in systems:
        entry: dict[str, Any] = {"se": {}}
        for metric in PER_TURN:
            mean, se = M.bootstrap_mean([r.scores[system][metric] for r in rs], groups, seed=seed)
            entry[metric if metric not in ("bertscore", "cosine") else f"{metric}_rescaled"] = _r(mean)
            entry["se"][metric if metric not in ("bertscore", "cosine") else f"{metric}_rescaled"] = _r(se)
        ind = M.indistinguishability_over_seeds(scoring.features["real"][idx], scoring.features[system][idx],
                                                groups, seeds=tuple(seed + k for k in range(n_seeds)))
        entry["indistinguishability"] = _r(ind.value)
        entry["auc"] = _r(ind.auc)
        entry["se"]["indistinguishability"] = _r(ind.se)
        entry["indistinguishability_detail"] = {"auc_seeds": ind.auc_seeds, "auc_std": _r(ind.auc_std),
                                                "auc_ci95": [_r(x) for x in ind.auc_ci] if ind.auc_ci else None}
        entry["match_rate"] = entry["match_rate_cross"]  # the headline name the eval API and trend read
        clf = [r.scores[system].get("classifier") for r in rs]
        entry["details"] = {
            "bertscore_f1_raw": _r(_mean(r.scores[system]["bertscore_raw"] for r in rs)),
            "cosine_raw": _r(_mean(r.scores[system]["cosine_raw"] for r in rs)),
            "style_raw": _r(_mean(r.scores[system]["style_raw"] for r in rs)),
            "combined_similarity": _r(_mean(r.scores[system]["combined"] for r in rs)),
            "classifier_agreement": _r(_mean(clf)) if any(c is not None for c in clf) else None,
            "classifier_attribution": _r(_mean(r.scores[system].get("attributed") for r in rs))
            if any(c is not None for c in clf) else None,
            "empty_replies": sum(1 for r in rs if not r.replies.get(system, "").strip()),
        }
        out[system] = entry
    for system in systems[1:]:
        out[system]["twin_minus_this"] = _twin_minus_this(rs, systems[0], system, groups, seed)
    return out


def _twin_minus_this(records: Sequence[TurnRecord], twin: str, system: str, groups: Sequence[str], seed: int
                     ) -> dict[str, dict[str, Any]]:
    """Per match rate, the twin's paired difference from ``system`` on the same turns (bootstrap SE over
    ``groups``), and whether the twin wins by more than two standard errors."""
    vs = {}
    for metric in MATCH_METRICS:
        diff, se = M.bootstrap_diff([r.scores[twin][metric] for r in records],
                                    [r.scores[system][metric] for r in records], groups, seed=seed)
        vs[metric] = {"diff": _r(diff), "se": _r(se),
                      "twin_wins": bool(diff is not None and se is not None and diff > 2 * se)}
    return vs


def _chance(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    # Chance is what a random line of the same interviewer scores in this very run.
    rnd = summaries.get("random_same_interviewer", {})
    return {k: rnd.get(k) for k in (*MATCH_METRICS, "semantic", "style", "indistinguishability")}


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
                      "source": "twin eval", "via": s["via"], **{k: v for k, v in per.items() if k != "profile_version"},
                      "red_team_suite": (s.get("red_team") or {}).get("suite")}
            conn.execute("INSERT INTO eval_runs (run_id, tenant, interviewer_id, profile_version, scores)"
                         " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING",
                         (f"{run_id}:{iid}", tenant, iid, per["profile_version"], json.dumps(per_run_scores(scores))))
        rows = []
        for r in result.turns:
            ident = f"{run_id}|{r.session_id}|{r.index}".encode()
            sid = "off-" + hashlib.sha1(ident, usedforsecurity=False).hexdigest()[:28]
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


def write_turns(result: EvalResult, path: Path) -> int:
    """Every scored turn of ``result`` as JSON Lines at ``path`` (whole or not at all, ``corpus.write_jsonl``):
    the moment (the stored history, the candidate's turn), the real line, each system's reply and per-turn
    scores, the twin's move and what became of an LLM draft. Paired per turn, it shows where the twin gains and
    loses against a baseline or an ablation, which the summary's means cannot. Returns the count."""
    return write_jsonl(path, ({"interviewerId": r.interviewer_id, "sessionId": r.session_id, "index": r.index,
                               "history": r.history, "candidateTurn": r.candidate_turn, "real": r.real,
                               "replies": r.replies, "scores": per_run_scores(r.scores), "move": r.move,
                               "llmDraft": r.llm_draft, "latencyMs": r.latency_ms, "safetyAction": r.safety_action,
                               "error": r.error} for r in result.turns))
