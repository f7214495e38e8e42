//! The JSON-schema validation engine: named, versioned JSON Schema 2020-12 documents and
//! validation that reports every violation.

use std::collections::HashMap;
use std::sync::Arc;

use ensemble_protocol::registry::{parse_version, validate_name};
use ensemble_protocol::validation::*;
use ensemble_supervision::CancellationToken;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};

use crate::engine::{self, StoreBacked};
use crate::store::{Store, StoreError, Tree};
use crate::versioned::{VersionIndex, version_key};

/// The engine's answer to one request.
pub type Reply<T> = RpcReplyPort<Result<T, ValidationError>>;

/// Messages the validation actor handles.
#[derive(Debug)]
pub enum ValidationMsg {
    /// Register a schema (answered once durable).
    Register(
        RegisterSchemaRequest,
        CancellationToken,
        Reply<RegisterSchemaResponse>,
    ),
    /// Validate a document.
    Validate(ValidateRequest, CancellationToken, Reply<ValidateResponse>),
    /// List schemas.
    List(
        ListSchemasRequest,
        CancellationToken,
        Reply<ListSchemasResponse>,
    ),
}

/// The validation actor; its argument is the runtime's store.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidationActor;

/// Stored schema: its JSON text (the codec cannot carry an untyped JSON value).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    schema: String,
}

/// The engine's trees and compiled schemas.
pub struct ValidationState {
    store: Store,
    schemas: Tree,
    index: Tree,
    compiled: HashMap<String, Arc<jsonschema::Validator>>,
}

fn compile(schema: &serde_json::Value) -> Result<jsonschema::Validator, ValidationError> {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| ValidationError::InvalidSchema {
            reason: e.to_string(),
            path: e.instance_path().to_string(),
        })
}

fn name_error(name: &str) -> ValidationError {
    ValidationError::InvalidName { name: name.into() }
}

fn version_error(e: ensemble_protocol::registry::RegistryError) -> ValidationError {
    match e {
        ensemble_protocol::registry::RegistryError::InvalidVersion { version, reason } => {
            ValidationError::InvalidVersion { version, reason }
        }
        other => ValidationError::Store(other.to_string()),
    }
}

fn store_err(e: StoreError) -> ValidationError {
    ValidationError::Store(e.to_string())
}

impl StoreBacked for ValidationState {
    type Error = ValidationError;

    /// Opens the engine's trees in `store`.
    fn open(store: Store) -> Result<Self, StoreError> {
        Ok(Self {
            schemas: store.tree("validation.schemas")?,
            index: store.tree("validation.index")?,
            store,
            compiled: HashMap::new(),
        })
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn store_error(e: StoreError) -> ValidationError {
        store_err(e)
    }
}

impl ValidationState {
    fn register(
        &mut self,
        req: RegisterSchemaRequest,
    ) -> Result<RegisterSchemaResponse, ValidationError> {
        validate_name(&req.name).map_err(|_| name_error(&req.name))?;
        let version = parse_version(&req.version)
            .map_err(version_error)?
            .to_string();
        let validator = compile(&req.schema)?;
        let text = req.schema.to_string();
        let k = version_key(&req.name, &version);
        let created = match self
            .schemas
            .insert_new(
                &k,
                &Stored {
                    schema: text.clone(),
                },
            )
            .map_err(store_err)?
        {
            None => true,
            Some(existing) if existing.schema == text => false,
            Some(_) => {
                return Err(ValidationError::Immutable {
                    name: req.name,
                    version,
                });
            }
        };
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
        self.compiled
            .insert(format!("{}@{version}", req.name), Arc::new(validator));
        Ok(RegisterSchemaResponse {
            name: req.name,
            version,
            created,
        })
    }

