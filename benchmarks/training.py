"""Training time: one interviewer trained as a default training job trains it, stage by stage.

Trains the interviewer on the running local stack (PostgreSQL, Weaviate) in a bench tenant with
``processors.twin.training.train_interviewer`` and the options a default ``POST /api/digital-twin/train``
job uses (style classifier with the other interviewers' sessions as negatives, fine-tune files, move
model and response selector, memory indexing), in a fresh process so no embedding comes from a cache.
The stages are the trainer's own progress stages; "load" is reading and splitting the corpus and
loading the embedding model. Prints a table and writes benchmarks/results/training.json.

    .venv/bin/python benchmarks/training.py                  # the in-repo SCOTUS slice, its largest justice
    .venv/bin/python benchmarks/training.py --corpus FILE --interviewer ID   # a full-size interviewer

A justice of the full SCOTUS development set (80 sessions, 64 trained on) is the budget's size.

The budget (issue "the twin listens"): one interviewer of about 70 sessions in at most 3 minutes on
2 cores, the learned models included.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console()
BUDGET_S = 180.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=ROOT / "infra/samples/scotus_oyez_slice.jsonl",
                    help="sessions (JSON Lines, corpora/FORMAT.md) to train from")
    ap.add_argument("--interviewer", help="whose sessions (default: the interviewer with the most sessions)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/training.json"))
    args = ap.parse_args()

    started = time.perf_counter()
    from infra.clients import weaviate_client
    from infra.settings import Settings
    from processors.twin.corpus import chronological_split, read_transcripts
    from processors.twin.embeddings import get_embedder
    from processors.twin.memory import PersonaMemory
    from processors.twin.profiles import ProfileStore
    from processors.twin.training import train_interviewer

    cfg = Settings()
    sessions = [p.transcript for p in read_transcripts(args.corpus) if p.ok]
    counts = Counter(t.interviewer_id for t in sessions)
    if not counts:
        raise SystemExit(f"{args.corpus}: no readable sessions")
    who = args.interviewer or counts.most_common(1)[0][0]
    if counts[who] < 3:
        raise SystemExit(f"{args.corpus}: {counts[who]} sessions of {who!r}; at least 3 are needed "
                         f"(largest: {', '.join(f'{k} {v}' for k, v in counts.most_common(3))})")
    own = [t for t in sessions if t.interviewer_id == who]
    # A default job: the stored split's proportions, and up to 400 other interviewers' sessions.
    split = chronological_split(own, val=0.1, test=0.2)
    others = [t for t in sessions if t.interviewer_id != who][:400]
    embedder = get_embedder()
    embedder.embed(["load the model"])  # the model load counts under "load", not under the first stage
    client = weaviate_client(cfg)
    memory = PersonaMemory.connect(client, embedder, prefix=cfg.WEAVIATE_COLLECTION_PREFIX)
    profiles = ProfileStore(cfg.POSTGRES_DSN)
    marks: list[tuple[str, float]] = [("load", started)]

    def progress(stage: str, fraction: float) -> None:
        if stage != marks[-1][0]:
            marks.append((stage, time.perf_counter()))

    tenant = f"bench-training-{uuid.uuid4().hex[:6]}"
    try:
        t0 = time.perf_counter()
        result = train_interviewer(tenant, who, [], profiles, memory, split=split, others=others, progress=progress)
        total = time.perf_counter() - t0
    finally:
        profiles.close()
        client.close()
    stages = [(name, marks[i + 1][1] - at) for i, (name, at) in enumerate(marks[:-1])]
    exchanges = result.artefacts.get("counts", {}).get("exchanges")
    table = Table(title=f"training {who} ({len(split.train)} train + {len(split.val)} val sessions, "
                        f"{exchanges} exchanges; {args.corpus.name})")
    table.add_column("stage")
    table.add_column("s", justify="right")
    table.add_column("share", justify="right")
    for name, secs in stages:
        table.add_row(name, f"{secs:.1f}", f"{secs / max(total, 1e-9):.0%}" if name != "load" else "")
    table.add_row("[bold]train_interviewer[/]", f"[bold]{total:.1f}[/]", f"budget {BUDGET_S:.0f} s")
    console.print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "corpus": args.corpus.name, "interviewer": who, "sessions": len(own), "trainSessions": len(split.train),
        "valSessions": len(split.val), "exchanges": exchanges, "otherSessions": len(others),
        "stages_s": {name: round(secs, 2) for name, secs in stages}, "train_s": round(total, 2),
        "budget_s": BUDGET_S, "version": result.version, "tenant": tenant}, indent=2))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
