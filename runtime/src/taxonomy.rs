//! The taxonomy engine's tools: SKOS concept schemes imported, exported, browsed, searched by
//! label, validated, and used to classify text.

use ensemble_actors::retrieval::RetrievalMsg;
use ensemble_actors::taxonomy::TaxonomyMsg;
use ensemble_protocol::retrieval::SearchRequest;
use ensemble_protocol::taxonomy::{ClassifyRequest, Neighbour};
use ensemble_supervision::{ActorSlot, CallContext};

use crate::config::RoutePolicies;
use crate::engines::engine_tool;
use crate::router::{Annotations, DispatchTool, RegisterError, Router, attempt};

/// Registers the taxonomy engine's tools for the actor in `slot`.
pub fn register(
    router: &Router,
    slot: &ActorSlot<TaxonomyMsg>,
    retrieval: &ActorSlot<RetrievalMsg>,
    policies: &RoutePolicies,
) -> Result<(), RegisterError> {
    use TaxonomyMsg as M;
    let tool = |name, description, annotations| {
        engine_tool(slot, name, description, annotations, policies)
    };
    router.register_actor(
        tool(
            "taxonomy_import",
            "Import a SKOS concept scheme as the next version (1, 2, …) of `scheme`: `format` \
             `rdfxml` or `turtle` (SKOS; concept ids are the concepts' URIs, relative ones kept \
             as written unless `base_iri` is given) or `json` (the native form, see `content`). \
             SKOS integrity is enforced: no broader cycle, at most one prefLabel per language, \
             pref/alt/hidden labels disjoint, related never an ancestor, no relation to an \
             unknown concept — every violation is listed at once and nothing is stored. \
             `narrower` is read as the inverse of `broader`. Answers the version, counts, top \
             concepts and warnings (e.g. a concept of the previous version dropped without a \
             replacement). Content equal to the latest version stores nothing (`created: \
             false`).",
            Annotations::IDEMPOTENT_WRITE,
        ),
        M::Import,
    )?;
    router.register_actor(
        tool(
            "taxonomy_validate",
            "Check a SKOS (rdfxml, turtle) or native JSON document without storing it: every \
             integrity violation (rule, concepts, what to fix), the concept count and top \
             concepts; with `scheme`, warnings for concepts the stored scheme would lose.",
            Annotations::READ_ONLY,
        ),
        M::Validate,
    )?;
    router.register_actor(
        tool(
            "taxonomy_export",
            "Export a version of a scheme (the latest by default) as SKOS `rdfxml` or `turtle` \
             (broader and narrower both written), or as the native `json` form.",
            Annotations::READ_ONLY,
        ),
        M::Export,
    )?;
    router.register_actor(
        tool(
            "taxonomy_get_concept",
            "One concept with its labels (pref/alt/hidden per language), notations, \
             definitions and scope notes, broader, narrower, related, mappings to other \
             schemes (exact/close/broad/narrow/relatedMatch), deprecation and replacements, \
             and every path from a top concept. Without `scheme` the id is looked up in every \
             scheme's latest version; `version` reads an earlier version.",
            Annotations::READ_ONLY,
        ),
        M::GetConcept,
    )?;
    router.register_actor(
        tool(
            "taxonomy_search_labels",
            "Find concepts by label (pref, alt and hidden labels; a hidden label matches but \
             the answer shows the preferred label): exact, then prefix (of the label or of one \
             of its words), then fuzzy (Damerau–Levenshtein ≤ 1 for words of 4–7 characters, \
             ≤ 2 for longer; `fuzzy: false` turns it off); pref before alt before hidden. \
             Optional `scheme`, `language`, `limit` (default 10).",
            Annotations::READ_ONLY,
        ),
        M::SearchLabels,
    )?;
    router.register_actor(
        tool(
            "taxonomy_descendants",
            "Every concept narrowerTransitive from a concept (polyhierarchy included), nearest \
             first with its distance; `depth` limits the levels.",
            Annotations::READ_ONLY,
        ),
        M::Descendants,
    )?;
    router.register_actor(
        tool(
            "taxonomy_ancestors",
            "Every concept broaderTransitive from a concept (all parents of a polyhierarchy), \
             nearest first with its distance; `depth` limits the levels.",
            Annotations::READ_ONLY,
        ),
        M::Ancestors,
    )?;
    register_classify(router, slot, retrieval, policies)?;
    router.register_actor(
        tool(
            "taxonomy_list",
            "The stored concept schemes with their URI, title, latest version, concept count \
             and every version (counts and import time).",
            Annotations::READ_ONLY,
        ),
        M::List,
    )
}

