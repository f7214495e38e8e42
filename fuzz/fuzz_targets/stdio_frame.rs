//! The stdio transport's reading of one line (the message limits, then the decoding): never a
//! panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    let limits = ensemble_runtime::limits::Limits::default();
    let _ = ensemble_runtime::stdio::transport::decode_within(line, &limits);
});
