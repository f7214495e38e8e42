//! The taxonomy engine's requests, answers and errors: versioned SKOS concept schemes with
//! multilingual labels, hierarchy, mappings and deprecation, imported and exported as SKOS
//! (RDF/XML, Turtle) or a native JSON form, searched by label and used to classify text.
//!
//! The native JSON form of a scheme is a [`TaxonomyDocument`]:
//!
//! ```
//! use ensemble_protocol::taxonomy::TaxonomyDocument;
//!
//! let doc: TaxonomyDocument = serde_json::from_str(r#"{
//!   "uri": "http://example.org/topics",
//!   "concepts": [
//!     {"id": "sport", "pref_labels": [{"value": "sport", "lang": "en"}]},
//!     {"id": "football", "broader": ["sport"],
//!      "pref_labels": [{"value": "football", "lang": "en"}],
//!      "alt_labels": [{"value": "soccer", "lang": "en"}]}
//!   ]
//! }"#).unwrap();
//! assert_eq!(doc.concepts.len(), 2);
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A text in one language.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// The text.
    pub value: String,
    /// BCP 47 language tag, e.g. `en` or `en-GB`; absent (empty) for a text without language.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lang: String,
}

impl Label {
    /// A label `value` in language `lang` (empty for none).
    pub fn new(value: impl Into<String>, lang: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            lang: lang.into(),
        }
    }
}

/// The kind of a label: SKOS `prefLabel`, `altLabel` or `hiddenLabel`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LabelKind {
    /// The preferred label (at most one per language).
    Pref,
    /// An alternative label (synonym, acronym, variant).
    Alt,
    /// A hidden label: found by search and classification, never displayed (misspellings).
    Hidden,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One concept: the native JSON form of a concept, and the concept in answers.
///
/// `narrower` is the inverse of `broader`: on import both are read and normalised into
/// `broader`; answers fill `narrower` from the hierarchy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Concept {
    /// The stable concept id: its URI for SKOS imports, the id given in the JSON form (an
    /// absolute IRI, or a simple name of letters, digits and `-._~`).
    pub id: String,
    /// Preferred labels, at most one per language.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pref_labels: Vec<Label>,
    /// Alternative labels (synonyms).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alt_labels: Vec<Label>,
    /// Hidden labels (matched by search, shown as the preferred label).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden_labels: Vec<Label>,
    /// Notations (codes such as `01000000`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notations: Vec<String>,
    /// Definitions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub definitions: Vec<Label>,
    /// Scope notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope_notes: Vec<Label>,
    /// Ids of broader concepts of the same scheme (several: polyhierarchy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broader: Vec<String>,
    /// Ids of narrower concepts of the same scheme (the inverse of `broader`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub narrower: Vec<String>,
    /// Ids of related concepts of the same scheme (symmetric; never an ancestor or descendant).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<String>,
    /// `skos:exactMatch`: concepts of other schemes with the same meaning (any IRI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exact_match: Vec<String>,
    /// `skos:closeMatch`: concepts of other schemes with nearly the same meaning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub close_match: Vec<String>,
    /// `skos:broadMatch`: broader concepts of other schemes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broad_match: Vec<String>,
    /// `skos:narrowMatch`: narrower concepts of other schemes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub narrow_match: Vec<String>,
    /// `skos:relatedMatch`: associated concepts of other schemes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_match: Vec<String>,
    /// Deprecated (`owl:deprecated true`): kept for old references, not for new use.
    #[serde(default, skip_serializing_if = "is_false")]
    pub deprecated: bool,
    /// The concepts that replace this one (`dct:isReplacedBy`); implies `deprecated`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced_by: Vec<String>,
}

/// A concept scheme in the native JSON form (`format: "json"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxonomyDocument {
    /// The scheme's URI (`skos:ConceptScheme`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The scheme's titles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub titles: Vec<Label>,
    /// Ids of the top concepts; when empty, every concept without a broader one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_concepts: Vec<String>,
    /// The concepts.
    #[serde(default)]
    pub concepts: Vec<Concept>,
}

/// A serialization of a concept scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// SKOS in RDF/XML.
    Rdfxml,
    /// SKOS in Turtle.
    Turtle,
    /// The native JSON form (a `TaxonomyDocument`).
    Json,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Rdfxml => "rdfxml",
            Format::Turtle => "turtle",
            Format::Json => "json",
        })
    }
}

