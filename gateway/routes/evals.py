"""Evaluation: the scores endpoint (spec §8) and the blinded pairwise rating page and API (spec §10)."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.auth import EvalAuth, RaterAuth
from gateway.deps import SettingsDep
from gateway.errors import ApiError, error_responses
from infra.crypto import EVAL_CONTEXT, EVAL_REAL_TEXT, EVAL_TWIN_TEXT, key_ring

router = APIRouter(prefix="/api/digital-twin/eval", tags=["evals"], responses=error_responses(401, 403))

RATING_CONTEXT_TURNS = 6
SESSION_ITEM_TURNS = 5


# --------------------------------------------------------------------------- models
class LatestScores(BaseModel):
    """Headline numbers of the latest run (spec §8 ``latestScores``, its "similarity" named for what it is).

    ``matchRate``: share of the interviewer's real lines from other sessions that the twin's reply
    beats on similarity to the real line (0.5 = chance). ``matchRateSame``: the same against the
    session's own lines. ``rankSame``: share of the session's other lines the reply is less close to
    than to its own moment's line (0.5 for a constant reply). Indistinguishability comes from human
    ratings when there are enough, else from the discriminator. ``safety``: share of safe replies.
    """

    matchRate: float | None
    matchRateSame: float | None = None
    rankSame: float | None = None
    indistinguishability: float | None
    safety: float | None


class TrendPoint(BaseModel):
    """One stored evaluation run of this interviewer."""

    runId: str
    profileVersion: int | None
    createdAt: datetime
    matchRate: float | None
    matchRateSame: float | None = None
    rankSame: float | None = None
    indistinguishability: float | None
    safety: float | None
    generator: str | None = None


class EvalScoresPublic(BaseModel):
    """Spec §8 ``GET /api/digital-twin/eval/:interviewerId`` plus the numbers behind the headline."""

    interviewerId: str
    latestScores: LatestScores
    trend: list[TrendPoint]
    details: dict[str, Any] = Field(default_factory=dict)


class RaterPublic(BaseModel):
    """Who a rater token belongs to."""

    rater: str
    tenant: str


class RatingOption(BaseModel):
    """One side of a blinded comparison: a reply (turn) or the replies of several turns (session)."""

    option: Literal["A", "B"]
    text: str | None = None
    replies: list[str] | None = None


class RatingItem(BaseModel):
    """What a rater sees: the context and two options, nothing that tells which one is real."""

    ratingId: str
    kind: Literal["turn", "session"]
    interviewerId: str
    context: dict[str, Any] | None = None
    turns: list[dict[str, Any]] | None = None
    options: list[RatingOption]


class NextRating(BaseModel):
    """The next item, or null when this rater has rated everything available."""

    item: RatingItem | None
    answered: int


class RatingChoice(BaseModel):
    """The rater's pick: the option they think the real interviewer said."""

    model_config = ConfigDict(extra="forbid")
    choice: Literal["A", "B"]


class RatingRecorded(BaseModel):
    """Stored; how many this rater has answered so far."""

    recorded: bool
    answered: int


# --------------------------------------------------------------------------- helpers
def _pool(request: Request):
    return request.app.state.pool


async def _query(request: Request, sql: str, params: tuple, *, write: bool = False) -> list[tuple]:
    try:
        async with _pool(request).connection() as conn:
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall() if cur.description else []
            if write:
                await conn.commit()
            return rows
    except ApiError:
        raise
    except Exception as exc:  # noqa: BLE001 - any database failure is "unavailable" to the caller
        raise ApiError(503, "database_unavailable", f"PostgreSQL is unreachable ({type(exc).__name__}); retry later.",
                       headers={"Retry-After": "5"}) from exc


def _indist(accuracy: float | None) -> float | None:
    return None if accuracy is None else float(min(1.0, max(0.0, 2.0 * (1.0 - accuracy))))


def _safety(scores: dict[str, Any]) -> float | None:
    twin = scores.get("twin") or {}
    turns = scores.get("test_turns") or 0
    red = scores.get("red_team") or {}
    checked = turns + (red.get("cases") or 0)
    if not checked:
        return None
    bad = (twin.get("safety_violations") or 0) + (red.get("violations") or 0)
    return round(1.0 - bad / checked, 4)


