//! Governance costs, each against a baseline measured in the same run.
//!
//! 1. **The decision** (`decision`): 100 roles of 20 glob patterns each (10 allow, 10 deny, in
//!    several shapes: `engine7_*`, `engine7_{get,list}`, `engine7_[gl]*`, …) over 200 tool
//!    names, the caller holding 5 of the roles or all 100; cached (the decision cache, per role
//!    set and name) and uncached (the compiled automata), on one thread and on two at once (the
//!    cache is behind a `RwLock`), and `Governance::admit` as the HTTP edge calls it (the
//!    operator's controls, the decision, the read-only check). Baseline: a bare `HashSet`
//!    lookup of the tool's name (an allow-list with no patterns, no roles and no denies).
//!    Goal (issue 11): ≤ 5 µs per decision, cached per identity and tool.
//! 2. **Audit appends with group commit** (`audit`): 1, 16 and 64 tokio tasks each appending
//!    records through `AuditLog::append` (answered once durable: one writer task chains and
//!    writes whatever is queued into the store, and one write-out of the log's write-ahead file
//!    makes the batch durable) on a real on-disk `Store` in a temporary directory (a fresh one
//!    per row). Baseline: as many tasks each doing `tree.insert` of the same record +
//!    `store.flush().await` on the same store (the store's own group commit: concurrent
//!    flushes share one disk flush). The two take turns, three rounds each, so drift on a
//!    shared machine hits both alike. Entries per flush (store flushes for the baseline,
//!    write-outs for the log) show how much each side batches. A writer whose flush is done but who is never
//!    told (a lost wakeup) is reported as STUCK, then released by a flush of the bench's own.
//!    Each row's log is verified (`audit::verify`) at the end.
//!
//! ```sh
//! cargo bench --bench governance                 # both parts
//! cargo bench --bench governance -- decision     # one part
//! cargo bench --bench governance -- audit --secs 6
//! ```
//!
//! The store goes where `tempfile` puts temporary directories (`TMPDIR`, else `/tmp`): on a
//! tmpfs a flush costs nothing and the audit figures say little (the bench says so when it is).

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ensemble::actors::governance::audit::{AuditKind, AuditLog, AuditRecord, args_digest};
use ensemble::actors::governance::checkpoint::CheckpointConfig;
use ensemble::actors::governance::policy::{Kind, Known, Policy, RoleSpec};
use ensemble::actors::store::Store;
use ensemble::runtime::config::governance::{GovernanceConfig, StdioConfig};
use ensemble::runtime::governance::{Admission, Governance};

// ---- the decision ----------------------------------------------------------------------------

const ENGINES: usize = 40;
const VERBS: [&str; 5] = ["get", "put", "list", "drop", "purge"];

/// Role `r`: 10 allow patterns over engines `10r..10r+9` (mod 40) and 10 deny patterns over
/// engines `7r..7r+9` (mod 40), each of which matches at least one tool (the policy refuses a
/// pattern that matches none: almost always a typo).
fn roles() -> Vec<RoleSpec> {
    (0..100)
        .map(|r| RoleSpec {
            name: format!("role{r}"),
            tools: (0..10)
                .map(|p| {
                    let e = (r * 10 + p) % ENGINES;
                    match p % 3 {
                        0 => format!("engine{e}_*"),
                        1 => format!("engine{e}_{{get,list}}"),
                        _ => format!("engine{e}_[gl]*"),
                    }
                })
                .collect(),
            deny_tools: (0..10)
                .map(|p| {
                    let e = (r * 7 + p) % ENGINES;
                    match p % 3 {
                        0 => format!("engine{e}_{{drop,purge}}"),
                        1 => format!("engine{e}_[dp]*[ge]"),
                        _ => format!("engine{e}_dro?"),
                    }
                })
                .collect(),
            ..RoleSpec::default()
        })
        .collect()
}

fn tools() -> Vec<String> {
    (0..ENGINES)
        .flat_map(|e| VERBS.into_iter().map(move |v| format!("engine{e}_{v}")))
        .collect()
}

