//! The `ensemble` command.

use std::process::ExitCode;

const USAGE: &str = "\
usage: ensemble <command>

commands:
  serve      serve MCP over stdio (or Streamable HTTP with --http ADDR)
  version    print the version
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("version" | "--version" | "-V") => {
            println!("ensemble {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("serve") => {
            eprintln!(
                "ensemble serve: not yet — the MCP runtime is being built (issue 3); \
                 the supervision crate is ready: `cargo test --workspace`"
            );
            ExitCode::from(2)
        }
        Some("help" | "--help" | "-h") | None => {
            eprint!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("ensemble: unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
