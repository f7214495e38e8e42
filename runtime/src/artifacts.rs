//! The registry's artifacts as MCP resources, served by the registry actor through the
//! router: one template, `ensemble://registry/{name}/{version}`, and a resource list of each
//! artifact's latest version.

use ensemble_actors::registry::RegistryMsg;
use ensemble_protocol::registry::{Artifact, GetRequest, ListRequest, ListResponse, RegistryError};
use ensemble_supervision::{ActorSlot, CancellationToken};
use ractor::RpcReplyPort;

use crate::config::default_policy;
use crate::router::catalog::{
    ActorResource, ActorResourceList, IntoContents, IntoResourcePage, ListResources, ReadResource,
    ResourceError, ResourcePage,
};
use crate::router::{RegisterError, ResourceContents, ResourceInfo, Router};

/// Artifacts are resources at `ensemble://registry/{name}/{version}`.
pub const ARTIFACT_URI_PREFIX: &str = "ensemble://registry/";

/// The artifact template (a name may contain `/`: the version is the last segment).
pub const ARTIFACT_URI_TEMPLATE: &str = "ensemble://registry/{name}/{version}";

/// The resources/list page size asked of the registry.
const PAGE: u32 = 100;

/// Serves the artifacts in `registry` as resources of `router`.
pub fn register_artifact_resources(
    router: &Router,
    registry: &ActorSlot<RegistryMsg>,
) -> Result<(), RegisterError> {
    router.register_resource(
        ActorResource {
            uri: ARTIFACT_URI_TEMPLATE,
            name: "registry artifact",
            description: "One version of an artifact in the registry; content verified against its digest.",
            mime_type: None,
            slot: registry.clone(),
            policy: default_policy("registry_resources_read"),
        },
        read,
    )?;
    router.register_resource_list(
        ActorResourceList {
            name: "registry",
            slot: registry.clone(),
            policy: default_policy("registry_resources_list"),
        },
        list,
    )
}

fn read(
    req: ReadResource,
    cancel: CancellationToken,
    reply: RpcReplyPort<Result<Artifact, RegistryError>>,
) -> RegistryMsg {
    let var = |k: &str| req.variables.get(k).cloned().unwrap_or_default();
    let get = GetRequest {
        name: var("name"),
        version: Some(var("version")),
    };
    RegistryMsg::Get(get, cancel, reply)
}

fn list(
    req: ListResources,
    cancel: CancellationToken,
    reply: RpcReplyPort<Result<ListResponse, RegistryError>>,
) -> RegistryMsg {
    let list = ListRequest {
        cursor: req.cursor,
        limit: Some(PAGE),
        ..ListRequest::default()
    };
    RegistryMsg::List(list, cancel, reply)
}

impl From<RegistryError> for ResourceError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound { .. } => ResourceError::NotFound(e.to_string()),
            e => ResourceError::Failed(e.to_string()),
        }
    }
}

impl IntoContents for Artifact {
    fn into_contents(self, uri: &str) -> Vec<ResourceContents> {
        let contents = match (self.content, self.content_base64) {
            (Some(json), _) => ResourceContents::text(json.to_string(), uri),
            (None, Some(b64)) => ResourceContents::blob(b64, uri),
            (None, None) => ResourceContents::blob(String::new(), uri),
        };
        vec![contents.with_mime_type(self.media_type)]
    }
}

impl IntoResourcePage for ListResponse {
    fn into_page(self) -> ResourcePage {
        let resources = self
            .items
            .into_iter()
            .map(|a| {
                ResourceInfo::new(
                    format!("{ARTIFACT_URI_PREFIX}{}/{}", a.name, a.latest),
                    format!("{}@{}", a.name, a.latest),
                )
                .with_mime_type(a.media_type)
                .with_size(a.size)
                .with_description(format!(
                    "artifact {} version {} ({})",
                    a.name, a.latest, a.digest
                ))
            })
            .collect();
        ResourcePage {
            resources,
            next_cursor: self.next_cursor,
        }
    }
}
