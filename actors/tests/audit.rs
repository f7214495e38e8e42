//! The audit log on a real sled store: durable, ordered appends under concurrency; a chain that
//! continues across a reopen; checkpoints by count, by time and at close; and each kind of
//! tampering (an edited, deleted or moved entry, a recomputed chain, a truncated log, a
//! re-signed checkpoint, a rolled-back log) reported by `verify` where it happened.

use std::path::PathBuf;
use std::time::Duration;

use ensemble_actors::governance::audit::{
    self, AuditEntry, AuditError, AuditFilter, AuditKind, AuditLog, AuditRecord, EntryBytes,
    Problem, VerifyReport,
};
use ensemble_actors::governance::checkpoint::{
    self, Checkpoint, CheckpointConfig, SigningKey, VerifyingKey,
};
use ensemble_actors::governance::wal;
use ensemble_actors::store::{Store, Tree};

/// A data directory, a checkpoint directory and a key file, side by side (never inside).
struct Place {
    _dir: tempfile::TempDir,
    data: PathBuf,
    checkpoints: PathBuf,
    key: PathBuf,
}

impl Place {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            data: dir.path().join("data"),
            checkpoints: dir.path().join("checkpoints"),
            key: dir.path().join("keys/audit.key"),
            _dir: dir,
        }
    }

    fn config(&self, every_entries: u64) -> CheckpointConfig {
        CheckpointConfig {
            dir: Some(self.checkpoints.clone()),
            key_file: Some(self.key.clone()),
            every_entries,
            every: Duration::from_secs(3600),
        }
    }

    fn public_key(&self) -> VerifyingKey {
        checkpoint::read_public_key(&checkpoint::public_key_path(&self.key)).unwrap()
    }

    /// Verifies with the checkpoint directory and the public key.
    fn verify(&self) -> VerifyReport {
        let store = Store::open(&self.data).unwrap();
        audit::verify(&store, Some(&self.checkpoints), &[self.public_key()]).unwrap()
    }

    /// Verifies with what the data directory holds only.
    fn verify_store_only(&self) -> VerifyReport {
        let store = Store::open(&self.data).unwrap();
        audit::verify(&store, None, &[]).unwrap()
    }

    /// Opens the store, lets `change` rewrite the tree `audit` (and others), makes it durable.
    async fn tamper(&self, change: impl FnOnce(&Store, &Tree)) {
        let store = Store::open(&self.data).unwrap();
        let tree = store.tree("audit").unwrap();
        change(&store, &tree);
        store.flush().await.unwrap();
    }

    fn checkpoint_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.checkpoints)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn record(i: u64) -> AuditRecord {
    let mut r = AuditRecord::new(AuditKind::Call, format!("user{i}"), "tools/call");
    r.target = Some("registry_get".into());
    r.args_sha256 = Some(audit::args_digest(&serde_json::json!({ "i": i })));
    r.allowed = Some(true);
    r.outcome = Some("ok".into());
    r.duration_us = Some(120);
    r
}

/// A log of `n` entries appended one by one (so checkpoints land exactly on multiples of
/// `every_entries`), closed cleanly.
async fn filled(n: u64, every_entries: u64) -> Place {
    let place = Place::new();
    let store = Store::open(&place.data).unwrap();
    let log = AuditLog::open(&store, "node-1", place.config(every_entries)).unwrap();
    for i in 0..n {
        assert_eq!(log.append(record(i)).await.unwrap(), i);
    }
    log.close().await.unwrap();
    place
}

fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn entry_bytes(tree: &Tree, seq: u64) -> Vec<u8> {
    tree.get::<EntryBytes>(&key(seq)).unwrap().unwrap().0
}

/// Rewrites entries `from..to` as an attacker with write access would: `edit` changes entry
/// `from`, and every head from there on is recomputed so that the chain verifies.
fn rewrite_chain(tree: &Tree, from: u64, to: u64, edit: impl FnOnce(&mut AuditRecord)) {
    let mut prev = AuditEntry::from_bytes(&entry_bytes(tree, from - 1))
        .unwrap()
        .head;
    let mut edit = Some(edit);
    for seq in from..to {
        let mut entry = AuditEntry::from_bytes(&entry_bytes(tree, seq)).unwrap();
        if let Some(edit) = edit.take() {
            edit(&mut entry.record);
        }
        let sealed = AuditEntry::seal(seq, prev, entry.record).unwrap();
        tree.insert(&key(seq), &EntryBytes(sealed.to_bytes().unwrap()))
            .unwrap();
        prev = sealed.head;
    }
}

