//! Governance at the edge: who is calling (bearer token, API key, the stdio identity), whether
//! they may use a tool, resource or prompt, and the HTTP side of the MCP authorization spec.
//!
//! With no `[governance]` configuration every caller is the local owner and may do everything
//! (the runtime as it always was). Once configured, it is deny by default: a caller may use
//! what one of its roles allows and none denies ([`ensemble_actors::governance::policy`]); a
//! hidden tool answers exactly as an unknown one.

pub mod controls;
pub mod http;
pub mod invoker;
pub mod limits;
pub mod sessions;
pub mod token;
pub mod tools;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use ensemble_actors::governance::audit::{AuditKind, AuditLog, AuditRecord};
use ensemble_actors::governance::policy::{Decision, Kind, Known, Policy, RoleSet, Rule};
use sha2::{Digest, Sha256};

use crate::config::governance::{Binding, GovernanceConfig};

tokio::task_local! {
    /// The caller of the tool call being served and the governance that judged it (set by
    /// the MCP handler around the router call), for tools that act as someone: the governance
    /// tools, and the ones that submit deferred work.
    static CALLER: (Identity, Governance);
}

/// Runs `f` as `who`'s call: [`current_caller`] inside it is `who`.
pub async fn with_caller<F: std::future::Future>(
    who: Identity,
    governance: Governance,
    f: F,
) -> F::Output {
    CALLER.scope((who, governance), f).await
}

/// The caller of the tool call being served, if there is one (none in a workflow step).
pub fn current_caller() -> Option<Identity> {
    CALLER.try_with(|(who, _)| who.clone()).ok()
}

/// The caller of the tool call being served and its governance (to carry into a spawned
/// task with [`with_caller`]).
pub fn current_call() -> Option<(Identity, Governance)> {
    CALLER.try_with(Clone::clone).ok()
}

/// Whose deferred work (queued tasks, workflow runs) the caller of the tool call being served
/// sees and acts on: `Some(subject)`, its own only; `None`, everyone's (no caller, an
/// ungoverned runtime, or a role in `governance.all_work_roles`).
pub fn work_owner() -> Option<String> {
    CALLER
        .try_with(|(who, governance)| governance.work_owner(who))
        .ok()
        .flatten()
}

/// The caller of the tool call being served as the submitter of deferred work (a run, a
/// task): `None` when there is no caller or it is the ungoverned owner.
pub fn current_principal() -> Option<ensemble_protocol::principal::Principal> {
    CALLER
        .try_with(|(who, governance)| governance.principal(who))
        .ok()
        .flatten()
}

/// The operator's identity in audit entries and control changes made on the machine.
pub const OPERATOR: &str = "operator";

/// Sets the mode as the operator (`ensemble admin mode`, the loopback admin endpoint): the
/// only way to lift read-only or lockdown. Durable and audited before it returns.
pub async fn set_mode_as_operator(
    governance: &Governance,
    mode: controls::Mode,
    reason: &str,
) -> Result<Arc<controls::Controls>, String> {
    let Some(store) = governance.control_store() else {
        return Err("this runtime is not governed: there is no mode to set".into());
    };
    let change = controls::Change {
        since_ms: controls::now_ms(),
        by: OPERATOR.into(),
        reason: reason.to_string(),
    };
    let operator = Identity {
        subject: OPERATOR.into(),
        source: Source::Stdio,
        roles: None,
        scopes: Arc::from(Vec::new()),
    };
    // On record first: a mode in effect is always in the audit log.
    governance
        .audit_change(
            &operator,
            &format!("mode set to {} ({reason})", mode.as_str()),
            None,
        )
        .await
        .map_err(|e| format!("the mode was not changed: the audit log: {e}"))?;
    let controls = store
        .set_mode(mode, change)
        .await
        .map_err(|e| format!("the mode was not changed ({e}); the audit log holds the attempt"))?;
    Ok(controls)
}

