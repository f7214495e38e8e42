//! The operator's controls: the runtime's mode (`normal`, `read_only`, `lockdown`), suspended
//! identities and revoked tokens, and disabled tools. Kept in the store (tree `governance`), so
//! they hold across restarts; read by every request from an in-memory snapshot, so they take
//! effect on the next one.
//!
//! A change is written and flushed before the snapshot moves: a control that is in effect is
//! durable. A store that cannot be read at start fails the start (fail closed).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use ensemble_actors::store::{Store, StoreError, Tree};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The tree the controls live in.
pub const TREE: &str = "governance";

/// What the runtime serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Everything the policy allows.
    #[default]
    Normal,
    /// Only tools annotated read-only run.
    ReadOnly,
    /// Only the break-glass identities may call anything.
    Lockdown,
}

impl Mode {
    /// Its name in the configuration and in answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::ReadOnly => "read_only",
            Mode::Lockdown => "lockdown",
        }
    }
}

/// Who changed a control, when and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    /// When (Unix milliseconds).
    pub since_ms: u64,
    /// The subject that changed it (`operator` for `ensemble admin`).
    pub by: String,
    /// Why, as given.
    pub reason: String,
}

/// The mode and its last change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ModeState {
    /// The mode.
    pub mode: Mode,
    /// Its last change (none for a runtime always in `normal`).
    pub change: Option<Change>,
}

/// What holds for one subject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubjectControl {
    /// Every request of the subject is refused.
    pub suspended: bool,
    /// Its tokens issued before this time (Unix seconds) are refused.
    pub revoke_before: Option<i64>,
    /// The last change.
    pub change: Change,
}

/// Every control at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Controls {
    /// The mode.
    pub mode: ModeState,
    /// Per subject.
    pub subjects: BTreeMap<String, SubjectControl>,
    /// Disabled tools, with why.
    pub disabled_tools: BTreeMap<String, Change>,
}

impl Controls {
    /// Whether the subject is suspended.
    pub fn suspended(&self, subject: &str) -> bool {
        self.subjects.get(subject).is_some_and(|s| s.suspended)
    }

    /// Whether a token of `subject` issued at `iat` (Unix seconds; `None` if the token says
    /// not) is revoked: a token without `iat` is revoked whenever a revocation exists.
    pub fn revoked(&self, subject: &str, iat: Option<i64>) -> bool {
        self.subjects
            .get(subject)
            .and_then(|s| s.revoke_before)
            .is_some_and(|before| iat.is_none_or(|iat| iat < before))
    }
}

/// The controls in the store, and their current snapshot.
pub struct ControlStore {
    store: Store,
    tree: Tree,
    current: RwLock<Arc<Controls>>,
    /// One change at a time (each reads, writes and swaps the whole snapshot).
    writing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ControlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlStore")
            .field("current", &self.snapshot())
            .finish()
    }
}

const MODE: &[u8] = b"mode";
const SUBJECT: &str = "subject/";
const TOOL: &str = "tool/";

impl ControlStore {
    /// Reads the controls from `store`.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let tree = store.tree(TREE)?;
        let mut controls = Controls::default();
        if let Some(mode) = tree.get::<ModeState>(MODE)? {
            controls.mode = mode;
        }
        for item in tree.scan::<SubjectControl>(SUBJECT.as_bytes(), None) {
            let (key, value) = item?;
            let subject = String::from_utf8_lossy(&key[SUBJECT.len()..]).into_owned();
            controls.subjects.insert(subject, value);
        }
        for item in tree.scan::<Change>(TOOL.as_bytes(), None) {
            let (key, value) = item?;
            let tool = String::from_utf8_lossy(&key[TOOL.len()..]).into_owned();
            controls.disabled_tools.insert(tool, value);
        }
        Ok(Self {
            store: store.clone(),
            tree,
            current: RwLock::new(Arc::new(controls)),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    /// The controls now.
    pub fn snapshot(&self) -> Arc<Controls> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn change(
        &self,
        write: impl FnOnce(&Tree) -> Result<(), StoreError>,
        apply: impl FnOnce(&mut Controls),
    ) -> Result<Arc<Controls>, StoreError> {
        let _one = self.writing.lock().await;
        write(&self.tree)?;
        self.store.flush().await?;
        let mut next = (*self.snapshot()).clone();
        apply(&mut next);
        let next = Arc::new(next);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        Ok(next)
    }

    /// Sets the mode (durable before it takes effect).
    pub async fn set_mode(&self, mode: Mode, change: Change) -> Result<Arc<Controls>, StoreError> {
        let state = ModeState {
            mode,
            change: Some(change),
        };
        let stored = state.clone();
        self.change(move |t| t.insert(MODE, &stored), move |c| c.mode = state)
            .await
    }

    /// Sets what holds for `subject`; `None` lifts everything.
    pub async fn set_subject(
        &self,
        subject: &str,
        control: Option<SubjectControl>,
    ) -> Result<Arc<Controls>, StoreError> {
        let key = format!("{SUBJECT}{subject}");
        let stored = control.clone();
        self.change(
            move |t| match &stored {
                Some(c) => t.insert(key.as_bytes(), c),
                None => t.remove(key.as_bytes()).map(|_| ()),
            },
            move |c| match control {
                Some(ctl) => {
                    c.subjects.insert(subject.to_string(), ctl);
                }
                None => {
                    c.subjects.remove(subject);
                }
            },
        )
        .await
    }

    /// Disables `tool` (`Some`) or enables it again (`None`).
    pub async fn set_tool(
        &self,
        tool: &str,
        disabled: Option<Change>,
    ) -> Result<Arc<Controls>, StoreError> {
        let key = format!("{TOOL}{tool}");
        let stored = disabled.clone();
        self.change(
            move |t| match &stored {
                Some(c) => t.insert(key.as_bytes(), c),
                None => t.remove(key.as_bytes()).map(|_| ()),
            },
            move |c| match disabled {
                Some(ch) => {
                    c.disabled_tools.insert(tool.to_string(), ch);
                }
                None => {
                    c.disabled_tools.remove(tool);
                }
            },
        )
        .await
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(by: &str) -> Change {
        Change {
            since_ms: 1,
            by: by.into(),
            reason: "test".into(),
        }
    }

    #[tokio::test]
    async fn controls_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let controls = ControlStore::open(&store).unwrap();
            controls
                .set_mode(Mode::Lockdown, change("admin"))
                .await
                .unwrap();
            controls
                .set_subject(
                    "mallory",
                    Some(SubjectControl {
                        suspended: true,
                        revoke_before: Some(100),
                        change: change("admin"),
                    }),
                )
                .await
                .unwrap();
            controls
                .set_tool("registry_put", Some(change("admin")))
                .await
                .unwrap();
            controls
                .set_tool("task_submit", Some(change("admin")))
                .await
                .unwrap();
            controls.set_tool("task_submit", None).await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let now = ControlStore::open(&store).unwrap().snapshot();
        assert_eq!(now.mode.mode, Mode::Lockdown);
        assert!(now.suspended("mallory"));
        assert!(now.revoked("mallory", Some(99)));
        assert!(!now.revoked("mallory", Some(100)));
        assert!(now.revoked("mallory", None));
        assert!(!now.revoked("alice", None));
        assert_eq!(
            now.disabled_tools.keys().collect::<Vec<_>>(),
            ["registry_put"]
        );
    }
}
