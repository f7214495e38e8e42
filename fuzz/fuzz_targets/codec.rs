//! The storage codec's decoding of bytes from disk: an error for damaged bytes, never a panic
//! or an allocation the input did not pay for.
#![no_main]

use std::collections::BTreeMap;

use ensemble_protocol::codec::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = decode::<(u64, String, Vec<u8>, Option<u32>)>(bytes);
    let _ = decode::<BTreeMap<String, Vec<u64>>>(bytes);
    let _ = decode::<Vec<(String, f64, bool)>>(bytes);
    let _ = decode::<ensemble_protocol::principal::Principal>(bytes);
});
