//! The configuration file: read, checked and layered; problems that name the key, never a
//! panic.
#![no_main]

use std::io::Write;

use ensemble_runtime::config::{Sources, load};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if file.write_all(bytes).is_err() {
        return;
    }
    let sources = Sources {
        file: Some(file.path().to_path_buf()),
        ..Sources::default()
    };
    let _ = load(&sources);
});
