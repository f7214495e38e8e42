"""The peer side of benches/retrieval_peer.sh: bm25s on the development collections.

bm25s as the research notes (../shared/research/retrieval.md, section 4) ran it: Lucene BM25
(k1 1.2, b 0.75), the `\\b\\w\\w+\\b` tokenizer lower-cased, the English stop list, Snowball
English stemming (PyStemmer), each document as `title + " " + text`.

`run`: for each collection, indexes the corpus, retrieves the top `--depth` for every judged
query twice (all queries in one batch call, then one query at a time, tokenizing included in
both), writes `<out>/<collection>.run` (TREC) and `<out>/speed.tsv`. The runs are scored by
`rag_eval --score`, so both systems are measured by the same code (trec_eval semantics).

`report`: prints the bm25s table, the Ensemble table and the two side by side, from the
tab-separated files the other steps wrote.
"""

import argparse
import csv
import json
import os
import sys
import time

COLLECTIONS = [("scifact", "train"), ("cranfield", "test"), ("cisi", "test"), ("vaswani", "test")]


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def judged_queries(folder, split):
    """The queries with judgments in the split, in queries.jsonl order."""
    with open(os.path.join(folder, "qrels", f"{split}.tsv"), encoding="utf-8") as f:
        judged = {row[0] for row in csv.reader(f, delimiter="\t") if row and row[0] != "query-id"}
    queries = read_jsonl(os.path.join(folder, "queries.jsonl"))
    return [(str(q["_id"]), q["text"]) for q in queries if str(q["_id"]) in judged]


def run_collection(name, folder, split, depth, out):
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")

    def tokenize(texts):
        return bm25s.tokenize(
            texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
        )

    corpus = read_jsonl(os.path.join(folder, "corpus.jsonl"))
    ids = [str(d["_id"]) for d in corpus]
    texts = [(d.get("title") or "") + " " + d["text"] for d in corpus]
    queries = judged_queries(folder, split)
    k = min(depth, len(ids))

    started = time.perf_counter()
    retriever = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
                    show_progress=False)
    index_s = time.perf_counter() - started

    started = time.perf_counter()
    docs, scores = retriever.retrieve(tokenize([q for _, q in queries]), k=k, show_progress=False)
    batch_s = time.perf_counter() - started

    latencies = []
    for _, text in queries:
        t = time.perf_counter()
        retriever.retrieve(tokenize([text]), k=k, show_progress=False)
        latencies.append(time.perf_counter() - t)
    single_s = sum(latencies)
    latencies.sort()

    with open(os.path.join(out, f"{name}.run"), "w", encoding="utf-8") as f:
        for (qid, _), row_docs, row_scores in zip(queries, docs, scores):
            for rank, (doc, score) in enumerate(zip(row_docs, row_scores), start=1):
                f.write(f"{qid} Q0 {ids[doc]} {rank} {float(score)!r} bm25s\n")

    def nearest_rank(p):
        return latencies[max(1, -(-len(latencies) * p // 100)) - 1] * 1e3

    return {
        "collection": name,
        "docs": len(ids),
        "queries": len(queries),
        "index_docs_per_s": f"{len(ids) / index_s:.1f}",
        "batch_queries_per_s": f"{len(queries) / batch_s:.1f}",
        "single_queries_per_s": f"{len(queries) / single_s:.1f}",
        "single_p50_ms": f"{nearest_rank(50):.2f}",
        "single_p99_ms": f"{nearest_rank(99):.2f}",
    }


def run(args):
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name, split in COLLECTIONS:
        print(f"bm25s: {name} ({split})", file=sys.stderr)
        rows.append(run_collection(name, os.path.join(args.data_root, name), split, args.depth,
                                   args.out))
    with open(os.path.join(args.out, "speed.tsv"), "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        w.writeheader()
        w.writerows(rows)


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        return {row["collection"]: row for row in csv.DictReader(f, delimiter="\t")}


def table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|---|" + "--:|" * (len(header) - 1))
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    print()


def report(args):
    speed = read_tsv(os.path.join(args.bm25s, "speed.tsv"))
    quality = {}
    for name, _ in COLLECTIONS:
        quality.update(read_tsv(os.path.join(args.bm25s, f"{name}.quality.tsv")))
    ours = read_tsv(args.ensemble)

    print("\n## bm25s 0.3 (Lucene BM25 1.2/0.75, Snowball English, stop list; in-process Python, index in memory)\n")
    table(
        ["collection", "docs", "queries", "nDCG@10", "R@100", "MAP", "index docs/s",
         "batch queries/s", "1-by-1 queries/s", "1-by-1 p50 ms", "1-by-1 p99 ms"],
        [[n, speed[n]["docs"], quality[n]["queries"], quality[n]["ndcg@10"],
          quality[n]["recall@100"], quality[n]["map"], speed[n]["index_docs_per_s"],
          speed[n]["batch_queries_per_s"], speed[n]["single_queries_per_s"],
          speed[n]["single_p50_ms"], speed[n]["single_p99_ms"]] for n, _ in COLLECTIONS],
    )
    print("## Ensemble (rag_* tools over MCP, `ensemble serve` over stdio, durable)\n")
    table(
        ["collection", "docs", "queries", "nDCG@10", "R@100", "MAP", "index docs/s", "queries/s",
         "p50 ms", "p99 ms"],
        [[n, ours[n]["docs"], ours[n]["queries"], ours[n]["ndcg@10"], ours[n]["recall@100"],
          ours[n]["map"], ours[n]["index_docs_per_s"], ours[n]["queries_per_s"],
          ours[n]["p50_ms"], ours[n]["p99_ms"]] for n, _ in COLLECTIONS if n in ours],
    )
    print("## Side by side (queries/s: bm25s one query at a time in process; Ensemble one call"
          " at a time over MCP)\n")
    rows = []
    for n, _ in COLLECTIONS:
        if n not in ours:
            continue
        b, e = quality[n], ours[n]
        delta = float(e["ndcg@10"]) - float(b["ndcg@10"])
        rows.append([n, b["ndcg@10"], e["ndcg@10"], f"{delta:+.4f}", b["recall@100"],
                     e["recall@100"], speed[n]["single_queries_per_s"], e["queries_per_s"]])
    table(["collection", "bm25s nDCG@10", "Ensemble nDCG@10", "Δ nDCG@10", "bm25s R@100",
           "Ensemble R@100", "bm25s queries/s", "Ensemble queries/s"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="index, retrieve, write runs and speed.tsv")
    r.add_argument("--data-root", default="../shared/data/retrieval")
    r.add_argument("--out", default="target/retrieval-peer/bm25s")
    r.add_argument("--depth", type=int, default=100)
    p = sub.add_parser("report", help="print the tables")
    p.add_argument("--bm25s", default="target/retrieval-peer/bm25s")
    p.add_argument("--ensemble", default="target/retrieval-peer/ensemble.tsv")
    args = parser.parse_args()
    {"run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