/// Sets the mode on a data directory no server holds (`ensemble admin mode --data-dir`), as
/// the operator: the audit log of that store is opened and the change recorded first (with
/// the configuration's audit settings: give the server's `--config`), then the mode is set.
pub async fn set_mode_offline(
    store: &ensemble_actors::store::Store,
    config: &crate::config::Config,
    mode: controls::Mode,
    reason: &str,
) -> Result<Arc<controls::Controls>, String> {
    let audit = &config.governance.audit;
    let log = AuditLog::open(store, &audit.node_id, audit.checkpoints()).map_err(|e| {
        format!(
            "the audit log cannot be opened ({e}); the mode was not changed (give the \
             server's configuration with --config)"
        )
    })?;
    let controls = controls::ControlStore::open(store)
        .map_err(|e| format!("the governance controls cannot be read: {e}"))?;
    let mut record = AuditRecord::new(AuditKind::Change, OPERATOR, "governance/change");
    record.detail = Some(format!("mode set to {} ({reason})", mode.as_str()));
    record.outcome = Some("ok".into());
    log.append(record)
        .await
        .map_err(|e| format!("the mode was not changed: the audit log: {e}"))?;
    let change = controls::Change {
        since_ms: controls::now_ms(),
        by: OPERATOR.into(),
        reason: reason.to_string(),
    };
    let now = controls
        .set_mode(mode, change)
        .await
        .map_err(|e| format!("the mode was not changed ({e}); the audit log holds the attempt"))?;
    log.close().await.map_err(|e| e.to_string())?;
    Ok(now)
}

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// No governance configured: the local owner, with every right.
    Owner,
    /// A stdio client, as `[governance.stdio]` names it.
    Stdio,
    /// A bearer JWT from this issuer.
    Token {
        /// The token's `iss`.
        issuer: Arc<str>,
    },
    /// A service account's API key.
    ApiKey,
    /// The submitter of a workflow run or a task, whose steps run with its rights.
    Submitter,
    /// An HTTP caller of a server that authenticates nobody (bindings to the subject
    /// `anonymous` give it roles).
    Anonymous,
}

/// Who is calling, and the roles they hold. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Identity {
    subject: Arc<str>,
    source: Source,
    /// `None` for the owner (ungoverned), else the caller's resolved roles.
    roles: Option<RoleSet>,
    scopes: Arc<[String]>,
}

impl Identity {
    /// The local owner of an ungoverned runtime: may do everything.
    pub fn owner() -> Self {
        Self {
            subject: "owner".into(),
            source: Source::Owner,
            roles: None,
            scopes: Arc::from(Vec::new()),
        }
    }

    /// The subject: a token's `sub`, `apikey:NAME`, the stdio subject, or `owner`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// How the caller authenticated.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The token's scopes (empty for other sources).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether this is the ungoverned owner.
    pub fn is_owner(&self) -> bool {
        self.roles.is_none()
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.subject)
    }
}

/// Why the governance configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    /// The roles or bindings are wrong (each problem on its own line).
    #[error("the governance configuration has problems:\n{0}")]
    Config(String),
    /// The issuer's keys could not be loaded.
    #[error(transparent)]
    Token(#[from] token::TokenError),
}

/// What [`Governance::admit`] says of a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// It may go ahead (and was counted against its limits).
    Allowed,
    /// The caller may not use it: it answers as an unknown tool. The rule that decided.
    Hidden(Rule),
    /// Over a rate limit.
    Limited(limits::Limited),
    /// Refused by the operator's controls: a suspended identity, lockdown or read-only mode.
    Refused(Refusal),
}

/// A call the operator's controls refuse, as the JSON-RPC error every transport answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// [`SUSPENDED`] or [`LOCKED`].
    pub code: i32,
    /// What holds and what to do.
    pub message: String,
}

/// JSON-RPC code of a call by a suspended identity (outside the ranges JSON-RPC and MCP reserve).
pub const SUSPENDED: i32 = 403;
/// JSON-RPC code of a call the runtime's mode refuses (lockdown, read-only).
pub const LOCKED: i32 = 423;

impl Refusal {
    fn suspended(who: &Identity, controls: &controls::Controls) -> Self {
        let why = controls
            .subjects
            .get(&*who.subject)
            .map(|s| format!(" by {} ({})", s.change.by, s.change.reason))
            .unwrap_or_default();
        Self {
            code: SUSPENDED,
            message: format!(
                "identity `{}` is suspended{why}; ask an administrator to lift it",
                who.subject
            ),
        }
    }

