//! Resources, prompts and completions served by actors through the [`Router`], the way tools
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
//! - [`Router::resource_updated`] tells every subscribed session that a resource changed
//!   (`notifications/resources/updated`).

use std::collections::BTreeMap;
use std::sync::Arc;

use ensemble_supervision::{ActorSlot, CallOptions, CancellationToken, PolicyError, RoutePolicy};
use ractor::{Message, RpcReplyPort};
use rmcp::model::{
    GetPromptResult, Prompt, PromptArgument, PromptMessage, Resource, ResourceContents,
    ResourceTemplate,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::router::{BoxFuture, RegisterError, Router, ask, schema_of};

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
    pub resources: Vec<Resource>,
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
    fn into_prompt(self) -> GetPromptResult;
}

impl IntoPrompt for GetPromptResult {
    fn into_prompt(self) -> GetPromptResult {
        self
    }
}

impl IntoPrompt for Vec<PromptMessage> {
    fn into_prompt(self) -> GetPromptResult {
        GetPromptResult::new(self)
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

type ReadHandler = dyn Fn(ReadResource, CancellationToken) -> BoxFuture<Result<Vec<ResourceContents>, ResourceError>>
    + Send
    + Sync;
type ListHandler = dyn Fn(ListResources, CancellationToken) -> BoxFuture<Result<ResourcePage, ResourceError>>
    + Send
    + Sync;
type PromptHandler = dyn Fn(Map<String, Value>, CancellationToken) -> BoxFuture<Result<GetPromptResult, PromptError>>
    + Send
    + Sync;
type CompleteHandler =
    dyn Fn(Complete, CancellationToken) -> BoxFuture<Result<Vec<String>, String>> + Send + Sync;

pub(crate) struct ResourceRoute {
    pub(crate) uri: String,
    pattern: Option<Vec<Part>>,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) mime_type: Option<String>,
    read: Arc<ReadHandler>,
}

pub(crate) struct PromptRoute {
    pub(crate) prompt: Prompt,
    get: Arc<PromptHandler>,
}

/// Everything besides tools that the router serves.
pub(crate) struct Catalog {
    resources: Vec<Arc<ResourceRoute>>,
    lists: Vec<(String, Arc<ListHandler>)>,
    prompts: BTreeMap<String, Arc<PromptRoute>>,
    completions: BTreeMap<CompletionTarget, Arc<CompleteHandler>>,
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
enum Part {
    Literal(String),
    Var(String),
}

/// The parts of a URI template; `None` for a plain URI.
fn parse_template(uri: &str) -> Result<Option<Vec<Part>>, RegisterError> {
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
fn match_template(parts: &[Part], uri: &str, vars: &mut BTreeMap<String, String>) -> bool {
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

fn read_options(cancel: CancellationToken) -> CallOptions {
    CallOptions {
        idempotent: true,
        timeout: None,
        cancel: Some(cancel),
    }
}

fn failed<E>(e: PolicyError<E>, engine: impl FnOnce(E) -> String) -> String
where
    E: std::fmt::Display,
{
    match e {
        PolicyError::Engine(e) => engine(e),
        other => other.to_string(),
    }
}

/// The argument list of a prompt whose request type has this schema.
fn prompt_arguments(schema: &Map<String, Value>) -> Vec<PromptArgument> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, prop)| {
                    let mut arg = PromptArgument::new(name.clone())
                        .with_required(required.contains(&name.as_str()));
                    if let Some(d) = prop.get("description").and_then(Value::as_str) {
                        arg = arg.with_description(d);
                    }
                    arg
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Router {
    /// Registers a resource (fixed URI) or resource template served by the actor in
    /// `resource.slot`: a read of a matching URI is sent as `make(read, cancel, reply)`.
    ///
    /// The actor answers `Result<R, E>`; `E` converts to a [`ResourceError`] (a `String`
    /// error is [`ResourceError::Failed`]).
    pub fn register_resource<M, R, E>(
        &self,
        resource: ActorResource<M>,
        make: fn(ReadResource, CancellationToken, RpcReplyPort<Result<R, E>>) -> M,
    ) -> Result<(), RegisterError>
    where
        M: Message,
        R: IntoContents,
        E: Into<ResourceError> + std::fmt::Display + Send + 'static,
    {
        let pattern = parse_template(resource.uri)?;
        let (slot, policy) = (resource.slot, resource.policy);
        let read = move |req: ReadResource,
                         cancel: CancellationToken|
              -> BoxFuture<Result<Vec<ResourceContents>, ResourceError>> {
            let (slot, policy) = (slot.clone(), policy.clone());
            Box::pin(async move {
                let uri = req.uri.clone();
                ask(&slot, &policy, read_options(cancel), move |c, reply| {
                    make(req.clone(), c.clone(), reply)
                })
                .await
                .map(|r| r.into_contents(&uri))
                .map_err(|e| match e {
                    PolicyError::Engine(e) => e.into(),
                    other => ResourceError::Failed(other.to_string()),
                })
            })
        };
        let route = ResourceRoute {
            uri: resource.uri.to_string(),
            pattern,
            name: resource.name.to_string(),
            description: resource.description.to_string(),
            mime_type: resource.mime_type.map(str::to_string),
            read: Arc::new(read),
        };
        let mut catalog = self.catalog_mut();
        if catalog.resources.iter().any(|r| r.uri == route.uri) {
            return Err(RegisterError::Duplicate(route.uri));
        }
        catalog.resources.push(Arc::new(route));
        Ok(())
    }

    /// Registers a resource list served by the actor in `list.slot`: each page of
    /// `resources/list` past the fixed resources is sent as `make(page, cancel, reply)`.
    pub fn register_resource_list<M, R, E>(
        &self,
        list: ActorResourceList<M>,
        make: fn(ListResources, CancellationToken, RpcReplyPort<Result<R, E>>) -> M,
    ) -> Result<(), RegisterError>
    where
        M: Message,
        R: IntoResourcePage,
        E: Into<ResourceError> + std::fmt::Display + Send + 'static,
    {
        let (slot, policy) = (list.slot, list.policy);
        let handler = move |req: ListResources,
                            cancel: CancellationToken|
              -> BoxFuture<Result<ResourcePage, ResourceError>> {
            let (slot, policy) = (slot.clone(), policy.clone());
            Box::pin(async move {
                ask(&slot, &policy, read_options(cancel), move |c, reply| {
                    make(req.clone(), c.clone(), reply)
                })
                .await
                .map(IntoResourcePage::into_page)
                .map_err(|e| match e {
                    PolicyError::Engine(e) => e.into(),
                    other => ResourceError::Failed(other.to_string()),
                })
            })
        };
        let mut catalog = self.catalog_mut();
        if catalog.lists.iter().any(|(n, _)| n == list.name) {
            return Err(RegisterError::Duplicate(list.name.to_string()));
        }
        catalog
            .lists
            .push((list.name.to_string(), Arc::new(handler)));
        Ok(())
    }

    /// Registers a prompt served by the actor in `prompt.slot`: `prompts/get` decodes the
    /// client's arguments into `Req` (whose fields are the prompt's arguments, all strings in
    /// MCP) and sends `make(req, cancel, reply)`.
    pub fn register_prompt<M, Req, R, E>(
        &self,
        prompt: ActorPrompt<M>,
        make: fn(Req, CancellationToken, RpcReplyPort<Result<R, E>>) -> M,
    ) -> Result<(), RegisterError>
    where
        M: Message,
        Req: DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static,
        R: IntoPrompt,
        E: std::fmt::Display + Send + 'static,
    {
        if !crate::router::valid_name(prompt.name) {
            return Err(RegisterError::InvalidName(prompt.name.to_string()));
        }
        let arguments = prompt_arguments(&schema_of::<Req>());
        let mut listed = Prompt::new(prompt.name, Some(prompt.description), None);
        if !arguments.is_empty() {
            listed.arguments = Some(arguments);
        }
        let (slot, policy, name) = (prompt.slot, prompt.policy, prompt.name);
        let get = move |args: Map<String, Value>,
                        cancel: CancellationToken|
              -> BoxFuture<Result<GetPromptResult, PromptError>> {
            let (slot, policy) = (slot.clone(), policy.clone());
            Box::pin(async move {
                let req: Req = serde_json::from_value(Value::Object(args)).map_err(|e| {
                    PromptError::InvalidArguments {
                        prompt: name.to_string(),
                        message: e.to_string(),
                    }
                })?;
                ask(&slot, &policy, read_options(cancel), move |c, reply| {
                    make(req.clone(), c.clone(), reply)
                })
                .await
                .map(IntoPrompt::into_prompt)
                .map_err(|e| PromptError::Failed(failed(e, |e| e.to_string())))
            })
        };
        let mut catalog = self.catalog_mut();
        if catalog.prompts.contains_key(name) {
            return Err(RegisterError::Duplicate(name.to_string()));
        }
        catalog.prompts.insert(
            name.to_string(),
            Arc::new(PromptRoute {
                prompt: listed,
                get: Arc::new(get),
            }),
        );
        Ok(())
    }

    /// Registers the completion of a prompt's arguments or a template's variables, served by
    /// the actor in `completion.slot` as `make(complete, cancel, reply)`; the actor answers
    /// the candidate values, best first.
    pub fn register_completion<M, E>(
        &self,
        completion: ActorCompletion<M>,
        make: fn(Complete, CancellationToken, CompletionReply<E>) -> M,
    ) -> Result<(), RegisterError>
    where
        M: Message,
        E: std::fmt::Display + Send + 'static,
    {
        let (slot, policy) = (completion.slot, completion.policy);
        let handler = move |req: Complete,
                            cancel: CancellationToken|
              -> BoxFuture<Result<Vec<String>, String>> {
            let (slot, policy) = (slot.clone(), policy.clone());
            Box::pin(async move {
                ask(&slot, &policy, read_options(cancel), move |c, reply| {
                    make(req.clone(), c.clone(), reply)
                })
                .await
                .map_err(|e| failed(e, |e| e.to_string()))
            })
        };
        let mut catalog = self.catalog_mut();
        if catalog.completions.contains_key(&completion.target) {
            let name = match completion.target {
                CompletionTarget::Prompt(n) | CompletionTarget::ResourceTemplate(n) => n,
            };
            return Err(RegisterError::Duplicate(name));
        }
        catalog
            .completions
            .insert(completion.target, Arc::new(handler));
        Ok(())
    }

    /// Tells every session subscribed to `uri` that the resource changed
    /// (`notifications/resources/updated`).
    pub fn resource_updated(&self, uri: impl Into<String>) {
        let _ = self.catalog().updated.send(uri.into());
    }

    /// A receiver of the URIs passed to [`Router::resource_updated`].
    pub fn subscribe_resource_updates(&self) -> broadcast::Receiver<String> {
        self.catalog().updated.subscribe()
    }

    /// The fixed resources, in registration order.
    pub fn resources(&self) -> Vec<Resource> {
        self.catalog()
            .resources
            .iter()
            .filter(|r| r.pattern.is_none())
            .map(|r| {
                let mut res =
                    Resource::new(r.uri.clone(), r.name.clone()).with_description(&r.description);
                if let Some(m) = &r.mime_type {
                    res = res.with_mime_type(m);
                }
                res
            })
            .collect()
    }

    /// The resource templates, in registration order.
    pub fn resource_templates(&self) -> Vec<ResourceTemplate> {
        self.catalog()
            .resources
            .iter()
            .filter(|r| r.pattern.is_some())
            .map(|r| {
                let mut t = ResourceTemplate::new(r.uri.clone(), r.name.clone())
                    .with_description(&r.description);
                if let Some(m) = &r.mime_type {
                    t = t.with_mime_type(m);
                }
                t
            })
            .collect()
    }

    /// Whether a registered resource or template serves `uri`.
    pub fn serves_resource(&self, uri: &str) -> bool {
        self.resource_route(uri).is_some()
    }

    fn resource_route(&self, uri: &str) -> Option<(Arc<ResourceRoute>, BTreeMap<String, String>)> {
        let catalog = self.catalog();
        if let Some(r) = catalog
            .resources
            .iter()
            .find(|r| r.pattern.is_none() && r.uri == uri)
        {
            return Some((r.clone(), BTreeMap::new()));
        }
        catalog.resources.iter().find_map(|r| {
            let parts = r.pattern.as_ref()?;
            let mut vars = BTreeMap::new();
            match_template(parts, uri, &mut vars).then(|| (r.clone(), vars))
        })
    }

    /// Reads the resource at `uri` from the actor that serves it.
    pub async fn read_resource(
        &self,
        uri: &str,
        cancel: CancellationToken,
    ) -> Result<Vec<ResourceContents>, ResourceError> {
        let (route, variables) = self.resource_route(uri).ok_or_else(|| {
            ResourceError::NotFound(format!(
                "no resource at {uri}; resources/list and resources/templates/list show what this server has"
            ))
        })?;
        (route.read)(
            ReadResource {
                uri: uri.to_string(),
                variables,
            },
            cancel,
        )
        .await
    }

    /// One page of `resources/list`: the fixed resources, then each resource list's pages in
    /// registration order. `cursor` is the previous page's `next_cursor`.
    pub async fn list_resources(
        &self,
        cursor: Option<&str>,
        cancel: CancellationToken,
    ) -> Result<ResourcePage, ResourceError> {
        let lists = self.catalog().lists.clone();
        // A cursor is `<list index>:<that list's cursor>`, the list's cursor empty for its start.
        let (mut index, mut inner, mut resources) = match cursor {
            None => (0, None, self.resources()),
            Some(c) => {
                let (i, rest) = c
                    .split_once(':')
                    .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)))
                    .filter(|(i, _)| *i < lists.len())
                    .ok_or_else(|| ResourceError::NotFound(format!("invalid cursor {c:?}")))?;
                (i, (!rest.is_empty()).then(|| rest.to_string()), Vec::new())
            }
        };
        while let Some((_, list)) = lists.get(index) {
            let page = list(ListResources { cursor: inner }, cancel.clone()).await?;
            resources.extend(page.resources);
            if let Some(next) = page.next_cursor {
                return Ok(ResourcePage {
                    resources,
                    next_cursor: Some(format!("{index}:{next}")),
                });
            }
            index += 1;
            inner = None;
        }
        Ok(ResourcePage {
            resources,
            next_cursor: None,
        })
    }

    /// Every prompt, ordered by name.
    pub fn prompts(&self) -> Vec<Prompt> {
        self.catalog()
            .prompts
            .values()
            .map(|p| p.prompt.clone())
            .collect()
    }

    /// Gets prompt `name` with the client's `arguments` from the actor that serves it.
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: Map<String, Value>,
        cancel: CancellationToken,
    ) -> Result<GetPromptResult, PromptError> {
        let route = self
            .catalog()
            .prompts
            .get(name)
            .cloned()
            .ok_or_else(|| PromptError::UnknownPrompt(name.to_string()))?;
        (route.get)(arguments, cancel).await
    }

    /// Completion candidates for `req`; none when nothing completes that target.
    pub async fn complete(
        &self,
        req: Complete,
        cancel: CancellationToken,
    ) -> Result<Vec<String>, String> {
        let handler = self.catalog().completions.get(&req.target).cloned();
        match handler {
            Some(h) => h(req, cancel).await,
            None => Ok(Vec::new()),
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
