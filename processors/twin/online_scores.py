"""Reference-free scores of live twin replies, for the canary controller (``processors/twin/canary.py``).

A live reply has no real interviewer line to compare with (the offline metrics in
``evaluation/metrics.py`` need one), so a live sample is judged on what it can be judged on alone:

* **relevance** – cosine of the sentence embeddings of the reply and of the candidate turn it
  answers, clipped to [0, 1]: a reply that ignores what the candidate said, or is not language at
  all, scores near 0;
* **style** – ``StyleProfile.fit_score`` of the reply's style features under a *judge* profile,
  the canary's baseline version: does it still sound like this interviewer as we know them;
* **online** – the mean of the two (style alone when there is no candidate turn, e.g. an opening).

Both arms of a canary are scored by the same judge, so their means compare. Usage::

    scorer = LiveScorer()                       # the process-wide embedder, loaded on first use
    scorer([(twin_text, candidate_turn), ...], baseline_style_profile_dict)  # [{"relevance", "style", "online"}, ...]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from processors.twin.style import StyleProfile, extract_style

__all__ = ["LiveScorer", "score_replies"]


def score_replies(replies: Sequence[str], candidate_turns: Sequence[str | None], judge: StyleProfile,
                  embedder) -> list[dict[str, float]]:
    """``relevance`` (when there is a candidate turn), ``style`` and ``online`` of each reply, in [0, 1]."""
    replies = list(replies)
    turns = [(t or "").strip() for t in candidate_turns]
    with_turn = [i for i, t in enumerate(turns) if t and replies[i].strip()]
    relevance: dict[int, float] = {}
    if with_turn:
        a = embedder.embed([replies[i] for i in with_turn])
        b = embedder.embed([turns[i] for i in with_turn])
        relevance = {i: min(1.0, max(0.0, float(a[k] @ b[k]))) for k, i in enumerate(with_turn)}
    out = []
    for i, text in enumerate(replies):
        style = judge.fit_score(extract_style(text, turns[i] or None)) if text.strip() else 0.0
        scores = {"style": round(style, 4)}
        if i in relevance:
            scores["relevance"] = round(relevance[i], 4)
            scores["online"] = round(0.5 * relevance[i] + 0.5 * style, 4)
        elif turns[i]:  # an empty reply to a real turn
            scores["relevance"] = 0.0
            scores["online"] = round(0.5 * style, 4)
        else:
            scores["online"] = round(style, 4)
        out.append(scores)
    return out


class LiveScorer:
    """The canary controller's scorer: ``scorer(items, judge_style_dict) -> [scores, ...]``."""

    def __init__(self, embedder=None):
        self._embedder = embedder

    @property
    def embedder(self):
        if self._embedder is None:
            from processors.twin.embeddings import get_embedder

            self._embedder = get_embedder()
        return self._embedder

    def __call__(self, items: Sequence[tuple[str, str | None]], judge_style: dict[str, Any]) -> list[dict[str, float]]:
        judge = StyleProfile.from_dict(judge_style) if judge_style else StyleProfile()
        return score_replies([t for t, _ in items], [c for _, c in items], judge, self.embedder)
