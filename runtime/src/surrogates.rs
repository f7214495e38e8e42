//! JSON text that escapes a lone UTF-16 surrogate (`"\ud800"`): the only way a JSON message can
//! carry text that is not valid Unicode, e.g. from a client that sliced a string in the middle
//! of a character or encoded arbitrary bytes. JSON's grammar allows such an escape, but the text
//! cannot be a Rust `String`, so serde refuses the whole message, and rmcp then drops it as
//! unparsable without an answer (as the other MCP SDKs do, to avoid error storms).
//!
//! The transports repair such escapes in place to `\ufffd` (U+FFFD REPLACEMENT CHARACTER, the
//! same six bytes long), which is what a lenient decoder such as `String::from_utf16_lossy`
//! does. The message then reaches its tool, which can answer with a clear error: the shell
//! tools refuse text holding U+FFFD, naming it. Valid surrogate pairs (`"\ud83d\ude00"`) and
//! escaped backslashes (`"\\ud800"` is the text `\ud800`) are left alone.

/// Whether `json` holds a `\u` escape of a code unit starting with `d` or `D`: a surrogate,
/// lone or paired. Cheap; [`repair`] looks closer only where this says yes.
pub fn may_hold_surrogate(json: &[u8]) -> bool {
    json.windows(3)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && (w[2] | 0x20) == b'd')
}

/// Repairs every lone surrogate escape in `json` in place; returns how many were repaired.
pub fn repair(json: &mut [u8]) -> usize {
    if !may_hold_surrogate(json) {
        return 0;
    }
    let mut repaired = 0;
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'\\' {
            i += 1;
            continue;
        }
        // An escape: `\` and the character after it.
        if json.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        let Some(unit) = code_unit(json, i) else {
            i += 2;
            continue;
        };
        match unit {
            0xD800..=0xDBFF => {
                // A high surrogate must be followed at once by an escaped low one.
                let paired = json.get(i + 6) == Some(&b'\\')
                    && json.get(i + 7) == Some(&b'u')
                    && code_unit(json, i + 6).is_some_and(|u| (0xDC00..=0xDFFF).contains(&u));
                if paired {
                    i += 12;
                } else {
                    json[i + 2..i + 6].copy_from_slice(b"fffd");
                    repaired += 1;
                    i += 6;
                }
            }
            0xDC00..=0xDFFF => {
                // A low surrogate not consumed as the second half of a pair.
                json[i + 2..i + 6].copy_from_slice(b"fffd");
                repaired += 1;
                i += 6;
            }
            _ => i += 6,
        }
    }
    repaired
}

/// The code unit of the `\uXXXX` escape at `at`, if it is one.
fn code_unit(json: &[u8], at: usize) -> Option<u16> {
    let hex = json.get(at + 2..at + 6)?;
    let text = std::str::from_utf8(hex).ok()?;
    u16::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(s: &str) -> (String, usize) {
        let mut b = s.as_bytes().to_vec();
        let n = repair(&mut b);
        (String::from_utf8(b).unwrap(), n)
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        assert_eq!(
            fixed(r#"{"a":"ls \ud800"}"#),
            (r#"{"a":"ls \ufffd"}"#.into(), 1)
        );
        assert_eq!(
            fixed(r#"{"a":"\uDC00x\uD800"}"#),
            (r#"{"a":"\ufffdx\ufffd"}"#.into(), 2)
        );
        // A high surrogate followed by a non-surrogate escape.
        assert_eq!(fixed(r#""\ud800\u0041""#), (r#""\ufffd\u0041""#.into(), 1));
        let (s, _) = fixed(r#"{"a":"ls \ud800"}"#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "ls \u{fffd}");
    }

    #[test]
    fn valid_text_is_left_alone() {
        for s in [
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":"\\ud800"}"#,
            r#"{"a":"\\\\\ud83d\ude00"}"#,
            r#"{"a":"plain é"}"#,
            r#"{"a":"\u0064"}"#,
        ] {
            assert_eq!(fixed(s), (s.to_string(), 0), "{s}");
        }
        // After an escaped backslash, `\ud800` is an escape again.
        assert_eq!(fixed(r#""\\\ud800""#), (r#""\\\ufffd""#.into(), 1));
    }
}