fn problems(report: &VerifyReport) -> Vec<String> {
    report
        .problems
        .iter()
        .map(|p| format!("{} {}", p.kind(), p.place()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_durable_ordered_and_chained() {
    let place = Place::new();
    let store = Store::open(&place.data).unwrap();
    let log = AuditLog::open(&store, "node-1", place.config(100)).unwrap();
    let appenders: Vec<_> = (0..8u64)
        .map(|task| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..100u64 {
                    let mut r = AuditRecord::new(AuditKind::Call, format!("task{task}"), "x");
                    r.detail = Some(i.to_string());
                    seqs.push(log.append(r).await.unwrap());
                }
                seqs
            })
        })
        .collect();
    let mut all = Vec::new();
    for (task, appender) in appenders.into_iter().enumerate() {
        let seqs = appender.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "task {task}: {seqs:?}"
        );
        // Each record sits at the sequence number its append answered.
        let filter = AuditFilter {
            identity: Some(format!("task{task}")),
            ..AuditFilter::default()
        };
        let page = log.query(&filter, None, 1000).unwrap();
        let found: Vec<(u64, String)> = page
            .entries
            .into_iter()
            .map(|(seq, r)| (seq, r.detail.unwrap()))
            .collect();
        let expected: Vec<(u64, String)> = seqs
            .iter()
            .enumerate()
            .map(|(i, seq)| (*seq, i.to_string()))
            .collect();
        assert_eq!(found, expected);
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (0..800).collect::<Vec<u64>>());
    assert_eq!(log.len(), 800);
    // Group commit: appenders that queue during a flush share the next one.
    assert!(store.flush_count() < 800, "{} flushes", store.flush_count());

    // Durable without a clean close: a crash here loses none of the 800.
    drop(log);
    drop(store);
    let report = place.verify();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.entries, 800);
}

#[tokio::test]
async fn a_reopened_log_continues_its_chain() {
    let place = filled(5, 100).await;
    let head = {
        let store = Store::open(&place.data).unwrap();
        let log = AuditLog::open(&store, "node-1", place.config(100)).unwrap();
        assert_eq!(log.len(), 5);
        let head = log.head();
        assert_eq!(log.append(record(5)).await.unwrap(), 5);
        assert_ne!(log.head(), head);
        log.close().await.unwrap();
        log.head()
    };
    let store = Store::open(&place.data).unwrap();
    let log = AuditLog::open(&store, "node-1", place.config(100)).unwrap();
    assert_eq!((log.len(), log.head()), (6, head));
    log.close().await.unwrap();
    drop((log, store));
    let report = place.verify();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.entries, 6);
    // A checkpoint at each clean close.
    assert_eq!(report.last_good_checkpoint, Some(6));
    assert_eq!(
        place.checkpoint_files(),
        ["00000000000000000005", "00000000000000000006"]
    );
}

