//! Signed checkpoints of the audit log: what they say, how they are signed, where they are kept.
//!
//! A checkpoint is a [C2SP signed note](https://c2sp.org/signed-note) in the
//! [checkpoint](https://c2sp.org/tlog-checkpoint) shape: a body of three lines,
//!
//! ```text
//! ensemble-audit/<node id>
//! <size: the number of entries it covers>
//! <base64 of the chain's head after those entries>
//! ```
//!
//! then a blank line and one signature line per signer, `— <key name> <base64(key id ‖
//! signature)>`. The key name is the origin (the first line); the key id is the first four bytes
//! of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key), as the signed-note spec defines it for
//! Ed25519. A verifier ignores signatures by keys it does not know, so a key can be rotated by
//! verifying with both keys for a while.
//!
//! The audit log writes a checkpoint every [`CheckpointConfig::every_entries`] entries, every
//! [`CheckpointConfig::every`], and when it is closed cleanly, into the store (tree
//! `audit_checkpoints`) and, when [`CheckpointConfig::dir`] is set, as one file per checkpoint in
//! that directory. **Without [`CheckpointConfig::key_file`] no checkpoint is written at all**: the
//! chain alone then detects an edited entry only relative to a head kept elsewhere (see
//! [`super::audit`] for what each arrangement can and cannot detect).
//!
//! Keep the directory and the key file *outside* the data directory, where whoever can rewrite the
//! store cannot reach them (another disk, another user, a mount that is append-only for the
//! server): a checkpoint the attacker can delete or re-sign proves nothing.
//!
//! ```
//! use ed25519_dalek::SigningKey;
//! use ensemble_actors::governance::checkpoint::Checkpoint;
//!
//! let key = SigningKey::from_bytes(&[7; 32]);
//! let mut checkpoint = Checkpoint::new("node-1", 42, [1; 32]);
//! checkpoint.sign(&key);
//! let note = checkpoint.to_note();
//! assert!(note.starts_with("ensemble-audit/node-1\n42\n"));
//!
//! let back = Checkpoint::parse(&note).unwrap();
//! assert!(back.verify(&key.verifying_key()));
//! assert!(!back.verify(&SigningKey::from_bytes(&[8; 32]).verifying_key()));
//! ```

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _};
use sha2::{Digest, Sha256};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// When and where the audit log writes signed checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// A directory outside the data directory that receives one file per checkpoint (named by
    /// its size, zero-padded to 20 digits). `None`: checkpoints are kept in the store only, where
    /// whoever can rewrite the store can also delete them. One directory per node: two nodes
    /// writing into one directory would mix their files.
    pub dir: Option<PathBuf>,
    /// The Ed25519 signing key: a file of 32 secret bytes, mode 0600, outside the data directory.
    /// Created (with its public key beside it, `<key_file>.pub`, base64) when absent. `None`: no
    /// checkpoints are written.
    pub key_file: Option<PathBuf>,
    /// A checkpoint after this many entries (0: never by count).
    pub every_entries: u64,
    /// A checkpoint this long after the last one, if entries were appended since (zero: never by
    /// time).
    pub every: Duration,
}

/// Entries between two checkpoints by default.
pub const DEFAULT_EVERY_ENTRIES: u64 = 1000;
/// Time between two checkpoints by default.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(60);

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            dir: None,
            key_file: None,
            every_entries: DEFAULT_EVERY_ENTRIES,
            every: DEFAULT_EVERY,
        }
    }
}

/// Why a key or a checkpoint file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The signing or public key file is unusable.
    #[error("audit key {path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// The checkpoint directory or one of its files could not be read or written.
    #[error("audit checkpoints in {path}: {reason}")]
    Dir {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The origin (first line) of the checkpoints of node `node_id`'s log; also the key name.
pub fn origin(node_id: &str) -> String {
    format!("ensemble-audit/{node_id}")
}

/// The signed-note key id of an Ed25519 key: the first four bytes of
/// SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key).
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([0x0A, 0x01])
        .chain_update(key.as_bytes())
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id (see [`key_id`]).
    pub key_id: [u8; 4],
    /// The signature bytes (64 for Ed25519; other lengths are other algorithms, ignored).
    pub signature: Vec<u8>,
}

/// A checkpoint: the log of `origin` had `size` entries and this `head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `ensemble-audit/<node id>`.
    pub origin: String,
    /// Entries covered (sequence numbers `0..size`).
    pub size: u64,
    /// The chain's head after entry `size - 1` (the start hash for size 0).
    pub head: [u8; 32],
    /// Lines after the head (C2SP extension lines; this log writes none), signed with the body.
    pub extensions: Vec<String>,
    /// The signatures, in note order.
    pub signatures: Vec<NoteSignature>,
}