/// Imports a concept scheme as a new version of `scheme`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The scheme's id in Ensemble: 1–200 letters, digits, `.`, `_`, `-`.
    pub scheme: String,
    /// `rdfxml` or `turtle` (SKOS), or `json` (the native form).
    pub format: Format,
    /// The document. For `json`: `{"uri"?, "titles"?: [{"value","lang"?}], "top_concepts"?:
    /// [id], "concepts": [{"id", "pref_labels"?, "alt_labels"?, "hidden_labels"?: [{"value",
    /// "lang"?}], "notations"?: [str], "definitions"?, "scope_notes"?: [{"value","lang"?}],
    /// "broader"?, "narrower"?, "related"?: [id], "exact_match"?, "close_match"?,
    /// "broad_match"?, "narrow_match"?, "related_match"?: [iri], "deprecated"?: bool,
    /// "replaced_by"?: [id]}]}`.
    pub content: String,
    /// Base IRI for relative IRIs in RDF; without it relative ids are kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_iri: Option<String>,
    /// When the RDF holds several concept schemes: import only the concepts of this one
    /// (`skos:inScheme`/`skos:topConceptOf` it, or in no scheme).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme_uri: Option<String>,
}

/// What an import stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImportResponse {
    /// The scheme's id.
    pub scheme: String,
    /// The version now latest (1, 2, …).
    pub version: u32,
    /// False when the content equals the latest version (nothing new was stored).
    pub created: bool,
    /// Number of concepts.
    pub concepts: u32,
    /// Number of deprecated concepts.
    pub deprecated: u32,
    /// Ids of the top concepts.
    pub top_concepts: Vec<String>,
    /// Things worth a look that did not stop the import (e.g. a concept of the previous
    /// version missing without a replacement).
    pub warnings: Vec<String>,
}

/// Checks a document (parse and SKOS integrity) without storing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// `rdfxml`, `turtle` or `json` (see `taxonomy_import`).
    pub format: Format,
    /// The document.
    pub content: String,
    /// Base IRI for relative IRIs in RDF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_iri: Option<String>,
    /// Only the concepts of this concept scheme (when the RDF holds several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme_uri: Option<String>,
    /// Compare with this stored scheme's latest version (warnings for concepts that would
    /// disappear without a replacement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
}

/// Which SKOS integrity rule a violation breaks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IntegrityRule {
    /// A concept id is empty, a blank node, or not a usable IRI.
    InvalidId,
    /// Two concepts share an id.
    DuplicateConcept,
    /// A relation (broader, narrower, related, replaced_by, top concept) names a concept the
    /// scheme does not hold.
    UnknownConcept,
    /// `broader` loops back (no concept may be its own broaderTransitive).
    BroaderCycle,
    /// More than one prefLabel in one language.
    PrefLabelPerLanguage,
    /// The same text is two of prefLabel, altLabel, hiddenLabel in one language.
    LabelsDisjoint,
    /// Related concepts where one is an ancestor of the other (related is disjoint from
    /// broaderTransitive).
    RelatedIsAncestor,
    /// A concept related to itself.
    RelatedToSelf,
}

/// One integrity violation: the rule, the concepts involved and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Violation {
    /// The rule broken.
    pub rule: IntegrityRule,
    /// The concepts involved.
    pub concepts: Vec<String>,
    /// What is wrong and what to change.
    pub message: String,
}

/// The integrity report of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ValidateResponse {
    /// True when the document would import (no violations).
    pub valid: bool,
    /// Number of concepts.
    pub concepts: u32,
    /// Ids of the top concepts (declared, or derived when none are).
    pub top_concepts: Vec<String>,
    /// Every violation found.
    pub violations: Vec<Violation>,
    /// Things worth a look that would not stop an import.
    pub warnings: Vec<String>,
}

/// Exports a version of a scheme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// The scheme's id.
    pub scheme: String,
    /// `rdfxml`, `turtle` or `json`.
    pub format: Format,
    /// The version; the latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// An exported scheme version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExportResponse {
    /// The scheme's id.
    pub scheme: String,
    /// The version exported.
    pub version: u32,
    /// The format.
    pub format: Format,
    /// The document.
    pub content: String,
}

/// Reads one concept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetConceptRequest {
    /// The scheme's id; when absent the concept is looked up in every scheme's latest version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The concept id (its URI for SKOS imports).
    pub concept: String,
    /// The scheme version; the latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Preferred language for the display labels, e.g. `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// A concept named with its display label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConceptRef {
    /// Concept id.
    pub id: String,
    /// Its preferred label (the id when it has none).
    pub label: String,
}

/// A concept with everything known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConceptInfo {
    /// The scheme's id.
    pub scheme: String,
    /// The scheme version read.
    pub version: u32,
    /// The display label (preferred label in the asked language, else another).
    pub label: String,
    /// Whether it is a top concept of the scheme.
    pub top_concept: bool,
    /// The concept: labels, notes, broader, narrower, related, mappings, deprecation.
    pub concept: Concept,
    /// Every path from a top concept down to this concept's broader one (polyhierarchy gives
    /// several; at most 20).
    pub paths: Vec<Vec<ConceptRef>>,
}