#[tokio::test]
async fn checkpoints_come_every_n_entries_and_at_close_signed_by_the_key() {
    let place = Place::new();
    let store = Store::open(&place.data).unwrap();
    let log = AuditLog::open(&store, "node-1", place.config(10)).unwrap();
    for i in 0..25 {
        log.append(record(i)).await.unwrap();
    }
    assert_eq!(log.last_checkpoint(), Some(20));
    log.close().await.unwrap();
    assert_eq!(log.last_checkpoint(), Some(25));
    assert_eq!(
        place.checkpoint_files(),
        [
            "00000000000000000010",
            "00000000000000000020",
            "00000000000000000025"
        ]
    );
    let note = std::fs::read_to_string(place.checkpoints.join("00000000000000000025")).unwrap();
    let checkpoint = Checkpoint::parse(&note).unwrap();
    assert_eq!(checkpoint.origin, "ensemble-audit/node-1");
    assert_eq!((checkpoint.size, checkpoint.head), (25, log.head()));
    assert!(checkpoint.verify(&place.public_key()));
    assert!(matches!(
        log.append(record(25)).await,
        Err(AuditError::Closed)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_checkpoint_follows_the_interval_when_entries_came() {
    let place = Place::new();
    let store = Store::open(&place.data).unwrap();
    let config = CheckpointConfig {
        every_entries: 0,
        every: Duration::from_secs(60),
        ..place.config(0)
    };
    let log = AuditLog::open(&store, "node-1", config).unwrap();
    let opened = tokio::time::Instant::now();
    for i in 0..3 {
        log.append(record(i)).await.unwrap();
    }
    assert_eq!(log.last_checkpoint(), None);
    // Paused time moves on to the writer's deadline as soon as everything waits.
    log.wait_for_checkpoint(3).await.unwrap();
    assert!(opened.elapsed() >= Duration::from_secs(60));
    assert_eq!(place.checkpoint_files(), ["00000000000000000003"]);
    // Nothing appended since: no further checkpoint, at close either.
    log.close().await.unwrap();
    assert_eq!(place.checkpoint_files(), ["00000000000000000003"]);
}

#[tokio::test]
async fn an_edited_entry_is_reported_at_its_seq() {
    let place = filled(30, 10).await;
    place
        .tamper(|_, tree| {
            let mut bytes = entry_bytes(tree, 17);
            let at = bytes
                .windows(6)
                .position(|w| w == b"user17")
                .expect("the identity is in the entry");
            bytes[at + 4] = b'9'; // user17 -> user97
            tree.insert(&key(17), &EntryBytes(bytes)).unwrap();
        })
        .await;
    let report = place.verify();
    assert_eq!(report.problems[0], Problem::EntryHashMismatch { seq: 17 });
    assert_eq!(
        report.find(&Problem::HeadMismatchAtCheckpoint { size: 0 }),
        Some(&Problem::HeadMismatchAtCheckpoint { size: 20 })
    );
    assert_eq!(report.last_good_checkpoint, Some(10));
    // The chain alone sees it too.
    assert_eq!(
        place.verify_store_only().problems[0],
        Problem::EntryHashMismatch { seq: 17 }
    );
}

#[tokio::test]
async fn an_edit_hidden_by_recomputing_the_chain_is_caught_at_the_next_checkpoint() {
    let place = filled(30, 10).await;
    place
        .tamper(|store, tree| {
            rewrite_chain(tree, 17, 30, |r| r.outcome = Some("denied".into()));
            // The attacker also rewrites what the data directory holds of checkpoints.
            let checkpoints = store.tree("audit_checkpoints").unwrap();
            for size in [20u64, 30] {
                checkpoints.remove(&key(size)).unwrap();
            }
        })
        .await;
    let report = place.verify();
    assert_eq!(
        problems(&report),
        ["head-mismatch-at-checkpoint size 20"],
        "{report:?}"
    );
    assert_eq!(report.last_good_checkpoint, Some(10));
    // What the data directory alone holds cannot show it: that is what the outside copy is for.
    assert!(place.verify_store_only().is_intact());
}

#[tokio::test]
async fn a_deleted_entry_is_a_gap() {
    let place = filled(30, 10).await;
    place
        .tamper(|_, tree| {
            tree.remove(&key(12)).unwrap();
        })
        .await;
    let report = place.verify();
    assert_eq!(report.problems[0], Problem::Gap { seq: 12 });
    assert_eq!(report.find(&Problem::OutOfOrder { seq: 0 }), None);
    assert_eq!(report.find(&Problem::EntryHashMismatch { seq: 0 }), None);
    assert_eq!(report.entries, 29);
}

#[tokio::test]
async fn swapped_entries_are_reported_out_of_order() {
    let place = filled(30, 10).await;
    place
        .tamper(|_, tree| {
            let (five, nine) = (entry_bytes(tree, 5), entry_bytes(tree, 9));
            tree.insert(&key(5), &EntryBytes(nine)).unwrap();
            tree.insert(&key(9), &EntryBytes(five)).unwrap();
        })
        .await;
    let report = place.verify();
    assert_eq!(report.problems[0], Problem::OutOfOrder { seq: 5 });
    // Each entry is intact in itself: only the order is wrong.
    assert_eq!(report.find(&Problem::EntryHashMismatch { seq: 0 }), None);
}

#[tokio::test]
async fn a_record_the_store_cannot_decode_is_reported_at_its_seq() {
    let place = filled(12, 100).await;
    place
        .tamper(|_, tree| {
            tree.insert_raw(&key(7), &[1, 0xff, 0xff, 0xff]).unwrap();
        })
        .await;
    let report = place.verify();
    assert!(
        matches!(report.problems[0], Problem::Unreadable { seq: 7, .. }),
        "{report:?}"
    );
    assert_eq!(report.find(&Problem::Gap { seq: 0 }), None);
    assert_eq!(report.entries, 12);
}

#[tokio::test]
async fn deleting_the_newest_entries_after_a_checkpoint_is_truncation() {
    let place = filled(30, 10).await;
    place
        .tamper(|store, tree| {
            for seq in 20..30 {
                tree.remove(&key(seq)).unwrap();
            }
            let checkpoints = store.tree("audit_checkpoints").unwrap();
            checkpoints.remove(&key(30)).unwrap();
        })
        .await;
    let report = place.verify();
    assert_eq!(
        report.problems,
        [Problem::Truncated {
            checkpoint_size: 30,
            log_size: 20
        }]
    );
    assert_eq!(report.last_good_checkpoint, Some(20));
    // With the store's checkpoints gone too, only the outside copy shows it.
    assert!(place.verify_store_only().is_intact());
}

#[tokio::test]
async fn a_re_signed_checkpoint_is_a_bad_signature() {
    let place = filled(30, 10).await;
    let path = place.checkpoints.join(checkpoint::file_name(30));
    let mut forged = Checkpoint::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    forged.head = [0; 32];
    forged.signatures.clear();
    forged.sign(&SigningKey::from_bytes(&[66; 32]));
    std::fs::write(&path, forged.to_note()).unwrap();

    let report = place.verify();
    assert!(
        matches!(&report.problems[0], Problem::BadSignature { size: 30, source } if source.contains("00000000000000000030")),
        "{report:?}"
    );
    // The forged head is not trusted, so it is neither a fork nor a mismatch.
    assert_eq!(report.problems.len(), 1, "{report:?}");
    // Without the public key the forgery is taken at its word.
    let store = Store::open(&place.data).unwrap();
    let unchecked = audit::verify(&store, Some(&place.checkpoints), &[]).unwrap();
    assert!(!unchecked.signatures_checked);
    assert!(unchecked.find(&Problem::Fork { size: 0 }).is_some());
}

#[tokio::test]
async fn a_log_rolled_back_that_grows_again_is_a_fork() {
    let place = filled(10, 10).await;
    place
        .tamper(|_, tree| {
            for seq in 5..10 {
                tree.remove(&key(seq)).unwrap();
            }
        })
        .await;
    // Whoever rolls the log back empties its write-ahead file too (else it puts them back).
    std::fs::write(place.data.join(wal::FILE_NAME), b"").unwrap();
    {
        let store = Store::open(&place.data).unwrap();
        let log = AuditLog::open(&store, "node-1", place.config(10)).unwrap();
        assert_eq!(log.len(), 5);
        for i in 5..10 {
            assert_eq!(log.append(record(100 + i)).await.unwrap(), i);
        }
        log.close().await.unwrap();
    }
    // The first checkpoint of size 10 is kept; the new one goes beside it.
    assert!(
        place
            .checkpoint_files()
            .contains(&"00000000000000000010.1".to_string())
    );
    let report = place.verify();
    assert_eq!(report.problems[0], Problem::Fork { size: 10 }, "{report:?}");
    assert!(
        report
            .find(&Problem::HeadMismatchAtCheckpoint { size: 0 })
            .is_some()
    );
}

#[tokio::test]
async fn a_failed_flush_fails_every_waiting_append_and_every_later_one() {
    let place = Place::new();
    let store = Store::open(&place.data).unwrap();
    let log = AuditLog::open(&store, "node-1", place.config(100)).unwrap();
    assert_eq!(log.append(record(0)).await.unwrap(), 0);
    log.fail_next_flush();
    let waiting: Vec<_> = (1..5)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(record(i)).await })
        })
        .collect();
    for append in waiting {
        let err = append.await.unwrap().unwrap_err();
        assert!(matches!(err, AuditError::WriteFailed { .. }), "{err}");
        assert!(err.to_string().contains("no space left"), "{err}");
        assert!(err.to_string().contains("must not proceed"), "{err}");
    }
    assert!(matches!(
        log.append(record(9)).await,
        Err(AuditError::WriteFailed { .. })
    ));
    assert_eq!(log.len(), 1);
    assert!(log.close().await.is_err());
    drop((log, store));
    // What was acknowledged is there and intact.
    let report = place.verify_store_only();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert!(report.entries >= 1);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_full_disk_fails_the_append_with_a_clear_error() {
    let place = Place::new();
    drop(Store::open(&place.data).unwrap());
    // sled's log file now on a device that is always full.
    std::fs::remove_file(place.data.join("db")).unwrap();
    std::os::unix::fs::symlink("/dev/full", place.data.join("db")).unwrap();
    // And the audit log's write-ahead file: a full disk is full for every file on it.
    std::os::unix::fs::symlink("/dev/full", place.data.join(wal::FILE_NAME)).unwrap();
    // sled reports the full disk at its first write, which opening the store or its
    // background flusher may make before the log's first entry: then opening the store or the
    // log fails instead of the append, with the same clear error.
    let store = match Store::open(&place.data) {
        Ok(store) => store,
        Err(err) => {
            let text = err.to_string();
            assert!(text.contains("No space left on device"), "{text}");
            return;
        }
    };
    let text = match AuditLog::open(&store, "node-1", CheckpointConfig::default()) {
        Err(err) => err.to_string(),
        Ok(log) => {
            let err = log.append(record(0)).await.unwrap_err();
            assert!(matches!(err, AuditError::WriteFailed { .. }), "{err}");
            assert_eq!(log.len(), 0);
            err.to_string()
        }
    };
    assert!(text.contains("No space left on device"), "{text}");
    assert!(text.contains(&place.data.display().to_string()), "{text}");
}

