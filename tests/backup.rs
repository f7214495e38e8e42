//! `ensemble backup`, run as a user runs it: artifacts put, a backup taken from a running server
//! (`--url`) and from a data directory no process holds, a new server started on each copy,
//! the artifacts read back; a non-empty target, a held data directory and a remote-looking
//! request refused with what to do.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The binary, with none of the caller's `ENSEMBLE_*` variables.
fn ensemble() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ensemble"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ENSEMBLE_") {
            cmd.env_remove(name);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("the ensemble binary runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT/mcp`
    url: String,
}

impl Server {
    fn base(&self) -> &str {
        self.url.trim_end_matches("/mcp")
    }

    /// Stops the server the way systemd does (SIGTERM), and waits for it to let go of the store.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path) -> Server {
    let mut child = ensemble()
        .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ensemble serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(
            lines.read_line(&mut line).unwrap() > 0,
            "exited before listening"
        );
        if let Some(rest) = line.trim().strip_prefix("ensemble: listening on ") {
            break rest.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.lines() {});
    Server { child, url }
}

fn put(url: &str, name: &str, content: &str) {
    let args = serde_json::json!({"name": name, "version": "1.0.0", "content": content});
    let r = run(ensemble().args([
        "call",
        "registry_put",
        "--url",
        url,
        "--args",
        &args.to_string(),
    ]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

fn get(url: &str, name: &str) -> Option<String> {
    let r = run(ensemble().args([
        "call",
        "registry_get",
        &format!("name={name}"),
        "--url",
        url,
    ]));
    if r.code != Some(0) {
        return None;
    }
    let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
    v["content"].as_str().map(String::from)
}

#[test]
fn a_backup_from_a_running_server_restores_on_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = serve(&data);
    put(&server.url, "web/cfg", "port 80");
    put(&server.url, "db/cfg", "port 5432");

    // The data directory is held: an offline backup says to ask the server.
    let offline = run(ensemble()
        .args(["backup", "--to"])
        .arg(dir.path().join("nope"))
        .arg("--data-dir")
        .arg(&data));
    assert_eq!(offline.code, Some(1), "{}", offline.stderr);
    assert!(
        offline.stderr.contains("in use by a running ensemble") && offline.stderr.contains("--url"),
        "{}",
        offline.stderr
    );

    let copy = dir.path().join("copy");
    let b = run(ensemble()
        .args(["backup", "--url", server.base(), "--to"])
        .arg(&copy));
    assert_eq!(b.code, Some(0), "{}", b.stderr);
    let report: Value = serde_json::from_str(&b.stdout).expect("a JSON report");
    assert!(report["records"].as_u64().unwrap() >= 2, "{report}");
    assert!(
        b.stderr.contains("ensemble serve --data-dir"),
        "{}",
        b.stderr
    );

    // Written after the backup: not in the copy.
    put(&server.url, "late/cfg", "later");

    // Into the same directory again: refused, and the copy is untouched.
    let again = run(ensemble()
        .args(["backup", "--url", &server.url, "--to"])
        .arg(&copy));
    assert_eq!(again.code, Some(2), "{}", again.stderr);
    assert!(
        again.stderr.contains("exists and is not empty"),
        "{}",
        again.stderr
    );
    server.stop();

    let restored = serve(&copy);
    assert_eq!(get(&restored.url, "web/cfg").as_deref(), Some("port 80"));
    assert_eq!(get(&restored.url, "db/cfg").as_deref(), Some("port 5432"));
    assert_eq!(get(&restored.url, "late/cfg"), None);
    restored.stop();
}

#[test]
fn a_backup_of_a_data_dir_no_process_holds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = serve(&data);
    put(&server.url, "a/b", "hello");
    server.stop();

    let copy = dir.path().join("offline-copy");
    let b = run(ensemble()
        .args(["backup", "--to"])
        .arg(&copy)
        .arg("--data-dir")
        .arg(&data));
    assert_eq!(b.code, Some(0), "{}", b.stderr);

    let restored = serve(&copy);
    assert_eq!(get(&restored.url, "a/b").as_deref(), Some("hello"));
    restored.stop();

    // A directory that holds no store is not backed up as an empty one.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let r = run(ensemble()
        .args(["backup", "--to"])
        .arg(dir.path().join("x"))
        .arg("--data-dir")
        .arg(&empty));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("holds no ensemble store"), "{}", r.stderr);
}

/// A raw HTTP request, so that the test controls every header.
fn post(base: &str, headers: &str, body: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut tcp = TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "POST /admin/backup HTTP/1.1\r\n{headers}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    (status, answer)
}

#[test]
fn the_backup_endpoint_refuses_browsers_proxies_and_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"));
    let target = dir.path().join("t");
    let body = serde_json::json!({ "to": target }).to_string();
    let host = "Host: 127.0.0.1\r\n";

    let (status, answer) = post(
        server.base(),
        &format!("{host}Origin: http://evil.example\r\n"),
        &body,
    );
    assert_eq!(status, 403, "{answer}");
    assert!(answer.contains("browser"), "{answer}");
    let (status, answer) = post(
        server.base(),
        &format!("{host}X-Forwarded-For: 192.0.2.1\r\n"),
        &body,
    );
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = post(server.base(), "Host: evil.example\r\n", &body);
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = post(server.base(), host, r#"{"to": "relative/dir"}"#);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("absolute path"), "{answer}");
    assert!(!target.exists(), "nothing written by a refused request");

    let (status, answer) = post(server.base(), host, &body);
    assert_eq!(status, 200, "{answer}");
    assert!(target.join("conf").exists() || target.join("db").exists());
}