    fn resolve(
        &mut self,
        reference: &str,
    ) -> Result<(String, Arc<jsonschema::Validator>), ValidationError> {
        let (name, version) = match reference.split_once('@') {
            Some((n, v)) => (
                n,
                Some(parse_version(v).map_err(version_error)?.to_string()),
            ),
            None => (reference, None),
        };
        validate_name(name).map_err(|_| name_error(name))?;
        let version = match version {
            Some(v) => v,
            None => {
                let index: VersionIndex = self
                    .index
                    .get(name.as_bytes())
                    .map_err(store_err)?
                    .ok_or_else(|| ValidationError::NotFound {
                        what: format!("`{name}`"),
                    })?;
                index
                    .latest()
                    .cloned()
                    .ok_or_else(|| ValidationError::NotFound {
                        what: format!("`{name}`"),
                    })?
            }
        };
        let id = format!("{name}@{version}");
        if let Some(v) = self.compiled.get(&id) {
            return Ok((id, v.clone()));
        }
        let stored: Stored = self
            .schemas
            .get(&version_key(name, &version))
            .map_err(store_err)?
            .ok_or_else(|| ValidationError::NotFound {
                what: format!("`{id}`"),
            })?;
        let schema: serde_json::Value = serde_json::from_str(&stored.schema).map_err(|e| {
            ValidationError::Store(format!("stored schema {id} is unreadable: {e}"))
        })?;
        let validator = Arc::new(compile(&schema)?);
        self.compiled.insert(id.clone(), validator.clone());
        Ok((id, validator))
    }

    fn validate(&mut self, req: ValidateRequest) -> Result<ValidateResponse, ValidationError> {
        let (label, validator) = match &req.schema {
            serde_json::Value::String(reference) => self.resolve(reference)?,
            schema @ (serde_json::Value::Object(_) | serde_json::Value::Bool(_)) => {
                ("inline".to_string(), Arc::new(compile(schema)?))
            }
            _ => return Err(ValidationError::SchemaChoice),
        };
        let errors: Vec<Violation> = validator
            .iter_errors(&req.document)
            .map(|e| Violation {
                path: e.instance_path().to_string(),
                message: e.to_string(),
                schema_path: e.schema_path().to_string(),
            })
            .collect();
        Ok(ValidateResponse {
            valid: errors.is_empty(),
            errors,
            schema: label,
        })
    }

    fn list(&self, req: ListSchemasRequest) -> Result<ListSchemasResponse, ValidationError> {
        let prefix = req.prefix.unwrap_or_default();
        let schemas = self
            .index
            .scan::<VersionIndex>(prefix.as_bytes(), None)
            .map(|r| {
                let (k, index) = r.map_err(store_err)?;
                Ok(SchemaSummary {
                    name: String::from_utf8_lossy(&k).into_owned(),
                    versions: index.versions,
                })
            })
            .collect::<Result<_, ValidationError>>()?;
        Ok(ListSchemasResponse { schemas })
    }
}

impl Actor for ValidationActor {
    type Msg = ValidationMsg;
    type State = ValidationState;
    type Arguments = Store;

    async fn pre_start(
        &self,
        _: ActorRef<ValidationMsg>,
        store: Store,
    ) -> Result<ValidationState, ActorProcessingErr> {
        engine::open(store)
    }

