//! Store memory against store size: does the process grow with what sled holds on disk, even
//! with its page cache capped?
//!
//! ```sh
//! cargo bench --bench store_memory -- [--records 300000] [--cache-mib 8] [--every 25000] [--keep-runs N]
//! ```
//!
//! Writes what the soak's mix writes, in its proportions, through the runtime's own store: per
//! record a registry version (a ~200-byte value under `name@version`, one index entry) and,
//! for every third record, a workflow run's journal (start, two step ends, end). The store is
//! flushed every 1,000 records, as the engines' group commits do. Every `--every` records it
//! prints the data directory's size and this process's RSS. After the last row it closes the
//! store, opens it again and reads nothing: the RSS then is what sled takes to open a store
//! of that size.
//!
//! With `--keep-runs N` only the newest N runs' journals are kept (each older one removed as a
//! new one is written), as a retention for stored runs would: does removing keys give the
//! memory back?
//!
//! The process uses the server's allocator (mimalloc, unless built with
//! `--features system-allocator`), so that the figures compare with the soak's.

#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use ensemble_actors::store::{Store, StoreOptions};
use serde::Serialize;

#[derive(Serialize)]
struct Version<'a> {
    digest: String,
    media_type: &'a str,
    labels: Vec<(&'a str, &'a str)>,
    json: bool,
    content: Vec<u8>,
    created_at_ms: u64,
}

#[derive(Serialize)]
struct JournalEntry<'a> {
    run: &'a str,
    step: Option<&'a str>,
    event: &'a str,
    output: String,
    at_ms: u64,
}

/// A run's journal entries: (step, event), `-` for the run itself.
const JOURNAL: [(&str, &str); 4] = [("-", "start"), ("a", "end"), ("b", "end"), ("-", "end")];

fn journal_key(run: &str, step: &str, event: &str) -> Vec<u8> {
    format!("run/{run}/{step}/{event}").into_bytes()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, not {v:?}"))
        })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records = arg(&args, "--records", 300_000);
    let cache_mib = arg(&args, "--cache-mib", 8);
    let every = arg(&args, "--every", 25_000).max(1);
    let keep_runs = arg(&args, "--keep-runs", u64::MAX);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let options = StoreOptions {
        cache_capacity_bytes: cache_mib << 20,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = Store::open_with(&path, &options).expect("open the store");
    let artifacts = store.tree("registry").expect("tree");
    let index = store.tree("registry.index").expect("tree");
    let journal = store.tree("workflow").expect("tree");
    println!("records,disk_mib,rss_mib,rss_kib_per_1k_records,secs");
    let started = Instant::now();
    let first = rss_kib();
    let mut last: Option<(u64, u64)> = None;
    for n in 0..records {
        let name = format!("chaos/p{}", n % 64);
        let version = format!("1.{n}.0");
        let key = format!("{name}@{version}");
        let v = Version {
            digest: format!("{:064x}", u128::from(n) * 0x9e37_79b9_7f4a_7c15),
            media_type: "application/json",
            labels: vec![],
            json: true,
            content: format!("{{\"n\":{n}}}").into_bytes(),
            created_at_ms: 1_700_000_000_000 + n,
        };
        artifacts.insert(key.as_bytes(), &v).expect("insert");
        index
            .insert(format!("{name}\0{n:016x}").as_bytes(), &version)
            .expect("insert");
        if n % 3 == 0 {
            let run = format!("run-{n:016}");
            for (step, event) in JOURNAL {
                let e = JournalEntry {
                    run: &run,
                    step: (step != "-").then_some(step),
                    event,
                    output: format!("{{\"valid\":true,\"schema\":\"chaos-port\",\"n\":{n}}}"),
                    at_ms: 1_700_000_000_000 + n,
                };
                journal
                    .insert(&journal_key(&run, step, event), &e)
                    .expect("insert");
            }
            if let Some(old) = (n / 3).checked_sub(keep_runs) {
                let run = format!("run-{:016}", old * 3);
                for (step, event) in JOURNAL {
                    journal
                        .remove(&journal_key(&run, step, event))
                        .expect("remove");
                }
            }
        }
        if (n + 1) % 1_000 == 0 {
            rt.block_on(store.flush()).expect("flush");
        }
        if (n + 1) % every == 0 {
            let rss = rss_kib();
            let per_1k = last.map_or(0.0, |(r0, k0)| {
                (rss as f64 - r0 as f64) / ((n + 1 - k0) as f64 / 1_000.0)
            });
            println!(
                "{},{:.1},{:.1},{:.1},{:.1}",
                n + 1,
                dir_bytes(&path) as f64 / 1_048_576.0,
                rss as f64 / 1024.0,
                per_1k,
                started.elapsed().as_secs_f64()
            );
            last = Some((rss, n + 1));
        }
    }
    rt.block_on(store.flush()).expect("flush");
    let before_close = rss_kib();
    drop((artifacts, index, journal, store));
    let closed = rss_kib();
    let reopened = Store::open_with(&path, &options).expect("reopen");
    let _t = reopened.tree("registry").expect("tree");
    println!(
        "# RSS at start {:.1} MiB, after the writes {:.1} MiB, closed {:.1} MiB, reopened \
         (nothing read) {:.1} MiB; cache {cache_mib} MiB",
        first as f64 / 1024.0,
        before_close as f64 / 1024.0,
        closed as f64 / 1024.0,
        rss_kib() as f64 / 1024.0
    );
}
