//! The sled store: one database per runtime, one tree per engine, values through the codec.
//!
//! Writes are not durable until [`Store::flush`] returns; a mutating tool call answers success
//! only after it. Concurrent flushes share one disk flush (group commit): a caller's flush is
//! satisfied by any flush that started after its write.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use ensemble_actors::store::Store;
//!
//! let store = Store::temporary().unwrap();
//! let tree = store.tree("registry").unwrap();
//! tree.insert(b"greeting", &"hello".to_string()).unwrap();
//! store.flush().await.unwrap();
//! assert_eq!(tree.get::<String>(b"greeting").unwrap().as_deref(), Some("hello"));
//! # });
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use ensemble_protocol::codec::{self, CodecError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// What went wrong with the store. Every variant names the data directory or the record.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data directory.
    #[error(
        "the data directory {path} is in use by another ensemble process; stop it, or pass \
         another --data-dir"
    )]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// The database could not be opened.
    #[error("could not open the store at {path}: {source}")]
    Open {
        /// The data directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// The database files are damaged.
    #[error(
        "the store at {path} is corrupt ({detail}); restore it from a backup or move it aside \
         and start with an empty --data-dir"
    )]
    Corrupt {
        /// The data directory.
        path: PathBuf,
        /// What sled reported.
        detail: String,
    },
    /// A read or write failed (a full disk, an I/O error).
    #[error("store I/O at {path} failed: {}", io_detail(source))]
    Io {
        /// The data directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// A backup could not be taken (the target is unusable, or copying failed).
    #[error("backup to {target}: {reason}")]
    Backup {
        /// The backup's target directory.
        target: PathBuf,
        /// What went wrong and what to do about it.
        reason: String,
    },
    /// A stored value could not be decoded, or a value could not be encoded.
    #[error("record `{key}` in `{tree}`: {source}")]
    Codec {
        /// The tree.
        tree: String,
        /// The key, printable.
        key: String,
        /// The codec's error.
        source: CodecError,
    },
}

/// sled's error in words, with what to do about a full disk.
fn io_detail(e: &sled::Error) -> String {
    match e {
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
            "No space left on device: free space there, and writes resume by themselves (what \
             was stored before is intact and still readable)"
                .to_string()
        }
        sled::Error::Io(io) => io.to_string(),
        sled::Error::Unsupported(why) => why.clone(),
        e => e.to_string(),
    }
}

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's page cache, in bytes: at most this much of the store is kept in memory (filled
    /// as pages are read or written, never allocated up front). A smaller cache keeps the
    /// process smaller at the cost of more disk reads.
    pub cache_capacity_bytes: u64,
}

/// The default page cache: 64 MiB. The engines' working sets (artifacts, schemas, templates,
/// queued tasks, run journals) are small; sled's own default, 1 GiB, would let a long-running
/// server grow to hold its whole store. Raise `store.cache_capacity_bytes` for a store that is
/// read much more than it fits.
pub const DEFAULT_CACHE_CAPACITY_BYTES: u64 = 64 << 20;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_capacity_bytes: DEFAULT_CACHE_CAPACITY_BYTES,
        }
    }
}

impl StoreOptions {
    fn sled(&self) -> sled::Config {
        sled::Config::new().cache_capacity(self.cache_capacity_bytes)
    }
}