#[tokio::test]
async fn query_filters_and_pages_oldest_first() {
    let store = Store::temporary().unwrap();
    let log = AuditLog::open(&store, "node-1", CheckpointConfig::default()).unwrap();
    let records = (0..30u64).map(|i| {
        let mut r = record(i);
        r.identity = if i % 2 == 0 { "alice" } else { "bob" }.into();
        r.ts_unix_ms = 1_000 + i;
        r
    });
    assert_eq!(log.append_many(records).await.unwrap(), 0..30);
    let alice = AuditFilter {
        identity: Some("alice".into()),
        ..AuditFilter::default()
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = log.query(&alice, after, 4).unwrap();
        assert!(page.entries.len() <= 4);
        seen.extend(page.entries.iter().map(|(seq, _)| *seq));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, (0..30).step_by(2).collect::<Vec<u64>>());
    let window = AuditFilter {
        since_ms: Some(1_010),
        until_ms: Some(1_013),
        ..AuditFilter::default()
    };
    let page = log.query(&window, None, 100).unwrap();
    let seqs: Vec<u64> = page.entries.iter().map(|(s, _)| *s).collect();
    assert_eq!((seqs, page.next), (vec![10, 11, 12], None));
    let json = serde_json::to_value(&page.entries[0].1).unwrap();
    assert_eq!(json["kind"], "call");
    assert_eq!(json["args_sha256"].as_str().map(str::len), Some(64));
}

