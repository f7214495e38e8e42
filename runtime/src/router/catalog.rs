//! Resources, prompts and completions served by actors through the [`Router`](super::Router), the way tools
//! are: each registration names the owning actor's slot, the route's policy stack and a
//! function that builds the actor's typed message; the MCP service looks them up here.
//!
//! - A resource is a fixed URI (`test://static-text`, listed in `resources/list`) or a URI
//!   template (`test://template/{id}/data`, listed in `resources/templates/list`). A read of a
//!   matching URI becomes a [`ReadResource`] message with the template's variables.
//! - A resource list adds resources that only its actor knows (the registry's artifacts) to
//!   `resources/list`, page by page.
//! - A prompt's arguments are the fields of its typed request: `prompts/list` shows them, and
//!   `prompts/get` decodes the client's strings into the request.
//! - A completion answers `completion/complete` for one prompt argument or template variable.
//! - [`Router::resource_updated`](super::Router::resource_updated) tells every subscribed session that a resource changed
//!   (`notifications/resources/updated`).

use crate::context::ToolContext;
use std::collections::BTreeMap;
use std::sync::Arc;

use ensemble_supervision::{ActorSlot, CancellationToken, RoutePolicy};
use ractor::{Message, RpcReplyPort};
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use super::ask::BoxFuture;
use super::content::{PromptMessage, PromptResult, ResourceContents, ResourceInfo};
use super::spec::RegisterError;

/// A resource (fixed URI) or resource template served by an actor, before registration.
pub struct ActorResource<M: Message> {
    /// A URI, or a URI template whose `{variables}` each match one or more characters
    /// (longest match first, so `{name}/{version}` reads `a/b/1.0` as name `a/b`).
    pub uri: &'static str,
    /// A short name for people.
    pub name: &'static str,
    /// What it holds.
    pub description: &'static str,
    /// Its media type, when fixed.
    pub mime_type: Option<&'static str>,
    /// The owning actor's slot.
    pub slot: ActorSlot<M>,
    /// The route's policy stack (reads are retried: they change nothing).
    pub policy: RoutePolicy,
}

/// A read of one resource, as its actor receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResource {
    /// The URI the client asked for.
    pub uri: String,
    /// The template's variables, from the URI (empty for a fixed URI).
    pub variables: BTreeMap<String, String>,
}

/// Why a resource read or list failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// Nothing at that URI (JSON-RPC -32002).
    #[error("{0}")]
    NotFound(String),
    /// The actor or the runtime failed (JSON-RPC -32603).
    #[error("{0}")]
    Failed(String),
}

impl From<String> for ResourceError {
    fn from(message: String) -> Self {
        ResourceError::Failed(message)
    }
}

/// A reply a resource actor may answer a read with.
pub trait IntoContents: Send + 'static {
    /// The contents of the resource at `uri`.
    fn into_contents(self, uri: &str) -> Vec<ResourceContents>;
}

impl IntoContents for ResourceContents {
    fn into_contents(self, _uri: &str) -> Vec<ResourceContents> {
        vec![self]
    }
}

impl IntoContents for Vec<ResourceContents> {
    fn into_contents(self, _uri: &str) -> Vec<ResourceContents> {
        self
    }
}

/// A resource list served by an actor (resources known only at run time), before registration.
pub struct ActorResourceList<M: Message> {
    /// Names the list in errors and metrics.
    pub name: &'static str,
    /// The owning actor's slot.
    pub slot: ActorSlot<M>,
    /// The route's policy stack.
    pub policy: RoutePolicy,
}

/// A request for one page of a resource list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListResources {
    /// The cursor the previous page gave, `None` for the first page.
    pub cursor: Option<String>,
}

/// One page of resources.
#[derive(Debug, Clone, Default)]
pub struct ResourcePage {
    /// The resources on this page.
    pub resources: Vec<ResourceInfo>,
    /// The cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A reply a resource-list actor may answer with.
pub trait IntoResourcePage: Send + 'static {
    /// The page.
    fn into_page(self) -> ResourcePage;
}

impl IntoResourcePage for ResourcePage {
    fn into_page(self) -> ResourcePage {
        self
    }
}

/// A prompt served by an actor, before registration.
pub struct ActorPrompt<M: Message> {
    /// Its name.
    pub name: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// The owning actor's slot.
    pub slot: ActorSlot<M>,
    /// The route's policy stack.
    pub policy: RoutePolicy,
}

/// A reply a prompt actor may answer with.
pub trait IntoPrompt: Send + 'static {
    /// The prompt's messages (and description).
    fn into_prompt(self) -> PromptResult;
}

impl IntoPrompt for PromptResult {
    fn into_prompt(self) -> PromptResult {
        self
    }
}

impl IntoPrompt for Vec<PromptMessage> {
    fn into_prompt(self) -> PromptResult {
        PromptResult::new(self)
    }
}

/// Why a prompt could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// No prompt by that name (JSON-RPC -32602).
    #[error("unknown prompt `{0}`; prompts/list shows the prompts this server has")]
    UnknownPrompt(String),
    /// The arguments do not fit (JSON-RPC -32602).
    #[error("invalid arguments for prompt `{prompt}`: {message}")]
    InvalidArguments {
        /// The prompt.
        prompt: String,
        /// What to fix.
        message: String,
    },
    /// The actor or the runtime failed (JSON-RPC -32603).
    #[error("{0}")]
    Failed(String),
}

/// What a completion is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CompletionTarget {
    /// An argument of the prompt with this name.
    Prompt(String),
    /// A variable of the resource template with this URI template.
    ResourceTemplate(String),
}

/// A completion served by an actor, before registration.
pub struct ActorCompletion<M: Message> {
    /// The prompt or template whose arguments it completes.
    pub target: CompletionTarget,
    /// The owning actor's slot.
    pub slot: ActorSlot<M>,
    /// The route's policy stack.
    pub policy: RoutePolicy,
}

