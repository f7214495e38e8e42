//! What the HTTP benches share: the real `ensemble serve --http` binary as a child process,
//! and the CPU time a process has used, read from `/proc`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `ensemble serve --http 127.0.0.1:0` in a child process; killed when dropped.
pub struct Server {
    child: Child,
    /// Where it listens (`/mcp` is under it).
    pub addr: SocketAddr,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Serves on its embedded defaults with the in-memory store.
    pub fn in_memory() -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ensemble"));
        cmd.args(["serve", "--in-memory", "--http", "127.0.0.1:0"]);
        Self::spawn(cmd, None)
    }

    /// Serves on a fresh data directory, with `config` (a function of that directory) if any.
    pub fn on_disk(config: Option<&dyn Fn(&Path) -> String>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ensemble"));
        cmd.args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"));
        if let Some(config) = config {
            let file = dir.path().join("ensemble.toml");
            std::fs::write(&file, config(dir.path())).expect("write the configuration");
            cmd.arg("--config").arg(&file);
        }
        Self::spawn(cmd, Some(dir))
    }

    fn spawn(mut cmd: Command, dir: Option<tempfile::TempDir>) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ensemble");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        let mut seen = Vec::new();
        let url = loop {
            line.clear();
            if lines.read_line(&mut line).expect("read stderr") == 0 {
                panic!("ensemble exited before listening:\n{}", seen.join(""));
            }
            if let Some(rest) = line.trim().strip_prefix("ensemble: listening on ") {
                break rest.to_string();
            }
            seen.push(line.clone());
        };
        // Keep draining its logs so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.lines().map_while(Result::ok) {});
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .parse()
            .expect("server address");
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CPU time (user + system) process `pid` has used so far, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after its closing `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
}