/// `taxonomy_classify`: with a `collection`, the most similar documents there (a retrieval
/// search for the text) vote with their categories before the taxonomy ranks the concepts.
fn register_classify(
    router: &Router,
    slot: &ActorSlot<TaxonomyMsg>,
    retrieval: &ActorSlot<RetrievalMsg>,
    policies: &RoutePolicies,
) -> Result<(), RegisterError> {
    let (taxonomy, retrieval) = (slot.clone(), retrieval.clone());
    let tool = DispatchTool {
        name: "taxonomy_classify",
        description: "Propose concepts of a scheme for a text, best first, each with a score \
             and its evidence: label occurrences (phrases matched in the lower-cased, lightly \
             stemmed text; weighted by label kind, the rarity of the label's words, the \
             concept's depth and the count; a longer label claims its words; a parent earns \
             nothing from a child's match), and with `collection`, the votes of the most \
             similar classified documents there (a vote for a deprecated concept goes to its \
             replacement).",
        annotations: Annotations::READ_ONLY,
        policy: policies.route_policy("taxonomy", "taxonomy_classify"),
    };
    router.register_dispatch(tool, move |req: ClassifyRequest, ctx: CallContext| {
        let (taxonomy, retrieval) = (taxonomy.clone(), retrieval.clone());
        Box::pin(async move {
            let neighbours = match &req.collection {
                None => Vec::new(),
                Some(collection) => {
                    let search = SearchRequest {
                        collection: collection.clone(),
                        query: req.text.clone(),
                        limit: Some(req.neighbours.unwrap_or(DEFAULT_NEIGHBOURS).min(100)),
                        offset: None,
                        filter: None,
                        explain: false,
                        ranking: None,
                        no_snippets: true,
                    };
                    let found = attempt(&retrieval, ctx.clone(), |c, r| {
                        RetrievalMsg::Search(search, c, r)
                    })
                    .await?;
                    found
                        .hits
                        .into_iter()
                        .filter(|h| !h.categories.is_empty())
                        .map(|h| Neighbour {
                            categories: h.categories,
                            score: h.score,
                        })
                        .collect()
                }
            };
            attempt(&taxonomy, ctx, |c, r| {
                TaxonomyMsg::Classify(req, neighbours, c, r)
            })
            .await
        })
    })
}

/// How many similar documents vote when a classification names a collection.
const DEFAULT_NEIGHBOURS: u32 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_registered_with_a_schema() {
        let router = Router::new();
        let slot = ActorSlot::new("taxonomy");
        let retrieval = ActorSlot::new("retrieval");
        register(&router, &slot, &retrieval, &RoutePolicies::default()).unwrap();
        for name in [
            "taxonomy_import",
            "taxonomy_validate",
            "taxonomy_export",
            "taxonomy_get_concept",
            "taxonomy_search_labels",
            "taxonomy_descendants",
            "taxonomy_ancestors",
            "taxonomy_classify",
            "taxonomy_list",
        ] {
            let spec = router
                .spec(name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert!(spec.output_schema.is_some(), "{name}");
        }
        let import = router.spec("taxonomy_import").unwrap();
        let schema = serde_json::to_value(&*import.input_schema).unwrap();
        let text = schema.to_string();
        assert!(
            text.contains("pref_labels") && text.contains("rdfxml"),
            "{text}"
        );
        let classify = router.spec("taxonomy_classify").unwrap();
        let schema = serde_json::to_value(&*classify.input_schema).unwrap();
        assert!(schema["properties"]["collection"].is_object(), "{schema}");
    }
}
