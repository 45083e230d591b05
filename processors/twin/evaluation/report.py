"""The HTML report of an evaluation run: one self-contained file with plots (PNG inlined).

Sections: headline numbers (the twin and every baseline side by side, with standard errors and
intervals), per-interviewer tables and bars, metric
distributions, the trend over model versions (from ``eval_runs``), latency, the red-team outcomes,
and the worst turns with the real and the twin's line side by side::

    path = write_report(result, Path("var/eval-report"), dsn=settings.POSTGRES_DSN)
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_trend", "render_refresh_report", "render_report", "write_report"]

_SYSTEM_LABELS = {"twin": "twin", "previous_line": "previous line in the session", "echo": "echo (candidate's words)",
                  "retrieval": "retrieval top-1, verbatim", "medoid": "medoid (most typical line)",
                  "random_same_interviewer": "random line, same interviewer (chance)",
                  "other_interviewer": "other interviewer (persona-less)"}
_COLOURS = {"twin": "#2b6cb0", "previous_line": "#38a169", "echo": "#d69e2e", "retrieval": "#805ad5",
            "medoid": "#718096", "random_same_interviewer": "#a0aec0", "other_interviewer": "#ed8936"}
_METRICS = (("match_rate_cross", "match cross"), ("match_rate_same", "match same"), ("rank_same", "rank-same"),
            ("indistinguishability", "indisting."))

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Twin evaluation {{ s.run_id }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px;color:#1a202c}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #cbd5e0;padding:.3rem .6rem;text-align:right}
th{background:#edf2f7}td.l,th.l{text-align:left}img{max-width:100%}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1rem}.box{border:1px solid #cbd5e0;padding:.6rem;border-radius:4px}
.ctx{color:#4a5568;font-size:.9em;white-space:pre-wrap}.bad{color:#c53030}.muted{color:#718096}
</style></head><body>
<h1>Twin evaluation</h1>
<p class="muted">corpus <code>{{ s.corpus }}</code> · tenant <code>{{ s.tenant }}</code> · run <code>{{ s.run_id }}</code> ·
generator {{ s.generator }}{% if s.model %} ({{ s.model }}){% endif %} · seed {{ s.config.seed }} ·
{{ s.interviewers }} interviewer(s), {{ s.test_sessions }} test sessions, {{ s.test_turns }} of {{ s.test_turns_available }} test turns{% if s.test_turns_repeated %}
({{ s.test_turns_repeated }} more left out: moments the train part holds too){% endif %}</p>
<h2>Headline</h2>
<p class="muted">Asked via {{ s.via }}. ± one standard error (bootstrap over sessions); AUC with its 95% interval.
Chance is the random line of the same interviewer, scored in this run.</p>
<table><tr><th class="l">system</th>{% for k, label in metrics %}<th>{{ label }}</th>{% endfor %}<th>AUC [95%]</th>
<th>semantic</th><th>style</th><th>safety violations</th><th>twin − this, rank-same</th></tr>
{% for name, x in systems %}<tr><td class="l">{{ labels[name] }}</td>{% for k, label in metrics %}<td>{{ f(x[k]) }}{% if x.se[k] is not none %} ±{{ f(x.se[k]) }}{% endif %}</td>{% endfor %}
<td>{{ f(x.auc) }}{% if x.indistinguishability_detail.auc_ci95 %} [{{ f(x.indistinguishability_detail.auc_ci95[0]) }}, {{ f(x.indistinguishability_detail.auc_ci95[1]) }}]{% endif %}</td>
<td>{{ f(x.semantic) }}</td><td>{{ f(x.style) }}</td><td>{{ x.safety_violations }}</td>
<td>{% if x.twin_minus_this %}{{ f(x.twin_minus_this.rank_same.diff) }} ±{{ f(x.twin_minus_this.rank_same.se) }}{% if x.twin_minus_this.rank_same.twin_wins %} ✓{% endif %}{% endif %}</td></tr>{% endfor %}
</table>
<img src="data:image/png;base64,{{ plots.systems }}" alt="systems side by side with intervals">
<p>Match rates rank the reply by combined similarity to the real line ({{ weights }}): cross-session against the
interviewer's lines from other test sessions, same-session against the session's own other lines, rank-same by
whether the reply is closer to its own moment's line than to the session's other lines (a constant reply: exactly
0.5). Indistinguishability: 2·(1 − AUC) of a discriminator that sees each reply in its context, cross-validated by
session over {{ s.config.discriminator_seeds }} seeds (not capped: above 1 means an AUC below 0.5). Latency
({{ s.latency_ms.path }}) p50 {{ s.latency_ms.p50 }} ms, p95 {{ s.latency_ms.p95 }} ms. Rescaling baselines (random
pairs): BERTScore {{ s.rescale_baselines.bertscore_f1 }}, cosine {{ s.rescale_baselines.cosine }}, style
{{ s.rescale_baselines.style }}.</p>
<h2>Per interviewer</h2>
<img src="data:image/png;base64,{{ plots.per_interviewer }}" alt="per-interviewer bars">
<table><tr><th class="l">interviewer</th><th>version</th><th>turns</th><th>sessions</th><th class="l">system</th>
{% for k, label in metrics %}<th>{{ label }}</th>{% endfor %}<th>p50 ms</th><th>red-team viol.</th><th>real lines flagged</th></tr>
{% for iid, p in s.per_interviewer.items() %}{% for name, x in [("twin", p.twin)] + (p.baselines | dictsort) %}<tr>
{% if loop.first %}<td class="l" rowspan="{{ 1 + p.baselines | length }}">{{ iid }}</td><td rowspan="{{ 1 + p.baselines | length }}">{{ p.profile_version }}</td>
<td rowspan="{{ 1 + p.baselines | length }}">{{ p.test_turns }}</td><td rowspan="{{ 1 + p.baselines | length }}">{{ p.test_sessions_sampled }}</td>{% endif %}
<td class="l">{{ labels[name] }}</td>{% for k, label in metrics %}<td>{{ f(x[k]) }}{% if x.se[k] is not none %} ±{{ f(x.se[k]) }}{% endif %}</td>{% endfor %}
{% if loop.first %}<td rowspan="{{ 1 + p.baselines | length }}">{{ p.latency_ms.p50 }}</td><td rowspan="{{ 1 + p.baselines | length }}">{{ p.red_team.violations if p.red_team else '–' }}</td>
<td rowspan="{{ 1 + p.baselines | length }}">{{ p.real_lines_flagged }}</td>{% endif %}</tr>{% endfor %}{% endfor %}
</table>
{% if s.ablations %}<h2>Ablations ({{ s.on }} split)</h2>
<p>The twin with one part switched off, answered by the in-process engine on the same turns; the last three
columns are the twin's paired difference from it (± one standard error).</p>
<table><tr><th class="l">system</th>{% for k, label in metrics %}<th>{{ label }}</th>{% endfor %}
<th>twin − this: cross</th><th>same</th><th>rank-same</th></tr>
{% for name, x in [("twin", s.twin)] + (s.ablations | dictsort) %}<tr>
<td class="l">{{ "twin" if name == "twin" else "without " ~ name }}</td>{% for k, label in metrics %}<td>{{ f(x[k]) }}{% if x.se[k] is not none %} ±{{ f(x.se[k]) }}{% endif %}</td>{% endfor %}
{% for m in ("match_rate_cross", "match_rate_same", "rank_same") %}<td>{% if x.twin_minus_this %}{{ f(x.twin_minus_this[m].diff) }} ±{{ f(x.twin_minus_this[m].se) }}{% endif %}</td>{% endfor %}</tr>{% endfor %}
</table>{% endif %}
<h2>Metric distributions</h2>
<img src="data:image/png;base64,{{ plots.distributions }}" alt="metric distributions">
<h2>Trend over model versions</h2>
{% if plots.trend %}<img src="data:image/png;base64,{{ plots.trend }}" alt="trend">{% else %}<p class="muted">One run so far:
the trend appears from the second run on this namespace.</p>{% endif %}
<h2>Latency</h2>
<img src="data:image/png;base64,{{ plots.latency }}" alt="latency">
{% if red %}<h2>Red team</h2>
<table><tr><th class="l">interviewer</th><th class="l">case</th><th class="l">category</th><th>input flagged</th><th class="l">twin reply</th><th class="l">violations</th></tr>
{% for iid, r in red.items() %}{% for c in r.outcomes %}<tr><td class="l">{{ iid }}</td><td class="l">{{ c.case_id }}</td><td class="l">{{ c.category }}</td>
<td>{{ 'yes' if c.input_flagged else 'no' }}</td><td class="l">{{ c.reply }}</td>
<td class="l {{ 'bad' if c.violation else '' }}">{{ c.flags | map(attribute='detail') | join(', ') }}</td></tr>{% endfor %}{% endfor %}
</table>{% endif %}
<h2>Worst turns</h2>
<p class="muted">Lowest combined similarity of the twin's line to the real one.</p>
{% for t in worst %}<div class="box"><p><b>{{ t.interviewer_id }}</b> · {{ t.session_id }} #{{ t.index }} · combined {{ f(t.scores.twin.combined) }},
rank-same {{ f(t.scores.twin.rank_same) }}, match {{ f(t.scores.twin.match_rate_cross) }}, BERTScore {{ f(t.scores.twin.bertscore) }}, style {{ f(t.scores.twin.style) }}{% if t.move %} · move {{ t.move }}{% endif %}</p>
<div class="ctx">{% for h in t.history[-3:] %}{{ h.role }}: {{ h.text[:400] }}
{% endfor %}candidate: {{ t.candidate_turn[:600] }}</div>
<div class="pair"><div><b>real</b><p>{{ t.real }}</p></div><div><b>twin</b><p>{{ t.replies.twin }}</p></div></div></div><br>
{% endfor %}
<h2>Configuration and timings</h2><pre>{{ cfg }}</pre>
</body></html>
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def load_trend(dsn: str, tenant: str, interviewers: list[str]) -> list[dict[str, Any]]:
    """Stored runs of these interviewers in ``tenant``, oldest first (for the trend plot)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT interviewer_id, profile_version, created_at, scores FROM eval_runs"
            " WHERE tenant=%s AND interviewer_id = ANY(%s) ORDER BY created_at", (tenant, interviewers)).fetchall()
    return [{"interviewer": r[0], "version": r[1], "created_at": r[2],
             "match_rate": (r[3].get("twin") or {}).get("match_rate"),
             "semantic": (r[3].get("twin") or {}).get("semantic"), "generator": r[3].get("generator")} for r in rows]


