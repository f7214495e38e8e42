//! The process's own figures (CPU, memory, open files, threads), read from Linux's `/proc`, for
//! the dashboard and as the standard `process_*` metrics Prometheus client libraries export.
//! Elsewhere the figures are absent (every field `None`) and the metrics are not written.

use std::fmt::Write as _;
use std::sync::OnceLock;

/// One reading of the process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// CPU time used so far, user and system, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory in bytes.
    pub rss_bytes: Option<u64>,
    /// Virtual memory in bytes.
    pub virtual_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// OS threads.
    pub threads: Option<u64>,
    /// When the process started, in Unix seconds.
    pub start_time_seconds: Option<f64>,
}

/// Kernel clock ticks per second (`sysconf(_SC_CLK_TCK)`) and the page size, read once.
fn ticks_and_page() -> (f64, u64) {
    static VALUES: OnceLock<(f64, u64)> = OnceLock::new();
    *VALUES.get_or_init(|| {
        // SAFETY: `sysconf` reads process-wide constants and has no preconditions.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        (
            if ticks > 0 { ticks as f64 } else { 100.0 },
            u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096),
        )
    })
}

/// The system's boot time in Unix seconds (`btime` in `/proc/stat`), read once.
fn boot_time() -> Option<f64> {
    static BOOT: OnceLock<Option<f64>> = OnceLock::new();
    *BOOT.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Reads the process now (a few small files under `/proc/self`).
pub fn read() -> ProcessStats {
    let mut stats = ProcessStats::default();
    let (ticks, page) = ticks_and_page();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // The command name (field 2) is in parentheses and may hold spaces: fields are
        // counted after its closing parenthesis, from field 3 (`state`).
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
            if let (Some(utime), Some(stime)) = (field(14), field(15)) {
                stats.cpu_seconds = Some((utime + stime) as f64 / ticks);
            }
            stats.threads = field(20);
            stats.virtual_bytes = field(23);
            stats.rss_bytes = field(24).map(|pages| pages * page);
            stats.start_time_seconds = field(22)
                .zip(boot_time())
                .map(|(start, boot)| boot + start as f64 / ticks);
        }
    }
    stats.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    stats.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        });
    stats
}

/// Appends the `process_*` metrics of `stats` to a Prometheus text exposition.
pub fn write_metrics(stats: &ProcessStats, out: &mut String) {
    let count = |v: Option<u64>| v.map(|v| v as f64);
    let metrics = [
        (
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            stats.cpu_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            count(stats.rss_bytes),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            count(stats.virtual_bytes),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            count(stats.open_fds),
        ),
        (
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            count(stats.max_fds),
        ),
        (
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
            count(stats.threads),
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            stats.start_time_seconds,
        ),
    ];
    for (name, kind, help, value) in metrics {
        if let Some(v) = value {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn the_process_reads_itself() {
        let before = read();
        // Burn a little CPU so the counter has something to show.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let file = std::fs::File::open("/proc/self/status").expect("open");
        let after = read();
        let rss = after.rss_bytes.expect("rss");
        assert!(rss > 1 << 20, "a test binary holds more than 1 MiB: {rss}");
        assert!(after.virtual_bytes.expect("vsz") >= rss);
        assert!(after.threads.expect("threads") >= 1);
        assert!(
            after.open_fds.expect("fds") >= 4,
            "stdin, stdout, stderr and the file"
        );
        assert!(after.max_fds.expect("limit") >= after.open_fds.expect("fds"));
        assert!(after.cpu_seconds.expect("cpu") >= before.cpu_seconds.expect("cpu"));
        let started = after.start_time_seconds.expect("start");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        assert!(
            started <= now + 1.0 && started > now - 86_400.0 * 30.0,
            "{started} vs {now}"
        );
        drop(file);

        let mut text = String::new();
        write_metrics(&after, &mut text);
        let samples = super::super::prom::parse(&text);
        let names: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                "process_virtual_memory_bytes",
                "process_open_fds",
                "process_max_fds",
                "process_threads",
                "process_start_time_seconds"
            ]
        );
        assert_eq!(samples[1].value, rss as f64);
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
    }
}