/// The line prefix of a signature: an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

impl Checkpoint {
    /// An unsigned checkpoint of node `node_id`'s log.
    pub fn new(node_id: &str, size: u64, head: [u8; 32]) -> Self {
        Self {
            origin: origin(node_id),
            size,
            head,
            extensions: Vec::new(),
            signatures: Vec::new(),
        }
    }

    /// The signed text: origin, size and head (and any extension lines), each on a line.
    pub fn body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.head)
        );
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Adds a signature by `key`, named by the origin.
    pub fn sign(&mut self, key: &SigningKey) {
        let signature: Signature = key.sign(self.body().as_bytes());
        self.signatures.push(NoteSignature {
            name: self.origin.clone(),
            key_id: key_id(&self.origin, &key.verifying_key()),
            signature: signature.to_bytes().to_vec(),
        });
    }

    /// The note: the body, a blank line, the signature lines.
    pub fn to_note(&self) -> String {
        let mut note = self.body();
        note.push('\n');
        for s in &self.signatures {
            let mut blob = Vec::with_capacity(4 + s.signature.len());
            blob.extend_from_slice(&s.key_id);
            blob.extend_from_slice(&s.signature);
            note.push_str(SIGNATURE_PREFIX);
            note.push_str(&s.name);
            note.push(' ');
            note.push_str(&BASE64.encode(blob));
            note.push('\n');
        }
        note
    }

    /// Reads a note written by [`Checkpoint::to_note`] (extension lines after the head are
    /// allowed and ignored, as in C2SP checkpoints). At least one signature line is required.
    pub fn parse(note: &str) -> Result<Self, String> {
        let Some(split) = note.find("\n\n") else {
            return Err("no blank line between the body and the signatures".into());
        };
        let (body, signatures) = (&note[..=split], &note[split + 2..]);
        let mut lines = body.lines();
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err("the origin line is empty".into());
        }
        let size = lines.next().unwrap_or_default();
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the size line {size:?} is not a number"));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| format!("the size {size} is out of range"))?;
        let head = lines.next().unwrap_or_default();
        let head: [u8; 32] = BASE64
            .decode(head)
            .ok()
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| format!("the head line {head:?} is not base64 of 32 bytes"))?;
        let mut parsed = Vec::new();
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix(SIGNATURE_PREFIX) else {
                return Err(format!(
                    "{line:?} is not a signature line (`— name signature`)"
                ));
            };
            let (name, blob) = rest
                .split_once(' ')
                .ok_or_else(|| format!("the signature line {line:?} has no signature"))?;
            let blob = BASE64
                .decode(blob)
                .map_err(|_| format!("the signature of {name:?} is not base64"))?;
            if name.is_empty() || blob.len() < 4 {
                return Err(format!("the signature line {line:?} is too short"));
            }
            parsed.push(NoteSignature {
                name: name.to_string(),
                key_id: [blob[0], blob[1], blob[2], blob[3]],
                signature: blob[4..].to_vec(),
            });
        }
        if parsed.is_empty() {
            return Err("the note carries no signature".into());
        }
        Ok(Self {
            origin: origin.to_string(),
            size,
            head,
            extensions: lines.map(str::to_string).collect(),
            signatures: parsed,
        })
    }

    /// True when a signature by `key`, under the origin as key name, verifies.
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let id = key_id(&self.origin, key);
        let body = self.body();
        self.signatures.iter().any(|s| {
            s.name == self.origin
                && s.key_id == id
                && <[u8; 64]>::try_from(s.signature.as_slice()).is_ok_and(|bytes| {
                    key.verify_strict(body.as_bytes(), &Signature::from_bytes(&bytes))
                        .is_ok()
                })
        })
    }
}

/// The file name of the checkpoint of `size` entries: the size, zero-padded to 20 digits (a
/// second, conflicting checkpoint of the same size gets a `.1`, `.2`, … suffix).
pub fn file_name(size: u64) -> String {
    format!("{size:020}")
}

