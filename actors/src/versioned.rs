//! What the engines that keep named, semver-versioned, immutable records share: the record key,
//! the per-name version index, the choice of "latest", and answering a write once it is durable.

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// The key of `name@version`: the name, a NUL, the version (names cannot contain NUL).
pub fn version_key(name: &str, version: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + version.len() + 1);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.extend_from_slice(version.as_bytes());
    k
}

/// The versions stored under one name, kept in semver order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionIndex {
    /// Canonical version strings, lowest first.
    pub versions: Vec<String>,
}

impl VersionIndex {
    /// Adds `version` (a canonical semver string); false if it was already there.
    pub fn add(&mut self, version: &str) -> bool {
        if self.versions.iter().any(|v| v == version) {
            return false;
        }
        self.versions.push(version.to_string());
        self.versions
            .sort_by_key(|v| semver::Version::parse(v).ok());
        true
    }

    /// The highest release, or the highest pre-release when there is no release.
    pub fn latest(&self) -> Option<&String> {
        let parsed = |v: &String| semver::Version::parse(v).ok();
        self.versions
            .iter()
            .filter(|v| parsed(v).is_some_and(|p| p.pre.is_empty()))
            .max_by_key(|v| parsed(v))
            .or_else(|| self.versions.iter().max_by_key(|v| parsed(v)))
    }
}

/// Answers a write: a refusal at once; a success once every write made so far is durable,
/// without holding the actor's mailbox, so concurrent writes share one flush (group commit).
pub fn reply_when_durable<T, E>(
    store: &Store,
    reply: RpcReplyPort<Result<T, E>>,
    answer: Result<T, E>,
    on_error: fn(StoreError) -> E,
) where
    T: Send + 'static,
    E: Send + 'static,
{
    match answer {
        Ok(answer) => {
            let store = store.clone();
            tokio::spawn(async move {
                let _ = reply.send(store.flush().await.map(|_| answer).map_err(on_error));
            });
        }
        Err(refused) => {
            let _ = reply.send(Err(refused));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_prefers_the_highest_release() {
        let mut i = VersionIndex::default();
        for v in ["1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1"] {
            assert!(i.add(v));
        }
        assert!(!i.add("1.2.0"));
        assert_eq!(i.versions, ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"]);
        assert_eq!(i.latest().map(String::as_str), Some("1.10.0"));
        let mut pre = VersionIndex::default();
        pre.add("0.1.0-beta");
        pre.add("0.1.0-alpha");
        assert_eq!(pre.latest().map(String::as_str), Some("0.1.0-beta"));
    }
}