/// Searches concept labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchLabelsRequest {
    /// The scheme's id; every scheme's latest version when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The text to look for (case-insensitive).
    pub query: String,
    /// Number of hits, 1–100; default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only labels in this language (`en` also matches `en-GB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Also match within a small edit distance (Damerau–Levenshtein 1 for tokens of 4–7
    /// characters, 2 for longer); default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuzzy: Option<bool>,
}

/// How a label matched the query.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// The whole label equals the query.
    Exact,
    /// The label, or one of its words, starts with the query.
    Prefix,
    /// Every query word is within a small edit distance of a label word.
    Fuzzy,
}

/// One concept found by its label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LabelHit {
    /// The scheme's id.
    pub scheme: String,
    /// The concept id.
    pub concept: String,
    /// Its preferred label.
    pub label: String,
    /// The label that matched; absent when it was a hidden label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    /// The kind of label that matched.
    pub label_kind: LabelKind,
    /// The language of the label that matched.
    pub lang: String,
    /// Exact, prefix or fuzzy.
    pub match_kind: MatchKind,
    /// Edits between query and label words (0 unless fuzzy).
    pub distance: u32,
    /// Whether the concept is deprecated (see `taxonomy_get_concept` for its replacement).
    pub deprecated: bool,
    /// Rank score: exact > prefix > fuzzy, then pref > alt > hidden.
    pub score: f32,
}

/// Concepts found by label, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SearchLabelsResponse {
    /// The hits.
    pub hits: Vec<LabelHit>,
}

/// Walks the hierarchy from a concept (down for descendants, up for ancestors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RelativesRequest {
    /// The scheme's id; when absent the concept is looked up in every scheme's latest version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The concept id.
    pub concept: String,
    /// How many levels to walk (1 = direct only); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
    /// The scheme version; the latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// A concept reached from another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Relative {
    /// Concept id.
    pub id: String,
    /// Its preferred label.
    pub label: String,
    /// Levels away (1 = direct).
    pub distance: u32,
}

/// The concepts above or below one concept, nearest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RelativesResponse {
    /// The scheme's id.
    pub scheme: String,
    /// The version walked.
    pub version: u32,
    /// The starting concept.
    pub concept: String,
    /// The concepts reached, by distance then id.
    pub concepts: Vec<Relative>,
}

/// Classifies a text against a scheme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    /// The scheme's id.
    pub scheme: String,
    /// The text (title, abstract, article).
    pub text: String,
    /// Number of concepts, 1–100; default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only labels in this language (`en` also matches `en-GB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// A retrieval collection whose classified documents vote too: the documents most
    /// similar to `text` vote for their categories, weighted by similarity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// How many similar documents of `collection` vote; default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neighbours: Option<u32>,
}

/// An already-classified document similar to the text being classified (found by the
/// retrieval engine): its categories and its similarity score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Neighbour {
    /// The concept ids the document is classified under.
    pub categories: Vec<String>,
    /// Its similarity to the text (higher is closer; negative counts as 0).
    pub score: f32,
}

/// Where a piece of classification evidence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceSource {
    /// A label of the concept occurs in the text.
    Label,
    /// Similar classified documents are classified here.
    Neighbours,
}

/// One reason a concept was proposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// Label occurrence or neighbour votes.
    pub source: EvidenceSource,
    /// The label found (hidden labels too), or a summary of the votes.
    pub text: String,
    /// The kind of label found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_kind: Option<LabelKind>,
    /// Occurrences in the text, or number of voting documents.
    pub occurrences: u32,
    /// This evidence's contribution before normalisation.
    pub weight: f32,
}

/// One proposed concept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Classification {
    /// Concept id.
    pub concept: String,
    /// Its preferred label.
    pub label: String,
    /// Combined score in 0–1 (label evidence relative to the best candidate, averaged with
    /// the share of neighbour votes when neighbours voted).
    pub score: f32,
    /// Sum of the label evidence weights.
    pub label_score: f32,
    /// Share of the neighbours' similarity that voted for it (0–1).
    pub vote_score: f32,
    /// Why it was proposed.
    pub evidence: Vec<Evidence>,
}

/// The proposed concepts, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClassifyResponse {
    /// The scheme's id.
    pub scheme: String,
    /// The version used (the latest).
    pub version: u32,
    /// The concepts.
    pub concepts: Vec<Classification>,
    /// How many neighbour documents voted.
    pub neighbours_used: u32,
}

/// Lists the stored schemes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {}

/// One version of a scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VersionInfo {
    /// The version number.
    pub version: u32,
    /// Number of concepts.
    pub concepts: u32,
    /// Number of top concepts.
    pub top_concepts: u32,
    /// Number of deprecated concepts.
    pub deprecated: u32,
    /// When it was imported, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// A stored scheme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SchemeSummary {
    /// The scheme's id.
    pub scheme: String,
    /// Its URI, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Its title, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The latest version.
    pub latest: u32,
    /// Concepts in the latest version.
    pub concepts: u32,
    /// Every version, oldest first.
    pub versions: Vec<VersionInfo>,
}