/// Nanoseconds per call of `f` over `names`: the best of five rounds of at least ~50 ms each.
fn per_call(names: &[String], mut f: impl FnMut(&str) -> bool) -> f64 {
    let mut pass = || {
        let mut n = 0u64;
        for name in names {
            n += u64::from(black_box(f(black_box(name))));
        }
        black_box(n);
    };
    // Warm up (fills the decision cache) and size the rounds.
    let started = Instant::now();
    pass();
    let one = started.elapsed().max(Duration::from_nanos(1));
    let passes = (Duration::from_millis(50).as_nanos() / one.as_nanos()).clamp(1, 10_000) as usize;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for _ in 0..passes {
            pass();
        }
        let ns = start.elapsed().as_nanos() as f64 / (passes * names.len()) as f64;
        best = best.min(ns);
    }
    best
}

/// [`per_call`] on two threads at once (the machine's two cores): each thread's own figure,
/// the worse of the two.
fn per_call_2(names: &[String], f: impl Fn(&str) -> bool + Sync) -> f64 {
    std::thread::scope(|s| {
        let a = s.spawn(|| per_call(names, &f));
        let b = s.spawn(|| per_call(names, &f));
        let a = a.join().expect("thread");
        let b = b.join().expect("thread");
        a.max(b)
    })
}

fn decision(rt: &tokio::runtime::Runtime) {
    let tools = tools();
    let roles = roles();
    let known = Known::tools(tools.iter().cloned());
    let started = Instant::now();
    let policy = match Policy::compile(&roles, &known) {
        Ok(p) => p,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            panic!("{} problems in the bench's policy", problems.len());
        }
    };
    let compile = started.elapsed();
    let five = policy
        .role_set((0..5).map(|r| format!("role{r}")))
        .expect("roles");
    let all = policy
        .role_set((0..100).map(|r| format!("role{r}")))
        .expect("roles");
    // The cache answers what the automata answer.
    for (set, what) in [(&five, "5"), (&all, "100")] {
        for n in &tools {
            assert_eq!(
                policy.decide(set, Kind::Tool, n),
                policy.decide_uncached(set, Kind::Tool, n),
                "{n} with {what} roles"
            );
        }
    }
    let allowed = |set| {
        tools
            .iter()
            .filter(|n| policy.decide(set, Kind::Tool, n).allowed)
            .count()
    };
    let (allowed_five, allowed_all) = (allowed(&five), allowed(&all));

    // The edge's check, as `ensemble serve` configures it: the stdio identity holding all 100
    // roles (its roles resolve once, as a token's do once per request), the controls attached
    // to a store.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("data")).expect("store");
    let config = GovernanceConfig {
        roles: roles.clone(),
        stdio: StdioConfig {
            subject: "bench".into(),
            roles: (0..100).map(|r| format!("role{r}")).collect(),
        },
        ..GovernanceConfig::default()
    };
    let governance = {
        let _in_runtime = rt.enter();
        Governance::from_config(&config, &known)
            .expect("governance")
            .attach(&store, |_| true, Vec::<String>::new())
            .expect("attach")
    };
    let who = governance.stdio_identity();
    let admitted = |n: &str| matches!(governance.admit(&who, n), Admission::Allowed);
    assert_eq!(
        tools.iter().filter(|n| admitted(n)).count(),
        allowed_all,
        "admit agrees with the decision"
    );

    let set: HashSet<String> = tools.iter().step_by(2).cloned().collect();
    let baseline = per_call(&tools, |n| set.contains(n));
    let baseline_2 = per_call_2(&tools, |n| set.contains(n));
    let rows = [
        ("HashSet lookup (baseline)", 1, baseline, baseline),
        ("HashSet lookup (baseline)", 2, baseline_2, baseline_2),
        (
            "decide, 5 roles, cached",
            1,
            per_call(&tools, |n| policy.decide(&five, Kind::Tool, n).allowed),
            baseline,
        ),
        (
            "decide, 100 roles, cached",
            1,
            per_call(&tools, |n| policy.decide(&all, Kind::Tool, n).allowed),
            baseline,
        ),
        (
            "decide, 100 roles, cached",
            2,
            per_call_2(&tools, |n| policy.decide(&all, Kind::Tool, n).allowed),
            baseline_2,
        ),
        (
            "Governance::admit, 100 roles",
            1,
            per_call(&tools, admitted),
            baseline,
        ),
        (
            "decide, 5 roles, uncached",
            1,
            per_call(&tools, |n| {
                policy.decide_uncached(&five, Kind::Tool, n).allowed
            }),
            baseline,
        ),
        (
            "decide, 100 roles, uncached",
            1,
            per_call(&tools, |n| {
                policy.decide_uncached(&all, Kind::Tool, n).allowed
            }),
            baseline,
        ),
    ];
    println!(
        "\n## The decision\n\npolicy: 100 roles x 20 patterns over {} tools, compiled in {:.1} ms; \
         allowed: {allowed_five} of them with 5 roles, {allowed_all} with 100\n",
        tools.len(),
        compile.as_secs_f64() * 1e3
    );
    println!("| what | threads | ns/call | x HashSet (same threads) |");
    println!("|---|---|---|---|");
    for (what, threads, ns, base) in rows {
        println!("| {what} | {threads} | {ns:.1} | {:.1} |", ns / base);
    }
    println!("\ngoal: <= 5000 ns per cached decision with 100 roles");
}