/// One sled database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` only while the store is reopened (see [`Store::recover`]).
    db: RwLock<Option<sled::Db>>,
    /// Every tree handed out, by name: a reopen puts the new database's tree in each.
    trees: Mutex<HashMap<String, TreeCell>>,
    path: PathBuf,
    options: StoreOptions,
    temporary: bool,
    /// A write or flush failed with an I/O error. sled refuses every write after one (a full
    /// disk, say) until the database is opened again: the next write reopens it, once there
    /// is room on the disk (see [`Store::recover`]).
    failed: AtomicBool,
    /// When a reopen was last tried.
    last_recovery: Mutex<Option<std::time::Instant>>,
    /// Flush tickets handed out (one per `flush` call).
    requested: AtomicU64,
    /// The highest ticket a completed flush covers.
    done: watch::Sender<u64>,
    flushing: tokio::sync::Mutex<()>,
    flushes: AtomicU64,
    /// Writes hold it shared; a backup holds it exclusively, so that its copy of every tree is
    /// one point in time (no write lands in one tree of the copy and not in another).
    gate: RwLock<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (or creates) the store in `path`.
    ///
    /// A directory still locked is retried for up to [`LOCK_WAIT`]: after the last handle on a
    /// store in this process is dropped, sled's background threads can hold the file lock a
    /// moment longer, and reopening at once (a host restarting its runtime, a test) would
    /// otherwise be refused. Another live process keeps it locked, and is reported as such.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, &StoreOptions::default())
    }

    /// Opens (or creates) the store in `path` with these options (see [`Store::open`]).
    pub fn open_with(path: impl AsRef<Path>, options: &StoreOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let started = std::time::Instant::now();
        loop {
            match options.sled().path(&path).open() {
                Ok(db) => return Ok(Self::with_db(db, path, options, false)),
                Err(e) => match open_error(&path, e) {
                    StoreError::Locked { .. } if started.elapsed() < LOCK_WAIT => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    e => return Err(e),
                },
            }
        }
    }

    /// A store in a temporary directory, removed when the last clone is dropped (for tests and
    /// `--in-memory` runs).
    pub fn temporary() -> Result<Self, StoreError> {
        Self::temporary_with(&StoreOptions::default())
    }

    /// A temporary store with these options (see [`Store::temporary`]).
    pub fn temporary_with(options: &StoreOptions) -> Result<Self, StoreError> {
        let path = PathBuf::from("<temporary>");
        let db = options
            .sled()
            .temporary(true)
            .open()
            .map_err(|e| open_error(&path, e))?;
        Ok(Self::with_db(db, path, options, true))
    }

    fn with_db(db: sled::Db, path: PathBuf, options: &StoreOptions, temporary: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                db: RwLock::new(Some(db)),
                trees: Mutex::new(HashMap::new()),
                path,
                options: *options,
                temporary,
                failed: AtomicBool::new(false),
                last_recovery: Mutex::new(None),
                requested: AtomicU64::new(0),
                done: watch::Sender::new(0),
                flushing: tokio::sync::Mutex::new(()),
                flushes: AtomicU64::new(0),
                gate: RwLock::new(()),
            }),
        }
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The tree called `name` (created if absent).
    pub fn tree(&self, name: &str) -> Result<Tree, StoreError> {
        self.recover();
        let mut trees = self.inner.trees.lock().unwrap_or_else(|p| p.into_inner());
        let cell = match trees.get(name) {
            Some(cell) => cell.clone(),
            None => {
                let tree = self.db()?.open_tree(name).map_err(|e| self.io(e))?;
                let cell: TreeCell = Arc::new(RwLock::new(Some(tree)));
                trees.insert(name.to_string(), cell.clone());
                cell
            }
        };
        Ok(Tree {
            cell,
            name: name.into(),
            store: self.clone(),
        })
    }

    /// The database, unless it is being reopened.
    fn db(&self) -> Result<sled::Db, StoreError> {
        self.inner
            .db
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| self.reopening())
    }

    fn reopening(&self) -> StoreError {
        StoreError::Io {
            path: self.inner.path.clone(),
            source: sled::Error::Unsupported(REOPENING.to_string()),
        }
    }

    /// After a failed write, opens the database again so that writes work once the cause is
    /// gone: sled keeps refusing every write after an I/O error (a full disk) for as long as
    /// the database stays open. Tried before a write at most once a second, only when the
    /// disk has room again and no flush is running; writes wait meanwhile, and a read in that
    /// moment is told to retry. What the reopened store holds is what reached the disk: every
    /// acknowledged write (each was flushed), none that failed.
    fn recover(&self) {
        let inner = &*self.inner;
        if !inner.failed.load(Ordering::Acquire) || inner.temporary {
            return;
        }
        {
            let mut last = inner
                .last_recovery
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < RECOVERY_INTERVAL) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        if !has_room(&inner.path) {
            return;
        }
        // A flush holds the database; try again at the next write.
        let Ok(_no_flush) = inner.flushing.try_lock() else {
            return;
        };
        let _no_writes = inner.gate.write().unwrap_or_else(|p| p.into_inner());
        let mut db = inner.db.write().unwrap_or_else(|p| p.into_inner());
        let trees = inner.trees.lock().unwrap_or_else(|p| p.into_inner());
        if !inner.failed.load(Ordering::Acquire) {
            return;
        }
        // sled's file lock goes with the last handle on the old database.
        for cell in trees.values() {
            *cell.write().unwrap_or_else(|p| p.into_inner()) = None;
        }
        *db = None;
        let started = std::time::Instant::now();
        let reopened = loop {
            match inner.options.sled().path(&inner.path).open() {
                Ok(new) => break Ok(new),
                Err(e) => match open_error(&inner.path, e) {
                    StoreError::Locked { .. } if started.elapsed() < LOCK_WAIT => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    e => break Err(e),
                },
            }
        };
        let new = match reopened {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(path = %inner.path.display(), "reopening the store failed: {e}");
                return;
            }
        };
        for (name, cell) in trees.iter() {
            match new.open_tree(name) {
                Ok(t) => *cell.write().unwrap_or_else(|p| p.into_inner()) = Some(t),
                Err(e) => {
                    tracing::error!(tree = %name, "reopening a tree failed: {e}");
                }
            }
        }
        *db = Some(new);
        inner.failed.store(false, Ordering::Release);
        tracing::warn!(
            path = %inner.path.display(),
            "the store was reopened after a failed write; writes are accepted again"
        );
    }

    /// The database's size on disk in bytes (`None` for a temporary store, or when sled cannot
    /// tell).
    pub fn size_on_disk(&self) -> Option<u64> {
        if self.inner.path.as_os_str() == "<temporary>" {
            return None;
        }
        self.db().ok()?.size_on_disk().ok()
    }

    /// Disk flushes done so far (for benchmarks and metrics).
    pub fn flush_count(&self) -> u64 {
        self.inner.flushes.load(Ordering::Relaxed)
    }

    /// Makes every write that happened before this call durable. Concurrent callers share
    /// flushes: a flush that starts after a caller's ticket covers it.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.recover();
        let inner = &*self.inner;
        let ticket = inner.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let mut done = inner.done.subscribe();
        loop {
            if *done.borrow_and_update() >= ticket {
                return Ok(());
            }
            if let Ok(leader) = inner.flushing.try_lock() {
                if *inner.done.borrow() >= ticket {
                    // Release first, then wake: a waiter that failed to take the lock while we
                    // held it sleeps until the next change (a lost wake-up otherwise).
                    drop(leader);
                    inner.done.send_modify(|_| {});
                    return Ok(());
                }
                // Every ticket up to here was taken after its write: one flush covers them all.
                let target = inner.requested.load(Ordering::Acquire);
                let db = match self.db() {
                    Ok(db) => db,
                    Err(e) => {
                        drop(leader);
                        inner.done.send_modify(|_| {});
                        return Err(e);
                    }
                };
                let flushed = tokio::task::spawn_blocking(move || db.flush()).await;
                inner.flushes.fetch_add(1, Ordering::Relaxed);
                let result = match flushed {
                    Ok(Ok(_)) => {
                        inner.done.send_modify(|d| *d = (*d).max(target));
                        Ok(())
                    }
                    Ok(Err(e)) => Err(self.io(e)),
                    Err(join) => Err(self.io(sled::Error::ReportableBug(format!(
                        "the flush task failed: {join}"
                    )))),
                };
                // Wake the waiters either way (on failure each tries a flush of its own), after
                // the lock is released: a waiter woken while we still hold it would find it taken
                // and sleep until a change that may never come.
                drop(leader);
                inner.done.send_modify(|_| {});
                return result;
            }
            if done.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// Makes every write that happened before this call durable, blocking the calling thread
    /// (for code that cannot await, such as opening an engine's state).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.recover();
        self.inner.flushes.fetch_add(1, Ordering::Relaxed);
        self.db()?.flush().map(|_| ()).map_err(|e| self.io(e))
    }

    /// Copies the whole store into `target`, a new or empty directory, as one point in time:
    /// writes wait while the trees are copied (reads go on). `target` is then a data directory
    /// of its own: `ensemble serve --data-dir TARGET` restores it.
    ///
    /// Files that other engines keep beside sled's in the data directory are copied after the
    /// trees. The copy is verified (every tree's checksum) before this returns. It blocks the
    /// calling thread for as long as the copy takes: call it from `spawn_blocking` in async code.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use ensemble_actors::store::Store;
    ///
    /// let store = Store::temporary().unwrap();
    /// store.tree("registry").unwrap().insert(b"k", &1u32).unwrap();
    /// let target = tempfile::tempdir().unwrap();
    /// let report = store.backup_to(&target.path().join("copy")).unwrap();
    /// assert_eq!(report.records, 1);
    /// # });
    /// ```
    pub fn backup_to(&self, target: &Path) -> Result<BackupReport, StoreError> {
        let started = std::time::Instant::now();
        let created = prepare_backup_target(target, self.source_dir())
            .map_err(|reason| backup_error(target, reason))?;
        match self.copy_into(target) {
            Ok(mut report) => {
                report.elapsed = started.elapsed();
                Ok(report)
            }
            Err(e) => {
                // Leave the target as it was found (absent, or empty) so that a retry, once the
                // cause is fixed (a full disk, say), may use it again.
                let _ = std::fs::remove_dir_all(target);
                if !created {
                    let _ = std::fs::create_dir(target);
                }
                Err(e)
            }
        }
    }

    /// The copy itself, into a new or empty `target` (see [`Store::backup_to`]).
    fn copy_into(&self, target: &Path) -> Result<BackupReport, StoreError> {
        let fail = |reason: String| backup_error(target, reason);
        let copy = sled::Config::new()
            .path(target)
            .cache_capacity(BACKUP_CACHE_BYTES)
            .open()
            .map_err(|e| fail(format!("could not create a store there: {e}")))?;
        let mut report = BackupReport {
            target: target.to_path_buf(),
            ..BackupReport::default()
        };
        {
            let _writes_wait = self.inner.gate.write().unwrap_or_else(|p| p.into_inner());
            let db = self.db()?;
            for name in db.tree_names() {
                let from = db.open_tree(&name).map_err(|e| self.io(e))?;
                let to = copy
                    .open_tree(&name)
                    .map_err(|e| fail(format!("writing the copy: {e}")))?;
                for record in from.iter() {
                    let (k, v) = record.map_err(|e| self.io(e))?;
                    report.bytes += (k.len() + v.len()) as u64;
                    report.records += 1;
                    to.insert(k, v)
                        .map_err(|e| fail(format!("writing the copy: {e}")))?;
                }
                report.trees += 1;
            }
            copy.flush()
                .map_err(|e| fail(format!("flushing the copy: {e}")))?;
            let expected = db.checksum().map_err(|e| self.io(e))?;
            let got = copy
                .checksum()
                .map_err(|e| fail(format!("reading the copy back: {e}")))?;
            if expected != got {
                return Err(fail(format!(
                    "the copy does not read back as the original (checksum {got:08x}, expected \
                     {expected:08x}); the target's disk may be failing"
                )));
            }
        }
        drop(copy);
        if let Some(source) = self.source_dir() {
            report.files = copy_other_files(source, target)
                .map_err(|e| fail(format!("copying the files beside the store: {e}")))?;
        }
        Ok(report)
    }

    /// The data directory on disk, if this store has one (a temporary store's is hidden).
    pub(crate) fn source_dir(&self) -> Option<&Path> {
        let path = &self.inner.path;
        (path.as_os_str() != "<temporary>").then_some(path.as_path())
    }

    /// Held by every write: a backup waits for the writes in progress and holds new ones back.
    fn write_permit(&self) -> RwLockReadGuard<'_, ()> {
        self.inner.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    fn io(&self, e: sled::Error) -> StoreError {
        if matches!(e, sled::Error::Io(_)) {
            self.inner.failed.store(true, Ordering::Release);
        }
        match e {
            sled::Error::Corruption { .. } => StoreError::Corrupt {
                path: self.inner.path.clone(),
                detail: e.to_string(),
            },
            e => StoreError::Io {
                path: self.inner.path.clone(),
                source: e,
            },
        }
    }
}