/// The reply port of a completion: the candidate values, best first.
pub type CompletionReply<E> = RpcReplyPort<Result<Vec<String>, E>>;

/// A `completion/complete` request, as the completing actor receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complete {
    /// The prompt or template.
    pub target: CompletionTarget,
    /// The argument (or template variable) being completed.
    pub argument: String,
    /// What the user typed so far.
    pub value: String,
    /// Arguments the user already filled in.
    pub context: BTreeMap<String, String>,
}

pub(super) type ReadHandler = dyn Fn(ReadResource, CancellationToken) -> BoxFuture<Result<Vec<ResourceContents>, ResourceError>>
    + Send
    + Sync;
pub(super) type ListHandler = dyn Fn(ListResources, CancellationToken) -> BoxFuture<Result<ResourcePage, ResourceError>>
    + Send
    + Sync;
pub(super) type PromptHandler = dyn Fn(
        Map<String, Value>,
        CancellationToken,
        ToolContext,
    ) -> BoxFuture<Result<PromptResult, PromptError>>
    + Send
    + Sync;
pub(super) type CompleteHandler =
    dyn Fn(Complete, CancellationToken) -> BoxFuture<Result<Vec<String>, String>> + Send + Sync;

pub(crate) struct ResourceRoute {
    pub(crate) uri: String,
    pub(super) pattern: Option<Vec<Part>>,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) mime_type: Option<String>,
    pub(super) read: Arc<ReadHandler>,
}

impl ResourceRoute {
    /// A URI template (listed in `resources/templates/list`), not a fixed URI.
    pub(crate) fn is_template(&self) -> bool {
        self.pattern.is_some()
    }
}

pub(crate) struct PromptRoute {
    pub(crate) name: String,
    pub(crate) description: String,
    /// The fields of the prompt's request, in schema order.
    pub(crate) arguments: Vec<PromptArg>,
    pub(super) get: Arc<PromptHandler>,
}

/// One argument of a prompt, as `prompts/list` shows it.
pub(crate) struct PromptArg {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) required: bool,
}

/// Everything besides tools that the router serves.
pub(crate) struct Catalog {
    pub(crate) resources: Vec<Arc<ResourceRoute>>,
    pub(super) lists: Vec<(String, Arc<ListHandler>)>,
    pub(crate) prompts: BTreeMap<String, Arc<PromptRoute>>,
    pub(super) completions: BTreeMap<CompletionTarget, Arc<CompleteHandler>>,
    pub(crate) updated: broadcast::Sender<String>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self {
            resources: Vec::new(),
            lists: Vec::new(),
            prompts: BTreeMap::new(),
            completions: BTreeMap::new(),
            updated: broadcast::Sender::new(256),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Part {
    Literal(String),
    Var(String),
}

/// The parts of a URI template; `None` for a plain URI.
pub(super) fn parse_template(uri: &str) -> Result<Option<Vec<Part>>, RegisterError> {
    if !uri.contains(['{', '}']) {
        return Ok(None);
    }
    let bad = || RegisterError::InvalidUri(uri.to_string());
    let mut parts = Vec::new();
    let mut rest = uri;
    while let Some(open) = rest.find('{') {
        let (lit, tail) = rest.split_at(open);
        if lit.contains('}') {
            return Err(bad());
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit.to_string()));
        }
        let close = tail.find('}').ok_or_else(bad)?;
        let name = &tail[1..close];
        if name.is_empty()
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || matches!(parts.last(), Some(Part::Var(_)))
        {
            // Two variables in a row cannot be told apart.
            return Err(bad());
        }
        parts.push(Part::Var(name.to_string()));
        rest = &tail[close + 1..];
    }
    if rest.contains('}') {
        return Err(bad());
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_string()));
    }
    Ok(Some(parts))
}

/// Matches `uri` against template `parts`; variables match one or more characters, longest
/// first.
pub(super) fn match_template(
    parts: &[Part],
    uri: &str,
    vars: &mut BTreeMap<String, String>,
) -> bool {
    match parts.split_first() {
        None => uri.is_empty(),
        Some((Part::Literal(lit), rest)) => uri
            .strip_prefix(lit.as_str())
            .is_some_and(|tail| match_template(rest, tail, vars)),
        Some((Part::Var(name), rest)) => {
            let ends: Vec<usize> = uri.char_indices().map(|(i, c)| i + c.len_utf8()).collect();
            for &end in ends.iter().rev() {
                if match_template(rest, &uri[end..], vars) {
                    vars.insert(name.clone(), uri[..end].to_string());
                    return true;
                }
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(template: &str, uri: &str) -> Option<BTreeMap<String, String>> {
        let parts = parse_template(template).unwrap().unwrap();
        let mut vars = BTreeMap::new();
        match_template(&parts, uri, &mut vars).then_some(vars)
    }

    #[test]
    fn templates_match_and_bind_their_variables() {
        let v = matches("test://template/{id}/data", "test://template/123/data").unwrap();
        assert_eq!(v["id"], "123");
        assert!(matches("test://template/{id}/data", "test://template//data").is_none());
        assert!(matches("test://template/{id}/data", "test://template/1/data/x").is_none());
        let v = matches(
            "ensemble://registry/{name}/{version}",
            "ensemble://registry/cfg/app/1.0.0",
        )
        .unwrap();
        assert_eq!(
            (v["name"].as_str(), v["version"].as_str()),
            ("cfg/app", "1.0.0")
        );
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in ["a://{", "a://}", "a://{}", "a://{a}{b}", "a://{a-b}"] {
            assert!(parse_template(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_template("a://plain").unwrap(), None);
    }
}
