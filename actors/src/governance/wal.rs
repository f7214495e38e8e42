//! The audit log's write-ahead file: how an entry becomes durable without a store flush.
//!
//! A store flush makes every tree durable and, in sled, hands the write to a pool of threads:
//! far more work than one small append. So the audit writer puts each batch of entries in the
//! store (not flushed) *and* appends the same bytes to `audit.wal` in the data directory, then
//! writes that file out (group commit: one write-out per batch). An entry is acknowledged once
//! its batch is written out. On the next open, entries found here but not in the store (a crash
//! came before the store's own flush reached them) are put back ([`recover`]); the file is then
//! emptied, and again whenever it grows past [`ROTATE_BYTES`] once a store flush has made
//! everything in it durable in the store: it holds only the recent tail of the log.
//!
//! Written out means what a store flush means (sled 0.34 on Linux): the bytes are on the
//! device (`sync_file_range` with `WAIT_BEFORE | WRITE | WAIT_AFTER`), which survives the
//! process being killed at any moment; and a full `fdatasync` (the file's length and the
//! device's cache) follows at most every [`FULL_SYNC_EVERY`], as sled's flusher does for its
//! own file. Other systems fall back to `fdatasync` on every batch.
//!
//! [`recover`]: super::audit::recover
//!
//! A frame is the entry's length (u32, little-endian) and its bytes, exactly as stored in the
//! tree. A frame cut short by a crash, or whose chain hash does not check, ends the file: an
//! entry is only ever acknowledged after its whole frame was synced, so such a tail was never
//! acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::time::{Duration, Instant};

/// The file's name in the data directory.
pub const FILE_NAME: &str = "audit.wal";
/// Past this size, the next batch first flushes the store and empties the file.
pub const ROTATE_BYTES: u64 = 64 << 20;
/// A batch written out this long after the last full sync is synced in full.
pub const FULL_SYNC_EVERY: Duration = Duration::from_millis(500);

/// The write-ahead file. Each batch is written and synced on tokio's blocking pool (one at a
/// time: the writer waits for a batch before it sends the next).
#[derive(Debug)]
pub(crate) struct Wal {
    file: Arc<File>,
    path: PathBuf,
    /// Bytes in the file (as far as the writer knows: it is the only one writing).
    size: u64,
    /// Past this size the file is emptied (see [`ROTATE_BYTES`]).
    rotate_bytes: u64,
    /// When the last batch synced in full was sent.
    full_sync_at: Instant,
}

impl Wal {
    /// Opens (or creates) the file in `dir`, to be emptied past `rotate_bytes`.
    pub(crate) fn open(dir: &Path, rotate_bytes: u64) -> Result<Self, String> {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let size = file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        Ok(Self {
            file: Arc::new(file),
            path,
            size,
            rotate_bytes,
            full_sync_at: Instant::now(),
        })
    }

    /// Whether the next batch of `extra` bytes should first flush the store and empty the file.
    pub(crate) fn due_for_reset(&self, extra: usize) -> bool {
        self.size > 0 && self.size + extra as u64 > self.rotate_bytes
    }

    /// A future that, once polled, appends `bytes` (whole frames) and syncs them, after
    /// emptying the file when `reset`; it answers once they are durable.
    pub(crate) fn append(
        &mut self,
        bytes: Vec<u8>,
        reset: bool,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        self.size = if reset { 0 } else { self.size } + bytes.len() as u64;
        let full = reset || self.full_sync_at.elapsed() >= FULL_SYNC_EVERY;
        if full {
            self.full_sync_at = Instant::now();
        }
        let file = self.file.clone();
        let path = self.path.clone();
        async move {
            tokio::task::spawn_blocking(move || write(&file, &bytes, reset, full))
                .await
                .map_err(|e| format!("{}: the write task failed: {e}", path.display()))?
                .map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}

/// Appends `bytes` and writes them out; syncs the whole file when `full`.
fn write(mut file: &File, bytes: &[u8], reset: bool, full: bool) -> std::io::Result<()> {
    if reset {
        // Opened for appending: the next write goes to the new end, 0.
        file.set_len(0)?;
    }
    file.write_all(bytes)?;
    if full {
        file.sync_data()
    } else {
        write_out(file)
    }
}

/// Puts the file's written pages on the device, as sled's flush does (the whole file: only
/// pages not yet written out cost anything).
#[cfg(target_os = "linux")]
fn write_out(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: sync_file_range takes a file descriptor this `File` keeps open for the whole
    // call, and integers; it touches no memory of ours.
    let ret = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            0,
            0,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOSYS) {
        file.sync_data()
    } else {
        Err(err)
    }
}

/// Elsewhere, a full sync every time.
#[cfg(not(target_os = "linux"))]
fn write_out(file: &File) -> std::io::Result<()> {
    file.sync_data()
}

/// Empties the file at `path` (if there is one) and makes that durable.
pub(crate) fn empty(path: &Path) -> Result<(), String> {
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    file.set_len(0)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Appends `entry` as one frame to `out`.
pub fn frame(out: &mut Vec<u8>, entry: &[u8]) {
    // An entry is a record of a few hundred bytes: far below u32::MAX.
    out.extend_from_slice(&(entry.len() as u32).to_le_bytes());
    out.extend_from_slice(entry);
}

/// The frames of the file at `path`, in order, up to the first one cut short; and how many
/// bytes after them were ignored. No file: no frames.
pub fn read(path: &Path) -> Result<(Vec<Vec<u8>>, usize), String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(fail(e)),
    };
    // As long as it is now (a device reads on forever).
    let len = file.metadata().map_err(fail)?.len();
    let mut bytes = Vec::new();
    file.take(len).read_to_end(&mut bytes).map_err(fail)?;
    let mut frames = Vec::new();
    let mut at = 0usize;
    while let Some(len) = bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(|b| u32::from_le_bytes(b) as usize)
    {
        let Some(entry) = bytes.get(at + 4..at + 4 + len) else {
            break;
        };
        frames.push(entry.to_vec());
        at += 4 + len;
    }
    Ok((frames, bytes.len() - at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_written_read_back_and_a_reset_empties_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), ROTATE_BYTES).unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut batch = Vec::new();
        frame(&mut batch, b"one");
        frame(&mut batch, b"two");
        wal.append(batch, false).await.unwrap();
        let (frames, rest) = read(&path).unwrap();
        assert_eq!(frames, vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(rest, 0);

        let mut batch = Vec::new();
        frame(&mut batch, b"three");
        wal.append(batch, true).await.unwrap();
        assert_eq!(read(&path).unwrap().0, vec![b"three".to_vec()]);
        assert_eq!(wal.size, 9);
    }

    #[test]
    fn a_frame_cut_short_ends_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut bytes = Vec::new();
        frame(&mut bytes, b"whole");
        frame(&mut bytes, b"cut short");
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, &bytes).unwrap();
        let (frames, rest) = read(&path).unwrap();
        assert_eq!(frames, vec![b"whole".to_vec()]);
        assert_eq!(rest, 4 + 9 - 3);
        assert_eq!(read(&dir.path().join("absent")).unwrap(), (Vec::new(), 0));
    }
}
