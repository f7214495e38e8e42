//! `ensemble audit verify`, run as a user runs it on a data directory written by the audit log:
//! exit 0 and a table when intact, 1 and the damaged entry when tampered with, 2 when there is
//! nothing to read or a server holds the directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ensemble::actors::governance::audit::{AuditKind, AuditLog, AuditRecord, EntryBytes};
use ensemble::actors::governance::checkpoint::{self, CheckpointConfig};
use ensemble::actors::store::Store;

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

struct Logged {
    _dir: tempfile::TempDir,
    data: PathBuf,
    checkpoints: PathBuf,
    public_key: PathBuf,
}

/// A data directory with 30 audited calls, checkpoints every 10 in a directory beside it.
async fn logged() -> Logged {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let checkpoints = dir.path().join("checkpoints");
    let key = dir.path().join("audit.key");
    let store = Store::open(&data).unwrap();
    let config = CheckpointConfig {
        dir: Some(checkpoints.clone()),
        key_file: Some(key.clone()),
        every_entries: 10,
        every: Duration::from_secs(3600),
    };
    let log = AuditLog::open(&store, "node-1", config).unwrap();
    for i in 0..30 {
        let mut record = AuditRecord::new(AuditKind::Call, format!("user{i}"), "tools/call");
        record.target = Some("registry_get".into());
        record.outcome = Some("ok".into());
        log.append(record).await.unwrap();
    }
    log.close().await.unwrap();
    Logged {
        public_key: checkpoint::public_key_path(&key),
        _dir: dir,
        data,
        checkpoints,
    }
}

fn verify(logged: &Logged) -> Run {
    run(ensemble()
        .args(["audit", "verify", "--data-dir"])
        .arg(&logged.data)
        .arg("--checkpoints")
        .arg(&logged.checkpoints)
        .arg("--public-key")
        .arg(&logged.public_key))
}

async fn edit_identity(data: &Path, seq: u64) {
    let store = Store::open(data).unwrap();
    let tree = store.tree("audit").unwrap();
    let key = seq.to_be_bytes();
    let EntryBytes(mut bytes) = tree.get::<EntryBytes>(&key).unwrap().unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"user")
        .expect("the identity is in the entry");
    bytes[at] = b'U';
    tree.insert(&key, &EntryBytes(bytes)).unwrap();
    store.flush().await.unwrap();
}

#[tokio::test]
async fn an_intact_log_exits_0_with_a_table() {
    let logged = logged().await;
    let out = verify(&logged);
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("intact"), "{}", out.stdout);
    assert!(out.stdout.contains("node node-1"), "{}", out.stdout);
    assert!(out.stdout.contains("signatures checked"), "{}", out.stdout);
    // Every checkpoint is both in the directory and in the store: 3 + 3.
    assert!(
        out.stdout.contains("checkpoints checked   6"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("size 30"), "{}", out.stdout);
}

#[tokio::test]
async fn an_edited_entry_exits_1_and_names_it() {
    let logged = logged().await;
    edit_identity(&logged.data, 17).await;
    let out = verify(&logged);
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("TAMPERED"), "{}", out.stdout);
    assert!(out.stdout.contains("seq 17"), "{}", out.stdout);
    assert!(out.stdout.contains("entry-hash-mismatch"), "{}", out.stdout);
    assert!(
        out.stdout.contains("head-mismatch-at-checkpoint"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("last good checkpoint  size 10"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("tampered with"), "{}", out.stderr);
}

#[test]
fn a_missing_data_dir_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let out = run(ensemble()
        .args(["audit", "verify", "--data-dir"])
        .arg(&missing));
    assert_eq!(out.code, Some(2), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("holds no ensemble store"),
        "{}",
        out.stderr
    );
    assert!(!missing.exists(), "verify must not create a data directory");
}

#[tokio::test]
async fn a_data_dir_held_by_a_server_exits_2_and_says_what_to_do() {
    let logged = logged().await;
    let _held = Store::open(&logged.data).unwrap();
    let out = verify(&logged);
    assert_eq!(out.code, Some(2), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("stop the server"), "{}", out.stderr);
    assert!(out.stderr.contains("backup"), "{}", out.stderr);
}

#[tokio::test]
async fn an_unreadable_public_key_exits_2() {
    let logged = logged().await;
    std::fs::write(&logged.public_key, "not a key").unwrap();
    let out = verify(&logged);
    assert_eq!(out.code, Some(2), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("public key"), "{}", out.stderr);
}