#[tokio::test]
async fn a_log_belongs_to_its_node_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let log = AuditLog::open(&store, "node-a", CheckpointConfig::default()).unwrap();
    log.append(record(0)).await.unwrap();
    log.close().await.unwrap();
    let err = AuditLog::open(&store, "node-b", CheckpointConfig::default()).unwrap_err();
    assert!(matches!(err, AuditError::NodeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("node-a"), "{err}");
}

#[test]
fn opening_outside_a_runtime_is_an_error() {
    let store = Store::temporary().unwrap();
    let err = AuditLog::open(&store, "n", CheckpointConfig::default()).unwrap_err();
    assert!(matches!(err, AuditError::NoRuntime));
}

/// Appends `n` entries and closes the log: answers the head and the write-ahead file's bytes.
/// (The tests then take entries out of the store, as a crash before the store's own flush
/// would.)
async fn crashed_after(place: &Place, n: u64) -> ([u8; 32], Vec<u8>) {
    let store = Store::open(&place.data).unwrap();
    let log = AuditLog::open(&store, "node-1", CheckpointConfig::default()).unwrap();
    for i in 0..n {
        assert_eq!(log.append(record(i)).await.unwrap(), i);
    }
    let head = log.head();
    log.close().await.unwrap();
    let bytes = std::fs::read(place.data.join(wal::FILE_NAME)).unwrap();
    assert!(
        !bytes.is_empty(),
        "acknowledged entries are in the write-ahead file"
    );
    (head, bytes)
}

