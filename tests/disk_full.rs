//! A full disk, for real: the data directory on a small tmpfs, filled up while the server runs.
//! Writes fail with a clear error naming the data directory, reads keep working, nothing stored
//! before is damaged, and once space returns writes succeed again without a restart; after a
//! kill -9 and a restart everything acknowledged is there.
//!
//! Mounting needs root. Without it the test says so and checks nothing (set
//! `CI_REQUIRE_TMPFS=1` to make that a failure instead).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, object};
use serde_json::{Value, json};

/// A tmpfs of `size` mounted at `at`; unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Self, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if out.status.success() {
            Ok(Self(at.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn call(c: &common::Client, tool: &str, args: Value) -> Result<Value, String> {
    let r = c
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(object(args)))
        .await
        .map_err(|e| e.to_string())?;
    if r.is_error == Some(true) {
        return Err(r
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join(" "));
    }
    r.structured_content
        .ok_or_else(|| "no structured result".into())
}

fn put_args(name: &str, i: u64) -> Value {
    json!({"name": name, "version": format!("1.0.{i}"),
           "content": {"i": i, "pad": "p".repeat(4096)}})
}

async fn readable(c: &common::Client, name: &str, n: u64) {
    for i in 0..n {
        let got = call(
            c,
            "registry_get",
            json!({"name": name, "version": format!("1.0.{i}")}),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}@1.0.{i} unreadable: {e}"));
        assert_eq!(got["content"]["i"], i, "{name}@1.0.{i}: {got}");
    }
}

/// Fills the file system holding `dir` with one file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("create the filler");
    let block = vec![0u8; 1 << 16];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_clearly_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mount point");
    let _fs = match Tmpfs::mount(&mnt, "48m") {
        Ok(fs) => fs,
        Err(why) => {
            assert!(
                std::env::var_os("CI_REQUIRE_TMPFS").is_none(),
                "CI_REQUIRE_TMPFS is set but a tmpfs cannot be mounted: {why}"
            );
            eprintln!("SKIPPED: a full disk needs a tmpfs, and mounting one failed ({why})");
            return;
        }
    };
    let server = common::serve_http(&mnt, "", &[]);
    let data = mnt.join("data");
    let c = common::connect(&server.url).await;
    for i in 0..20 {
        call(&c, "registry_put", put_args("before", i))
            .await
            .expect("a put with room to spare");
    }

    let filler = fill(&mnt);
    // Writes fail, each with an error that names the data directory and the cause.
    let mut refused = None;
    let mut acked_full = 0;
    for i in 0..200 {
        match call(&c, "registry_put", put_args("during", i)).await {
            Ok(_) => acked_full += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("a write on a full disk is refused");
    eprintln!("refused on a full disk: {refused}");
    assert!(
        refused.contains(&data.display().to_string()),
        "the error names the data directory: {refused}"
    );
    assert!(
        refused.to_lowercase().contains("no space"),
        "the error says the disk is full: {refused}"
    );
    // Reads keep working, and what was stored before is intact.
    readable(&c, "before", 20).await;
    readable(&c, "during", acked_full).await;
    let listed = call(&c, "registry_list", json!({})).await.expect("list");
    assert!(listed.to_string().contains("before"), "{listed}");

    // Space returns: writes succeed again, without a restart.
    std::fs::remove_file(&filler).expect("remove the filler");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = 0;
    while after < 10 {
        match call(&c, "registry_put", put_args("after", after)).await {
            Ok(_) => after += 1,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "writes did not recover once space returned: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    readable(&c, "before", 20).await;

    // A kill -9 and a restart: everything acknowledged is there.
    drop(c);
    drop(server);
    let server = common::serve_http(&mnt, "", &[]);
    let c = common::connect(&server.url).await;
    readable(&c, "before", 20).await;
    readable(&c, "during", acked_full).await;
    readable(&c, "after", after).await;
}
