//! The artifact registry engine: named, semver-versioned, immutable artifacts with verified
//! `sha256:` digests, persisted in the store.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ensemble_protocol::registry::*;
use ensemble_supervision::CancellationToken;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::unix_ms;
use crate::engine::{self, StoreBacked};
use crate::store::{Store, StoreError, Tree};
use crate::versioned::{VersionIndex, version_key};

/// The registry's answer to one request.
pub type Reply<T> = RpcReplyPort<Result<T, RegistryError>>;

/// Messages the registry actor handles.
#[derive(Debug)]
pub enum RegistryMsg {
    /// Store a version (answered once it is durable).
    Put(PutRequest, CancellationToken, Reply<PutResponse>),
    /// Read a version, verifying its digest.
    Get(GetRequest, CancellationToken, Reply<Artifact>),
    /// List artifacts.
    List(ListRequest, CancellationToken, Reply<ListResponse>),
    /// List one artifact's versions.
    Versions(VersionsRequest, CancellationToken, Reply<VersionsResponse>),
    /// Test-only: the actor panics while holding the call, to exercise supervision end to end.
    Crash(CrashRequest, CancellationToken, Reply<CrashResponse>),
}

/// The registry actor; its argument is the runtime's store.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryActor;

/// The registry's trees.
pub struct RegistryState {
    store: Store,
    artifacts: Tree,
    index: Tree,
}

/// One stored version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stored {
    digest: String,
    media_type: String,
    labels: BTreeMap<String, String>,
    json: bool,
    content: Vec<u8>,
    created_at_ms: u64,
}

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn store_err(e: StoreError) -> RegistryError {
    RegistryError::Store(e.to_string())
}

impl StoreBacked for RegistryState {
    type Error = RegistryError;

    /// Opens the registry's trees in `store`.
    fn open(store: Store) -> Result<Self, StoreError> {
        Ok(Self {
            artifacts: store.tree("registry.artifacts")?,
            index: store.tree("registry.index")?,
            store,
        })
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn store_error(e: StoreError) -> RegistryError {
        store_err(e)
    }
}

impl RegistryState {
    /// Writes a version; the caller makes it durable before answering.
    fn put(&self, req: PutRequest) -> Result<PutResponse, RegistryError> {
        validate_name(&req.name)?;
        let version = parse_version(&req.version)?.to_string();
        let (content, json, default_type) = match (&req.content, &req.content_base64) {
            (Some(v), None) => (
                serde_json::to_vec(v).map_err(|e| RegistryError::Store(e.to_string()))?,
                true,
                "application/json",
            ),
            (None, Some(b)) => (
                BASE64.decode(b).map_err(|e| RegistryError::InvalidBase64 {
                    reason: e.to_string(),
                })?,
                false,
                "application/octet-stream",
            ),
            _ => return Err(RegistryError::ContentChoice),
        };
        let digest = sha256(&content);
        let size = content.len() as u64;
        let key = version_key(&req.name, &version);
        let record = Stored {
            digest: digest.clone(),
            media_type: req.media_type.unwrap_or_else(|| default_type.to_string()),
            labels: req.labels,
            json,
            content,
            created_at_ms: unix_ms(),
        };
        let created = match self
            .artifacts
            .insert_new(&key, &record)
            .map_err(store_err)?
        {
            None => true,
            Some(existing) if existing.digest == digest => false,
            Some(existing) => {
                return Err(RegistryError::Immutable {
                    name: req.name,
                    version,
                    existing: existing.digest,
                });
            }
        };
        // The index is rebuilt on every put, so a put repeated after a crash between the two
        // writes repairs it.
        let mut index: VersionIndex = self
            .index
            .get(req.name.as_bytes())
            .map_err(store_err)?
            .unwrap_or_default();
        if index.add(&version) {
            self.index
                .insert(req.name.as_bytes(), &index)
                .map_err(store_err)?;
        }
        Ok(PutResponse {
            name: req.name,
            version,
            digest,
            size,
            created,
        })
    }