def _plots(result, trend: list[dict[str, Any]]) -> dict[str, str | None]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.summary
    systems = ["twin", *s["baselines"]]
    out: dict[str, str | None] = {}

    # Every system side by side, with ±2 SE (about a 95% interval).
    fig, axes = plt.subplots(1, len(_METRICS), figsize=(4 * len(_METRICS), 3.8))
    for ax, (metric, label) in zip(axes, _METRICS):
        entries = [s["twin"] if sys_ == "twin" else s["baselines"][sys_] for sys_ in systems]
        vals = [e.get(metric) or 0.0 for e in entries]
        errs = [2 * (e["se"].get(metric) or 0.0) for e in entries]
        ax.barh(np.arange(len(systems)), vals, xerr=errs, color=[_COLOURS.get(x, "#a0aec0") for x in systems])
        ax.set_yticks(np.arange(len(systems)), [_SYSTEM_LABELS.get(x, x) for x in systems], fontsize=7)
        ax.invert_yaxis()
        ax.axvline(1.0 if metric == "indistinguishability" else 0.5, color="#718096", lw=0.8, ls="--")
        ax.set_title(label)
    for ax in axes[1:]:
        ax.set_yticklabels([])
    out["systems"] = _png(fig)

    iids = list(s["per_interviewer"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for ax, metric in zip(axes, ("match_rate_cross", "rank_same", "indistinguishability")):
        width = 0.8 / len(systems)
        for k, sys_ in enumerate(systems):
            vals = []
            for iid in iids:
                p = s["per_interviewer"][iid]
                x = p["twin"] if sys_ == "twin" else p["baselines"][sys_]
                vals.append(x[metric] or 0.0)
            ax.bar(np.arange(len(iids)) + k * width, vals, width, label=_SYSTEM_LABELS.get(sys_, sys_),
                   color=_COLOURS.get(sys_, "#a0aec0"))
        ax.set_xticks(np.arange(len(iids)) + 0.4, iids, rotation=20, ha="right", fontsize=8)
        ax.set_title(metric.replace("_", " "))
        ax.axhline(1.0 if metric == "indistinguishability" else 0.5, color="#718096", lw=0.8, ls="--")
    axes[0].legend(fontsize=6)
    out["per_interviewer"] = _png(fig)

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.5))
    for ax, metric in zip(axes, ("rank_same", "combined", "bertscore")):
        for sys_ in ("twin", "previous_line", "retrieval", "random_same_interviewer"):
            vals = [t.scores[sys_][metric] for t in result.turns if sys_ in t.scores and metric in t.scores[sys_]]
            vals = [v for v in vals if v == v]
            if vals:
                ax.hist(vals, bins=20, alpha=0.5, label=_SYSTEM_LABELS[sys_], color=_COLOURS[sys_])
        ax.set_title({"rank_same": "per-turn rank-same", "combined": "combined similarity",
                      "bertscore": "BERTScore F1 (rescaled)"}[metric])
    axes[0].legend(fontsize=7)
    out["distributions"] = _png(fig)

    out["trend"] = None
    if len({(t["interviewer"], t["version"]) for t in trend}) > len(iids):
        fig, ax = plt.subplots(figsize=(8, 3.5))
        for iid in iids:
            pts = [(t["version"], t["match_rate"]) for t in trend
                   if t["interviewer"] == iid and t["match_rate"] is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=iid)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("profile version")
        ax.set_ylabel("twin match rate")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        out["trend"] = _png(fig)

    fig, ax = plt.subplots(figsize=(8, 3))
    lat = [t.latency_ms for t in result.turns]
    ax.hist(lat, bins=30, color=_COLOURS["twin"])
    ax.axvline(s["latency_ms"]["p95"], color="#c53030", ls="--", label="p95")
    ax.set_xlabel(f"latency per turn via {s.get('via', 'engine')} (ms)")
    ax.legend()
    out["latency"] = _png(fig)
    return out