fn open_error(path: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") =>
        {
            StoreError::Locked {
                path: path.to_path_buf(),
            }
        }
        sled::Error::Corruption { .. } => StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        e => StoreError::Open {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// What [`Store::backup_to`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// The directory the copy is in.
    pub target: PathBuf,
    /// Trees copied (sled's default tree included).
    pub trees: u64,
    /// Records copied.
    pub records: u64,
    /// Bytes of keys and values copied.
    pub bytes: u64,
    /// Files copied from beside the store (other engines' own files).
    pub files: u64,
    /// How long the backup took.
    pub elapsed: Duration,
}

/// The page cache of a backup's copy: it is written once, never read back through the cache.
const BACKUP_CACHE_BYTES: u64 = 4 << 20;

/// What sled keeps in a data directory, and the audit log's write-ahead file; everything else
/// there belongs to other engines.
fn is_sled_file(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    // The audit log's write-ahead file holds only entries the trees already have: a copy of
    // the trees is the log as of the copy.
    matches!(
        name.as_ref(),
        "conf" | "db" | "blobs" | crate::governance::wal::FILE_NAME
    ) || name.starts_with("snap.")
}

fn backup_error(target: &Path, reason: String) -> StoreError {
    StoreError::Backup {
        target: target.to_path_buf(),
        reason,
    }
}

/// `target` must be new or an empty directory, and not inside the data directory. Creates it
/// when absent; true when it did.
fn prepare_backup_target(target: &Path, source: Option<&Path>) -> Result<bool, String> {
    if let Some(source) = source {
        let source = source
            .canonicalize()
            .or_else(|_| std::path::absolute(source))
            .map_err(|e| format!("cannot resolve the data directory: {e}"))?;
        let inside = |t: &Path| t.starts_with(&source);
        let absolute =
            std::path::absolute(target).map_err(|e| format!("cannot resolve it: {e}"))?;
        if inside(&absolute) || target.canonicalize().is_ok_and(|t| inside(&t)) {
            return Err(format!(
                "it is inside the data directory {}; choose a directory outside it",
                source.display()
            ));
        }
    }
    match std::fs::read_dir(target).map(|mut entries| entries.next().is_some()) {
        Ok(true) => Err(
            "the directory exists and is not empty; back up into a new or empty directory \
             (remove it, or choose another)"
                .into(),
        ),
        Ok(false) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(target)
            .map(|()| true)
            .map_err(|e| format!("cannot create it: {e}")),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            Err("it exists and is not a directory; choose a new directory".into())
        }
        Err(e) => Err(format!("cannot read it: {e}")),
    }
}