    fn versions_of(&self, name: &str) -> Result<VersionIndex, RegistryError> {
        self.index
            .get(name.as_bytes())
            .map_err(store_err)?
            .ok_or_else(|| RegistryError::NotFound {
                what: format!("artifact `{name}`"),
            })
    }

    fn read(&self, name: &str, version: &str) -> Result<Stored, RegistryError> {
        let stored: Stored = self
            .artifacts
            .get(&version_key(name, version))
            .map_err(store_err)?
            .ok_or_else(|| RegistryError::NotFound {
                what: format!("`{name}@{version}`"),
            })?;
        let actual = sha256(&stored.content);
        if actual != stored.digest {
            tracing::error!(name, version, "artifact failed its digest check");
            return Err(RegistryError::DigestMismatch {
                name: name.into(),
                version: version.into(),
                expected: stored.digest,
                actual,
            });
        }
        Ok(stored)
    }

    fn get(&self, req: GetRequest) -> Result<Artifact, RegistryError> {
        validate_name(&req.name)?;
        let version = match &req.version {
            Some(v) => parse_version(v)?.to_string(),
            None => {
                let index = self.versions_of(&req.name)?;
                index
                    .latest()
                    .cloned()
                    .ok_or_else(|| RegistryError::NotFound {
                        what: format!("artifact `{}`", req.name),
                    })?
            }
        };
        let stored = self.read(&req.name, &version)?;
        let (content, content_base64) = if stored.json {
            let value = serde_json::from_slice(&stored.content)
                .map_err(|e| RegistryError::Store(format!("stored JSON is unreadable: {e}")))?;
            (Some(value), None)
        } else {
            (None, Some(BASE64.encode(&stored.content)))
        };
        Ok(Artifact {
            name: req.name,
            version,
            digest: stored.digest,
            size: stored.content.len() as u64,
            media_type: stored.media_type,
            labels: stored.labels,
            content,
            content_base64,
            created_at_ms: stored.created_at_ms,
        })
    }

    fn list(
        &self,
        req: ListRequest,
        cancel: &CancellationToken,
    ) -> Result<ListResponse, RegistryError> {
        let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(RegistryError::InvalidLimit { limit });
        }
        let after = match &req.cursor {
            Some(c) => Some(decode_cursor(c)?),
            None => None,
        };
        let label = req.label.as_deref().map(|l| match l.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (l, None),
        });
        let prefix = req.prefix.unwrap_or_default();
        let mut items = Vec::new();
        let mut next_cursor = None;
        for entry in self
            .index
            .scan::<VersionIndex>(prefix.as_bytes(), after.as_deref())
        {
            if cancel.is_cancelled() {
                return Err(RegistryError::Store("the listing was cancelled".into()));
            }
            let (key, index) = entry.map_err(store_err)?;
            let name = String::from_utf8_lossy(&key).into_owned();
            let Some(latest) = index.latest() else {
                continue;
            };
            let stored = self.read(&name, latest)?;
            if let Some((k, v)) = label {
                match stored.labels.get(k) {
                    Some(have) if v.is_none_or(|v| v == have) => {}
                    _ => continue,
                }
            }
            if items.len() == limit as usize {
                next_cursor = items
                    .last()
                    .map(|s: &ArtifactSummary| encode_cursor(&s.name));
                break;
            }
            items.push(ArtifactSummary {
                name,
                latest: latest.clone(),
                digest: stored.digest,
                size: stored.content.len() as u64,
                media_type: stored.media_type,
                labels: stored.labels,
                versions: index.versions.len() as u32,
            });
        }
        Ok(ListResponse { items, next_cursor })
    }

    fn versions(&self, req: VersionsRequest) -> Result<VersionsResponse, RegistryError> {
        validate_name(&req.name)?;
        let index = self.versions_of(&req.name)?;
        Ok(VersionsResponse {
            name: req.name,
            versions: index.versions,
        })
    }
}

fn encode_cursor(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(cursor: &str) -> Result<Vec<u8>, RegistryError> {
    if !cursor.len().is_multiple_of(2) || cursor.is_empty() {
        return Err(RegistryError::InvalidCursor);
    }
    (0..cursor.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&cursor[i..i + 2], 16).map_err(|_| RegistryError::InvalidCursor)
        })
        .collect()
}

