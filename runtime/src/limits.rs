//! What a client may send: the limits that hold under hostile input (`[server.limits]`).
//!
//! Every message is checked as bytes, before anything parses it: [`scan`] walks a JSON
//! text once, allocating nothing, and refuses one that nests deeper than
//! [`Limits::max_json_depth`], holds a string longer than [`Limits::max_string_bytes`] or an
//! array or object with more than [`Limits::max_items`] entries. So a message that is refused
//! costs one pass over its bytes, never the parsed tree it would have built (a 4 MiB body of
//! `[0,0,…]` parses into 64 MiB of values), and no code that walks a parsed value recursively
//! meets one deeper than the limit. Both transports apply it: Streamable HTTP to each request
//! body (after [`Limits::max_body_bytes`], which bounds the body itself), stdio to each line.
//!
//! The HTTP limits on connections and sessions are here too: how long a client may take to
//! send a request's header and its body, how many sessions may be open at once and how long
//! an idle one is kept.

use std::time::Duration;

/// Limits on what clients send. The defaults suit a server on a network; each is a key of
/// `[server.limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted over HTTP (413 above it).
    pub max_body_bytes: usize,
    /// Deepest nesting of arrays and objects in a message.
    pub max_json_depth: usize,
    /// Longest string in a message, in bytes as sent (escapes count as written).
    pub max_string_bytes: usize,
    /// Most items in one array, or members in one object.
    pub max_items: usize,
    /// Most Streamable HTTP sessions open at once; an `initialize` beyond it is refused
    /// (503) until one closes or expires.
    pub max_sessions: usize,
    /// A Streamable HTTP session that sent nothing for this long is closed (its client gets
    /// 404 and starts a new one, as the specification says).
    pub session_idle: Duration,
    /// How long a client may take to send a request's header before its connection is
    /// closed.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body (408 after it).
    pub body_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 << 20,
            max_json_depth: 64,
            // A whole file for the development learner (`protocol::development::MAX_FILE_BYTES`).
            max_string_bytes: 4 << 20,
            // Above the largest list a tool takes (the quality learner's 200,000 candidates).
            max_items: 1 << 18,
            max_sessions: 1000,
            session_idle: Duration::from_secs(30 * 60),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// A message over one of the [`Limits`]: what was exceeded, where, and the key that sets it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    /// Arrays and objects nested deeper than the limit.
    #[error(
        "the message nests arrays and objects more than {limit} deep (at byte {at}); flatten it, \
         or raise server.limits.max_json_depth"
    )]
    Depth {
        /// The limit.
        limit: usize,
        /// Where the level over the limit opens.
        at: usize,
    },
    /// A string longer than the limit.
    #[error(
        "the message holds a string over {limit} bytes (starting at byte {at}); send less, or \
         raise server.limits.max_string_bytes"
    )]
    String {
        /// The limit.
        limit: usize,
        /// Where the string starts.
        at: usize,
    },
    /// An array or object with more entries than the limit.
    #[error(
        "the message holds an array or object of more than {limit} entries (starting at byte \
         {at}); split it over several calls, or raise server.limits.max_items"
    )]
    Items {
        /// The limit.
        limit: usize,
        /// Where the array or object starts.
        at: usize,
    },
}

/// One open array or object: where it started and the entries seen so far.
#[derive(Clone, Copy)]
struct Open {
    at: usize,
    /// Separators seen: the entries are one more, once there is one.
    commas: usize,
}

