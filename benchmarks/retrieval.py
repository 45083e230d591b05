"""Retrieval latency against Weaviate: the twin's memory retrieval next to plain queries.

Indexes every interviewer of a transcript corpus (their earlier sessions, context → reply exemplars,
exactly as training does: ``PersonaMemory.index_exchanges``) in one bench tenant of a bench-only
collection, then asks for the moments nearest to held-out situations (each interviewer's last
sessions, never indexed) in four ways, one query at a time:

- **twin**: what ``TwinEngine.respond`` runs in its ``retrieve`` step: ``embed_situation`` (MiniLM
  on CPU) + ``similar_moments`` (near-vector filtered on interviewer, active version and
  ``kind=exemplar``, k=24, results turned into exemplars). Timed whole, and split into embed / search.
- **near-vector, no filter**: the same vector, plain ``near_vector`` on the tenant: the bare index cost.
- **BM25**: keyword search over ``context`` and ``candidateTurn`` with the twin's filter (no embedding).
- **hybrid α=0.5**: Weaviate's hybrid (BM25 + the same vector) with the twin's filter.

The twin does not use hybrid search; it is here as the alternative it was chosen over. Besides
latency (p50/p95/p99 ms) each method reports how many of its hits belong to the asked interviewer
(``own``), its overlap with the twin's hits, and ``move@1``: whether its top hit's move (follow up,
probe, ...) equals the move the interviewer actually made next, the signal the twin's policy reads.

The corpus is the in-repo SCOTUS slice (infra/samples/scotus_oyez_slice.jsonl: three
justices, 14 to 24 sessions each) unless ``--corpus`` or ``TWIN_BENCH_CORPUS`` names a larger JSONL
file; on the 80-session SCOTUS dev set, ``--sessions 15 --held-out 10`` index and ask more.

Prints a table and writes benchmarks/results/retrieval.json; drops its collection at the end.

    .venv/bin/python benchmarks/retrieval.py [--queries 150] [--sessions 10] [--held-out 4] [--k 24] [--corpus FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from infra.clients import ServiceUnavailable, check_services, weaviate_client  # noqa: E402
from infra.settings import Settings  # noqa: E402
from telemetry import CORPUS_ENV, DEFAULT_CORPUS, corpus_paths, pct, write_result  # noqa: E402 - benchmarks/telemetry.py

console = Console(width=120)  # the table stays whole in logs and pipes
VERSION = 1


def corpus_split(corpus: Path, sessions: int, held_out: int):
    """Per interviewer: exchanges of the first ``sessions`` sessions (indexed) and of the last
    ``held_out`` sessions (queries), chronological as the file is; a session is never both."""
    from processors.twin.corpus import exchanges, read_transcripts

    by_interviewer: dict[str, list] = {}
    for parsed in read_transcripts(corpus):
        if parsed.ok:
            by_interviewer.setdefault(parsed.transcript.interviewer_id, []).append(parsed.transcript)
    indexed, queries = {}, {}
    for iid, transcripts in by_interviewer.items():
        if len(transcripts) <= held_out:
            continue  # nothing would be left to index
        indexed[iid] = [ex for t in transcripts[:-held_out][:sessions] for ex in exchanges(t)]
        queries[iid] = [ex for t in transcripts[-held_out:] for ex in exchanges(t) if ex.candidate_turn is not None]
    if not indexed:
        raise SystemExit(f"{corpus}: no interviewer has more than {held_out} sessions (--held-out)")
    return indexed, queries


def _filter(interviewer_id: str):
    from weaviate.classes.query import Filter

    return (Filter.by_property("interviewerId").equal(interviewer_id) & Filter.by_property("version").equal(VERSION)
            & Filter.by_property("kind").equal("exemplar"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=150, help="held-out situations asked (per method)")
    ap.add_argument("--sessions", type=int, default=10,
                    help="sessions indexed per interviewer, from the first on (at most all but the held-out ones; "
                         "60 of the SCOTUS dev set index ~3500 exemplars)")
    ap.add_argument("--held-out", type=int, default=4, help="last sessions per interviewer used as queries")
    ap.add_argument("--corpus", default=None, metavar="FILE",
                    help=f"transcripts (JSONL); default ${CORPUS_ENV}, else the in-repo SCOTUS test fixture")
    ap.add_argument("--k", type=int, default=24, help="hits per query (the engine's retrieve_k)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/retrieval.json"))
    args = ap.parse_args()
    corpora = corpus_paths(args.corpus)
    if len(corpora) != 1:
        raise SystemExit("retrieval.py reads one corpus file")
    corpus = corpora[0]

    from weaviate.classes.query import HybridFusion, MetadataQuery

    from processors.twin.embeddings import get_embedder
    from processors.twin.memory import PersonaMemory, situation_text
    from processors.twin.offline_generator import Exemplar as _Exemplar

    cfg = Settings()
    try:
        asyncio.run(check_services(cfg, ("weaviate",), timeout=10))
    except ServiceUnavailable as exc:
        raise SystemExit(str(exc)) from None
    run_id = uuid.uuid4().hex[:6]
    tenant = f"bench-retrieval-{run_id}"
    client = weaviate_client(cfg)
    embedder = get_embedder()
    memory = PersonaMemory.connect(client, embedder, prefix=f"BenchRetrieval{run_id}")
    try:
        indexed, held = corpus_split(corpus, args.sessions, args.held_out)
        total = sum(len(v) for v in indexed.values())
        console.print(f"[dim]indexing {total} exemplars of {len(indexed)} interviewers "
                      f"({args.sessions} sessions each) ...[/]")
        t0 = time.perf_counter()
        for iid, exs in indexed.items():
            memory.index_exchanges(tenant, iid, VERSION, exs)
        index_s = time.perf_counter() - t0

        rng = random.Random(5)
        pool = [(iid, ex) for iid, exs in held.items() for ex in exs]
        rng.shuffle(pool)
        queries = pool[:args.queries]
        coll = memory.sink._collection(tenant)
        for iid, ex in queries[:5]:  # warm-up: model, gRPC channel, index pages
            memory.similar_moments(tenant, iid, VERSION, memory.embed_situation(ex.context_turns,
                                                                                ex.candidate_turn.text), args.k)

        methods = ("twin", "near-vector, no filter", "BM25, filtered", "hybrid a=0.5, filtered")
        ms = {m: [] for m in methods}
        embed_ms, search_ms = [], []
        own = {m: 0 for m in methods}
        hits_n = {m: 0 for m in methods}
        overlap = {m: 0.0 for m in methods}
        move_at_1 = {m: 0 for m in methods}
        for iid, ex in queries:
            actual_move = _Exemplar.from_exchange(ex).labelled_move().value
            text = situation_text(ex.context_turns, ex.candidate_turn.text)
            t0 = time.perf_counter()
            vec = memory.embed_situation(ex.context_turns, ex.candidate_turn.text)
            t1 = time.perf_counter()
            twin = memory.similar_moments(tenant, iid, VERSION, vec, args.k)
            t2 = time.perf_counter()
            ms["twin"].append((t2 - t0) * 1000)
            embed_ms.append((t1 - t0) * 1000)
            search_ms.append((t2 - t1) * 1000)
            twin_keys = {e.exemplar_id for e in twin}
            results = {"twin": [{"key": e.exemplar_id, "interviewerId": iid, "move": getattr(e.move, "value", e.move)}
                                for e in twin]}

            t0 = time.perf_counter()
            res = coll.query.near_vector(near_vector=list(map(float, vec)), limit=args.k,
                                         return_metadata=MetadataQuery(distance=True))
            ms["near-vector, no filter"].append((time.perf_counter() - t0) * 1000)
            results["near-vector, no filter"] = [o.properties for o in res.objects]

            t0 = time.perf_counter()
            res = coll.query.bm25(query=text, query_properties=["context", "candidateTurn"], limit=args.k,
                                  filters=_filter(iid))
            ms["BM25, filtered"].append((time.perf_counter() - t0) * 1000)
            results["BM25, filtered"] = [o.properties for o in res.objects]

            t0 = time.perf_counter()
            res = coll.query.hybrid(query=text, vector=list(map(float, vec)), alpha=0.5, limit=args.k,
                                    query_properties=["context", "candidateTurn"], filters=_filter(iid),
                                    fusion_type=HybridFusion.RELATIVE_SCORE)
            ms["hybrid a=0.5, filtered"].append((time.perf_counter() - t0) * 1000)
            results["hybrid a=0.5, filtered"] = [o.properties for o in res.objects]

            for m, hits in results.items():
                hits_n[m] += len(hits)
                own[m] += sum(h.get("interviewerId") == iid for h in hits)
                overlap[m] += len({h.get("key") for h in hits} & twin_keys) / max(1, len(twin_keys))
                if hits and hits[0].get("move") == actual_move:
                    move_at_1[m] += 1
    finally:
        try:
            memory.sink.drop()
        finally:
            client.close()

    n = len(queries)
    rows = []
    for m in methods:
        rows.append({"method": m, "queries": n, "p50_ms": round(pct(ms[m], 50), 2), "p95_ms": round(pct(ms[m], 95), 2),
                     "p99_ms": round(pct(ms[m], 99), 2), "mean_ms": round(sum(ms[m]) / n, 2),
                     "own_interviewer_share": round(own[m] / max(1, hits_n[m]), 3),
                     "overlap_with_twin": round(overlap[m] / n, 3), "move_at_1": round(move_at_1[m] / n, 3),
                     "includes_embedding": m == "twin"})
    twin_split = {"embed_p50_ms": round(pct(embed_ms, 50), 2), "embed_p95_ms": round(pct(embed_ms, 95), 2),
                  "search_p50_ms": round(pct(search_ms, 50), 2), "search_p95_ms": round(pct(search_ms, 95), 2),
                  "search_p99_ms": round(pct(search_ms, 99), 2)}
    table = Table(title=f"retrieval: {n} held-out situations, k={args.k}, {total} exemplars of "
                        f"{len(indexed)} interviewers in one tenant (indexed in {index_s:.0f}s)")
    for col in ("method", "timed", "p50 ms", "p95 ms", "p99 ms", "own", "overlap twin", "move@1"):
        table.add_column(col, justify="left" if col in ("method", "timed") else "right")
    for r in rows:
        table.add_row(r["method"], "embed+search" if r["includes_embedding"] else "search",
                      f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['p99_ms']:.2f}",
                      f"{r['own_interviewer_share']:.0%}", f"{r['overlap_with_twin']:.0%}", f"{r['move_at_1']:.0%}")
    table.add_row("twin", "embed", f"{twin_split['embed_p50_ms']:.2f}", f"{twin_split['embed_p95_ms']:.2f}",
                  "", "", "", "")
    table.add_row("twin", "search", f"{twin_split['search_p50_ms']:.2f}", f"{twin_split['search_p95_ms']:.2f}",
                  f"{twin_split['search_p99_ms']:.2f}", "", "", "")
    console.print(table)
    result = {"config": {"queries": n, "k": args.k, "sessions_indexed_per_interviewer": args.sessions,
                         "held_out_sessions": args.held_out, "exemplars": total, "interviewers": len(indexed),
                         "index_seconds": round(index_s, 1),
                         "corpus": corpus.name if corpus == DEFAULT_CORPUS else str(corpus)},
              "rows": rows, "twin_split": twin_split}
    write_result(args.out, result)


if __name__ == "__main__":
    main()
