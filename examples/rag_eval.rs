//! Evaluates the retrieval engine through its MCP tools, as a client would: indexes a BEIR
//! collection with `rag_index`, runs every judged query through `rag_search`, and scores the
//! run with `trec_eval`'s measures (`ensemble::ir_eval`).
//!
//! ```sh
//! # one collection, in-process runtime (durable, in a temporary data dir)
//! cargo run --release --example rag_eval -- --data ../shared/data/retrieval/scifact --split train
//! # the four development collections, against the real binary over stdio, one Markdown table
//! cargo build --release --bin ensemble
//! cargo run --release --example rag_eval -- --all --stdio [--bin target/release/ensemble]
//! # a ranking choice against the collection's default
//! cargo run --release --example rag_eval -- --all --ranking '{"feedback":{"enabled":true},"k1":1.2}'
//! # score a TREC run made elsewhere (no engine involved)
//! cargo run --release --example rag_eval -- --data ../shared/data/retrieval/cisi --score cisi.run
//! ```
//!
//! `--mixed`: does a category filter help where documents carry categories? The four
//! development corpora go into one collection, each document classified under its corpus's
//! concept of a small taxonomy imported with `taxonomy_import` (science → life sciences →
//! biomedicine: SciFact; engineering → aeronautics: Cranfield, electronics: Vaswani;
//! information science → library science: CISI). Each corpus's queries run three times: no
//! filter (the other corpora compete), filtered on the parent concept (a subtree: Cranfield and
//! Vaswani share `engineering`), and on the corpus's own concept.
//!
//! `--qrels FILE` scores against a judgments file of your own (e.g. held-out judgments) instead
//! of the folder's `qrels/<split>.tsv`.
//!
//! Options: `--depth N` hits per query (default 100), `--batch N` documents per `rag_index`
//! call (default 1000), `--concurrency N` searches in flight (default 1), `--run FILE` writes
//! the TREC run (a folder with `--all`: one `<collection>.run` each), `--summary FILE` writes
//! the table as tab-separated values for scripts (`benches/retrieval_peer.sh`).
//!
//! Indexing speed is documents over the time spent in `rag_index` calls, each answered once its
//! batch is committed to disk. Latency is per `rag_search` call at the client, so it includes the
//! MCP round trip (JSON-RPC over an in-process pipe, or over the child's stdio).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use ensemble::ir_eval::{self, Collection, Doc, Run, Scored, Summary};
use ensemble::protocol::retrieval::{
    CreateCollectionRequest, IndexRequest, IndexResponse, Ranking, SearchRequest, SearchResponse,
};
use ensemble::runtime::Runtime;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, object};
use rmcp::service::{Peer, RoleClient, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The development collections `--all` runs, with the split judged in each.
const DEVELOPMENT: [(&str, &str); 4] = [
    ("scifact", "train"),
    ("cranfield", "test"),
    ("cisi", "test"),
    ("vaswani", "test"),
];

#[derive(Parser, Debug)]
#[command(about = "Retrieval quality and speed through the rag_* MCP tools")]
struct Args {
    /// A BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).
    #[arg(long, conflicts_with = "all")]
    data: Option<PathBuf>,
    /// The judged split (default: the folder's only split, else `test`).
    #[arg(long)]
    split: Option<String>,
    /// A judgments file to score against instead of the folder's `qrels/<split>.tsv`.
    #[arg(long, requires = "data", conflicts_with = "split")]
    qrels: Option<PathBuf>,
    /// The four development collections under --data-root.
    #[arg(long)]
    all: bool,
    /// Where --all finds the collections.
    #[arg(long, default_value = "../shared/data/retrieval")]
    data_root: PathBuf,
    /// Talk to `ensemble serve --data-dir <tmp>` over stdio instead of an in-process runtime.
    #[arg(long)]
    stdio: bool,
    /// The binary --stdio starts.
    #[arg(long, default_value = "target/release/ensemble")]
    bin: PathBuf,
    /// Documents per rag_index call.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Hits asked of each search.
    #[arg(long, default_value_t = 100)]
    depth: u32,
    /// Searches in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// A `ranking` object passed to every search, e.g. '{"k1":1.2,"b":0.75}'.
    #[arg(long)]
    ranking: Option<String>,
    /// The collections' `title_weight` (the engine's default when absent).
    #[arg(long)]
    title_weight: Option<u32>,
    /// Write the TREC run here (with --all: a folder, one <collection>.run each).
    #[arg(long)]
    run: Option<PathBuf>,
    /// Score this TREC run file against --data's judgments instead of searching.
    #[arg(long, requires = "data")]
    score: Option<PathBuf>,
    /// Also write the results as tab-separated values.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// The category-filter experiment on the four development corpora in one collection.
    #[arg(long, conflicts_with_all = ["all", "data", "score"])]
    mixed: bool,
}

/// `--mixed`: each corpus's (leaf concept, parent concept).
const MIXED: [(&str, &str, &str); 4] = [
    ("scifact", "biomedicine", "life-sciences"),
    ("cranfield", "aeronautics", "engineering"),
    ("vaswani", "electronics", "engineering"),
    ("cisi", "library-science", "information-science"),
];

/// The `--mixed` taxonomy in the taxonomy engine's JSON form.
fn mixed_taxonomy() -> Value {
    let concept = |id: &str, label: &str, broader: Option<&str>| {
        let mut c = json!({"id": id, "pref_labels": [{"value": label, "lang": "en"}]});
        if let Some(b) = broader {
            c["broader"] = json!([b]);
        }
        c
    };
    json!({"concepts": [
        concept("science", "science", None),
        concept("life-sciences", "life sciences", Some("science")),
        concept("biomedicine", "biomedicine", Some("life-sciences")),
        concept("engineering", "engineering", Some("science")),
        concept("aeronautics", "aeronautics", Some("engineering")),
        concept("electronics", "electronics", Some("engineering")),
        concept("information-science", "information science", Some("science")),
        concept("library-science", "library science", Some("information-science")),
    ]})
}

/// `--mixed`: one collection of every corpus, each query run unfiltered, filtered on its
/// corpus's parent concept and on its own; one row per corpus and filter.
async fn mixed(
    peer: &Peer<RoleClient>,
    args: &Args,
    ranking: Option<Ranking>,
) -> anyhow::Result<()> {
    let import =
        json!({"scheme": "corpora", "format": "json", "content": mixed_taxonomy().to_string()});
    let _: Value = call(peer, "taxonomy_import", &import).await?;
    let create: CreateCollectionRequest = request(json!({"name": "mixed"}))?;
    let _: Value = call(peer, "rag_create_collection", &create).await?;
    let mut corpora = Vec::new();
    for (name, leaf, parent) in MIXED {
        let c = load(&args.data_root.join(name), None)?;
        for chunk in c.corpus.chunks(args.batch.max(1)) {
            let documents: Vec<Value> = chunk
                .iter()
                .map(|d| {
                    json!({"id": format!("{name}:{}", d.id), "title": d.title, "text": d.text,
                           "categories": [leaf]})
                })
                .collect();
            let index: IndexRequest =
                request(json!({"collection": "mixed", "documents": documents}))?;
            let _: IndexResponse = call(peer, "rag_index", &index).await?;
        }
        corpora.push((c, leaf, parent));
    }
    let total: usize = corpora.iter().map(|(c, _, _)| c.corpus.len()).sum();
    println!(
        "\ncategory filters: the four corpora in one collection ({total} documents), depth {}\n",
        args.depth
    );
    println!("| corpus | filter | nDCG@10 | R@100 | MAP |");
    println!("|---|---|--:|--:|--:|");
    for (c, leaf, parent) in &corpora {
        for filter in [None, Some(*parent), Some(*leaf)] {
            let mut run = Run::new();
            for q in &c.queries {
                let mut search = json!({"collection": "mixed", "query": q.text, "limit": args.depth,
                                        "ranking": ranking, "no_snippets": true});
                if let Some(concept) = filter {
                    search["filter"] = json!({"categories": [concept]});
                }
                let search: SearchRequest = request(search)?;
                let answer: SearchResponse = call(peer, "rag_search", &search).await?;
                let prefix = format!("{}:", c.name);
                let hits = answer.hits.into_iter().map(|h| {
                    // Another corpus's document keeps its prefix: never judged, never relevant.
                    let id =
                        h.id.strip_prefix(&prefix)
                            .map(str::to_string)
                            .unwrap_or(h.id);
                    Scored::new(id, f64::from(h.score))
                });
                run.insert(q.id.clone(), hits.collect());
            }
            ir_eval::drop_self_hits(&mut run);
            let s = ir_eval::evaluate(&c.qrels, &run, 10, 100);
            println!(
                "| {} ({}) | {} | {:.4} | {:.4} | {:.4} |",
                c.name,
                c.split,
                filter.unwrap_or("none"),
                s.ndcg,
                s.recall,
                s.map
            );
        }
    }
    Ok(())
}

/// What one collection measured.
struct Row {
    collection: String,
    split: String,
    docs: usize,
    quality: Summary,
    /// Present when the run was made here (not with --score).
    speed: Option<Speed>,
}

struct Speed {
    index_docs_per_s: f64,
    p50: Duration,
    p99: Duration,
    queries_per_s: f64,
}

/// A client session with a runtime: in process, or the real binary over stdio.
struct Server {
    client: RunningService<RoleClient, ()>,
    runtime: Option<Runtime>,
    _data: tempfile::TempDir,
}

impl Server {
    async fn in_process() -> anyhow::Result<Server> {
        let data = tempfile::tempdir()?;
        let runtime = Runtime::builder()
            .data_dir(data.path().join("data"))
            .build()
            .await?;
        let (client_end, server_end) = tokio::io::duplex(1 << 20);
        let service = runtime.mcp_service();
        tokio::spawn(async move {
            if let Ok(running) = service.serve(server_end).await {
                let _ = running.waiting().await;
            }
        });
        let client = ().serve(client_end).await?;
        Ok(Server {
            client,
            runtime: Some(runtime),
            _data: data,
        })
    }

    async fn stdio(bin: &Path) -> anyhow::Result<Server> {
        if !bin.is_file() {
            bail!(
                "no binary at {}: build it with `cargo build --release --bin ensemble`, or pass --bin",
                bin.display()
            );
        }
        let data = tempfile::tempdir()?;
        let dir = data.path().join("data");
        let cmd = tokio::process::Command::new(bin).configure(|c| {
            c.arg("serve").arg("--data-dir").arg(&dir);
            // The server's log goes to our stderr; only its warnings unless asked for more.
            if std::env::var_os("ENSEMBLE_LOG").is_none() {
                c.env("ENSEMBLE_LOG", "warn");
            }
        });
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let client = ().serve(transport).await?;
        Ok(Server {
            client,
            runtime: None,
            _data: data,
        })
    }

    async fn close(self) -> anyhow::Result<()> {
        let _ = self.client.cancel().await;
        if let Some(runtime) = self.runtime {
            runtime.shutdown().await?;
        }
        Ok(())
    }
}

/// A request of the protocol's type from JSON: fields the protocol gains later keep their
/// defaults, and one it renames or drops fails here, by name.
fn request<T: DeserializeOwned>(value: Value) -> anyhow::Result<T> {
    serde_json::from_value(value).context("the request no longer fits the protocol's type")
}

/// Calls a tool with typed arguments and reads its structured answer.
async fn call<T: DeserializeOwned>(
    peer: &Peer<RoleClient>,
    tool: &str,
    args: &impl Serialize,
) -> anyhow::Result<T> {
    let params = CallToolRequestParams::new(tool.to_string())
        .with_arguments(object(serde_json::to_value(args)?));
    let result = peer.call_tool(params).await.with_context(|| {
        format!("{tool} (does this build serve it? `ensemble tools | grep rag_`)")
    })?;
    if result.is_error == Some(true) {
        let text: Vec<String> = result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect();
        bail!("{tool}: {}", text.join(" "));
    }
    let value = result
        .structured_content
        .with_context(|| format!("{tool}: no structured result"))?;
    serde_json::from_value(value).with_context(|| format!("{tool}: unexpected answer"))
}

/// Creates the collection and indexes the corpus; documents per second of `rag_index` time.
async fn index(peer: &Peer<RoleClient>, c: &Collection, args: &Args) -> anyhow::Result<f64> {
    let batch = args.batch;
    let create: CreateCollectionRequest = request(json!({
        "name": c.name,
        "description": format!("BEIR {} ({} judgments)", c.name, c.split),
        "title_weight": args.title_weight,
    }))?;
    let _: Value = call(peer, "rag_create_collection", &create).await?;
    let corpus: Vec<&Doc> = c.corpus.iter().collect();
    let mut spent = Duration::ZERO;
    let mut documents = 0;
    for chunk in corpus.chunks(batch.max(1)) {
        let documents_json: Vec<Value> = chunk
            .iter()
            .map(|d| {
                if d.title.is_empty() {
                    json!({"id": d.id, "text": d.text})
                } else {
                    json!({"id": d.id, "title": d.title, "text": d.text})
                }
            })
            .collect();
        let index: IndexRequest =
            request(json!({"collection": c.name, "documents": documents_json}))?;
        let started = Instant::now();
        let answer: IndexResponse = call(peer, "rag_index", &index).await?;
        spent += started.elapsed();
        documents = answer.documents;
    }
    if documents != corpus.len() as u64 {
        bail!(
            "{}: the collection holds {documents} documents, {} were indexed",
            c.name,
            corpus.len()
        );
    }
    Ok(corpus.len() as f64 / spent.as_secs_f64())
}

/// Every judged query through `rag_search`, `concurrency` at a time: the run, each call's
/// latency, and the wall time.
async fn search_all(
    peer: &Peer<RoleClient>,
    c: &Collection,
    args: &Args,
    ranking: Option<Ranking>,
) -> anyhow::Result<(Run, Vec<Duration>, Duration)> {
    let requests: Arc<Vec<(String, SearchRequest)>> = Arc::new(
        c.queries
            .iter()
            .map(|q| {
                let search: SearchRequest = request(json!({
                    "collection": c.name,
                    "query": q.text,
                    "limit": args.depth,
                    "ranking": ranking,
                    "no_snippets": true,
                }))?;
                Ok((q.id.clone(), search))
            })
            .collect::<anyhow::Result<_>>()?,
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (peer, requests, next) = (peer.clone(), requests.clone(), next.clone());
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((query, request)) = requests.get(i) else {
                    break;
                };
                let t = Instant::now();
                let answer: SearchResponse = call(&peer, "rag_search", request).await?;
                done.push((query.clone(), t.elapsed(), answer.hits));
            }
            anyhow::Ok(done)
        });
    }
    let mut run = Run::new();
    let mut latencies = Vec::with_capacity(requests.len());
    while let Some(done) = workers.join_next().await {
        for (query, latency, hits) in done?? {
            latencies.push(latency);
            let hits = hits
                .into_iter()
                .map(|h| Scored::new(h.id, f64::from(h.score)));
            run.insert(query, hits.collect());
        }
    }
    Ok((run, latencies, started.elapsed()))
}