/// Copies what is not sled's from `source` into `target`, recursively; returns the file count.
fn copy_other_files(source: &Path, target: &Path) -> std::io::Result<u64> {
    fn walk(from: &Path, to: &Path, top: bool) -> std::io::Result<u64> {
        let mut files = 0;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            if top && is_sled_file(&entry.file_name()) {
                continue;
            }
            let (src, dst) = (entry.path(), to.join(entry.file_name()));
            let kind = entry.file_type()?;
            if kind.is_dir() {
                std::fs::create_dir_all(&dst)?;
                files += walk(&src, &dst, false)?;
            } else if kind.is_file() {
                std::fs::copy(&src, &dst)?;
                files += 1;
            }
        }
        Ok(files)
    }
    walk(source, target, true)
}

/// What a read or write is told while the store is reopened.
const REOPENING: &str = "the store is being reopened after a failed write; retry";

/// A tree's sled handle, replaced when the store is reopened.
type TreeCell = Arc<RwLock<Option<sled::Tree>>>;

/// How often a store whose write failed tries to reopen (see [`Store::recover`]).
const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// Free space below which a failed store does not try to reopen: opening may write, and a
/// reopen that fails leaves reads failing too until the next one.
const RECOVERY_ROOM_BYTES: u64 = 8 << 20;

