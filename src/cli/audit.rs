//! `ensemble audit verify`: checks the audit log of a data directory, its hash chain entry by
//! entry and its signed checkpoints (see `ensemble_actors::governance::audit` for what each can
//! and cannot show).
//!
//! sled locks its data directory while a server runs, so this reads a stopped server's
//! directory, or a backup of a running one (`ensemble backup --url …`).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use ensemble::actors::governance::audit::{self, VerifyReport};
use ensemble::actors::governance::checkpoint;
use ensemble::actors::store::{Store, StoreError, StoreOptions};

use super::Failure;

/// `ensemble audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log: every entry's hash and link, and every checkpoint's head and
    /// signature.
    #[command(after_help = "\
Examples:
  ensemble audit verify --data-dir /var/lib/ensemble \\
      --checkpoints /var/log/ensemble-audit --public-key /etc/ensemble/audit.key.pub
  ensemble audit verify --data-dir /backups/2026-11-30
      the chain alone: edits, deletions and moves, but not truncation or a recomputed chain

--checkpoints is the directory the server writes its signed checkpoints into (kept outside the
data directory). --public-key is the `.pub` file written beside the signing key;
without it signatures are not checked. The first problem of each kind is listed with its entry
(seq) or checkpoint (size).
Exit status: 0 intact; 1 tampering found; 2 cannot read (bad usage, no store, the data directory
is in use by a running server: stop it or verify a backup).")]
    Verify(VerifyArgs),
}

/// `ensemble audit verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The data directory holding the log (a stopped server's, or a backup).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The directory of checkpoint files kept outside the data directory.
    #[arg(long, value_name = "DIR")]
    pub checkpoints: Option<PathBuf>,
    /// A public key checkpoints must be signed by (base64, as in `<key_file>.pub`);
    /// repeatable, to accept the keys before and after a rotation.
    #[arg(long = "public-key", value_name = "FILE")]
    pub public_keys: Vec<PathBuf>,
}

/// The page cache for reading the log once.
const VERIFY_CACHE_BYTES: u64 = 8 << 20;

/// Runs `ensemble audit …`.
pub async fn run(command: AuditCommand) -> Result<(), Failure> {
    match command {
        AuditCommand::Verify(args) => verify(args).await,
    }
}

async fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let dir = args.data_dir.clone();
    if !dir.join("conf").exists() && !dir.join("db").exists() {
        return Err(Failure::Usage(format!(
            "{} holds no ensemble store; pass the data directory of a server (--data-dir)",
            dir.display()
        )));
    }
    if let Some(checkpoints) = &args.checkpoints
        && !checkpoints.is_dir()
    {
        return Err(Failure::Usage(format!(
            "--checkpoints {}: not a directory",
            checkpoints.display()
        )));
    }
    let keys = args
        .public_keys
        .iter()
        .map(|path| checkpoint::read_public_key(path))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let checkpoints = args.checkpoints.clone();
    let report = tokio::task::spawn_blocking(move || {
        let options = StoreOptions {
            cache_capacity_bytes: VERIFY_CACHE_BYTES,
        };
        let store = Store::open_with(&dir, &options)?;
        // Entries acknowledged before an unclean stop may be only in the write-ahead file:
        // put them back first, as the server does when it starts. A log too damaged for that
        // is still verified (the report says what is wrong with it).
        if let Err(e) = audit::recover(&store) {
            eprintln!(
                "ensemble audit verify: the write-ahead file was not put back ({e}); verifying \
                 the store as it is"
            );
        }
        audit::verify(&store, checkpoints.as_deref(), &keys).map_err(Unreadable::Audit)
    })
    .await
    .map_err(|e| Failure::Failed(format!("the verification task failed: {e}")))?;
    let report = match report {
        Ok(report) => report,
        Err(Unreadable::Store(StoreError::Locked { path })) => {
            return Err(Failure::Usage(format!(
                "{} is in use by a running ensemble (sled locks it): stop the server or verify \
                 a backup of it (`ensemble backup --to DIR --url …`)",
                path.display()
            )));
        }
        Err(e) => return Err(Failure::Usage(format!("cannot read the audit log: {e}"))),
    };
    print!(
        "{}",
        render(&args.data_dir, args.checkpoints.as_deref(), &report)
    );
    if report.is_intact() {
        Ok(())
    } else {
        eprintln!(
            "ensemble audit verify: the audit log was tampered with ({} problem(s))",
            report.problem_count
        );
        Err(Failure::Exit(1))
    }
}

/// Why the log could not be read.
#[derive(Debug)]
enum Unreadable {
    Store(StoreError),
    Audit(audit::AuditError),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Store(e) => e.fmt(f),
            Unreadable::Audit(e) => e.fmt(f),
        }
    }
}

impl From<StoreError> for Unreadable {
    fn from(e: StoreError) -> Self {
        Unreadable::Store(e)
    }
}

/// The report as a short table, then one line per problem.
fn render(data_dir: &Path, checkpoints: Option<&Path>, report: &VerifyReport) -> String {
    let mut out = String::new();
    let node = report.node_id.as_deref().unwrap_or("unknown");
    let row = |out: &mut String, name: &str, value: String| {
        out.push_str(&format!("{name:<22}{value}\n"));
    };
    row(
        &mut out,
        "audit log",
        format!("{} (node {node})", data_dir.display()),
    );
    row(&mut out, "entries", report.entries.to_string());
    let signatures = if report.signatures_checked {
        "signatures checked"
    } else {
        "signatures NOT checked: no --public-key"
    };
    let kept = match checkpoints {
        Some(dir) => format!("from {} and the store", dir.display()),
        None => "from the store only: no --checkpoints".to_string(),
    };
    row(
        &mut out,
        "checkpoints checked",
        format!("{} ({kept}; {signatures})", report.checkpoints),
    );
    row(
        &mut out,
        "last good checkpoint",
        report
            .last_good_checkpoint
            .map_or("none".to_string(), |size| format!("size {size}")),
    );
    if report.is_intact() {
        row(&mut out, "result", "intact".to_string());
        return out;
    }
    row(
        &mut out,
        "result",
        format!(
            "TAMPERED: {} problem(s); the first of each kind:",
            report.problem_count
        ),
    );
    for problem in &report.problems {
        out.push_str(&format!(
            "  {:<12}{:<30}{}\n",
            problem.place(),
            problem.kind(),
            problem.meaning()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ensemble::actors::governance::audit::Problem;

    #[test]
    fn a_tampered_report_lists_each_problem_with_its_place_and_meaning() {
        let report = VerifyReport {
            node_id: Some("n1".into()),
            entries: 30,
            log_size: 30,
            checkpoints: 3,
            signatures_checked: true,
            last_good_checkpoint: Some(10),
            problems: vec![Problem::EntryHashMismatch { seq: 17 }],
            problem_count: 2,
        };
        let text = render(Path::new("/d"), None, &report);
        assert!(text.contains("size 10"), "{text}");
        assert!(text.contains("seq 17"), "{text}");
        assert!(text.contains("entry-hash-mismatch"), "{text}");
        assert!(text.contains("changed after it was written"), "{text}");
        assert!(text.contains("from the store only"), "{text}");
    }
}