    async fn handle(
        &self,
        _: ActorRef<ValidationMsg>,
        msg: ValidationMsg,
        state: &mut ValidationState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ValidationMsg::Register(req, cancel, reply) => {
                engine::mutate(state, &cancel, reply, |s| s.register(req))
            }
            ValidationMsg::Validate(req, _, reply) => engine::read(reply, state.validate(req)),
            ValidationMsg::List(req, _, reply) => engine::read(reply, state.list(req)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order_schema() -> serde_json::Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "required": ["id", "items"],
            "properties": {
                "id": {"type": "string", "minLength": 3},
                "email": {"type": "string", "format": "email"},
                "items": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["sku", "qty"],
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}
                }}
            }
        })
    }

    fn state() -> ValidationState {
        ValidationState::open(Store::temporary().unwrap()).unwrap()
    }

    fn register(
        s: &mut ValidationState,
        version: &str,
        schema: serde_json::Value,
    ) -> Result<RegisterSchemaResponse, ValidationError> {
        s.register(RegisterSchemaRequest {
            name: "order".into(),
            version: version.into(),
            schema,
        })
    }

    #[test]
    fn reports_every_violation_with_its_pointer() {
        let mut s = state();
        register(&mut s, "1.0.0", order_schema()).unwrap();
        let r = s
            .validate(ValidateRequest {
                schema: json!("order"),
                document: json!({"id": "x", "email": "not-an-email", "items": [{"sku": "a", "qty": 0}, {"qty": 2}]}),
            })
            .unwrap();
        assert!(!r.valid);
        assert_eq!(r.schema, "order@1.0.0");
        let mut paths: Vec<&str> = r.errors.iter().map(|e| e.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(paths, ["/email", "/id", "/items/0/qty", "/items/1"]);
        let ok = s
            .validate(ValidateRequest {
                schema: json!("order@1.0.0"),
                document: json!({"id": "abc", "items": [{"sku": "a", "qty": 1}]}),
            })
            .unwrap();
        assert!(ok.valid && ok.errors.is_empty());
    }

    #[test]
    fn an_invalid_schema_is_rejected_with_the_reason() {
        let mut s = state();
        let err = register(&mut s, "1.0.0", json!({"type": "nope"})).unwrap_err();
        assert!(
            matches!(err, ValidationError::InvalidSchema { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("not a valid JSON Schema"), "{err}");
        assert!(
            s.list(ListSchemasRequest::default())
                .unwrap()
                .schemas
                .is_empty(),
            "nothing stored"
        );
    }

    #[test]
    fn schemas_are_immutable_per_version_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = ValidationState::open(Store::open(dir.path()).unwrap()).unwrap();
            assert!(register(&mut s, "1.0.0", order_schema()).unwrap().created);
            assert!(!register(&mut s, "1.0.0", order_schema()).unwrap().created);
            assert!(matches!(
                register(&mut s, "1.0.0", json!({"type": "string"})),
                Err(ValidationError::Immutable { .. })
            ));
            register(&mut s, "1.1.0", json!({"type": "object"})).unwrap();
            flush_blocking(&s.store);
        }
        let mut s = ValidationState::open(Store::open(dir.path()).unwrap()).unwrap();
        let list = s.list(ListSchemasRequest::default()).unwrap();
        assert_eq!(
            list.schemas,
            [SchemaSummary {
                name: "order".into(),
                versions: vec!["1.0.0".into(), "1.1.0".into()]
            }]
        );
        let r = s
            .validate(ValidateRequest {
                schema: json!("order@1.0.0"),
                document: json!({}),
            })
            .unwrap();
        assert_eq!(r.errors.len(), 2, "{r:?}");
        assert_eq!(
            s.validate(ValidateRequest {
                schema: json!("order"),
                document: json!({})
            })
            .unwrap()
            .schema,
            "order@1.1.0"
        );
    }

    fn flush_blocking(store: &Store) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(store.flush())
            .unwrap();
    }

    #[test]
    fn inline_schemas_and_bad_references() {
        let mut s = state();
        let r = s
            .validate(ValidateRequest {
                schema: json!({"type": "integer"}),
                document: json!("7"),
            })
            .unwrap();
        assert!(!r.valid);
        assert_eq!(r.schema, "inline");
        assert_eq!(
            s.validate(ValidateRequest {
                schema: json!(3),
                document: json!(1)
            })
            .unwrap_err(),
            ValidationError::SchemaChoice
        );
        let err = s
            .validate(ValidateRequest {
                schema: json!("missing@1.0.0"),
                document: json!(1),
            })
            .unwrap_err();
        assert!(err.to_string().contains("missing@1.0.0"), "{err}");
    }
}
