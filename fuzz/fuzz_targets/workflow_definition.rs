//! A workflow definition as a client sends it: parsed, then checked; problems, never a panic.
#![no_main]

use std::collections::BTreeSet;

use ensemble_protocol::workflow::{Definition, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(def) = serde_json::from_slice::<Definition>(bytes) {
        let params: BTreeSet<String> = ["x".to_string(), "name".to_string()].into();
        let _ = validate(&def, &params, |t| t.starts_with("registry_") || t == "noop");
    }
});