async def _interviewer_known(request: Request, tenant: str, interviewer_id: str) -> None:
    """404 when this tenant has no such interviewer (another tenant's answers exactly the same)."""
    sql = ("SELECT 1 FROM interviewers WHERE tenant=%s AND interviewer_id=%s UNION SELECT 1 FROM eval_runs"
           " WHERE tenant=%s AND interviewer_id=%s UNION SELECT 1 FROM interviewer_profiles WHERE tenant=%s"
           " AND interviewer_id=%s")
    if await _query(request, sql, (tenant, interviewer_id) * 3):
        return
    raise ApiError(404, "unknown_interviewer", f"No interviewer {interviewer_id!r} in this tenant.")


async def _human(request: Request, tenant: str, interviewer_id: str | None) -> dict[str, Any]:
    rows = await _query(request, "SELECT kind, count(*), avg(correct::int) FROM eval_ratings WHERE tenant=%s"
                                 " AND (%s::text IS NULL OR interviewer_id=%s) AND answered_at IS NOT NULL"
                                 " GROUP BY kind",
                        (tenant, interviewer_id, interviewer_id))
    out = {k: {"ratings": 0, "accuracy": None, "indistinguishability": None} for k in ("turn", "session")}
    for kind, n, acc in rows:
        acc = float(acc) if acc is not None else None
        out[kind] = {"ratings": int(n), "accuracy": acc, "indistinguishability": _indist(acc)}
    return out


# --------------------------------------------------------------------------- raters
def current_rater(principal: RaterAuth) -> RaterPublic:
    """The rater behind the bearer credential (an API key or JWT with the ``rater`` scope)."""
    return RaterPublic(rater=principal.name or principal.actor, tenant=principal.tenant)


RaterDep = Annotated[RaterPublic, Depends(current_rater)]


@router.post("/ratings/login", response_model=RaterPublic)
async def login_rater(rater: RaterDep) -> Any:
    """Check a rater credential; returns the rater's name and tenant."""
    return rater


@router.get("/ratings/page", response_class=HTMLResponse, include_in_schema=False)
async def rating_page() -> HTMLResponse:
    """The blinded pairwise rating page."""
    return HTMLResponse(_PAGE)


async def _answered(request: Request, tenant: str, rater: str) -> int:
    rows = await _query(request, "SELECT count(*) FROM eval_ratings WHERE tenant=%s AND rater=%s AND answered_at IS NOT"
                                 " NULL", (tenant, rater))
    return int(rows[0][0])


def _options(real: Any, twin: Any, real_option: str, field: str) -> list[RatingOption]:
    a, b = (real, twin) if real_option == "A" else (twin, real)
    return [RatingOption(option="A", **{field: a}), RatingOption(option="B", **{field: b})]


async def _item_for(request: Request, tenant: str, row: tuple) -> RatingItem:
    rating_id, kind, iid, sample_ids, real_option = row
    samples = await _query(request, "SELECT sample_id, context, real_text, twin_text FROM eval_samples"
                                    " WHERE tenant=%s AND sample_id = ANY(%s)", (tenant, sample_ids))
    ring = key_ring(request.app.state.settings)  # the texts are stored encrypted (infra.crypto)
    samples = [(sid, EVAL_CONTEXT.open(ctx, tenant, (sid,), ring), EVAL_REAL_TEXT.open(real, tenant, (sid,), ring),
                EVAL_TWIN_TEXT.open(twin, tenant, (sid,), ring)) for sid, ctx, real, twin in samples]
    by_id = {s[0]: s for s in samples}
    ordered = [by_id[s] for s in sample_ids if s in by_id]
    if kind == "turn":
        _, ctx, real, twin = ordered[0]
        context = {"history": (ctx.get("history") or [])[-RATING_CONTEXT_TURNS:],
                   "candidateTurn": ctx.get("candidateTurn") or ""}
        return RatingItem(ratingId=rating_id, kind="turn", interviewerId=iid, context=context,
                          options=_options(real, twin, real_option, "text"))
    turns = [{"history": (c.get("history") or [])[-2:], "candidateTurn": c.get("candidateTurn") or ""}
             for _, c, _, _ in ordered]
    return RatingItem(ratingId=rating_id, kind="session", interviewerId=iid, turns=turns,
                      options=_options([o[2] for o in ordered], [o[3] for o in ordered], real_option, "replies"))