#[tokio::test]
async fn acknowledged_entries_the_store_lost_come_back_from_the_write_ahead_file() {
    let place = Place::new();
    let (head, mut wal_bytes) = crashed_after(&place, 10).await;
    // The store lost its newest entries (its own flush had not reached them), and the last
    // write to the file was cut short by the crash.
    place
        .tamper(|_, tree| {
            for seq in 6..10 {
                tree.remove(&key(seq)).unwrap();
            }
        })
        .await;
    wal_bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(place.data.join(wal::FILE_NAME), &wal_bytes).unwrap();

    // What `ensemble audit verify` does first.
    {
        let store = Store::open(&place.data).unwrap();
        assert_eq!(audit::recover(&store).unwrap(), 10);
    }
    let report = place.verify_store_only();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.entries, 10);

    // Opening the log puts them back the same way, and the chain goes on from the same head.
    place
        .tamper(|_, tree| {
            tree.remove(&key(9)).unwrap();
        })
        .await;
    std::fs::write(place.data.join(wal::FILE_NAME), &wal_bytes).unwrap();
    let store = Store::open(&place.data).unwrap();
    let log = AuditLog::open(&store, "node-1", CheckpointConfig::default()).unwrap();
    assert_eq!((log.len(), log.head()), (10, head));
    // The file starts clean (no torn frame in front of the next ones).
    assert_eq!(
        std::fs::metadata(place.data.join(wal::FILE_NAME))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(log.append(record(10)).await.unwrap(), 10);
    let (frames, rest) = wal::read(&place.data.join(wal::FILE_NAME)).unwrap();
    assert_eq!((frames.len(), rest), (1, 0));
    log.close().await.unwrap();
    drop((log, store));
    let report = place.verify_store_only();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.entries, 11);
}

#[tokio::test]
async fn a_write_ahead_file_that_does_not_continue_the_log_stops_the_open() {
    let place = Place::new();
    let (_, wal_bytes) = crashed_after(&place, 10).await;
    // The store lost entries 3.. and the file holds only 6..: 3, 4 and 5 are gone.
    place
        .tamper(|_, tree| {
            for seq in 3..10 {
                tree.remove(&key(seq)).unwrap();
            }
        })
        .await;
    let path = place.data.join(wal::FILE_NAME);
    std::fs::write(&path, &wal_bytes).unwrap();
    let (frames, _) = wal::read(&path).unwrap();
    let mut later = Vec::new();
    for frame in &frames[6..] {
        wal::frame(&mut later, frame);
    }
    std::fs::write(&path, &later).unwrap();

    let store = Store::open(&place.data).unwrap();
    let err = AuditLog::open(&store, "node-1", CheckpointConfig::default()).unwrap_err();
    assert!(
        matches!(
            err,
            AuditError::WalGap {
                expected: 3,
                found: 6,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("audit.wal") && text.contains("move the file aside"),
        "{text}"
    );
    // Nothing was changed: the file is still there for whoever looks into it.
    assert_eq!(std::fs::read(&path).unwrap(), later);
}
