//! The `ensemble` command.

mod cli;

use std::process::ExitCode;

/// The binary's allocator (mimalloc): under concurrent load glibc's malloc serialises threads on
/// its arena locks, and a server allocates on every request. It is built without transparent
/// huge pages (`no_thp`), and [`no_huge_pages`] keeps the kernel from using them anyway.
/// The `system-allocator` feature leaves glibc's malloc in place, for heap profilers that
/// hook it (heaptrack, valgrind).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process. mimalloc commits its arena eagerly; where
/// the kernel backs anonymous memory with huge pages (`/sys/kernel/mm/transparent_hugepage/enabled`
/// set to `always`), each region a thread touches first costs 2 MiB of resident memory instead
/// of a few 4 KiB pages: an idle server held ten times the memory its work needs. A server of
/// small requests gains nothing from huge pages worth that.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integer arguments only and changes a flag of this
    // process; a failure (an old kernel) leaves the default, which is harmless.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    no_huge_pages();
    cli::main()
}
