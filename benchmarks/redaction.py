"""Redaction throughput: the agent's batched Presidio against plain Presidio, one call per text.

Texts are what the ``pii_redaction`` agent sees (benchmarks/telemetry.py builds them): ~30-word
pieces of real interview turns (10% with injected names, e-mails, phone numbers; from the in-repo
SCOTUS test fixture unless ``--corpus`` or ``TWIN_BENCH_CORPUS`` names larger transcripts) and short
run previews (stdout/stderr), shuffled. For each number of texts per call the
agent's ``PiiRedactor.redact`` (trimmed spaCy pipeline, NER prefilter and windows, one NLP pass per
call; cache off) is timed over the whole sample; the baseline is Presidio as documented
(``AnalyzerEngine.analyze`` + ``AnonymizerEngine.anonymize`` per text, full pipeline, every
predefined recognizer). Also: the batched path without the NER prefilter, and how often the two
produce the very same redacted text.

The agent batches the texts of up to ``PII_BATCH_MESSAGES`` raw messages (8 x up to 200 events),
so its calls hold tens to hundreds of texts. Single process, single thread (as in the agent).

Prints a table and writes benchmarks/results/redaction.json.

    .venv/bin/python benchmarks/redaction.py [--texts 600] [--batches 1,8,32,128] [--repeat 2] [--corpus FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from infra.settings import Settings  # noqa: E402
from telemetry import (  # noqa: E402 - benchmarks/telemetry.py: the same texts and redactors
    add_corpus_option,
    batched_redactor,
    plain_redactor,
    redaction_sample,
    time_batched,
    time_plain,
    turn_texts,
)

console = Console(width=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=600, help="turn texts (plus half as many run previews)")
    ap.add_argument("--batches", default="1,8,32,128", help="texts per redact() call to try")
    ap.add_argument("--repeat", type=int, default=2, help="timed passes per variant; the fastest counts "
                    "(others' processes share the CPUs)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/redaction.json"))
    add_corpus_option(ap)
    args = ap.parse_args()
    sizes = [int(b) for b in args.batches.split(",")]

    cfg = Settings()
    sample = redaction_sample(turn_texts(limit=args.texts * 2, corpus=args.corpus), args.texts)
    words = sum(len(t.split()) for t in sample) / len(sample)
    console.print(f"[dim]{len(sample)} texts ({words:.0f} words on average); loading spaCy + Presidio ...[/]")
    ours = batched_redactor(cfg)
    plain = plain_redactor(cfg)
    no_prefilter = batched_redactor(cfg, ner_prefilter=False)

    def best(timer, *a):
        runs = [timer(*a) for _ in range(args.repeat)]
        return min(r[0] for r in runs), runs[0][1]

    plain_ms, single = best(time_plain, plain, sample)
    rows = [{"variant": "plain Presidio (baseline)", "texts_per_call": 1, "ms_per_text": plain_ms, "same_as_plain": 1.0}]
    for size in sizes:
        ms, out = best(time_batched, ours, sample, size)
        rows.append({"variant": "agent PiiRedactor", "texts_per_call": size, "ms_per_text": ms,
                     "same_as_plain": sum(a == b for a, b in zip(out, single)) / len(sample)})
    widest = max(sizes)
    ms, out = best(time_batched, no_prefilter, sample, widest)
    rows.append({"variant": "agent PiiRedactor, no NER prefilter", "texts_per_call": widest, "ms_per_text": ms,
                 "same_as_plain": sum(a == b for a, b in zip(out, single)) / len(sample)})
    redacted = sum(a != b for a, b in zip(sample, single))
    for r in rows:
        r["ms_per_text"] = round(r["ms_per_text"], 3)
        r["texts_per_s"] = round(1000 / r["ms_per_text"], 1)
        r["speedup_vs_plain"] = round(plain_ms / r["ms_per_text"], 2)
        r["same_as_plain"] = round(r["same_as_plain"], 3)

    table = Table(title=f"redaction: {len(sample)} texts (~{words:.0f} words; {redacted} with PII found), "
                        f"one thread, cache off, best of {args.repeat}, load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    for col in ("variant", "texts/call", "ms/text", "texts/s", "speed-up", "same output as plain"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for r in rows:
        table.add_row(r["variant"], str(r["texts_per_call"]), f"{r['ms_per_text']:.2f}", f"{r['texts_per_s']:.0f}",
                      f"{r['speedup_vs_plain']:.2f}x", f"{r['same_as_plain']:.1%}")
    console.print(table)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps({"config": {"texts": len(sample), "avg_words": round(words, 1),
                                               "texts_with_pii_found": redacted, "cpus": os.cpu_count(),
                                               "repeat": args.repeat,
                                               "loadavg_1m": round(os.getloadavg()[0], 2)},
                                    "rows": rows}, indent=2))
    console.print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
