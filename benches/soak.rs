//! Soak: the real `ensemble serve --http` under the chaos mix without faults (registry puts
//! and gets, validations, task submissions, workflow runs, retrieval searches, devops
//! predictions over 16 sessions) at a fixed rate for an hour, its memory and open file
//! descriptors sampled every 5 s from `/proc`.
//!
//! ```sh
//! cargo bench --bench soak -- [--rate 500] [--minutes 60] [--warmup 5] [--out target/soak] [--bounded-store] [--session-churn]
//! ```
//!
//! The 16 sessions stay open for the whole soak, as an MCP client keeps its session.
//! `--session-churn` opens 16 new ones every minute instead (the old ones closed): the
//! server's session history then fills towards its bound (`[governance.sessions]`
//! `max_sessions`, 1,000 by default), which takes longer than an hour at that pace.
//!
//! `--bounded-store` sends the mix without what grows the store (registry puts become gets,
//! workflow runs validations): the store's own memory grows with its size (see
//! `benches/store_memory.rs`), and this tells the rest of the server's memory apart from it.
//!
//! Goals (issue 20): RSS after the warm-up grows by at most 10%, open file descriptors flat,
//! no error. The load runs in one-minute windows (`chaos::load`: after each, every
//! acknowledged put is read back and every acknowledged run waited for); a window's
//! figures are one row of `windows.csv`. The samples go to `samples.csv`, and `rss.png` plots
//! them (with python3 and matplotlib; the script says so when they are missing).

#[path = "common/chaos.rs"]
mod chaos;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One sample of the server process.
#[derive(Clone, Copy)]
struct Sample {
    secs: f64,
    rss_kib: u64,
    fds: u64,
}

fn sample(pid: u32, started: Instant) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Sample {
        secs: started.elapsed().as_secs_f64(),
        rss_kib,
        fds,
    })
}

/// What a window of load saw, summed over the engines.
struct Window {
    minute: u64,
    sent: u64,
    ok: u64,
    errors: u64,
    hung: u64,
    lost: u64,
    p99_ms: f64,
    first_error: Option<String>,
}

fn window(minute: u64, p: &chaos::Phase) -> Window {
    let mut all = chaos::Class::default();
    let mut first_error = p.problems.first().cloned();
    for c in p.classes.values() {
        all.latencies_us.extend_from_slice(&c.latencies_us);
        all.ok += c.ok;
        all.tool_errors += c.tool_errors;
        all.transport_errors += c.transport_errors;
        all.hung += c.hung;
        if first_error.is_none() {
            first_error = c.first_error.clone();
        }
    }
    Window {
        minute,
        sent: p.sent,
        ok: all.ok,
        errors: all.tool_errors + all.transport_errors,
        hung: all.hung,
        lost: p.lost_puts + p.runs_not_completed,
        p99_ms: all.quantile_ms(0.99),
        first_error,
    }
}

const PLOT: &str = r#"
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
t = [float(r["secs"]) / 60 for r in rows]
rss = [int(r["rss_kib"]) / 1024 for r in rows]
fds = [int(r["fds"]) for r in rows]
fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
ax.plot(t, rss, color="tab:blue", label="RSS (MiB)")
ax.set_xlabel("minutes")
ax.set_ylabel("RSS (MiB)")
ax.set_ylim(bottom=0)
ax.axvline(float(sys.argv[3]), color="grey", linestyle=":", label="end of warm-up")
ax2 = ax.twinx()
ax2.plot(t, fds, color="tab:orange", label="open fds")
ax2.set_ylabel("open file descriptors")
ax2.set_ylim(bottom=0)
lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
ax.legend(lines, labels, loc="lower right")
ax.set_title(sys.argv[4])
fig.tight_layout()
fig.savefig(sys.argv[2])
"#;

