//! Link options of the `ensemble` binary.
//!
//! The code an idle server has run sits together: `src/startup.order` lists the functions that
//! `ensemble serve --http` runs from start to an idle, ready server, and the linker puts them
//! first in `.text`, in that order. Linux maps a file's pages 64 KiB around each page fault, and
//! the ~2 MiB of code a start runs was spread over 140 such windows of the 15 MiB of `.text`:
//! 8.2 MiB of the binary resident in an idle server, 2.5 MiB with the code grouped. The list
//! names symbols exactly, hashes included: after a toolchain or dependency update most names no
//! longer match and the binary is laid out as before, larger when idle but otherwise the same;
//! `benches/startup_order.sh` regenerates the list (see its header). The `ensemble` that
//! `cargo bench` or `cargo test` builds is another such build (dev-dependencies add features to
//! shared dependencies, which renames their symbols), which is why benches/footprint.rs measures
//! the release build.
//!
//! Only where the linker takes the option (lld: rustc's default linker on x86_64 Linux since
//! 1.90; GNU ld does not), which a probe finds out by linking an empty program with it.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/startup.order");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let order = manifest.join("src").join("startup.order");
    let args = [
        format!("-Wl,--symbol-ordering-file={}", order.display()),
        // Names missing from this build (see above) are expected, not worth a warning each.
        "-Wl,--no-warn-symbol-ordering".to_string(),
    ];
    if order.is_file() && linker_accepts(&args) {
        for arg in &args {
            println!("cargo:rustc-link-arg-bin=ensemble={arg}");
        }
    }
}

/// Whether the target's linker links an empty program with `args`.
fn linker_accepts(args: &[String]) -> bool {
    let (Some(out), Some(rustc), Ok(target)) = (
        env::var_os("OUT_DIR"),
        env::var_os("RUSTC"),
        env::var("TARGET"),
    ) else {
        return false;
    };
    let out = Path::new(&out);
    let src = out.join("probe.rs");
    if std::fs::write(&src, "fn main() {}\n").is_err() {
        return false;
    }
    let mut cmd = Command::new(rustc);
    cmd.arg("--target")
        .arg(&target)
        .arg("--crate-type=bin")
        .arg("-o")
        .arg(out.join("probe"))
        .arg(&src);
    // The flags and the linker the package is built with.
    if let Ok(flags) = env::var("CARGO_ENCODED_RUSTFLAGS") {
        cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    }
    if let Some(linker) = env::var_os("RUSTC_LINKER") {
        cmd.arg("-C")
            .arg(format!("linker={}", linker.to_string_lossy()));
    }
    for arg in args {
        cmd.arg("-C").arg(format!("link-arg={arg}"));
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
