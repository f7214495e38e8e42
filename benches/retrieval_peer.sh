#!/usr/bin/env bash
# Retrieval against a peer, side by side: bm25s (Python, in process) and Ensemble (the rag_*
# tools over MCP, `ensemble serve` over stdio, durable) on the four development collections
# (SciFact train, Cranfield, CISI, Vaswani judgments; ../shared/data/retrieval).
#
#   benches/retrieval_peer.sh [rag_eval options, e.g. --ranking '{"k1":1.2,"b":0.75}' --concurrency 2]
#
# Both systems' runs (top 100 per judged query) are scored by the same code, `rag_eval --score`
# (ensemble::ir_eval, trec_eval semantics), so the quality columns compare like with like.
# bm25s is installed into its own venv under target/bm25s-venv on first use. Runs and
# tab-separated results stay in target/retrieval-peer/. Environment: DATA_ROOT (where the
# collections are), PYTHON (the interpreter that makes the venv, default python3).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

data_root=${DATA_ROOT:-../shared/data/retrieval}
out=target/retrieval-peer
venv=target/bm25s-venv
collections=(scifact:train cranfield:test cisi:test vaswani:test)

if [[ ! -d $data_root/scifact ]]; then
    echo "no collections under $data_root: set DATA_ROOT, or put ../shared beside the project" >&2
    exit 1
fi

if ! "$venv/bin/python" -c 'import bm25s, Stemmer, numpy' 2>/dev/null; then
    echo "== making $venv (bm25s 0.3, PyStemmer, numpy)" >&2
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --quiet 'bm25s==0.3.*' PyStemmer numpy
fi

echo "== building ensemble and rag_eval (release)" >&2
cargo build --release --bin ensemble --example rag_eval
rag_eval=target/release/examples/rag_eval

mkdir -p "$out/bm25s" "$out/ensemble"

echo "== bm25s" >&2
"$venv/bin/python" benches/retrieval_bm25s.py run --data-root "$data_root" --out "$out/bm25s"
for pair in "${collections[@]}"; do
    name=${pair%%:*}
    split=${pair#*:}
    "$rag_eval" --data "$data_root/$name" --split "$split" --score "$out/bm25s/$name.run" \
        --summary "$out/bm25s/$name.quality.tsv" >/dev/null
done

echo "== ensemble" >&2
"$rag_eval" --all --stdio --bin target/release/ensemble --data-root "$data_root" \
    --run "$out/ensemble" --summary "$out/ensemble.tsv" "$@" >/dev/null

"$venv/bin/python" benches/retrieval_bm25s.py report --bm25s "$out/bm25s" \
    --ensemble "$out/ensemble.tsv"