/// Nearest-rank percentile of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn write_run(path: &Path, run: &Run) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    ir_eval::write_run(std::io::BufWriter::new(file), run, "ensemble")?;
    Ok(())
}

async fn evaluate(
    peer: &Peer<RoleClient>,
    c: &Collection,
    args: &Args,
    ranking: Option<Ranking>,
    run_file: Option<PathBuf>,
) -> anyhow::Result<Row> {
    eprintln!(
        "{}: indexing {} documents, then {} queries",
        c.name,
        c.corpus.len(),
        c.queries.len()
    );
    let index_docs_per_s = index(peer, c, args).await?;
    let (mut run, mut latencies, wall) = search_all(peer, c, args, ranking).await?;
    if let Some(path) = run_file {
        write_run(&path, &run)?;
    }
    ir_eval::drop_self_hits(&mut run);
    latencies.sort();
    Ok(Row {
        collection: c.name.clone(),
        split: c.split.clone(),
        docs: c.corpus.len(),
        quality: ir_eval::evaluate(&c.qrels, &run, 10, 100),
        speed: Some(Speed {
            index_docs_per_s,
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            queries_per_s: latencies.len() as f64 / wall.as_secs_f64(),
        }),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn print_table(rows: &[Row]) {
    println!(
        "| collection | split | docs | queries | nDCG@10 | R@100 | MAP | p50 ms | p99 ms | queries/s | index docs/s |"
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in rows {
        let q = &r.quality;
        let speed = match &r.speed {
            Some(s) => format!(
                "{} | {} | {:.0} | {:.0}",
                ms(s.p50),
                ms(s.p99),
                s.queries_per_s,
                s.index_docs_per_s
            ),
            None => "– | – | – | –".into(),
        };
        println!(
            "| {} | {} | {} | {} | {:.4} | {:.4} | {:.4} | {speed} |",
            r.collection, r.split, r.docs, q.queries, q.ndcg, q.recall, q.map
        );
    }
}

fn write_summary(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let mut out = String::from(
        "collection\tsplit\tdocs\tqueries\tndcg@10\trecall@100\tmap\tp50_ms\tp99_ms\tqueries_per_s\tindex_docs_per_s\n",
    );
    for r in rows {
        let q = &r.quality;
        let speed = match &r.speed {
            Some(s) => format!(
                "{}\t{}\t{:.1}\t{:.1}",
                ms(s.p50),
                ms(s.p99),
                s.queries_per_s,
                s.index_docs_per_s
            ),
            None => "\t\t\t".into(),
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{:.4}\t{:.4}\t{:.4}\t{speed}\n",
            r.collection, r.split, r.docs, q.queries, q.ndcg, q.recall, q.map
        ));
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn load(dir: &Path, split: Option<&str>) -> anyhow::Result<Collection> {
    Collection::load(dir, split).with_context(|| {
        format!(
            "reading {} (is ../shared beside the project?)",
            dir.display()
        )
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ranking: Option<Ranking> = match &args.ranking {
        Some(json) => Some(serde_json::from_str(json).context("--ranking")?),
        None => None,
    };

    if args.mixed {
        let server = if args.stdio {
            Server::stdio(&args.bin).await?
        } else {
            Server::in_process().await?
        };
        let peer = server.client.peer().clone();
        mixed(&peer, &args, ranking).await?;
        return server.close().await;
    }
    let rows = if let Some(run_file) = &args.score {
        let c = load(
            args.data.as_deref().expect("clap requires --data"),
            args.split.as_deref(),
        )?;
        let mut run = ir_eval::read_run(run_file)?;
        ir_eval::drop_self_hits(&mut run);
        vec![Row {
            collection: c.name.clone(),
            split: c.split.clone(),
            docs: c.corpus.len(),
            quality: ir_eval::evaluate(&c.qrels, &run, 10, 100),
            speed: None,
        }]
    } else {
        let collections = if args.all {
            DEVELOPMENT
                .iter()
                .map(|(name, split)| load(&args.data_root.join(name), Some(split)))
                .collect::<anyhow::Result<Vec<_>>>()?
        } else {
            let Some(dir) = &args.data else {
                bail!("name a collection with --data DIR, or pass --all (see --help)");
            };
            vec![match &args.qrels {
                Some(qrels) => {
                    Collection::load_judged(dir, qrels, "given".into()).with_context(|| {
                        format!("reading {} with {}", dir.display(), qrels.display())
                    })?
                }
                None => load(dir, args.split.as_deref())?,
            }]
        };
        if args.all
            && let Some(dir) = &args.run
        {
            std::fs::create_dir_all(dir)?;
        }
        let server = if args.stdio {
            Server::stdio(&args.bin).await?
        } else {
            Server::in_process().await?
        };
        let mut rows = Vec::new();
        for c in &collections {
            let run_file = match (&args.run, args.all) {
                (Some(dir), true) => Some(dir.join(format!("{}.run", c.name))),
                (file, _) => file.clone(),
            };
            let peer = server.client.peer().clone();
            rows.push(evaluate(&peer, c, &args, ranking, run_file).await?);
        }
        server.close().await?;
        rows
    };

    println!(
        "\nretrieval through MCP ({}; depth {}, concurrency {}, ranking {})\n",
        match (&args.score, args.stdio) {
            (Some(_), _) => "scored from a run file",
            (None, true) => "`ensemble serve` over stdio",
            (None, false) => "in-process runtime",
        },
        args.depth,
        args.concurrency,
        args.ranking
            .as_deref()
            .unwrap_or("the collection's default"),
    );
    print_table(&rows);
    if let Some(path) = &args.summary {
        write_summary(path, &rows)?;
    }
    Ok(())
}
