//! The stdio transport's reading of one line: never a panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    let _ = ensemble_runtime::stdio::transport::decode(line);
});