    fn mode(state: &controls::ModeState) -> Self {
        let why = state
            .change
            .as_ref()
            .map(|c| format!(" (set by {}: {})", c.by, c.reason))
            .unwrap_or_default();
        let message = match state.mode {
            controls::Mode::Lockdown => format!(
                "the runtime is in lockdown{why}: only break-glass identities may call tools; \
                 an operator lifts it with `ensemble admin mode normal`"
            ),
            _ => format!(
                "the runtime is read-only{why}: only read-only tools run; an operator lifts it \
                 with `ensemble admin mode normal`"
            ),
        };
        Self {
            code: LOCKED,
            message,
        }
    }

    /// The JSON-RPC error.
    pub fn to_error(&self) -> rmcp::ErrorData {
        rmcp::ErrorData::new(
            rmcp::model::ErrorCode(self.code),
            self.message.clone(),
            None,
        )
    }
}

/// A binding, resolved against the policy.
struct CompiledBinding {
    select: Select,
    roles: Vec<String>,
}

enum Select {
    Subject(String),
    ApiKey(String),
    Claim { name: String, value: String },
}

/// The governance of one runtime: the compiled policy and how identities get their roles.
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Governance(Arc<Inner>);

struct Inner {
    /// `None`: ungoverned.
    policy: Option<Policy>,
    /// The roles' rate limits (`None`: none configured).
    limits: Option<limits::Limits>,
    config: GovernanceConfig,
    bindings: Vec<CompiledBinding>,
    /// SHA-256 of each key → the account's name.
    api_keys: HashMap<[u8; 32], Arc<str>>,
    stdio: Identity,
    /// The operator's controls (mode, suspensions, disabled tools), once attached to a store.
    controls: Option<controls::ControlStore>,
    /// Whether a tool is annotated read-only (what `read_only` mode lets run).
    read_only: Option<ReadOnlyTools>,
    /// The tools governance itself answers (never in a fast lane: they need their caller).
    edge_tools: std::collections::HashSet<String>,
    /// The tamper-evident log of decisions, calls and changes, once attached to a store.
    audit: Option<AuditLog>,
    /// Sessions and their call history.
    sessions: sessions::SessionBook,
}

/// Tells a read-only tool from the others.
type ReadOnlyTools = Box<dyn Fn(&str) -> bool + Send + Sync>;

impl fmt::Debug for Governance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Governance")
            .field("governed", &self.is_governed())
            .finish()
    }
}

impl Default for Governance {
    fn default() -> Self {
        Self::ungoverned()
    }
}

impl Governance {
    /// No governance: every caller is the owner.
    pub fn ungoverned() -> Self {
        Self(Arc::new(Inner {
            policy: None,
            limits: None,
            controls: None,
            read_only: None,
            edge_tools: Default::default(),
            audit: None,
            sessions: sessions::SessionBook::new(sessions::Retention::default()),
            config: GovernanceConfig::default(),
            bindings: Vec::new(),
            api_keys: HashMap::new(),
            stdio: Identity::owner(),
        }))
    }

    /// Compiles `config` against the names the runtime serves; every problem at once.
    pub fn from_config(config: &GovernanceConfig, known: &Known) -> Result<Self, GovernanceError> {
        if !config.is_configured() {
            return Ok(Self::ungoverned());
        }
        let mut problems: Vec<String> = crate::config::governance::problems(config)
            .into_iter()
            .map(|(k, m)| format!("`{k}`: {m}"))
            .collect();
        let policy = match Policy::compile(&config.roles, known) {
            Ok(p) => Some(p),
            Err(ps) => {
                problems.extend(
                    ps.into_iter()
                        .map(|p| format!("`governance.{}`: {}", p.key, p.message)),
                );
                None
            }
        };
        let Some(policy) = policy.filter(|_| problems.is_empty()) else {
            return Err(GovernanceError::Config(problems.join("\n")));
        };
        let bindings = config.bindings.iter().filter_map(compile_binding).collect();
        let api_keys = config
            .api_keys
            .iter()
            .filter_map(|k| Some((hex32(&k.sha256)?, Arc::from(k.name.as_str()))))
            .collect();
        let limits = Some(limits::Limits::new(&policy)).filter(|l| !l.is_empty());
        let mut inner = Inner {
            controls: None,
            read_only: None,
            edge_tools: Default::default(),
            audit: None,
            sessions: sessions::SessionBook::new(config.sessions.retention()),
            limits,
            policy: Some(policy),
            config: config.clone(),
            bindings,
            api_keys,
            stdio: Identity::owner(),
        };
        inner.stdio = inner.resolve(
            config.stdio.subject.as_str().into(),
            Source::Stdio,
            Vec::new(),
            |b| matches!(&b.select, Select::Subject(s) if *s == config.stdio.subject),
            config.stdio.roles.iter().cloned(),
        );
        Ok(Self(Arc::new(inner)))
    }

