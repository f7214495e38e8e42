//! SKOS imports in every format: a parse error with its place, never a panic.
#![no_main]

use ensemble_actors::taxonomy::skos::parse;
use ensemble_protocol::taxonomy::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    for format in [Format::Turtle, Format::Rdfxml, Format::Json] {
        let _ = parse(format, text, Some("http://example.org/"), None);
    }
});
