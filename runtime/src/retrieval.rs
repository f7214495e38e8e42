//! The retrieval engine's tools (`rag_*`).

use ensemble_actors::retrieval::RetrievalMsg;
use ensemble_supervision::ActorSlot;

use crate::config::RoutePolicies;
use crate::engines::engine_tool;
use crate::router::{Annotations, RegisterError, Router};

const CREATE: Annotations = Annotations {
    read_only: false,
    destructive: false,
    idempotent: false,
};

const DROP: Annotations = Annotations {
    read_only: false,
    destructive: true,
    idempotent: true,
};

/// Registers the retrieval engine's tools.
pub fn register(
    router: &Router,
    slot: &ActorSlot<RetrievalMsg>,
    policies: &RoutePolicies,
) -> Result<(), RegisterError> {
    use RetrievalMsg as M;
    let tool = |name, description, annotations| {
        engine_tool(slot, name, description, annotations, policies)
    };
    router.register_actor(
        tool(
            "rag_create_collection",
            "Create a collection of searchable documents: its language (stemming and stop words; \
             english by default), its analyzer (`stemmed` by default), and optionally its \
             default ranking (BM25 k1 and b, pseudo-relevance feedback).",
            CREATE,
        ),
        M::Create,
    )?;
    router.register_actor(
        tool(
            "rag_index",
            "Index a batch of documents {id, title?, text, metadata?, categories?} into a \
             collection; a document with an existing id replaces it. Answered once the batch is \
             durable and searchable. Every problem of a batch is reported at once and nothing \
             of a refused batch is written.",
            Annotations::IDEMPOTENT_WRITE,
        ),
        M::Index,
    )?;
    router.register_actor(
        tool(
            "rag_delete",
            "Delete documents by id; answers how many were deleted and which ids were not there.",
            DROP,
        ),
        M::Delete,
    )?;
    router.register_actor(
        tool(
            "rag_get",
            "Read one document back as it was indexed.",
            Annotations::READ_ONLY,
        ),
        M::Get,
    )?;
    router.register_actor(
        tool(
            "rag_search",
            "Search a collection with free text (no query syntax: every character is just \
             text), ranked by BM25 with pseudo-relevance feedback. Filter by taxonomy \
             categories (a concept and everything narrower) and by metadata values. Hits carry \
             a snippet with the matched words in **bold**; `explain` shows how each score was \
             computed and the terms the query ran with.",
            Annotations::READ_ONLY,
        ),
        M::Search,
    )?;
    router.register_actor(
        tool(
            "rag_stats",
            "Statistics of one collection or of all: documents, segments, deleted documents \
             not yet merged, bytes on disk, searches and commits since start, and settings.",
            Annotations::READ_ONLY,
        ),
        M::Stats,
    )?;
    router.register_actor(
        tool(
            "rag_drop_collection",
            "Drop a collection and delete its index.",
            DROP,
        ),
        M::Drop,
    )?;
    router.register_actor(
        tool(
            "rag_index_artifact",
            "Index a text artifact from the registry (`name@version`, or a name for its latest \
             version): text/* bytes, a JSON string, or a JSON object with `text` (and `title`). \
             Its name, version and digest go into the document's metadata as provenance.",
            Annotations::IDEMPOTENT_WRITE,
        ),
        M::IndexArtifact,
    )?;
    Ok(())
}