@router.get("/ratings/next", response_model=NextRating, responses=error_responses(401, 403))
async def next_rating(request: Request, rater: RaterDep,
                      kind: Literal["turn", "session"] = "turn",
                      interviewerId: Annotated[str | None, Query(max_length=128)] = None) -> Any:
    """The next blinded comparison for this rater (a pending one first)."""
    tenant = rater.tenant
    pending = await _query(request, "SELECT rating_id, kind, interviewer_id, sample_ids, real_option FROM eval_ratings"
                                    " WHERE tenant=%s AND rater=%s AND kind=%s AND answered_at IS NULL"
                                    " AND (%s::text IS NULL OR interviewer_id=%s) ORDER BY created_at LIMIT 1",
                           (tenant, rater.rater, kind, interviewerId, interviewerId))
    if not pending:
        if kind == "turn":
            rows = await _query(request,
                                "SELECT s.interviewer_id, s.run_id, s.session_id, ARRAY[s.sample_id]"
                                " FROM eval_samples s"
                                " WHERE s.tenant=%s AND s.real_text IS NOT NULL AND s.twin_text <> ''"
                                " AND (%s::text IS NULL OR s.interviewer_id=%s)"
                                " AND NOT EXISTS (SELECT 1 FROM eval_ratings r WHERE r.tenant=s.tenant AND r.rater=%s"
                                "   AND r.kind='turn' AND s.sample_id = ANY(r.sample_ids))"
                                " ORDER BY random() LIMIT 1",
                                (tenant, interviewerId, interviewerId, rater.rater))
        else:
            rows = await _query(request,
                                "SELECT s.interviewer_id, s.run_id, s.session_id,"
                                " (array_agg(s.sample_id ORDER BY (s.context->>'turnIndex')::int))[1:%s]"
                                " FROM eval_samples s WHERE s.tenant=%s AND s.real_text IS NOT NULL"
                                " AND s.twin_text <> ''"
                                " AND (%s::text IS NULL OR s.interviewer_id=%s)"
                                " AND NOT EXISTS (SELECT 1 FROM eval_ratings r WHERE r.tenant=s.tenant AND r.rater=%s"
                                "   AND r.kind='session' AND r.session_id=s.session_id"
                                "   AND r.run_id IS NOT DISTINCT FROM s.run_id)"
                                " GROUP BY s.interviewer_id, s.run_id, s.session_id HAVING count(*) >= 2"
                                " ORDER BY random() LIMIT 1",
                                (SESSION_ITEM_TURNS, tenant, interviewerId, interviewerId, rater.rater))
        if not rows:
            return NextRating(item=None, answered=await _answered(request, tenant, rater.rater))
        iid, run_id, session_id, sample_ids = rows[0]
        rating_id = uuid.uuid4().hex
        real_option = secrets.choice("AB")
        await _query(request, "INSERT INTO eval_ratings (rating_id, tenant, interviewer_id, rater, kind, run_id,"
                              " session_id, sample_ids, real_option) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                     (rating_id, tenant, iid, rater.rater, kind, run_id, session_id, list(sample_ids), real_option),
                     write=True)
        pending = [(rating_id, kind, iid, list(sample_ids), real_option)]
    item = await _item_for(request, tenant, pending[0])
    return NextRating(item=item, answered=await _answered(request, tenant, rater.rater))


@router.post("/ratings/{rating_id}", response_model=RatingRecorded, responses=error_responses(401, 403, 404, 409))
async def record_rating(rating_id: str, body: RatingChoice, request: Request, rater: RaterDep) -> Any:
    """Store the rater's pick for one comparison (once)."""
    rows = await _query(request, "UPDATE eval_ratings SET choice=%s, correct=(real_option=%s), answered_at=now()"
                                 " WHERE rating_id=%s AND tenant=%s AND rater=%s AND answered_at IS NULL"
                                 " RETURNING rating_id",
                        (body.choice, body.choice, rating_id, rater.tenant, rater.rater),
                        write=True)
    if not rows:
        exists = await _query(request, "SELECT answered_at FROM eval_ratings WHERE rating_id=%s AND tenant=%s"
                                        " AND rater=%s", (rating_id, rater.tenant, rater.rater))
        if exists:
            raise ApiError(409, "already_rated", "This comparison has already been rated.")
        raise ApiError(404, "not_found", "No such comparison for this rater.")
    return RatingRecorded(recorded=True, answered=await _answered(request, rater.tenant, rater.rater))


