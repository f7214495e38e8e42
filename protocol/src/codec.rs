//! The one storage codec: every value persisted in sled goes through here.
//!
//! A stored value is one format-version byte followed by the value in bincode 2 (standard
//! configuration, through serde). A later change of format adds a version and a migration from
//! the older ones; a value of an unknown version is an error that names it, never a panic.
//!
//! ```
//! use ensemble_protocol::codec;
//!
//! let bytes = codec::encode(&("registry", 7u32)).unwrap();
//! assert_eq!(bytes[0], codec::FORMAT_VERSION);
//! let back: (String, u32) = codec::decode(&bytes).unwrap();
//! assert_eq!(back, ("registry".to_string(), 7));
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format version written in front of every value.
pub const FORMAT_VERSION: u8 = 1;

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be encoded.
    #[error("could not encode the value: {0}")]
    Encode(String),
    /// The stored bytes are empty: there is no version byte.
    #[error("the stored value is empty (no format version byte); the record is corrupt")]
    Empty,
    /// The stored value was written by a format this build does not know.
    #[error(
        "the stored value has format version {found}, this build reads up to version \
         {FORMAT_VERSION}; run a newer ensemble on this data directory"
    )]
    UnknownVersion {
        /// The version byte found.
        found: u8,
    },
    /// The bytes after the version byte are not a valid value.
    #[error("the stored value is corrupt: {0}")]
    Corrupt(String),
    /// The value decoded but left bytes unread.
    #[error("the stored value is corrupt: {extra} bytes after the value")]
    Trailing {
        /// Bytes left over.
        extra: usize,
    },
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Decodes `body` with a cap on what it may allocate, in proportion to its own size: a damaged
/// length prefix (six bytes on disk claiming a 2.4 GB string, found by `fuzz/` target
/// `codec`) is reported as corrupt instead of aborting the process. bincode checks the cap
/// before each allocation it sizes from the input; the cap is at least 64 times the body, far
/// above what a real value claims (a string or byte buffer claims its own length).
fn decode_limited<T: DeserializeOwned>(
    body: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    const MIB: usize = 1 << 20;
    match body.len() {
        n if n <= MIB => {
            bincode::serde::decode_from_slice(body, config().with_limit::<{ 64 * MIB }>())
        }
        n if n <= 16 * MIB => {
            bincode::serde::decode_from_slice(body, config().with_limit::<{ 1024 * MIB }>())
        }
        _ => bincode::serde::decode_from_slice(body, config().with_limit::<{ 16384 * MIB }>()),
    }
}

/// Encodes `value` with the current format version in front.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes a value written by [`encode`] (of this or an older supported format version).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    match version {
        FORMAT_VERSION => {
            let (value, read) =
                decode_limited(body).map_err(|e| CodecError::Corrupt(e.to_string()))?;
            if read != body.len() {
                return Err(CodecError::Trailing {
                    extra: body.len() - read,
                });
            }
            Ok(value)
        }
        found => Err(CodecError::UnknownVersion { found }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `codec` fuzz target: a damaged length claimed a 2.4 GB string from six
    /// bytes, and the allocation aborted the process.
    #[test]
    fn a_damaged_length_is_corrupt_not_an_allocation() {
        let bytes = [1u8, 252, 164, 254, 254, 141];
        let err = decode::<Vec<String>>(&bytes).expect_err("corrupt");
        assert!(matches!(err, CodecError::Corrupt(_)), "{err:?}");
        let err = decode::<String>(&bytes).expect_err("corrupt");
        assert!(matches!(err, CodecError::Corrupt(_)), "{err:?}");
        // Refused before allocating (without the cap the claim was granted, then the read ran
        // out of input).
        assert!(err.to_string().contains("Limit"), "{err}");
    }

    #[test]
    fn large_values_still_decode_under_the_cap() {
        let big = vec!["x".repeat(1000); 3000];
        let bytes = encode(&big).unwrap();
        assert!(bytes.len() > 1 << 20);
        assert_eq!(decode::<Vec<String>>(&bytes).unwrap(), big);
        let many_empty: Vec<Vec<u64>> = vec![Vec::new(); 200_000];
        assert_eq!(
            decode::<Vec<Vec<u64>>>(&encode(&many_empty).unwrap()).unwrap(),
            many_empty
        );
    }
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Artifact {
        name: String,
        version: (u64, u64, u64),
        labels: BTreeMap<String, String>,
        content: Vec<u8>,
        media_type: Option<String>,
    }

    fn sample() -> Artifact {
        Artifact {
            name: "schemas/order".into(),
            version: (1, 2, 3),
            labels: [("team".to_string(), "core".to_string())].into(),
            content: b"{\"a\":1}".to_vec(),
            media_type: None,
        }
    }

    #[test]
    fn round_trips_structured_values() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<Artifact>(&bytes).unwrap(), sample());
    }

    #[test]
    fn every_kind_of_damage_is_a_clear_error() {
        let bytes = encode(&sample()).unwrap();
        assert!(matches!(decode::<Artifact>(&[]), Err(CodecError::Empty)));

        let mut future = bytes.clone();
        future[0] = 9;
        let err = decode::<Artifact>(&future).unwrap_err();
        assert!(err.to_string().contains("format version 9"), "{err}");

        let truncated = &bytes[..bytes.len() - 3];
        assert!(matches!(
            decode::<Artifact>(truncated),
            Err(CodecError::Corrupt(_))
        ));

        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0, 0]);
        assert!(matches!(
            decode::<Artifact>(&longer),
            Err(CodecError::Trailing { extra: 2 })
        ));
    }
}
