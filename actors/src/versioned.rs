//! What the engines that keep named, semver-versioned, immutable records share: the record key,
//! the per-name version index and the choice of "latest". (Answering a write once it is durable
//! is part of every engine's shape: [`crate::engine`], re-exported here.)

use serde::{Deserialize, Serialize};

pub use crate::engine::reply_when_durable;

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
