//! The router's resources, prompts and completions: registration, and the lookups the MCP
//! service makes (see [`super::catalog`]).

use crate::context::ToolContext;
use std::collections::BTreeMap;
use std::sync::Arc;

use ensemble_supervision::{CallOptions, CancellationToken, PolicyError};
use ractor::{Message, RpcReplyPort};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use super::Router;
use super::ask::{BoxFuture, ask};
use super::catalog::{
    ActorCompletion, ActorPrompt, ActorResource, ActorResourceList, Complete, CompletionReply,
    CompletionTarget, IntoContents, IntoPrompt, IntoResourcePage, ListResources, PromptArg,
    PromptError, PromptRoute, ReadResource, ResourceError, ResourcePage, ResourceRoute,
    match_template, parse_template,
};
use super::content::{PromptResult, ResourceContents, ResourceInfo};
use super::spec::{RegisterError, schema_of, valid_name};

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
fn prompt_arguments(schema: &Map<String, Value>) -> Vec<PromptArg> {
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
                .map(|(name, prop)| PromptArg {
                    name: name.clone(),
                    description: prop
                        .get("description")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    required: required.contains(&name.as_str()),
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

    /// Registers a resource (fixed URI) or resource template answered by `read` itself, for
    /// state the runtime keeps outside any actor (the governance's session records).
    pub fn register_resource_fn<F>(
        &self,
        uri: &'static str,
        name: &'static str,
        description: &'static str,
        mime_type: Option<&'static str>,
        read: F,
    ) -> Result<(), RegisterError>
    where
        F: Fn(
                ReadResource,
                CancellationToken,
            ) -> BoxFuture<Result<Vec<ResourceContents>, ResourceError>>
            + Send
            + Sync
            + 'static,
    {
        let route = ResourceRoute {
            uri: uri.to_string(),
            pattern: parse_template(uri)?,
            name: name.to_string(),
            description: description.to_string(),
            mime_type: mime_type.map(str::to_string),
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
        self.insert_prompt(
            prompt,
            move |req: Req, c: &CancellationToken, _: &ToolContext, reply| {
                make(req, c.clone(), reply)
            },
        )
    }

    /// Registers a prompt whose actor gets a [`ToolContext`] with each `prompts/get`, to ask
    /// the client for what the prompt needs (elicitation, sampling, roots): the message is
    /// `make(req, ctx, reply)`. A protocol 2026-07-28 client answers in input-required rounds
    /// (SEP-2322); for an older client the context is detached and such requests fail with
    /// [`ContextError::NoClient`](crate::context::ContextError::NoClient).
    pub fn register_prompt_with_context<M, Req, R, E>(
        &self,
        prompt: ActorPrompt<M>,
        make: fn(Req, ToolContext, RpcReplyPort<Result<R, E>>) -> M,
    ) -> Result<(), RegisterError>
    where
        M: Message,
        Req: DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static,
        R: IntoPrompt,
        E: std::fmt::Display + Send + 'static,
    {
        self.insert_prompt(
            prompt,
            move |req: Req, c: &CancellationToken, ctx: &ToolContext, reply| {
                make(req, ctx.with_cancel(c.clone()), reply)
            },
        )
    }

    fn insert_prompt<M, Req, R, E, F>(
        &self,
        prompt: ActorPrompt<M>,
        make: F,
    ) -> Result<(), RegisterError>
    where
        M: Message,
        Req: DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static,
        R: IntoPrompt,
        E: std::fmt::Display + Send + 'static,
        F: Fn(Req, &CancellationToken, &ToolContext, RpcReplyPort<Result<R, E>>) -> M
            + Copy
            + Send
            + Sync
            + 'static,
    {
        if !valid_name(prompt.name) {
            return Err(RegisterError::InvalidName(prompt.name.to_string()));
        }
        let arguments = prompt_arguments(&schema_of::<Req>());
        let (slot, policy, name) = (prompt.slot, prompt.policy, prompt.name);
        let get = move |args: Map<String, Value>,
                        cancel: CancellationToken,
                        ctx: ToolContext|
              -> BoxFuture<Result<PromptResult, PromptError>> {
            let (slot, policy) = (slot.clone(), policy.clone());
            Box::pin(async move {
                let req: Req = serde_json::from_value(Value::Object(args)).map_err(|e| {
                    PromptError::InvalidArguments {
                        prompt: name.to_string(),
                        message: e.to_string(),
                    }
                })?;
                ask(&slot, &policy, read_options(cancel), move |c, reply| {
                    make(req.clone(), c, &ctx, reply)
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
                name: name.to_string(),
                description: prompt.description.to_string(),
                arguments,
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
    pub fn resources(&self) -> Vec<ResourceInfo> {
        self.catalog()
            .resources
            .iter()
            .filter(|r| r.pattern.is_none())
            .map(|r| {
                let mut res = ResourceInfo::new(r.uri.clone(), r.name.clone())
                    .with_description(&r.description);
                if let Some(m) = &r.mime_type {
                    res = res.with_mime_type(m);
                }
                res
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

    /// Gets prompt `name` with the client's `arguments` from the actor that serves it.
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: Map<String, Value>,
        cancel: CancellationToken,
    ) -> Result<PromptResult, PromptError> {
        let route = self
            .catalog()
            .prompts
            .get(name)
            .cloned()
            .ok_or_else(|| PromptError::UnknownPrompt(name.to_string()))?;
        (route.get)(arguments, cancel.clone(), ToolContext::detached(cancel)).await
    }

    /// [`get_prompt`](Self::get_prompt) with a context through which the prompt's actor may
    /// ask the client (for prompts registered with
    /// [`register_prompt_with_context`](Self::register_prompt_with_context)).
    pub(crate) async fn get_prompt_with_context(
        &self,
        name: &str,
        arguments: Map<String, Value>,
        ctx: ToolContext,
    ) -> Result<PromptResult, PromptError> {
        let route = self
            .catalog()
            .prompts
            .get(name)
            .cloned()
            .ok_or_else(|| PromptError::UnknownPrompt(name.to_string()))?;
        (route.get)(arguments, ctx.cancellation().clone(), ctx).await
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