    /// Whether a policy applies (else everyone is the owner).
    pub fn is_governed(&self) -> bool {
        self.0.policy.is_some()
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &GovernanceConfig {
        &self.0.config
    }

    /// Who a stdio client is.
    pub fn stdio_identity(&self) -> Identity {
        self.0.stdio.clone()
    }

    /// Nobody: no roles (the owner when ungoverned). What a request that names no caller
    /// gets where a caller is required.
    pub fn nobody(&self) -> Identity {
        self.0.resolve(
            "nobody".into(),
            Source::Anonymous,
            Vec::new(),
            |_| false,
            std::iter::empty(),
        )
    }

    /// Who an HTTP caller is when no credentials are configured: the subject `anonymous`,
    /// with the roles bindings to that subject grant (none by default).
    pub fn anonymous_identity(&self) -> Identity {
        self.0.resolve(
            "anonymous".into(),
            Source::Anonymous,
            Vec::new(),
            |b| matches!(&b.select, Select::Subject(s) if s == "anonymous"),
            std::iter::empty(),
        )
    }

    /// The identity of a service account presenting `key`, if it is one of the configured keys.
    pub fn api_key_identity(&self, key: &str) -> Option<Identity> {
        if self.0.api_keys.is_empty() {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let name = self.0.api_keys.get(&digest)?.clone();
        Some(self.0.resolve(
            format!("apikey:{name}").into(),
            Source::ApiKey,
            Vec::new(),
            |b| matches!(&b.select, Select::ApiKey(n) if **n == *name),
            std::iter::empty(),
        ))
    }

    /// The identity of a validated bearer token.
    pub fn token_identity(&self, claims: &token::TokenClaims) -> Identity {
        self.0.resolve(
            claims.subject.as_str().into(),
            Source::Token {
                issuer: claims.issuer.as_str().into(),
            },
            claims.scopes.clone(),
            |b| match &b.select {
                Select::Subject(s) => *s == claims.subject,
                Select::ApiKey(_) => false,
                Select::Claim { name, value } => claims.claim_contains(name, value),
            },
            std::iter::empty(),
        )
    }

    /// `who` as the submitter of deferred work: its subject and its roles' names (`None` for
    /// the owner of an ungoverned runtime).
    pub fn principal(&self, who: &Identity) -> Option<ensemble_protocol::principal::Principal> {
        let (policy, roles) = (self.0.policy.as_ref()?, who.roles.as_ref()?);
        Some(ensemble_protocol::principal::Principal {
            subject: who.subject.to_string(),
            roles: policy.role_names_of(roles),
        })
    }

    /// Whose deferred work `who` sees and acts on (see [`work_owner`]).
    pub fn work_owner(&self, who: &Identity) -> Option<String> {
        let principal = self.principal(who)?;
        let all = &self.0.config.all_work_roles;
        if principal.roles.iter().any(|r| all.contains(r)) {
            None
        } else {
            Some(principal.subject)
        }
    }

    /// The identity a submitter's deferred work runs as: its roles that still exist, decided
    /// by the policy in force now.
    pub fn identity_of(&self, principal: &ensemble_protocol::principal::Principal) -> Identity {
        let roles = self.0.policy.as_ref().map(|policy| {
            let names = principal.roles.iter().filter(|n| policy.has_role(n));
            policy
                .role_set(names)
                .or_else(|_| policy.role_set(Vec::<String>::new()))
        });
        Identity {
            subject: principal.subject.as_str().into(),
            source: Source::Submitter,
            roles: roles.and_then(Result::ok),
            scopes: Arc::from(Vec::new()),
        }
    }

    /// Whether `who` may use `name` (a tool, resource URI or prompt), and the rule that decided.
    pub fn decide(&self, who: &Identity, kind: Kind, name: &str) -> Decision {
        match (&self.0.policy, &who.roles) {
            (Some(policy), Some(roles)) => policy.decide(roles, kind, name),
            // The owner of an ungoverned runtime; or an owner identity minted before a policy
            // existed (embedding code): only the ungoverned runtime lets it through.
            (None, _) => Decision {
                allowed: true,
                rule: Rule::Allow {
                    role: "owner".into(),
                    pattern: "*".into(),
                },
                limits: Arc::from(Vec::new()),
            },
            (Some(_), None) => Decision {
                allowed: false,
                rule: Rule::Default,
                limits: Arc::from(Vec::new()),
            },
        }
    }

    /// Whether `who` may call `tool` now: hidden (not allowed), over a rate limit, or allowed
    /// (and counted against its limits).
    pub fn admit(&self, who: &Identity, tool: &str) -> Admission {
        if self.0.policy.is_none() {
            return Admission::Allowed;
        }
        let controls = self.controls();
        if controls.suspended(&who.subject) {
            return Admission::Refused(Refusal::suspended(who, &controls));
        }
        if controls.disabled_tools.contains_key(tool) {
            return Admission::Hidden(Rule::Default);
        }
        if controls.mode.mode == controls::Mode::Lockdown && !self.is_break_glass(who) {
            return Admission::Refused(Refusal::mode(&controls.mode));
        }
        let decision = self.decide(who, Kind::Tool, tool);
        if !decision.allowed {
            return Admission::Hidden(decision.rule);
        }
        // The controls themselves stay usable in read-only mode (to escalate to lockdown).
        if controls.mode.mode == controls::Mode::ReadOnly
            && !self.is_read_only(tool)
            && !self.is_edge_tool(tool)
        {
            return Admission::Refused(Refusal::mode(&controls.mode));
        }
        match &self.0.limits {
            Some(limits) if !decision.limits.is_empty() => {
                match limits.check(&who.subject, &decision.limits) {
                    Ok(()) => Admission::Allowed,
                    Err(limited) => Admission::Limited(limited),
                }
            }
            _ => Admission::Allowed,
        }
    }

    /// Whether `tool` shows in `who`'s `tools/list`: what [`admit`](Self::admit) would let
    /// through now, rate limits aside.
    pub fn shows_tool(&self, who: &Identity, tool: &str) -> bool {
        if self.0.policy.is_none() {
            return true;
        }
        let controls = self.controls();
        !controls.suspended(&who.subject)
            && !controls.disabled_tools.contains_key(tool)
            && (controls.mode.mode != controls::Mode::Lockdown || self.is_break_glass(who))
            && (controls.mode.mode != controls::Mode::ReadOnly
                || self.is_read_only(tool)
                || self.is_edge_tool(tool))
            && self.allows(who, Kind::Tool, tool)
    }

    /// Whether `who` may use the resource or prompt (or tool) `name` now: the policy, and the
    /// operator's controls (a suspended identity and, in lockdown, all but the break-glass
    /// identities use nothing; read-only mode leaves reads alone).
    pub fn may_use(&self, who: &Identity, kind: Kind, name: &str) -> bool {
        if self.0.policy.is_none() {
            return true;
        }
        if kind == Kind::Tool {
            return self.shows_tool(who, name);
        }
        let controls = self.controls();
        !controls.suspended(&who.subject)
            && (controls.mode.mode != controls::Mode::Lockdown || self.is_break_glass(who))
            && self.allows(who, kind, name)
    }

    /// The operator's controls now (all off when none are attached).
    pub fn controls(&self) -> Arc<controls::Controls> {
        match &self.0.controls {
            Some(c) => c.snapshot(),
            None => Arc::default(),
        }
    }

    /// The store of the controls, once attached.
    pub fn control_store(&self) -> Option<&controls::ControlStore> {
        self.0.controls.as_ref()
    }

    /// Whether `who` is one of the break-glass subjects (`governance.break_glass`).
    pub fn is_break_glass(&self, who: &Identity) -> bool {
        self.is_break_glass_subject(&who.subject)
    }

    /// Whether `subject` is one of the break-glass subjects.
    pub fn is_break_glass_subject(&self, subject: &str) -> bool {
        self.0.config.break_glass.iter().any(|s| s == subject)
    }

    /// Appends a governance change by `who` to the audit log (durable when it returns).
    pub async fn audit_change(
        &self,
        who: &Identity,
        what: &str,
        target: Option<&str>,
    ) -> Result<(), String> {
        let mut record = AuditRecord::new(AuditKind::Change, who.subject(), "governance/change");
        record.target = target.map(str::to_string);
        record.detail = Some(what.to_string());
        record.outcome = Some("ok".into());
        self.audit(record).await
    }

    /// Sessions and their call history (filled for a governed runtime).
    pub fn sessions(&self) -> &sessions::SessionBook {
        &self.0.sessions
    }

    /// The audit log, once attached.
    pub fn audit_log(&self) -> Option<&AuditLog> {
        self.0.audit.as_ref()
    }

    /// Appends `record`; answers once it is durable. No log attached: nothing to do.
    pub async fn audit(&self, record: AuditRecord) -> Result<(), String> {
        match &self.0.audit {
            Some(log) => log
                .append(record)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// Whether calls are audited (a governed runtime attached to its store).
    pub fn audits(&self) -> bool {
        self.0.audit.is_some()
    }

    /// Closes the audit log: a last signed checkpoint, then the writer stops.
    pub async fn close(&self) {
        if let Some(log) = &self.0.audit
            && let Err(e) = log.close().await
        {
            tracing::warn!(error = %e, "the audit log did not close cleanly");
        }
    }

    fn is_read_only(&self, tool: &str) -> bool {
        self.0.read_only.as_ref().is_some_and(|f| f(tool))
    }

    /// Whether governance answers `tool` itself (its caller matters: never in a fast lane).
    pub fn is_edge_tool(&self, tool: &str) -> bool {
        self.0.edge_tools.contains(tool)
    }

    /// Why a credential that authenticated is refused anyway: its subject is suspended, or
    /// the token was issued before a revocation (`iat`, Unix seconds).
    pub fn refuses_credential(&self, who: &Identity, iat: Option<i64>) -> Option<&'static str> {
        self.0.controls.as_ref()?;
        let controls = self.controls();
        if controls.suspended(&who.subject) {
            Some("this identity is suspended")
        } else if matches!(who.source, Source::Token { .. }) && controls.revoked(&who.subject, iat)
        {
            Some("this token was revoked")
        } else {
            None
        }
    }

    /// Attaches the operator's controls in `store` and what tells read-only tools; the
    /// runtime does this once, before serving. Fails (closed) if the controls cannot be read.
    pub fn attach(
        self,
        store: &ensemble_actors::store::Store,
        read_only: impl Fn(&str) -> bool + Send + Sync + 'static,
        edge_tools: impl IntoIterator<Item = String>,
    ) -> Result<Self, GovernanceError> {
        if self.0.policy.is_none() {
            return Ok(self);
        }
        let controls = controls::ControlStore::open(store).map_err(|e| {
            GovernanceError::Config(format!(
                "the governance controls in the store cannot be read ({e}); refusing to start \
                 without them"
            ))
        })?;
        let mut inner = Arc::try_unwrap(self.0).map_err(|_| {
            GovernanceError::Config("governance is already in use; attach it first".into())
        })?;
        let audit = AuditLog::open(
            store,
            &inner.config.audit.node_id,
            inner.config.audit.checkpoints(),
        )
        .map_err(|e| {
            GovernanceError::Config(format!(
                "the audit log cannot be opened ({e}); refusing to start without it"
            ))
        })?;
        inner.audit = Some(audit);
        inner.controls = Some(controls);
        inner.read_only = Some(Box::new(read_only));
        inner.edge_tools = edge_tools.into_iter().collect();
        Ok(Self(Arc::new(inner)))
    }

    /// Whether a call of `tool` by `who` would count against a rate limit.
    pub fn is_limited(&self, who: &Identity, tool: &str) -> bool {
        self.0.limits.is_some() && !self.decide(who, Kind::Tool, tool).limits.is_empty()
    }

    /// Drops idle rate-limit keys (the runtime calls it on a timer; memory stays bounded).
    pub fn retain_recent(&self) {
        if let Some(limits) = &self.0.limits {
            limits.retain_recent();
        }
    }

    /// Drops idle rate-limit keys every `every`, for as long as this governance is in use
    /// (the task ends once the last handle is gone). Needs a tokio runtime.
    pub fn spawn_retain(&self, every: std::time::Duration) {
        if self.0.limits.is_none() {
            return;
        }
        let weak = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(inner) => Governance(inner).retain_recent(),
                    None => return,
                }
            }
        });
    }

    /// Shorthand for [`decide`](Self::decide)`(..).allowed`.
    pub fn allows(&self, who: &Identity, kind: Kind, name: &str) -> bool {
        self.decide(who, kind, name).allowed
    }
}