def render_report(result, trend: list[dict[str, Any]] | None = None, worst: int = 12) -> str:
    """The report as one HTML string."""
    from jinja2 import Environment, select_autoescape

    s = result.summary
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    turns = sorted((t for t in result.turns if "twin" in t.scores), key=lambda t: t.scores["twin"]["combined"])
    systems = [("twin", s["twin"])] + list(s["baselines"].items())
    return env.from_string(_TEMPLATE).render(
        s=s, systems=systems, labels=_SYSTEM_LABELS, metrics=_METRICS, plots=_plots(result, trend or []), worst=turns[:worst],
        red=result.red_team, weights=", ".join(f"{k} {v}" for k, v in s["config"]["weights"].items()),
        f=lambda v: "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)),
        cfg=json.dumps({"config": s["config"], "timings_s": s["timings_s"], "errors": s["errors"]}, indent=2),
    )


def write_report(result, directory: str | Path, dsn: str | None = None) -> Path:
    """Write ``index.html`` (and ``summary.json``) into ``directory``; returns the HTML path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    trend = load_trend(dsn, result.summary["tenant"], list(result.summary["per_interviewer"])) if dsn else []
    path = directory / "index.html"
    path.write_text(render_report(result, trend), encoding="utf-8")
    (directory / "summary.json").write_text(json.dumps(result.summary, indent=2, default=str), encoding="utf-8")
    return path


_REFRESH_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Refreshes of {{ interviewer }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px;color:#1a202c}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #cbd5e0;padding:.3rem .6rem;text-align:right}
th{background:#edf2f7}td.l,th.l{text-align:left}img{max-width:100%}.muted{color:#718096}
</style></head><body>
<h1>Refreshes of {{ interviewer }}</h1>
<p class="muted">tenant <code>{{ tenant }}</code> · {{ runs|length }} refresh(es), newest first. Live: the canary's last
evaluation per version (scored samples, mean online score, safety-intervention rate). Offline: the honest evaluation of
both versions on the interviewer's stored test sessions (match cross / same, rank-same, indistinguishability).</p>
<table><tr><th class="l">started</th><th class="l">reason</th><th>versions</th><th class="l">status</th>
<th class="l">live: candidate / baseline</th><th class="l">offline: candidate / baseline</th><th class="l">note</th></tr>
{% for r in runs %}<tr><td class="l">{{ r.createdAt[:16] }}</td><td class="l">{{ r.reason }}</td>
<td>v{{ r.candidateVersion or "?" }} vs v{{ r.baselineVersion }}</td><td class="l">{{ r.status }}</td>
<td class="l">{{ live(r.candidate) }} / {{ live(r.baseline) }}</td>
<td class="l">{% if r.offline %}{{ offline(r.offline.get("v" ~ r.candidateVersion)) }} /
{{ offline(r.offline.get("v" ~ r.baselineVersion)) }}{% else %}–{% endif %}</td>
<td class="l">{{ r.message or "" }}</td></tr>{% endfor %}
</table>
{% if trend %}<h2>Trend over versions</h2><img src="data:image/png;base64,{{ trend }}" alt="scores by version">{% endif %}
</body></html>
"""


