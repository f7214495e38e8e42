//! The taxonomy engine: versioned SKOS concept schemes (multilingual labels, polyhierarchy,
//! related concepts, mappings across schemes, deprecation with replacements), with SKOS
//! integrity enforced on every write, import and export as RDF/XML, Turtle and a native JSON
//! form, label search, classification of text, and subtree expansion for retrieval filters.
//!
//! ```ignore
//! let (actor, _) = Actor::spawn(None, TaxonomyActor, store).await?;
//! let imported = ractor::call!(actor, |r| TaxonomyMsg::Import(req, CancellationToken::new(), r))??;
//! let subtree = ractor::call!(actor, |r| TaxonomyMsg::Subtrees(vec!["sport".into()], r))?;
//! ```

pub mod classify;
pub mod integrity;
pub mod model;
mod ops;
pub mod search;
pub mod skos;
pub mod state;

use ensemble_protocol::taxonomy::*;
use ensemble_supervision::CancellationToken;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::engine;
pub use ensemble_protocol::taxonomy::Neighbour;
pub use ops::validate_scheme_id;
pub use state::{TREE, TaxonomyState};

/// The taxonomy engine's answer to one request.
pub type Reply<T> = RpcReplyPort<Result<T, TaxonomyError>>;

/// The concepts a set of concept ids stands for in a filter (see [`TaxonomyMsg::Subtrees`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subtrees {
    /// Sorted, deduplicated: each known id, everything narrowerTransitive from it (in the
    /// latest version of every scheme that has it), and every concept (of any version)
    /// deprecated with a replacement inside this set, transitively.
    pub members: Vec<String>,
    /// The ids found in no version of any scheme.
    pub unknown: Vec<String>,
}

/// Messages the taxonomy actor handles.
#[derive(Debug)]
pub enum TaxonomyMsg {
    /// Import a scheme as its next version (answered once durable).
    Import(ImportRequest, CancellationToken, Reply<ImportResponse>),
    /// Export a version of a scheme.
    Export(ExportRequest, CancellationToken, Reply<ExportResponse>),
    /// Read one concept with its relations and paths.
    GetConcept(GetConceptRequest, CancellationToken, Reply<ConceptInfo>),
    /// Search concepts by label.
    SearchLabels(
        SearchLabelsRequest,
        CancellationToken,
        Reply<SearchLabelsResponse>,
    ),
    /// Everything narrowerTransitive from a concept.
    Descendants(
        RelativesRequest,
        CancellationToken,
        Reply<RelativesResponse>,
    ),
    /// Everything broaderTransitive from a concept.
    Ancestors(
        RelativesRequest,
        CancellationToken,
        Reply<RelativesResponse>,
    ),
    /// Classify a text, with the votes of similar classified documents (the neighbours).
    Classify(
        ClassifyRequest,
        Vec<Neighbour>,
        CancellationToken,
        Reply<ClassifyResponse>,
    ),
    /// Check a document's integrity without storing it.
    Validate(ValidateRequest, CancellationToken, Reply<ValidateResponse>),
    /// The stored schemes with their versions.
    List(ListRequest, CancellationToken, Reply<ListResponse>),
    /// Expand concept ids to their subtrees, for retrieval filters; read-only and answered
    /// from memory.
    Subtrees(Vec<String>, RpcReplyPort<Subtrees>),
}

/// The taxonomy actor; its argument is the runtime's store (tree [`TREE`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct TaxonomyActor;

impl Actor for TaxonomyActor {
    type Msg = TaxonomyMsg;
    type State = TaxonomyState;
    type Arguments = crate::store::Store;

    async fn pre_start(
        &self,
        _: ActorRef<TaxonomyMsg>,
        store: crate::store::Store,
    ) -> Result<TaxonomyState, ActorProcessingErr> {
        engine::open(store)
    }

    async fn handle(
        &self,
        _: ActorRef<TaxonomyMsg>,
        msg: TaxonomyMsg,
        state: &mut TaxonomyState,
    ) -> Result<(), ActorProcessingErr> {
        use TaxonomyMsg as M;
        match msg {
            M::Import(req, cancel, reply) => {
                engine::mutate(state, &cancel, reply, |s| s.import(req, &cancel))
            }
            M::Export(req, _, reply) => engine::read(reply, state.export(req)),
            M::GetConcept(req, _, reply) => engine::read(reply, state.get_concept(req)),
            M::SearchLabels(req, _, reply) => engine::read(reply, state.search_labels(req)),
            M::Descendants(req, _, reply) => engine::read(reply, state.relatives(req, true)),
            M::Ancestors(req, _, reply) => engine::read(reply, state.relatives(req, false)),
            M::Classify(req, neighbours, cancel, reply) => {
                engine::read(reply, state.classify(req, &neighbours, &cancel))
            }
            M::Validate(req, _, reply) => engine::read(reply, state.validate(req)),
            M::List(_, _, reply) => engine::read(reply, Ok(state.list())),
            M::Subtrees(ids, reply) => engine::read(reply, state.subtrees(ids)),
        }
        Ok(())
    }
}