/// Checks `json` against `limits` in one pass, before it is parsed. Bytes that are not JSON
/// pass unless they exceed a limit the way JSON would (the parser reports them after).
pub fn scan(json: &[u8], limits: &Limits) -> Result<(), Exceeded> {
    // The stack never grows past the depth limit: at most 8 bytes × 2 words per level.
    let mut open: Vec<Open> = Vec::with_capacity(limits.max_json_depth.min(64));
    let mut i = 0;
    let n = json.len();
    while i < n {
        match json[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < n {
                    match json[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                // The bytes between the quotes.
                let len = i.min(n).saturating_sub(start + 1);
                if len > limits.max_string_bytes {
                    return Err(Exceeded::String {
                        limit: limits.max_string_bytes,
                        at: start,
                    });
                }
            }
            b'[' | b'{' => {
                if open.len() >= limits.max_json_depth {
                    return Err(Exceeded::Depth {
                        limit: limits.max_json_depth,
                        at: i,
                    });
                }
                open.push(Open { at: i, commas: 0 });
            }
            b']' | b'}' => {
                open.pop();
            }
            b',' => {
                if let Some(top) = open.last_mut() {
                    top.commas += 1;
                    if top.commas >= limits.max_items {
                        return Err(Exceeded::Items {
                            limit: limits.max_items,
                            at: top.at,
                        });
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits {
            max_json_depth: 3,
            max_string_bytes: 5,
            max_items: 3,
            ..Limits::default()
        }
    }

    #[test]
    fn messages_within_the_limits_pass() {
        let ok: [&[u8]; 6] = [
            br#"{"a":[1,2,3],"b":{"c":"1234567890123456"}}"#,
            br#"[[[]]]"#,
            br#"{"s":"a\"\\"}"#,
            // Brackets, commas and braces inside strings are text.
            br#"{"s":"[[[[,,,,{{{{"}"#,
            b"",
            b"not json at all",
        ];
        let limits = Limits {
            max_string_bytes: 16,
            ..small()
        };
        for m in ok {
            assert_eq!(scan(m, &limits), Ok(()), "{}", String::from_utf8_lossy(m));
        }
    }

    #[test]
    fn each_limit_is_caught_where_it_is_exceeded() {
        let l = small();
        assert_eq!(
            scan(br#"{"a":[[[1]]]}"#, &l),
            Err(Exceeded::Depth { limit: 3, at: 7 })
        );
        assert_eq!(
            scan(br#"{"a":"123456"}"#, &l),
            Err(Exceeded::String { limit: 5, at: 5 })
        );
        // Escapes count as written: `\"` is two bytes.
        assert_eq!(
            scan(br#"{"a":"1234\""}"#, &l),
            Err(Exceeded::String { limit: 5, at: 5 })
        );
        assert_eq!(
            scan(br#"{"a":[1,2,3,4]}"#, &l),
            Err(Exceeded::Items { limit: 3, at: 5 })
        );
        assert_eq!(
            scan(br#"{"a":1,"b":2,"c":3,"d":4}"#, &l),
            Err(Exceeded::Items { limit: 3, at: 0 })
        );
        // Keys are strings too.
        assert_eq!(
            scan(br#"{"abcdef":1}"#, &l),
            Err(Exceeded::String { limit: 5, at: 1 })
        );
    }

    #[test]
    fn the_error_names_the_key_that_raises_the_limit() {
        let e = scan(&[b'['; 100], &Limits::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the message nests arrays and objects more than 64 deep (at byte 64); flatten it, or \
             raise server.limits.max_json_depth"
        );
    }

    #[test]
    fn an_unterminated_string_is_measured_to_the_end() {
        let mut m = b"{\"a\":\"".to_vec();
        m.extend(std::iter::repeat_n(b'x', 10));
        assert_eq!(
            scan(&m, &small()),
            Err(Exceeded::String { limit: 5, at: 5 })
        );
        // A trailing backslash does not read past the end.
        assert_eq!(scan(b"\"ab\\", &small()), Ok(()));
    }

    #[test]
    fn a_deep_message_is_refused_without_growing_the_stack_past_the_limit() {
        // A million levels: refused at the 65th.
        let deep = vec![b'['; 1_000_000];
        assert!(matches!(
            scan(&deep, &Limits::default()),
            Err(Exceeded::Depth { limit: 64, .. })
        ));
    }
}