def render_refresh_report(tenant: str, interviewer: str, runs: list[dict[str, Any]],
                          trend: list[dict[str, Any]]) -> str:
    """One interviewer's refreshes (``processors.twin.refresh.history``) and the trend of its stored
    evaluation runs (rows of ``eval_runs``: version and the twin's scores) as one HTML string."""
    from jinja2 import Environment, select_autoescape

    def f(v: Any) -> str:
        return "–" if v is None else f"{v:.3f}"

    def live(arm: dict[str, Any] | None) -> str:
        return "–" if not arm else f"{arm['scored']} scored, {f(arm.get('meanScore'))}, safety {f(arm.get('safetyRate'))}"

    def offline(x: dict[str, Any] | None) -> str:
        return "–" if not x else " / ".join(f(x.get(k)) for k in ("matchRate", "matchRateSame", "rankSame",
                                                                    "indistinguishability"))

    plot = None
    points = [(t["version"], t["scores"]) for t in trend if t["version"] is not None]
    if points:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        fig, ax = plt.subplots(figsize=(8, 3.5))
        for key, label in (("match_rate_cross", "match cross"), ("rank_same", "rank-same"),
                           ("indistinguishability", "indistinguishability")):
            pts = sorted((v, sc.get(key)) for v, sc in points if sc.get(key) is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("profile version")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
        plot = _png(fig)
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return env.from_string(_REFRESH_TEMPLATE).render(tenant=tenant, interviewer=interviewer, runs=runs, trend=plot,
                                                     live=live, offline=offline)