fn main() -> anyhow::Result<()> {
    let (mut rate, mut minutes, mut warmup) = (500u32, 60u64, 5u64);
    let mut out = PathBuf::from("target/soak");
    let mut mix = chaos::Mix::Full;
    let mut churn = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |what: &str| -> anyhow::Result<String> {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{what} needs a value"))
        };
        match a.as_str() {
            "--rate" => rate = value("--rate")?.parse()?,
            "--minutes" => minutes = value("--minutes")?.parse()?,
            "--warmup" => warmup = value("--warmup")?.parse()?,
            "--out" => out = PathBuf::from(value("--out")?),
            "--bounded-store" => mix = chaos::Mix::Bounded,
            "--session-churn" => churn = true,
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other}; see the header of this file"),
        }
    }
    anyhow::ensure!(warmup < minutes, "--warmup must be shorter than --minutes");
    std::fs::create_dir_all(&out)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let server = chaos::start(dir.path()).map_err(anyhow::Error::msg)?;
    rt.block_on(chaos::prepare(&server))
        .map_err(anyhow::Error::msg)?;
    let pid = server.pid();
    let started = Instant::now();
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, done) = (samples.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(s) = sample(pid, started) {
                    samples.lock().expect("samples").push(s);
                }
                std::thread::sleep(Duration::from_secs(5));
            }
        })
    };
    let mut windows = Vec::new();
    let mut kept = None;
    for minute in 0..minutes {
        if kept.is_none() || churn {
            // Dropping the last window's sessions closes them.
            drop(kept.take());
            kept = Some(
                rt.block_on(chaos::open_sessions(&server))
                    .map_err(anyhow::Error::msg)?,
            );
        }
        let sessions = kept.as_deref().unwrap_or_default();
        let phase = rt.block_on(chaos::load_on(
            &server,
            sessions,
            rate,
            Duration::from_secs(60),
            0.0,
            minute + 1,
            mix,
        ));
        let w = window(minute, &phase);
        let rss = samples.lock().expect("samples").last().map(|s| s.rss_kib);
        eprintln!(
            "minute {minute}: {} calls, {} errors, {} hung, {} lost, p99 {:.2} ms, RSS {} MiB",
            w.sent,
            w.errors,
            w.hung,
            w.lost,
            w.p99_ms,
            rss.unwrap_or(0) / 1024
        );
        windows.push(w);
    }
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let samples = samples.lock().expect("samples").clone();

    let mut csv = std::fs::File::create(out.join("samples.csv"))?;
    writeln!(csv, "secs,rss_kib,fds")?;
    for s in &samples {
        writeln!(csv, "{:.1},{},{}", s.secs, s.rss_kib, s.fds)?;
    }
    let mut csv = std::fs::File::create(out.join("windows.csv"))?;
    writeln!(csv, "minute,sent,ok,errors,hung,lost,p99_ms")?;
    for w in &windows {
        writeln!(
            csv,
            "{},{},{},{},{},{},{:.3}",
            w.minute, w.sent, w.ok, w.errors, w.hung, w.lost, w.p99_ms
        )?;
    }

    let after: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.secs >= (warmup * 60) as f64)
        .collect();
    let (Some(first), Some(last)) = (after.first(), after.last()) else {
        anyhow::bail!("no samples after the warm-up");
    };
    let peak = after.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let (fd_min, fd_max) = (
        after.iter().map(|s| s.fds).min().unwrap_or(0),
        after.iter().map(|s| s.fds).max().unwrap_or(0),
    );
    let growth = (last.rss_kib as f64 / first.rss_kib as f64 - 1.0) * 100.0;
    let peak_growth = (peak as f64 / first.rss_kib as f64 - 1.0) * 100.0;
    let total = |f: fn(&Window) -> u64| windows.iter().map(f).sum::<u64>();
    let secs = minutes * 60;
    println!(
        "sessions: {}",
        if churn {
            "16 new every minute (--session-churn)"
        } else {
            "16, open for the whole soak"
        }
    );
    println!(
        "{rate} calls/s offered for {minutes} min: {} calls sent ({:.0}/s), {} answered ok\n",
        total(|w| w.sent),
        total(|w| w.sent) as f64 / secs as f64,
        total(|w| w.ok)
    );
    println!("| figure | value | goal |");
    println!("|---|---|---|");
    println!(
        "| RSS at the end of the warm-up ({warmup} min) | {:.1} MiB | |",
        first.rss_kib as f64 / 1024.0
    );
    println!(
        "| RSS at the end | {:.1} MiB ({growth:+.1}%) | ≤ +10% |",
        last.rss_kib as f64 / 1024.0
    );
    println!(
        "| RSS peak after the warm-up | {:.1} MiB ({peak_growth:+.1}%) | |",
        peak as f64 / 1024.0
    );
    println!("| open fds after the warm-up | {fd_min}–{fd_max} | flat |");
    println!("| errors | {} | 0 |", total(|w| w.errors));
    println!("| hung calls | {} | 0 |", total(|w| w.hung));
    println!(
        "| acknowledged writes lost or runs not completed | {} | 0 |",
        total(|w| w.lost)
    );
    let p99: Vec<f64> = windows.iter().map(|w| w.p99_ms).collect();
    println!(
        "| p99 per window | {:.2}–{:.2} ms | |",
        p99.iter().cloned().fold(f64::INFINITY, f64::min),
        p99.iter().cloned().fold(0.0, f64::max)
    );
    if let Some(e) = windows.iter().find_map(|w| w.first_error.clone()) {
        println!("\nfirst error: {e}");
    }
    let script = out.join("plot.py");
    std::fs::write(&script, PLOT)?;
    let title = format!(
        "ensemble serve, {rate} calls/s mixed{}{}, {minutes} min",
        if mix == chaos::Mix::Bounded {
            ", store bounded"
        } else {
            ""
        },
        if churn {
            ", new sessions every minute"
        } else {
            ""
        }
    );
    let plotted = std::process::Command::new("python3")
        .arg(&script)
        .arg(out.join("samples.csv"))
        .arg(out.join("rss.png"))
        .arg(warmup.to_string())
        .arg(&title)
        .status();
    match plotted {
        Ok(s) if s.success() => println!("\nplot: {}", out.join("rss.png").display()),
        _ => println!(
            "\nno plot: needs python3 with matplotlib (pip install matplotlib); the samples are in \
             {}",
            out.join("samples.csv").display()
        ),
    }
    Ok(())
}
