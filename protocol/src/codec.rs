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
            let (value, read) = bincode::serde::decode_from_slice(body, config())
                .map_err(|e| CodecError::Corrupt(e.to_string()))?;
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