impl Actor for RegistryActor {
    type Msg = RegistryMsg;
    type State = RegistryState;
    type Arguments = Store;

    async fn pre_start(
        &self,
        _: ActorRef<RegistryMsg>,
        store: Store,
    ) -> Result<RegistryState, ActorProcessingErr> {
        engine::open(store)
    }

    async fn handle(
        &self,
        _: ActorRef<RegistryMsg>,
        msg: RegistryMsg,
        state: &mut RegistryState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RegistryMsg::Put(req, cancel, reply) => {
                engine::mutate(state, &cancel, reply, |s| s.put(req))
            }
            RegistryMsg::Get(req, _, reply) => engine::read(reply, state.get(req)),
            RegistryMsg::List(req, cancel, reply) => engine::read(reply, state.list(req, &cancel)),
            RegistryMsg::Versions(req, _, reply) => engine::read(reply, state.versions(req)),
            RegistryMsg::Crash(req, _, _reply) => {
                panic!("registry told to crash: {}", req.reason);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(name: &str, version: &str, content: serde_json::Value) -> PutRequest {
        PutRequest {
            name: name.into(),
            version: version.into(),
            content: Some(content),
            content_base64: None,
            media_type: None,
            labels: BTreeMap::new(),
        }
    }

    fn state() -> RegistryState {
        RegistryState::open(Store::temporary().unwrap()).unwrap()
    }

    #[test]
    fn versions_are_immutable_and_identical_puts_are_idempotent() {
        let s = state();
        let first = s.put(put("a", "1.0.0", json!({"x": 1}))).unwrap();
        assert!(first.created);
        assert!(first.digest.starts_with("sha256:") && first.digest.len() == 71);
        let again = s.put(put("a", "1.0.0", json!({"x": 1}))).unwrap();
        assert!(!again.created);
        assert_eq!(again.digest, first.digest);
        let err = s.put(put("a", "1.0.0", json!({"x": 2}))).unwrap_err();
        assert!(matches!(err, RegistryError::Immutable { .. }));
        assert!(
            err.to_string()
                .contains("publish the new content under a new version")
        );
        // The stored content is untouched.
        let got = s
            .get(GetRequest {
                name: "a".into(),
                version: Some("1.0.0".into()),
            })
            .unwrap();
        assert_eq!(got.content, Some(json!({"x": 1})));
    }

    #[test]
    fn latest_prefers_the_highest_release() {
        let s = state();
        for v in ["1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1"] {
            s.put(put("a", v, json!(v))).unwrap();
        }
        let got = s
            .get(GetRequest {
                name: "a".into(),
                version: None,
            })
            .unwrap();
        assert_eq!(got.version, "1.10.0");
        let v = s.versions(VersionsRequest { name: "a".into() }).unwrap();
        assert_eq!(v.versions, ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"]);
        s.put(put("pre", "0.1.0-alpha", json!(1))).unwrap();
        s.put(put("pre", "0.1.0-beta", json!(2))).unwrap();
        let got = s
            .get(GetRequest {
                name: "pre".into(),
                version: None,
            })
            .unwrap();
        assert_eq!(got.version, "0.1.0-beta");
    }

    #[test]
    fn bytes_round_trip_as_base64() {
        let s = state();
        let mut req = put("blob", "1.0.0", json!(null));
        req.content = None;
        req.content_base64 = Some(BASE64.encode([0u8, 159, 146, 150]));
        let r = s.put(req).unwrap();
        assert_eq!(r.size, 4);
        let got = s
            .get(GetRequest {
                name: "blob".into(),
                version: None,
            })
            .unwrap();
        assert_eq!(got.content_base64.as_deref(), Some("AJ+Slg=="));
        assert_eq!(got.media_type, "application/octet-stream");
    }

    #[test]
    fn bad_input_says_what_to_fix() {
        let s = state();
        assert!(matches!(
            s.put(put("/bad", "1.0.0", json!(1))),
            Err(RegistryError::InvalidName { .. })
        ));
        let err = s.put(put("a", "1.0", json!(1))).unwrap_err();
        assert!(
            err.to_string().contains("is not a semantic version"),
            "{err}"
        );
        let mut both = put("a", "1.0.0", json!(1));
        both.content_base64 = Some("AA==".into());
        assert_eq!(s.put(both).unwrap_err(), RegistryError::ContentChoice);
        let mut bad = put("a", "1.0.0", json!(1));
        bad.content = None;
        bad.content_base64 = Some("not base64!".into());
        assert!(matches!(
            s.put(bad),
            Err(RegistryError::InvalidBase64 { .. })
        ));
        let err = s
            .get(GetRequest {
                name: "nope".into(),
                version: None,
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("artifact `nope` not found"),
            "{err}"
        );
        assert!(matches!(
            s.list(
                ListRequest {
                    cursor: Some("zz".into()),
                    ..Default::default()
                },
                &CancellationToken::new()
            ),
            Err(RegistryError::InvalidCursor)
        ));
        assert!(matches!(
            s.list(
                ListRequest {
                    limit: Some(0),
                    ..Default::default()
                },
                &CancellationToken::new()
            ),
            Err(RegistryError::InvalidLimit { limit: 0 })
        ));
    }

    #[test]
    fn tampered_content_is_reported_never_served() {
        let s = state();
        s.put(put("a", "1.0.0", json!({"amount": 10}))).unwrap();
        let key = version_key("a", "1.0.0");
        let mut stored: Stored = s.artifacts.get(&key).unwrap().unwrap();
        stored.content = br#"{"amount":1000}"#.to_vec();
        s.artifacts.insert(&key, &stored).unwrap();
        let err = s
            .get(GetRequest {
                name: "a".into(),
                version: None,
            })
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::DigestMismatch { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("it is not served"));
    }

    #[test]
    fn listing_pages_by_name_and_filters_by_prefix_and_label() {
        let s = state();
        for i in 0..7 {
            let mut req = put(&format!("team/a{i}"), "1.0.0", json!(i));
            if i % 2 == 0 {
                req.labels.insert("tier".into(), "gold".into());
            }
            s.put(req).unwrap();
        }
        s.put(put("other", "1.0.0", json!(0))).unwrap();
        let cancel = CancellationToken::new();
        let mut names = Vec::new();
        let mut cursor = None;
        loop {
            let page = s
                .list(
                    ListRequest {
                        prefix: Some("team/".into()),
                        cursor,
                        limit: Some(3),
                        ..Default::default()
                    },
                    &cancel,
                )
                .unwrap();
            assert!(page.items.len() <= 3);
            names.extend(page.items.into_iter().map(|i| i.name));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(
            names,
            (0..7).map(|i| format!("team/a{i}")).collect::<Vec<_>>()
        );
        let gold = s
            .list(
                ListRequest {
                    label: Some("tier=gold".into()),
                    ..Default::default()
                },
                &cancel,
            )
            .unwrap();
        assert_eq!(gold.items.len(), 4);
        let any_tier = s
            .list(
                ListRequest {
                    label: Some("tier".into()),
                    ..Default::default()
                },
                &cancel,
            )
            .unwrap();
        assert_eq!(any_tier.items.len(), 4);
    }

    #[tokio::test]
    async fn the_actor_answers_puts_after_they_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (actor, handle) = Actor::spawn(None, RegistryActor, store.clone())
            .await
            .unwrap();
        let r = ractor::call!(actor, |reply| RegistryMsg::Put(
            put("a", "1.0.0", json!({"k": "v"})),
            CancellationToken::new(),
            reply
        ))
        .unwrap()
        .unwrap();
        assert!(r.created);
        assert!(store.flush_count() >= 1, "answered before any flush");
        actor.stop(None);
        handle.await.unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let s = RegistryState::open(store).unwrap();
        assert_eq!(
            s.get(GetRequest {
                name: "a".into(),
                version: None
            })
            .unwrap()
            .content,
            Some(json!({"k": "v"}))
        );
    }
}
