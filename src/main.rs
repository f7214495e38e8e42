//! The `ensemble` command.

mod cli;

use std::process::ExitCode;

/// The binary's allocator (mimalloc): under concurrent load glibc's malloc serialises threads on
/// its arena locks, and a server allocates on every request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