/// Writes `checkpoint` into `dir` (created if absent) as a file named by its size, atomically:
/// a temporary file, fsync, rename, fsync of the directory. Never replaces a file: the same note
/// already there is left as it is, and a different note of the same size (the log was rolled
/// back and grew again) goes beside it with a suffix, so that both stay as evidence.
pub fn write_to_dir(dir: &Path, checkpoint: &Checkpoint) -> Result<PathBuf, CheckpointError> {
    let fail = |path: &Path, e: std::io::Error| CheckpointError::Dir {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    let note = checkpoint.to_note();
    let name = file_name(checkpoint.size);
    let mut target = dir.join(&name);
    let mut suffix = 0u32;
    loop {
        match std::fs::read(&target) {
            Ok(existing) if existing == note.as_bytes() => return Ok(target),
            Ok(_) => {
                suffix += 1;
                target = dir.join(format!("{name}.{suffix}"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(e) => return Err(fail(&target, e)),
        }
    }
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(note.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, &target)?;
        sync_dir(dir)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(fail(&target, e));
    }
    Ok(target)
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// One checkpoint file read from a directory: its path, and the checkpoint or why it is not one.
pub type CheckpointFile = (PathBuf, Result<Checkpoint, String>);

/// Every checkpoint file in `dir` (names that start with a digit), in name order, each parsed.
/// A file whose name says another size than its body is an error of that file.
pub fn read_dir(dir: &Path) -> Result<Vec<CheckpointFile>, CheckpointError> {
    let fail = |path: &Path, e: std::io::Error| CheckpointError::Dir {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| fail(dir, e))? {
        let entry = entry.map_err(|e| fail(dir, e))?;
        let name = entry.file_name();
        if name
            .to_string_lossy()
            .starts_with(|c: char| c.is_ascii_digit())
        {
            paths.push(entry.path());
        }
    }
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read(&path).map_err(|e| fail(&path, e))?;
        let named = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let named: Option<u64> = named.split('.').next().and_then(|n| n.parse().ok());
        let parsed = String::from_utf8(text)
            .map_err(|_| "not UTF-8 text".to_string())
            .and_then(|t| Checkpoint::parse(&t))
            .and_then(|c| match named {
                Some(n) if n == c.size => Ok(c),
                _ => Err(format!(
                    "the file name says another size than its body ({})",
                    c.size
                )),
            });
        files.push((path, parsed));
    }
    Ok(files)
}

/// `<key_file>.pub`: where the public key is written beside the signing key.
pub fn public_key_path(key_file: &Path) -> PathBuf {
    let mut path = key_file.as_os_str().to_owned();
    path.push(".pub");
    PathBuf::from(path)
}

/// Reads the signing key at `path`, or creates it (32 random bytes, mode 0600) when absent.
/// Either way `<path>.pub` is made to hold its public key (base64). A key file readable by
/// others is used, with a warning.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, CheckpointError> {
    let fail = |reason: String| CheckpointError::Key {
        path: path.to_path_buf(),
        reason,
    };
    let key = match std::fs::read(path) {
        Ok(mut bytes) => {
            let key = secret_from(&bytes);
            bytes.fill(0);
            warn_if_readable_by_others(path);
            key.ok_or_else(|| {
                fail(
                    "it must hold the 32 secret bytes of an Ed25519 key (raw, or base64); \
                     remove it to have a new key made"
                        .into(),
                )
            })?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(path).map_err(fail)?,
        Err(e) => return Err(fail(format!("cannot read it: {e}"))),
    };
    write_public_key(path, &key.verifying_key()).map_err(fail)?;
    Ok(key)
}

fn secret_from(bytes: &[u8]) -> Option<SigningKey> {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        return Some(SigningKey::from_bytes(&raw));
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let mut decoded = BASE64.decode(text).ok()?;
    let key = <[u8; 32]>::try_from(decoded.as_slice())
        .ok()
        .map(|raw| SigningKey::from_bytes(&raw));
    decoded.fill(0);
    key
}

fn create_key(path: &Path) -> Result<SigningKey, String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| format!("no random bytes for a new key: {e}"))?;
    let key = SigningKey::from_bytes(&secret);
    secret.fill(0);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create its directory: {e}"))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Ok(file) => file,
        // Another process made it first: use that one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
            return secret_from(&bytes).ok_or_else(|| "it is not a key".to_string());
        }
        Err(e) => return Err(format!("cannot create it: {e}")),
    };
    file.write_all(key.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write it: {e}"))?;
    tracing::info!(key_file = %path.display(), "created the audit checkpoint signing key");
    Ok(key)
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                key_file = %path.display(),
                "the audit signing key is readable by other users; chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn write_public_key(key_file: &Path, key: &VerifyingKey) -> Result<(), String> {
    let path = public_key_path(key_file);
    let text = format!("{}\n", BASE64.encode(key.as_bytes()));
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing == text => return Ok(()),
        Ok(_) => tracing::warn!(
            public_key = %path.display(),
            "the public key file did not match the signing key; rewriting it"
        ),
        Err(_) => {}
    }
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads a public key: base64 of its 32 bytes (what `<key_file>.pub` holds), or a signed-note
/// verifier key `<name>+<hex key id>+<base64(0x01 ‖ key)>`.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, CheckpointError> {
    let fail = |reason: String| CheckpointError::Key {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let text = text.trim();
    let plain = BASE64.decode(text).ok().filter(|b| b.len() == 32);
    let verifier_key = || {
        let mut parts = text.splitn(3, '+');
        let (_name, id, blob) = (parts.next()?, parts.next()?, parts.next()?);
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let blob = BASE64.decode(blob).ok()?;
        blob.strip_prefix(&[0x01]).map(<[u8]>::to_vec)
    };
    let bytes: [u8; 32] = plain
        .or_else(verifier_key)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| fail("it must hold an Ed25519 public key: base64 of 32 bytes".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| fail(format!("not a valid Ed25519 key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    #[test]
    fn a_note_round_trips_and_verifies_only_with_its_key() {
        let mut c = Checkpoint::new("n1", 1000, [9; 32]);
        c.sign(&key(1));
        let note = c.to_note();
        let lines: Vec<&str> = note.lines().collect();
        assert_eq!(
            lines[..4],
            ["ensemble-audit/n1", "1000", &BASE64.encode([9; 32]), ""]
        );
        assert!(lines[4].starts_with("\u{2014} ensemble-audit/n1 "));
        let back = Checkpoint::parse(&note).unwrap();
        assert_eq!(back, c);
        assert!(back.verify(&key(1).verifying_key()));
        assert!(!back.verify(&key(2).verifying_key()));
        // An edited body no longer verifies.
        let edited = note.replace("\n1000\n", "\n999\n");
        assert!(
            !Checkpoint::parse(&edited)
                .unwrap()
                .verify(&key(1).verifying_key())
        );
    }

    #[test]
    fn the_key_id_follows_the_signed_note_derivation() {
        let k = key(3).verifying_key();
        let mut h = Sha256::new();
        h.update(b"ensemble-audit/n1\n\x01");
        h.update(k.as_bytes());
        assert_eq!(key_id("ensemble-audit/n1", &k), h.finalize()[..4]);
    }

    #[test]
    fn malformed_notes_are_refused_with_a_reason() {
        for (note, says) in [
            ("ensemble-audit/n\n10\n", "no blank line"),
            (
                "ensemble-audit/n\nten\nAAAA\n\n— x AAAAAA==\n",
                "not a number",
            ),
            ("ensemble-audit/n\n10\nAAAA\n\n— x AAAAAA==\n", "32 bytes"),
            (
                &format!("ensemble-audit/n\n10\n{}\n\n", BASE64.encode([0; 32])),
                "no signature",
            ),
        ] {
            let err = Checkpoint::parse(note).unwrap_err();
            assert!(err.contains(says), "{note:?}: {err}");
        }
    }

    #[test]
    fn a_key_is_made_once_with_its_public_half_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit.key");
        let made = load_or_create_key(&path).unwrap();
        let again = load_or_create_key(&path).unwrap();
        assert_eq!(made.as_bytes(), again.as_bytes());
        assert_eq!(std::fs::read(&path).unwrap().len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let public = read_public_key(&public_key_path(&path)).unwrap();
        assert_eq!(public, made.verifying_key());
    }

    #[test]
    fn a_file_is_never_replaced_by_another_checkpoint_of_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = Checkpoint::new("n", 10, [1; 32]);
        first.sign(&key(1));
        let mut second = Checkpoint::new("n", 10, [2; 32]);
        second.sign(&key(1));
        let a = write_to_dir(dir.path(), &first).unwrap();
        assert_eq!(write_to_dir(dir.path(), &first).unwrap(), a);
        let b = write_to_dir(dir.path(), &second).unwrap();
        assert_ne!(a, b);
        assert!(a.ends_with("00000000000000000010"));
        let read = read_dir(dir.path()).unwrap();
        let heads: Vec<[u8; 32]> = read.iter().map(|(_, c)| c.as_ref().unwrap().head).collect();
        assert_eq!(heads, [[1; 32], [2; 32]]);
    }
}
