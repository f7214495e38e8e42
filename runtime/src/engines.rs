//! The engines supervisor: each engine is a child actor published in a slot, and its tools are
//! routed to it.

use std::time::Duration;

use ensemble_actors::registry::{RegistryActor, RegistryMsg};
use ensemble_actors::store::Store;
use ensemble_actors::validation::{ValidationActor, ValidationMsg};
use ensemble_supervision::{
    ActorSlot, BreakerConfig, ChildSpec, EventBus, RetryPolicy, RoutePolicy, SupervisorSpec,
};

use crate::router::{ActorTool, Annotations, RegisterError, Router};

/// The slots of the built-in engines, for hosts that call them with typed messages.
#[derive(Debug, Clone)]
pub struct EngineSlots {
    /// The artifact registry.
    pub registry: ActorSlot<RegistryMsg>,
    /// JSON-schema validation.
    pub validation: ActorSlot<ValidationMsg>,
}

/// Per-route policy defaults: a bulkhead, a breaker, a deadline, and retries for idempotent
/// tools.
pub fn default_policy(route: &str) -> RoutePolicy {
    RoutePolicy::builder(route)
        .bulkhead(256)
        .breaker(BreakerConfig::default())
        .timeout(Duration::from_secs(30))
        .retry(RetryPolicy::default())
        .build()
}

/// The engines supervisor's spec and the slots of its children.
pub fn engines(store: &Store, events: &EventBus) -> (SupervisorSpec, EngineSlots) {
    let slots = EngineSlots {
        registry: ActorSlot::new("registry"),
        validation: ActorSlot::new("validation"),
    };
    let (s1, s2) = (store.clone(), store.clone());
    let spec = SupervisorSpec::new("engines")
        .events(events.clone())
        .child(ChildSpec::actor(&slots.registry, move || {
            (RegistryActor, s1.clone())
        }))
        .child(ChildSpec::actor(&slots.validation, move || {
            (ValidationActor, s2.clone())
        }));
    (spec, slots)
}

/// A tool of the engine in `slot`, with the default policy stack.
fn engine_tool<M: ractor::Message>(
    slot: &ActorSlot<M>,
    name: &'static str,
    description: &'static str,
    annotations: Annotations,
) -> ActorTool<M> {
    ActorTool {
        name,
        description,
        annotations,
        slot: slot.clone(),
        policy: default_policy(name),
    }
}

/// Registers the built-in engines' tools; `test_tools` adds tools that exist only to exercise
/// failure handling (`registry_debug_crash`).
pub fn register_tools(
    router: &Router,
    slots: &EngineSlots,
    test_tools: bool,
) -> Result<(), RegisterError> {
    let reg = |name, description, annotations| {
        engine_tool(&slots.registry, name, description, annotations)
    };
    router.register_actor(
        reg(
            "registry_put",
            "Store an immutable, semver-versioned artifact (JSON `content` or `content_base64`); \
             returns its sha256 digest. Re-putting identical content is a no-op.",
            Annotations::IDEMPOTENT_WRITE,
        ),
        RegistryMsg::Put,
    )?;
    router.register_actor(
        reg(
            "registry_get",
            "Read an artifact version (latest when `version` is absent); the content is verified \
             against its digest.",
            Annotations::READ_ONLY,
        ),
        RegistryMsg::Get,
    )?;
    router.register_actor(
        reg(
            "registry_list",
            "List artifacts with their latest version, filtered by name prefix or label, \
             paginated with `cursor`.",
            Annotations::READ_ONLY,
        ),
        RegistryMsg::List,
    )?;
    if test_tools {
        router.register_actor(
            reg(
                "registry_debug_crash",
                "Test only: makes the registry actor panic while it holds this call.",
                Annotations::default(),
            ),
            RegistryMsg::Crash,
        )?;
    }
    router.register_actor(
        reg(
            "registry_versions",
            "List the versions of one artifact, lowest first.",
            Annotations::READ_ONLY,
        ),
        RegistryMsg::Versions,
    )?;
    let val = |name, description, annotations| {
        engine_tool(&slots.validation, name, description, annotations)
    };
    router.register_actor(
        val(
            "validation_register_schema",
            "Register a JSON Schema (2020-12) under a name and semver version; an invalid schema \
             is rejected with the reason.",
            Annotations::IDEMPOTENT_WRITE,
        ),
        ValidationMsg::Register,
    )?;
    router.register_actor(
        val(
            "validation_validate",
            "Validate a document against a registered schema (\"name\" or \"name@version\") or \
             an inline schema; returns every violation with its JSON pointer.",
            Annotations::READ_ONLY,
        ),
        ValidationMsg::Validate,
    )?;
    router.register_actor(
        val(
            "validation_list_schemas",
            "List registered schemas and their versions.",
            Annotations::READ_ONLY,
        ),
        ValidationMsg::List,
    )?;
    Ok(())
}
