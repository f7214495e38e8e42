//! Templates as a client registers them: parsed, checked and instantiated (including itself,
//! so include cycles and depth are exercised); problems, never a panic or a hang.
#![no_main]

use ensemble_protocol::template::Template;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|bytes: &[u8]| {
    let Ok(t) = serde_json::from_slice::<Template>(bytes) else {
        return;
    };
    let _ = t.check();
    let mut params = Map::new();
    params.insert("x".into(), Value::from(1));
    params.insert("name".into(), Value::from("n"));
    let same = t.clone();
    let _ = t.instantiate(&params, &|_, _| Some(same.clone()));
});