/// Whether the file system holding `path` has room for a reopen.
#[cfg(target_os = "linux")]
fn has_room(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return true;
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable memory of the
    // right size; statvfs only writes into it.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return true;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // Both are 64-bit here, 32-bit on some targets.
    #[allow(clippy::unnecessary_cast)]
    let (blocks, size) = (st.f_bavail as u64, st.f_frsize as u64);
    blocks.saturating_mul(size) >= RECOVERY_ROOM_BYTES
}

#[cfg(not(target_os = "linux"))]
fn has_room(_path: &Path) -> bool {
    true
}

/// How long [`Store::open`] waits for a locked data directory before reporting it in use.
pub const LOCK_WAIT: Duration = Duration::from_millis(1000);

/// Writes and removals of one tree, of records of any types, applied together by
/// [`Tree::commit`].
#[derive(Debug, Default)]
pub struct Batch(sled::Batch);

impl Batch {
    /// Removes the record at `key` when the batch is committed.
    pub fn remove(&mut self, key: &[u8]) {
        self.0.remove(key);
    }
}

/// One engine's tree of typed records.
#[derive(Clone, Debug)]
pub struct Tree {
    cell: TreeCell,
    name: String,
    store: Store,
}

impl Tree {
    /// The sled tree, unless the store is being reopened.
    fn sled(&self) -> Result<sled::Tree, StoreError> {
        self.cell
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| self.store.reopening())
    }

    /// Raw records from `read` of the sled tree; while the store is reopened, one error.
    fn records(
        &self,
        read: impl FnOnce(sled::Tree) -> sled::Iter,
    ) -> Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>> + Send> {
        match self.sled() {
            Ok(t) => Box::new(read(t)),
            Err(_) => Box::new(std::iter::once(Err(sled::Error::Unsupported(
                REOPENING.to_string(),
            )))),
        }
    }

    /// The tree's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store it belongs to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads and decodes the record at `key`.
    pub fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        match self.sled()?.get(key).map_err(|e| self.store.io(e))? {
            Some(bytes) => self.decode(key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Whether a record exists at `key`.
    pub fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        self.sled()?.contains_key(key).map_err(|e| self.store.io(e))
    }

    /// Encodes and writes `value` at `key` (durable after [`Store::flush`]).
    pub fn insert<T: Serialize + ?Sized>(&self, key: &[u8], value: &T) -> Result<(), StoreError> {
        let bytes = codec::encode(value).map_err(|source| self.codec_error(key, source))?;
        self.store.recover();
        let _permit = self.store.write_permit();
        self.sled()?
            .insert(key, bytes)
            .map(drop)
            .map_err(|e| self.store.io(e))
    }

    /// Writes `value` at `key` only if nothing is there; returns the record already there
    /// otherwise (its bytes decoded), leaving it untouched.
    pub fn insert_new<T: Serialize + DeserializeOwned>(
        &self,
        key: &[u8],
        value: &T,
    ) -> Result<Option<T>, StoreError> {
        let bytes = codec::encode(value).map_err(|source| self.codec_error(key, source))?;
        self.store.recover();
        let _permit = self.store.write_permit();
        match self
            .sled()?
            .compare_and_swap(key, None::<&[u8]>, Some(bytes))
            .map_err(|e| self.store.io(e))?
        {
            Ok(()) => Ok(None),
            Err(cas) => match cas.current {
                Some(existing) => self.decode(key, &existing).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Removes the record at `key`; true if there was one.
    pub fn remove(&self, key: &[u8]) -> Result<bool, StoreError> {
        self.store.recover();
        let _permit = self.store.write_permit();
        self.sled()?
            .remove(key)
            .map(|old| old.is_some())
            .map_err(|e| self.store.io(e))
    }

    /// Records whose key starts with `prefix`, in key order, from `after` (exclusive) on.
    pub fn scan<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<(Vec<u8>, T), StoreError>> + '_ {
        let start = match after {
            Some(after) => {
                let mut start = after.to_vec();
                start.push(0);
                start
            }
            None => prefix.to_vec(),
        };
        let prefix = prefix.to_vec();
        self.records(|t| t.range(start..))
            .take_while(move |r| r.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
            .map(move |r| {
                let (k, v) = r.map_err(|e| self.store.io(e))?;
                let value = self.decode(&k, &v)?;
                Ok((k.to_vec(), value))
            })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.sled().map_or(0, |t| t.len())
    }

    /// True when the tree holds nothing.
    pub fn is_empty(&self) -> bool {
        self.sled().map_or(true, |t| t.is_empty())
    }

    fn decode<T: DeserializeOwned>(&self, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
        codec::decode(bytes).map_err(|source| self.codec_error(key, source))
    }

    fn codec_error(&self, key: &[u8], source: CodecError) -> StoreError {
        StoreError::Codec {
            tree: self.name.clone(),
            key: String::from_utf8_lossy(key).into_owned(),
            source,
        }
    }

    /// Adds `value` at `key` to `batch` (written by [`Tree::commit`]); records of different
    /// types may share one batch.
    pub fn stage<T: Serialize + ?Sized>(
        &self,
        batch: &mut Batch,
        key: &[u8],
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = codec::encode(value).map_err(|source| self.codec_error(key, source))?;
        batch.0.insert(key, bytes);
        Ok(())
    }

    /// Writes `batch` as one atomic change: after a crash either all of it is there or none
    /// (durable after [`Store::flush`]).
    pub fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        self.store.recover();
        let _permit = self.store.write_permit();
        self.sled()?
            .apply_batch(batch.0)
            .map_err(|e| self.store.io(e))
    }

    /// Every record, decoded, in key order.
    pub fn iter<T: DeserializeOwned>(
        &self,
    ) -> impl Iterator<Item = Result<(Vec<u8>, T), StoreError>> + '_ {
        self.records(|t| t.iter()).map(move |r| {
            let (k, v) = r.map_err(|e| self.store.io(e))?;
            let value = self.decode(&k, &v)?;
            Ok((k.to_vec(), value))
        })
    }

    /// Reads raw bytes, bypassing the codec (tests use it to damage records in place).
    #[doc(hidden)]
    pub fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.sled()?
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.store.io(e))
    }

    /// Writes raw bytes, bypassing the codec (tests use it to plant damaged records).
    #[doc(hidden)]
    pub fn insert_raw(&self, key: &[u8], bytes: &[u8]) -> Result<(), StoreError> {
        self.store.recover();
        let _permit = self.store.write_permit();
        self.sled()?
            .insert(key, bytes)
            .map(drop)
            .map_err(|e| self.store.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Concurrent writers that each flush after their write all come back: a flush leader
    /// wakes the others only after it released the lock (a waiter woken while the lock was
    /// still held slept until a change that might never come, and its write call hung).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_flushes_never_strand_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tree = store.tree("t").unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..32u32 {
            let (store, tree) = (store.clone(), tree.clone());
            tasks.spawn(async move {
                for i in 0..100u32 {
                    tree.insert(&[w.to_be_bytes(), i.to_be_bytes()].concat(), &i)
                        .unwrap();
                    store.flush().await.unwrap();
                }
            });
        }
        let all = async {
            while let Some(done) = tasks.join_next().await {
                done.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), all)
            .await
            .expect("every writer's flush returned");
        assert_eq!(tree.len(), 3200);
    }

    #[tokio::test]
    async fn a_small_page_cache_still_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let small = StoreOptions {
            cache_capacity_bytes: 64 * 1024,
        };
        {
            let store = Store::open_with(dir.path(), &small).unwrap();
            let t = store.tree("registry").unwrap();
            for i in 0..2_000u32 {
                t.insert(&i.to_be_bytes(), &vec![7u8; 100]).unwrap();
            }
            store.flush().await.unwrap();
        }
        let store = Store::open_with(dir.path(), &small).unwrap();
        let t = store.tree("registry").unwrap();
        assert_eq!(t.len(), 2_000);
        assert_eq!(
            t.get::<Vec<u8>>(&1_999u32.to_be_bytes()).unwrap(),
            Some(vec![7u8; 100])
        );
    }

    #[tokio::test]
    async fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let t = store.tree("registry").unwrap();
            t.insert(b"a/1", &vec![1u8, 2, 3]).unwrap();
            t.insert(b"a/2", &vec![4u8]).unwrap();
            t.insert(b"b/1", &vec![5u8]).unwrap();
            store.flush().await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let t = store.tree("registry").unwrap();
        assert_eq!(t.get::<Vec<u8>>(b"a/1").unwrap(), Some(vec![1, 2, 3]));
        let keys: Vec<Vec<u8>> = t
            .scan::<Vec<u8>>(b"a/", None)
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(keys, [b"a/1".to_vec(), b"a/2".to_vec()]);
        let after: Vec<Vec<u8>> = t
            .scan::<Vec<u8>>(b"a/", Some(b"a/1"))
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(after, [b"a/2".to_vec()]);
    }

    #[tokio::test]
    async fn a_second_opener_is_told_the_directory_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("in use by another ensemble process")
        );
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }

    #[tokio::test]
    async fn a_damaged_record_is_reported_and_the_others_still_read() {
        let store = Store::temporary().unwrap();
        let t = store.tree("validation").unwrap();
        t.insert(b"good", &"fine".to_string()).unwrap();
        t.insert_raw(b"bad", &[1, 0xff, 0xff, 0xff]).unwrap();
        let err = t.get::<String>(b"bad").unwrap_err();
        assert!(
            err.to_string().contains("record `bad` in `validation`"),
            "{err}"
        );
        assert_eq!(t.get::<String>(b"good").unwrap().as_deref(), Some("fine"));
    }

    #[tokio::test]
    async fn insert_new_never_overwrites() {
        let store = Store::temporary().unwrap();
        let t = store.tree("registry").unwrap();
        assert_eq!(t.insert_new(b"k", &1u32).unwrap(), None);
        assert_eq!(t.insert_new(b"k", &2u32).unwrap(), Some(1));
        assert_eq!(t.get::<u32>(b"k").unwrap(), Some(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_flushes_share_disk_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = store.tree("t").unwrap();
        let writers: Vec<_> = (0..64u32)
            .map(|i| {
                let (store, t) = (store.clone(), t.clone());
                tokio::spawn(async move {
                    t.insert(format!("k{i}").as_bytes(), &i).unwrap();
                    store.flush().await.unwrap();
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        let flushes = store.flush_count();
        // Typically 2 or 3: the writers that arrive during a flush share the next one.
        assert!(
            (1..32).contains(&flushes),
            "{flushes} flushes for 64 writers"
        );
        // And a flush after the fact covers everything: reopen and read all 64.
        drop(t);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.tree("t").unwrap().len(), 64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backup_is_a_store_of_its_own_with_everything_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = Store::open(&data).unwrap();
        let registry = store.tree("registry").unwrap();
        let workflow = store.tree("workflow").unwrap();
        for i in 0..500u32 {
            registry.insert(format!("a/{i}").as_bytes(), &i).unwrap();
        }
        workflow.insert(b"run/1", &"done".to_string()).unwrap();
        // A file another engine keeps beside sled's (a retrieval index, say).
        std::fs::create_dir_all(data.join("retrieval/docs")).unwrap();
        std::fs::write(data.join("retrieval/docs/segment"), b"index bytes").unwrap();

        // Writers keep writing while the backup runs; they wait, they are not lost.
        let writer = {
            let registry = registry.clone();
            tokio::task::spawn_blocking(move || {
                for i in 500..1_500u32 {
                    registry.insert(format!("a/{i}").as_bytes(), &i).unwrap();
                }
            })
        };
        let target = dir.path().join("backup");
        let report = {
            let (store, target) = (store.clone(), target.clone());
            tokio::task::spawn_blocking(move || store.backup_to(&target))
                .await
                .unwrap()
                .unwrap()
        };
        writer.await.unwrap();
        assert_eq!(report.files, 1);
        assert!(report.trees >= 2, "{report:?}");
        drop((registry, workflow, store));

        let copy = Store::open(&target).unwrap();
        let registry = copy.tree("registry").unwrap();
        // One point in time: the first 500 and a prefix of the concurrent writes, no holes.
        let n = registry.len() as u32;
        assert!((500..=1_500).contains(&n), "{n} records");
        for i in 0..n {
            assert_eq!(
                registry.get::<u32>(format!("a/{i}").as_bytes()).unwrap(),
                Some(i)
            );
        }
        assert_eq!(report.records, u64::from(n) + 1);
        assert_eq!(
            copy.tree("workflow")
                .unwrap()
                .get::<String>(b"run/1")
                .unwrap()
                .as_deref(),
            Some("done")
        );
        assert_eq!(
            std::fs::read(target.join("retrieval/docs/segment")).unwrap(),
            b"index bytes"
        );
    }

    #[tokio::test]
    async fn a_backup_refuses_a_non_empty_target_or_one_inside_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("data")).unwrap();
        let full = dir.path().join("full");
        std::fs::create_dir_all(&full).unwrap();
        std::fs::write(full.join("keep-me"), b"x").unwrap();
        let err = store.backup_to(&full).unwrap_err();
        assert!(err.to_string().contains("exists and is not empty"), "{err}");
        assert_eq!(std::fs::read(full.join("keep-me")).unwrap(), b"x");
        let inside = dir.path().join("data").join("backup");
        let err = store.backup_to(&inside).unwrap_err();
        assert!(
            err.to_string().contains("inside the data directory"),
            "{err}"
        );
        assert!(!inside.exists(), "a refused backup leaves nothing behind");
        // An empty directory is fine.
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        store.backup_to(&empty).unwrap();
    }
}