/// The stored schemes, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListResponse {
    /// The schemes.
    pub schemes: Vec<SchemeSummary>,
}

fn known_schemes(known: &[String]) -> String {
    if known.is_empty() {
        "no scheme is stored yet; import one with `taxonomy_import`".into()
    } else {
        format!("the known schemes are: {}", known.join(", "))
    }
}

fn scheme_suffix(scheme: &Option<String>) -> String {
    match scheme {
        Some(s) => format!(" in scheme `{s}`"),
        None => " in any scheme".into(),
    }
}

fn suggestion_list(list: &[String]) -> String {
    if list.is_empty() {
        "; `taxonomy_search_labels` finds concepts by label".into()
    } else {
        format!("; did you mean: {}?", list.join(", "))
    }
}

fn position(line: &Option<u64>, column: &Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

/// The message of an integrity failure: every violation on its own line.
pub fn integrity_message(violations: &[Violation]) -> String {
    let mut out = format!(
        "{} SKOS integrity violation{}; nothing was stored — fix all of them and try again:",
        violations.len(),
        if violations.len() == 1 { "" } else { "s" }
    );
    for v in violations {
        let rule = serde_json::to_value(v.rule)
            .ok()
            .and_then(|r| r.as_str().map(str::to_string))
            .unwrap_or_default();
        out.push_str(&format!("\n- [{rule}] {}", v.message));
    }
    out
}

/// What the taxonomy engine refuses, and why; each message says what to change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum TaxonomyError {
    /// No scheme with this id.
    #[error("scheme `{scheme}` not found; {}", known_schemes(.known))]
    UnknownScheme {
        /// The id given.
        scheme: String,
        /// The stored schemes.
        known: Vec<String>,
    },
    /// The scheme has no such version.
    #[error("scheme `{scheme}` has no version {version}; its versions are 1 to {latest}")]
    UnknownVersion {
        /// The scheme.
        scheme: String,
        /// The version asked for.
        version: u32,
        /// Its latest version.
        latest: u32,
    },
    /// No concept with this id.
    #[error("concept `{concept}` not found{}{}", scheme_suffix(.scheme), suggestion_list(.suggestions))]
    UnknownConcept {
        /// The id given.
        concept: String,
        /// The scheme searched, if one was named.
        scheme: Option<String>,
        /// Close ids and labels, as "`id` (label)".
        suggestions: Vec<String>,
    },
    /// The concept is in several schemes and none was named.
    #[error("concept `{concept}` is in several schemes ({}); name one with `scheme`", .schemes.join(", "))]
    AmbiguousConcept {
        /// The id given.
        concept: String,
        /// The schemes holding it.
        schemes: Vec<String>,
    },
    /// The content does not parse.
    #[error("the {format} content does not parse{}: {message}", position(.line, .column))]
    Parse {
        /// The format it was read as.
        format: Format,
        /// 1-based line of the error, when known.
        line: Option<u64>,
        /// 1-based column of the error, when known.
        column: Option<u64>,
        /// The parser's message.
        message: String,
    },
    /// The document breaks SKOS integrity rules (all of them are listed).
    #[error("{}", integrity_message(.violations))]
    Integrity {
        /// Every violation.
        violations: Vec<Violation>,
    },
    /// An argument is out of range or malformed.
    #[error("`{field}`: {message}")]
    InvalidArgument {
        /// The argument.
        field: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// The call was cancelled before it finished.
    #[error("the taxonomy request was cancelled")]
    Cancelled,
    /// The store failed.
    #[error("the taxonomy store failed: {0}")]
    Store(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_to_fix() {
        let e = TaxonomyError::UnknownScheme {
            scheme: "x".into(),
            known: vec!["acm".into(), "iptc".into()],
        };
        assert!(e.to_string().contains("acm, iptc"), "{e}");
        let e = TaxonomyError::Integrity {
            violations: vec![
                Violation {
                    rule: IntegrityRule::BroaderCycle,
                    concepts: vec!["a".into(), "b".into()],
                    message: "a → b → a".into(),
                },
                Violation {
                    rule: IntegrityRule::LabelsDisjoint,
                    concepts: vec!["c".into()],
                    message: "c: x".into(),
                },
            ],
        };
        let text = e.to_string();
        assert!(text.contains("2 SKOS integrity violations"), "{text}");
        assert!(text.contains("[broader_cycle]") && text.contains("[labels_disjoint]"));
    }

    #[test]
    fn requests_reject_unknown_fields() {
        let err = serde_json::from_str::<ExportRequest>(
            r#"{"scheme":"a","format":"turtle","versoin":1}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("versoin"), "{err}");
    }
}