// ---- audit appends ---------------------------------------------------------------------------

/// A record as the MCP handler writes after a call: who, the session, the tool, the digest of
/// its arguments, the rule that allowed it, the outcome and the duration.
fn call_record() -> AuditRecord {
    let mut r = AuditRecord::new(AuditKind::Call, "alice@example.com", "tools/call");
    r.session = Some("local-42".into());
    r.target = Some("validation_validate".into());
    r.args_sha256 = Some(args_digest(
        &serde_json::json!({"schema": "bench.order@1.0.0", "document": {"id": "order-17"}}),
    ));
    r.allowed = Some(true);
    r.rule = Some("role reader: allow validation_*".into());
    r.outcome = Some("ok".into());
    r.duration_us = Some(180);
    r
}

/// One stretch of appends: entries made durable before its deadline, its length, the store's
/// disk flushes meanwhile, and how many writers were still waiting long after it ended.
struct Stretch {
    entries: u64,
    elapsed: Duration,
    flushes: u64,
    stuck: usize,
}

impl Stretch {
    fn zero() -> Self {
        Self {
            entries: 0,
            elapsed: Duration::ZERO,
            flushes: 0,
            stuck: 0,
        }
    }
    fn add(&mut self, other: Stretch) {
        self.entries += other.entries;
        self.elapsed += other.elapsed;
        self.flushes += other.flushes;
        self.stuck = self.stuck.max(other.stuck);
    }
    fn rate(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64()
    }
    fn per_flush(&self) -> f64 {
        self.entries as f64 / self.flushes.max(1) as f64
    }
}

/// How long writers may take to see their last append through once a stretch is over.
const GRACE: Duration = Duration::from_secs(2);