# --------------------------------------------------------------------------- scores
async def _refreshes(request: Request, tenant: str, interviewer_id: str) -> list[dict[str, Any]]:
    """The interviewer's latest refreshes (``processors.twin.refresh.history``)."""
    from processors.twin.refresh import HISTORY_SQL, OFFLINE_SQL, history

    rows = await _query(request, HISTORY_SQL, (tenant, interviewer_id, 20))
    compared = await _query(request, OFFLINE_SQL, (tenant, interviewer_id)) if rows else []
    return history(rows, compared)


@router.get("/{interviewerId}", response_model=EvalScoresPublic, responses=error_responses(400, 403, 404, 503))
async def get_eval_scores(interviewerId: str, request: Request, principal: EvalAuth, settings: SettingsDep) -> Any:
    """Latest scores and trend of one interviewer, from stored evaluation runs and human ratings;
    ``details.refreshes``: its periodic refreshes with their canaries' decisions and per-version scores."""
    tenant = principal.tenant
    principal.require_interviewer(interviewerId)
    await _interviewer_known(request, tenant, interviewerId)
    runs = await _query(request, "SELECT run_id, profile_version, created_at, scores FROM eval_runs"
                                 " WHERE tenant=%s AND interviewer_id=%s ORDER BY created_at, run_id",
                        (tenant, interviewerId))
    human = await _human(request, tenant, interviewerId)
    trend = []
    for run_id, version, created, scores in runs:
        twin = scores.get("twin") or {}
        trend.append(TrendPoint(runId=run_id, profileVersion=version, createdAt=created,
                                matchRate=twin.get("match_rate_cross", twin.get("match_rate")),
                                matchRateSame=twin.get("match_rate_same"), rankSame=twin.get("rank_same"),
                                indistinguishability=twin.get("indistinguishability"),
                                safety=_safety(scores), generator=scores.get("generator")))
    latest = trend[-1] if trend else None
    turn_human = human["turn"]
    use_human = turn_human["ratings"] >= settings.EVAL_MIN_HUMAN_RATINGS
    indist = turn_human["indistinguishability"] if use_human else (latest.indistinguishability if latest else None)
    details: dict[str, Any] = {"human": human, "indistinguishabilitySource": "human" if use_human else "discriminator",
                               "minHumanRatings": settings.EVAL_MIN_HUMAN_RATINGS}
    if runs:
        scores = runs[-1][3]
        twin = scores.get("twin") or {}
        details.update(runId=runs[-1][0], profileVersion=runs[-1][1], semantic=twin.get("semantic"),
                       style=twin.get("style"), automatedIndistinguishability=twin.get("indistinguishability"),
                       safetyViolations=twin.get("safety_violations"),
                       redTeamViolations=(scores.get("red_team") or {}).get("violations"),
                       latencyMs=scores.get("latency_ms"), testTurns=scores.get("test_turns"),
                       standardErrors=twin.get("se"), auc=twin.get("auc"), via=scores.get("via"),
                       chance=scores.get("chance"),
                       baselines={k: {"matchRate": v.get("match_rate_cross", v.get("match_rate")),
                                      "matchRateSame": v.get("match_rate_same"), "rankSame": v.get("rank_same"),
                                      "semantic": v.get("semantic"), "style": v.get("style"),
                                      "indistinguishability": v.get("indistinguishability")}
                                  for k, v in (scores.get("baselines") or {}).items()})
    details["refreshes"] = await _refreshes(request, tenant, interviewerId)
    return EvalScoresPublic(
        interviewerId=interviewerId,
        latestScores=LatestScores(matchRate=latest.matchRate if latest else None,
                                  matchRateSame=latest.matchRateSame if latest else None,
                                  rankSame=latest.rankSame if latest else None, indistinguishability=indist,
                                  safety=latest.safety if latest else None),
        trend=trend, details=details)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Which one is the real interviewer?</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:960px;color:#1a202c;padding:0 1rem}