impl Inner {
    /// The identity with the roles its bindings (and `extra`) grant.
    fn resolve(
        &self,
        subject: Arc<str>,
        source: Source,
        scopes: Vec<String>,
        binds: impl Fn(&CompiledBinding) -> bool,
        extra: impl Iterator<Item = String>,
    ) -> Identity {
        let Some(policy) = &self.policy else {
            return Identity::owner();
        };
        let mut names: Vec<String> = extra.collect();
        for b in self.bindings.iter().filter(|b| binds(b)) {
            names.extend(b.roles.iter().cloned());
        }
        // Every name was checked at load; an unknown one cannot occur, and grants nothing.
        names.retain(|n| policy.has_role(n));
        let roles = policy
            .role_set(&names)
            .or_else(|_| policy.role_set(Vec::<String>::new()))
            .ok();
        Identity {
            subject,
            source,
            roles,
            scopes: scopes.into(),
        }
    }
}

fn compile_binding(b: &Binding) -> Option<CompiledBinding> {
    let select = match (&b.subject, &b.api_key, &b.claim, &b.value) {
        (Some(s), None, None, _) => Select::Subject(s.clone()),
        (None, Some(k), None, _) => Select::ApiKey(k.clone()),
        (None, None, Some(name), Some(value)) => Select::Claim {
            name: name.clone(),
            value: value.clone(),
        },
        _ => return None,
    };
    Some(CompiledBinding {
        select,
        roles: b.roles.clone(),
    })
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> GovernanceConfig {
        toml::from_str(text).unwrap()
    }

    const TOOLS: &[&str] = &["registry_get", "registry_put", "registry_delete"];

    #[test]
    fn identities_get_the_roles_their_bindings_grant() {
        let key_hash = format!("{:x}", Sha256::digest(b"s3cret"));
        let g = Governance::from_config(
            &config(&format!(
                r#"
                [stdio]
                subject = "ops"
                [[roles]]
                name = "reader"
                tools = ["registry_get"]
                [[roles]]
                name = "writer"
                tools = ["registry_*"]
                deny_tools = ["registry_delete"]
                [[bindings]]
                subject = "ops"
                roles = ["writer"]
                [[bindings]]
                api_key = "bot"
                roles = ["reader"]
                [[api_keys]]
                name = "bot"
                sha256 = "{key_hash}"
                "#
            )),
            &Known::tools(TOOLS.iter().copied()),
        )
        .unwrap();
        let ops = g.stdio_identity();
        assert_eq!(ops.subject(), "ops");
        assert!(g.allows(&ops, Kind::Tool, "registry_put"));
        assert!(!g.allows(&ops, Kind::Tool, "registry_delete"));
        let bot = g.api_key_identity("s3cret").unwrap();
        assert_eq!(bot.subject(), "apikey:bot");
        assert!(g.allows(&bot, Kind::Tool, "registry_get"));
        assert!(!g.allows(&bot, Kind::Tool, "registry_put"));
        assert!(g.api_key_identity("s3cre").is_none());
        // The owner identity is not let through once a policy exists.
        assert!(!g.allows(&Identity::owner(), Kind::Tool, "registry_get"));
    }

    #[test]
    fn ungoverned_lets_everyone_do_everything() {
        let g = Governance::from_config(&GovernanceConfig::default(), &Known::default()).unwrap();
        assert!(!g.is_governed());
        assert!(g.allows(&g.stdio_identity(), Kind::Tool, "anything"));
    }

    #[test]
    fn a_bad_configuration_names_every_problem() {
        let err = Governance::from_config(
            &config(
                r#"
                [[roles]]
                name = "r"
                tools = ["registry_gte"]
                [[bindings]]
                subject = "a"
                roles = ["w"]
                "#,
            ),
            &Known::tools(TOOLS.iter().copied()),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`governance.bindings[0].roles`: there is no role `w`"),
            "{err}"
        );
        assert!(
            err.contains("`governance.roles[0].tools`: \"registry_gte\" matches no tool (did you mean `registry_get`?)"),
            "{err}"
        );
    }
}