/// `writers` tasks each running `one` (an append answered once durable) until `secs` pass.
///
/// A writer still waiting [`GRACE`] after the end is counted as stuck: its flush happened but
/// nobody told it. Flushes are then issued until every writer is through (as the next writer
/// of a busy server would), so that the bench goes on and says so.
async fn stretch<F, Fut>(
    store: &Store,
    flush_count: impl Fn() -> u64,
    writers: usize,
    secs: f64,
    one: F,
) -> Stretch
where
    F: Fn(u64, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let flushes = flush_count();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let done = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..writers as u64)
        .map(|w| {
            let (one, done, finished) = (one.clone(), done.clone(), finished.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    one(w, n).await;
                    if Instant::now() <= deadline {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
                finished.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    tokio::time::sleep_until(deadline.into()).await;
    let flushes = flush_count() - flushes;
    let all = async {
        for t in tasks {
            t.await.expect("writer");
        }
    };
    tokio::pin!(all);
    let mut stuck = 0;
    if tokio::time::timeout(GRACE, &mut all).await.is_err() {
        stuck = writers - finished.load(Ordering::Relaxed) as usize;
        let nudge = async {
            loop {
                store.flush().await.expect("flush");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            () = &mut all => {}
            () = nudge => {}
            () = tokio::time::sleep(Duration::from_secs(10)) => {
                panic!("{stuck} writers still waiting 10 s after flushes were issued for them")
            }
        }
    }
    Stretch {
        entries: done.load(Ordering::Relaxed),
        elapsed: deadline - started,
        flushes,
        stuck,
    }
}

/// Whether `path` is on a tmpfs (where a flush writes nothing to a disk).
fn on_tmpfs(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid C string and `stat` a properly sized, writable out-parameter.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::statfs(c.as_ptr(), &mut stat) } == 0;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    ok && stat.f_type as i64 == TMPFS_MAGIC
}

async fn audit(secs: f64) {
    const ROUNDS: usize = 3;
    let record = call_record();
    let tmp = std::env::temp_dir();
    println!(
        "\n## Audit appends with group commit\n\nstores: a fresh one per row in {} ({}); {secs} s \
         per row and side, in {ROUNDS} alternating rounds\n",
        tmp.display(),
        if on_tmpfs(&tmp) {
            "tmpfs: flushes are free, these figures say little about a disk"
        } else {
            "on disk"
        }
    );
    println!(
        "| writers | insert + flush entries/s | audit append entries/s | ratio | entries per flush, insert / audit |"
    );
    println!("|---|---|---|---|---|");
    let per = secs / ROUNDS as f64;
    let mut notes = Vec::new();
    let mut verified = 0;
    for writers in [1usize, 16, 64] {
        // One store per row: what a row writes is gone before the next (the disk may be small).
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("data")).expect("store");
        let log = AuditLog::open(&store, "bench", CheckpointConfig::default()).expect("audit log");
        let tree = store.tree("baseline").expect("tree");
        let (mut base, mut audited) = (Stretch::zero(), Stretch::zero());
        for _ in 0..ROUNDS {
            let (t, s, r) = (tree.clone(), store.clone(), record.clone());
            base.add(
                stretch(
                    &store,
                    || store.flush_count(),
                    writers,
                    per,
                    move |w, n| {
                        let (t, s, r) = (t.clone(), s.clone(), r.clone());
                        async move {
                            let key = [w.to_be_bytes(), n.to_be_bytes()].concat();
                            t.insert(&key, &r).expect("insert");
                            s.flush().await.expect("flush");
                        }
                    },
                )
                .await,
            );
            let (l, r) = (log.clone(), record.clone());
            audited.add(
                stretch(
                    &store,
                    || log.write_outs(),
                    writers,
                    per,
                    move |_, _| {
                        let (l, r) = (l.clone(), r.clone());
                        async move {
                            l.append(r).await.expect("append");
                        }
                    },
                )
                .await,
            );
        }
        println!(
            "| {writers} | {:.0} | {:.0} | {:.2} | {:.1} / {:.1} |",
            base.rate(),
            audited.rate(),
            audited.rate() / base.rate(),
            base.per_flush(),
            audited.per_flush(),
        );
        for (side, stretch) in [("insert + flush", &base), ("audit append", &audited)] {
            if stretch.stuck > 0 {
                notes.push(format!(
                    "{writers} writers, {side}: {} writer(s) still waiting {} s after the end of a \
                     round, their flush done but never reported (a lost wakeup); released by the \
                     next flush",
                    stretch.stuck,
                    GRACE.as_secs()
                ));
            }
        }
        log.close().await.expect("close");
        let report =
            ensemble::actors::governance::audit::verify(&store, None, &[]).expect("verify");
        assert!(report.is_intact(), "the chain verifies");
        verified += report.entries;
    }
    for note in &notes {
        println!("\nSTUCK: {note}");
    }
    println!(
        "\nthe logs hold {verified} entries and verify; goal: audit ≈ the store's own insert + flush"
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut secs = 3.0;
    let mut parts: Vec<String> = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secs" => secs = args.next().and_then(|s| s.parse().ok()).unwrap_or(secs),
            "decision" | "audit" => parts.push(a),
            // cargo bench passes `--bench`.
            _ => {}
        }
    }
    let wants = |p: &str| parts.is_empty() || parts.iter().any(|x| x == p);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if wants("decision") {
        decision(&rt);
    }
    if wants("audit") {
        rt.block_on(audit(secs));
    }
}