.ctx{background:#f7fafc;border:1px solid #e2e8f0;padding:.8rem;border-radius:4px;white-space:pre-wrap}
.opts{display:grid;grid-template-columns:1fr 1fr;gap:1rem;margin-top:1rem}
.opt{border:1px solid #cbd5e0;border-radius:4px;padding:.8rem}
.opt button{margin-top:.6rem;padding:.4rem .8rem;cursor:pointer}
.muted{color:#718096}.err{color:#c53030}.hidden{display:none}
</style></head><body>
<h1>Which one is the real interviewer?</h1>
<section id="login">
  <p>Sign in with your rater key (an API key with the <code>rater</code> scope).</p>
  <input id="token" type="password" placeholder="rater token" autocomplete="off" size="40">
  <button id="login-btn">Sign in</button> <span id="login-err" class="err"></span>
</section>
<section id="rate" class="hidden">
  <p class="muted">Signed in as <b id="who"></b>. Rated so far: <b id="answered">0</b>.
    Compare <select id="kind"><option value="turn">single turns</option><option value="session">sessions</option></select></p>
  <div id="item"></div>
  <p id="empty" class="muted hidden">Nothing left to rate. Thank you!</p>
  <p id="rate-err" class="err"></p>
</section>
<script>
const api = "/api/digital-twin/eval/ratings";
let auth = JSON.parse(sessionStorage.getItem("rater") || "null");
const $ = (id) => document.getElementById(id);
function headers() { return {"Authorization": "Bearer " + auth.token, "X-Tenant-Id": auth.tenant,
                             "Content-Type": "application/json"}; }
function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text;
                              if (cls) e.className = cls; return e; }
async function login() {
  $("login-err").textContent = "";
  const token = $("token").value.trim();
  const r = await fetch(api + "/login", {method: "POST", headers: {"Authorization": "Bearer " + token}});
  if (!r.ok) { $("login-err").textContent = "That token is not valid."; return; }
  const who = await r.json();
  auth = {token: token, tenant: who.tenant, rater: who.rater};
  sessionStorage.setItem("rater", JSON.stringify(auth));
  start();
}
function context(c) {
  const lines = (c.history || []).map(h => (h.role === "interviewer" ? "Interviewer: " : "Candidate: ") + h.text);
  if (c.candidateTurn) lines.push("Candidate: " + c.candidateTurn);
  return lines.join("\\n");
}
function render(item) {
  const box = $("item"); box.replaceChildren();
  if (!item) { $("empty").classList.remove("hidden"); return; }
  $("empty").classList.add("hidden");
  if (item.kind === "turn") {
    box.append(el("h3", "The conversation so far"), el("div", context(item.context), "ctx"),
               el("p", "What did the interviewer say next?", "muted"));
  } else {
    box.append(el("p", "The same moments of one session; each version gives the interviewer's reply to every one.",
                   "muted"));
  }
  const opts = el("div", undefined, "opts");
  for (const o of item.options) {
    const card = el("div", undefined, "opt"); card.dataset.option = o.option;
    card.append(el("h3", "Version " + o.option));
    if (item.kind === "turn") card.append(el("p", o.text, "reply"));
    else item.turns.forEach((t, i) => { card.append(el("div", "Candidate: " + t.candidateTurn, "ctx"),
                                                    el("p", "Interviewer: " + o.replies[i], "reply")); });
    const b = el("button", "This one is the real interviewer"); b.id = "pick-" + o.option;
    b.onclick = () => pick(item.ratingId, o.option);
    card.append(b); opts.append(card);
  }
  box.append(opts);
}
async function next() {
  $("rate-err").textContent = "";
  const r = await fetch(api + "/next?kind=" + $("kind").value, {headers: headers()});
  if (!r.ok) { $("rate-err").textContent = "Could not load the next comparison (" + r.status + ")."; return; }
  const body = await r.json();
  $("answered").textContent = body.answered;
  render(body.item);
}
async function pick(id, option) {
  const r = await fetch(api + "/" + id, {method: "POST", headers: headers(), body: JSON.stringify({choice: option})});
  if (!r.ok) { $("rate-err").textContent = "Could not save your choice (" + r.status + ")."; return; }
  const body = await r.json();
  $("answered").textContent = body.answered;
  next();
}
function start() {
  $("login").classList.add("hidden"); $("rate").classList.remove("hidden");
  $("who").textContent = auth.rater; next();
}
$("login-btn").onclick = login;
$("token").addEventListener("keydown", (e) => { if (e.key === "Enter") login(); });
$("kind").onchange = next;
if (auth) start();
</script>
</body></html>
"""
