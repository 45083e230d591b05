"""Safety checks: per-category precision/recall on the frozen test part, false positives on real
interviewer lines, and what the checks add to a respond request.

1. The frozen test part of the safety suite (tests/data/safety/test.jsonl): for each category, of its
   rows the share the check of the row's stage flags with that category (recall), and of the rows
   flagged with it the share labelled with it (precision); the hard negatives' false-positive rate.
2. Every interviewer line of <corpora>/*/dev.jsonl (the development corpora named by ``--corpora`` or
   ``TWIN_BENCH_CORPORA``; read at benchmark time only, never copied) through the output check: the share flagged (all of them are
   real interviewer lines, so every flag is a false positive), per corpus and overall, and by
   category; and the same over the held-out sessions only (each interviewer's val + test part of the
   evaluation's chronological split), which the checks' training never saw. Skipped with a note when no corpora folder is named. Flagged SCOTUS lines are listed (public
   record); the podcast's lines are counted, not shown.
3. Latency: one respond request's input check (the candidate's turn) + output check (the reply), on
   real pairs from the repository's SCOTUS slice (infra/samples), models loaded and warm, cold text
   caches (every text new), single thread as in the agents; p50/p95/max in ms.

Targets (issue 14): recall >= 0.95 for prohibited questions and toxic lines, PII recall >= 0.98,
false-positive rate <= 0.5% on the corpora's real interviewer lines, input + output <= 20 ms p95.

Prints tables and writes benchmarks/results/safety_checks.json.

    .venv/bin/python benchmarks/safety_checks.py [--pairs 300] [--corpora DIR] [--show 15]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from processors.twin.safety_learned import SafetyPolicy  # noqa: E402
from processors.twin.safety_models import SUITE_DIR, corpus_register_lines, evaluate, get_checks  # noqa: E402

console = Console(width=140)
TARGETS = {"prohibited_question": 0.95, "toxicity": 0.95, "pii_leak": 0.98}
FP_TARGET = 0.005
LATENCY_TARGET_MS = 20.0


def interviewer_lines(path: Path) -> list[str]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out += [t["text"] for t in json.loads(line)["turns"] if t["role"] == "interviewer" and t["text"].strip()]
    return out


def respond_pairs(limit: int) -> list[tuple[str, str]]:
    """(candidate turn, the interviewer's next line) from the repository's SCOTUS slice."""
    pairs = []
    with (ROOT / "infra/samples/scotus_oyez_slice.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            turns = json.loads(line)["turns"]
            for a, b in zip(turns, turns[1:]):
                if a["role"] == "candidate" and b["role"] == "interviewer":
                    pairs.append((a["text"], b["text"]))
    rng = np.random.default_rng(14)
    idx = rng.permutation(len(pairs))[:limit]
    return [pairs[i] for i in idx]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=300, help="respond requests to time")
    ap.add_argument("--corpora", default=os.environ.get("TWIN_BENCH_CORPORA"), metavar="DIR",
                    help="a folder of <corpus>/dev.jsonl transcript sets (default: $TWIN_BENCH_CORPORA; part 2 is "
                         "skipped without it)")
    ap.add_argument("--show", type=int, default=15, help="flagged public-record lines and test misses to list")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/safety_checks.json"))
    args = ap.parse_args()

    policy = SafetyPolicy()
    checks = get_checks()
    console.print(f"[dim]safety model {checks.version}; loading MiniLM, the profanity model and Presidio ...[/]")
    policy.check("warm up the models", "output")
    policy.check("warm up the models", "input")
    result: dict = {"model_version": checks.version, "thresholds": checks.meta.get("thresholds"),
                    "cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)}

    # 1. The frozen test part.
    res = evaluate(SUITE_DIR / "test.jsonl", policy)
    table = Table(title=f"frozen test part ({res['rows']} rows): per category")
    for col in ("category", "rows", "recall", "precision", "target (recall)"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for label, m in res["categories"].items():
        target = TARGETS.get(label)
        ok = "" if target is None else (" ok" if m["recall"] >= target else " BELOW")
        table.add_row(label, str(m["n"]), f"{m['recall']:.3f}", f"{m['precision']:.3f}",
                      f"{target:.2f}{ok}" if target else "-")
    table.add_row("hard negatives (fp rate)", str(res["negatives"]), "-", "-", f"{res['fp_rate']:.2%} flagged")
    console.print(table)
    for m in res["misses"][:args.show]:
        console.print(f"  [yellow]missed[/] {m['label']:20} {m['text'][:100]!r} {m['flags']}")
    result["test_part"] = {k: v for k, v in res.items() if k not in ("misses", "false_positives")}
    result["test_part"]["misses"] = res["misses"]
    result["test_part"]["false_positives"] = res["false_positives"]

    # 2. Real interviewer lines of the development corpora.
    corpora = Path(args.corpora) if args.corpora else None
    files = sorted(corpora.glob("*/dev.jsonl")) if corpora and corpora.is_dir() else []
    if not files:
        console.print(f"[yellow]no corpora folder ({corpora or 'pass --corpora DIR'}): the false-positive rate on "
                      "real interviewer lines is skipped[/]")
        result["corpora"] = None
    else:
        checks.cache_size = 400_000  # each unit embedded once for the whole run
        table = Table(title="real interviewer lines of the development corpora (output check): every flag is a false positive")
        # The checks' thresholds spent their budget on lines of each corpus's train part (when the corpora
        # were at hand at training time): the held-out sessions (val + test) are the fair figure.
        heldout = corpus_register_lines(corpora, 10**9, 0, part="heldout")
        for col in ("corpus", "lines", "flagged", "rate", "held-out sessions", "by category", "MiniLM pass", "seconds"):
            table.add_column(col, justify="left" if col in ("corpus", "by category") else "right")
        result["corpora"] = {}
        total = flagged_total = held_total = held_flagged_total = 0
        shown: list[tuple[str, str]] = []
        for f in files:
            name = f.parent.name
            lines = interviewer_lines(f)
            started = time.perf_counter()
            checks.minilm_calls = 0
            cats: Counter = Counter()
            flagged = 0
            for text in lines:
                verdict = policy.check(text, "output")
                if not verdict.passed:
                    flagged += 1
                    cats.update({fl.category for fl in verdict.flags})
                    if name.startswith("scotus") and len(shown) < args.show:
                        shown.append((",".join(sorted({fl.category + ":" + fl.detail for fl in verdict.flags})), text))
            secs = time.perf_counter() - started
            held = [t for t, c, _ in heldout if c == name]
            held_flagged = sum(1 for t in held if not policy.check(t, "output").passed)  # cached verdicts
            held_total += len(held)
            held_flagged_total += held_flagged
            total += len(lines)
            flagged_total += flagged
            minilm = checks.minilm_calls / len(lines)
            result["corpora"][name] = {"lines": len(lines), "flagged": flagged, "rate": flagged / len(lines),
                                       "by_category": dict(cats), "minilm_share": minilm,
                                       "heldout_lines": len(held), "heldout_flagged": held_flagged}
            table.add_row(name, str(len(lines)), str(flagged), f"{flagged / len(lines):.2%}",
                          f"{held_flagged}/{len(held)} = {held_flagged / max(1, len(held)):.2%}",
                          ", ".join(f"{k} {v}" for k, v in cats.most_common()), f"{minilm:.1%}", f"{secs:.0f}")
        rate = flagged_total / total if total else 0.0
        ok = "ok" if rate <= FP_TARGET else "ABOVE"
        held_rate = held_flagged_total / max(1, held_total)
        table.add_row("all", str(total), str(flagged_total), f"{rate:.2%}",
                      f"{held_flagged_total}/{held_total} = {held_rate:.2%}", f"target <= {FP_TARGET:.1%}: {ok}", "", "")
        console.print(table)
        for why, text in shown:
            console.print(f"  [yellow]flagged[/] {why:32} {text[:110]!r}")
        result["corpora_overall"] = {"lines": total, "flagged": flagged_total, "rate": rate,
                                     "heldout_lines": held_total, "heldout_flagged": held_flagged_total,
                                     "heldout_rate": held_rate}
        checks.cache_size = 4096
        checks.clear_caches()

    # 3. Latency of one respond request's checks.
    pairs = respond_pairs(args.pairs)
    times = []
    second_stage = 0
    load_before = os.getloadavg()[0]
    for cand, reply in pairs:
        checks.clear_caches()
        checks.minilm_calls = 0
        t0 = time.perf_counter()
        policy.check(cand, "input")
        policy.check(reply, "output")
        times.append((time.perf_counter() - t0) * 1000)
        second_stage += checks.minilm_calls > 0
    lat = {"requests": len(times), "p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
           "max_ms": float(max(times)), "minilm_requests": second_stage,
           "loadavg_1m_before": round(load_before, 2), "loadavg_1m_after": round(os.getloadavg()[0], 2),
           "candidate_words_mean": float(np.mean([len(c.split()) for c, _ in pairs])),
           "reply_words_mean": float(np.mean([len(r.split()) for _, r in pairs]))}
    result["latency"] = lat
    table = Table(title=f"input + output check per respond request ({lat['requests']} real pairs, cold caches, "
                        f"load avg {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus)")
    for col in ("p50 ms", "p95 ms", "max ms", "MiniLM pass", "target p95"):
        table.add_column(col, justify="right")
    table.add_row(f"{lat['p50_ms']:.1f}", f"{lat['p95_ms']:.1f}", f"{lat['max_ms']:.1f}",
                  f"{second_stage}/{lat['requests']}",
                  f"{LATENCY_TARGET_MS:.0f} ms {'ok' if lat['p95_ms'] <= LATENCY_TARGET_MS else 'ABOVE'}")
    console.print(table)

    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2, default=float))
    console.print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
