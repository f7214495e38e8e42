//! SKOS in and out: RDF/XML and Turtle through Oxigraph's parsers and serializers, and the
//! native JSON form.
//!
//! Relative IRIs in a document without a base are kept as written: they are resolved against
//! a placeholder base that is stripped again, and exported as the same relative references.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ensemble_protocol::taxonomy::{Concept, Format, Label, TaxonomyDocument, TaxonomyError};
use oxrdf::vocab::{rdf, xsd};
use oxrdf::{Literal, NamedNode, NamedOrBlankNode, Term, Triple};
use oxrdfxml::{RdfXmlParser, RdfXmlSerializer};
use oxttl::{TurtleParser, TurtleSerializer};

use super::model::Version;

const SKOS: &str = "http://www.w3.org/2004/02/skos/core#";
const OWL: &str = "http://www.w3.org/2002/07/owl#";
const DCT: &str = "http://purl.org/dc/terms/";
const DC: &str = "http://purl.org/dc/elements/1.1/";
const RDFS: &str = "http://www.w3.org/2000/01/rdf-schema#";
/// Resolves relative IRIs of a document without a base; stripped again after parsing.
const PLACEHOLDER_BASE: &str = "http://ensemble.invalid/relative/";

/// An RDF object, simplified.
#[derive(Debug, Clone)]
enum Obj {
    Iri(String),
    Literal(Label),
}

/// Parses `content` in `format` into a document, with warnings about what was skipped.
pub fn parse(
    format: Format,
    content: &str,
    base_iri: Option<&str>,
    scheme_uri: Option<&str>,
) -> Result<(TaxonomyDocument, Vec<String>), TaxonomyError> {
    match format {
        Format::Json => serde_json::from_str(content)
            .map(|doc| (doc, Vec::new()))
            .map_err(|e| TaxonomyError::Parse {
                format,
                line: Some(e.line() as u64),
                column: Some(e.column() as u64),
                message: e.to_string(),
            }),
        Format::Rdfxml | Format::Turtle => {
            let triples = parse_triples(format, content, base_iri)?;
            Ok(from_triples(triples, base_iri.is_none(), scheme_uri))
        }
    }
}

fn line_column(content: &str, offset: u64) -> (u64, u64) {
    let upto = &content.as_bytes()[..(offset as usize).min(content.len())];
    let line = upto.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let start = upto.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&upto[start..]).chars().count() as u64 + 1;
    (line, column)
}

fn parse_triples(
    format: Format,
    content: &str,
    base_iri: Option<&str>,
) -> Result<Vec<Triple>, TaxonomyError> {
    let base = base_iri.unwrap_or(PLACEHOLDER_BASE);
    let bad_base = |e: String| TaxonomyError::InvalidArgument {
        field: "base_iri".into(),
        message: format!("{base:?} is not an absolute IRI: {e}"),
    };
    let mut out = Vec::new();
    if format == Format::Turtle {
        let parser = TurtleParser::new()
            .with_base_iri(base)
            .map_err(|e| bad_base(e.to_string()))?;
        for t in parser.for_slice(content) {
            match t {
                Ok(t) => out.push(t),
                Err(e) => {
                    let at = e.location().start;
                    return Err(TaxonomyError::Parse {
                        format,
                        line: Some(at.line + 1),
                        column: Some(at.column + 1),
                        message: e.message().to_string(),
                    });
                }
            }
        }
    } else {
        let parser = RdfXmlParser::new()
            .with_base_iri(base)
            .map_err(|e| bad_base(e.to_string()))?;
        let mut reader = parser.for_slice(content);
        while let Some(t) = reader.next() {
            match t {
                Ok(t) => out.push(t),
                Err(e) => {
                    let (line, column) = line_column(content, reader.buffer_position());
                    return Err(TaxonomyError::Parse {
                        format,
                        line: Some(line),
                        column: Some(column),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn node_id(node: &NamedOrBlankNode, strip: bool) -> String {
    match node {
        NamedOrBlankNode::NamedNode(n) => iri_id(n.as_str(), strip),
        NamedOrBlankNode::BlankNode(b) => format!("_:{}", b.as_str()),
    }
}

fn iri_id(iri: &str, strip: bool) -> String {
    match iri.strip_prefix(PLACEHOLDER_BASE) {
        Some(rest) if strip => rest.to_string(),
        _ => iri.to_string(),
    }
}

fn from_triples(
    triples: Vec<Triple>,
    strip: bool,
    scheme_uri: Option<&str>,
) -> (TaxonomyDocument, Vec<String>) {
    let mut props: BTreeMap<String, Vec<(String, Obj)>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for t in triples {
        let subject = node_id(&t.subject, strip);
        let obj = match &t.object {
            Term::NamedNode(n) => Obj::Iri(iri_id(n.as_str(), strip)),
            Term::BlankNode(b) => Obj::Iri(format!("_:{}", b.as_str())),
            Term::Literal(l) => Obj::Literal(Label::new(l.value(), l.language().unwrap_or(""))),
            #[allow(unreachable_patterns)]
            _ => continue,
        };
        let entry = props.entry(subject.clone()).or_insert_with(|| {
            order.push(subject);
            Vec::new()
        });
        entry.push((t.predicate.as_str().to_string(), obj));
    }
    let skos = |local: &str| format!("{SKOS}{local}");
    let is_type = |p: &[(String, Obj)], ty: &str| {
        p.iter()
            .any(|(k, o)| k == rdf::TYPE.as_str() && matches!(o, Obj::Iri(i) if i == ty))
    };
    let iris = |p: &[(String, Obj)], pred: &str| -> Vec<String> {
        p.iter()
            .filter(|(k, _)| k == pred)
            .filter_map(|(_, o)| match o {
                Obj::Iri(i) => Some(i.clone()),
                Obj::Literal(_) => None,
            })
            .collect()
    };
    let literals = |p: &[(String, Obj)], pred: &str| -> Vec<Label> {
        p.iter()
            .filter(|(k, _)| k == pred)
            .filter_map(|(_, o)| match o {
                Obj::Literal(l) => Some(l.clone()),
                Obj::Iri(_) => None,
            })
            .collect()
    };

    let mut schemes: BTreeSet<String> = BTreeSet::new();
    for (s, p) in &props {
        if is_type(p, &skos("ConceptScheme")) || !iris(p, &skos("hasTopConcept")).is_empty() {
            schemes.insert(s.clone());
        }
        for pred in ["inScheme", "topConceptOf"] {
            schemes.extend(iris(p, &skos(pred)));
        }
    }
    let conceptish = [
        "prefLabel",
        "broader",
        "narrower",
        "inScheme",
        "topConceptOf",
        "altLabel",
        "notation",
    ];
    let mut warnings = Vec::new();
    let chosen = scheme_uri.map(str::to_string).or_else(|| {
        if schemes.len() > 1 {
            warnings.push(format!(
                "the document holds {} concept schemes ({}); all their concepts were read \
                 into one — pass `scheme_uri` to take one",
                schemes.len(),
                schemes.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        schemes.iter().next().cloned()
    });
    let scheme_props: &[(String, Obj)] = chosen
        .as_ref()
        .and_then(|s| props.get(s))
        .map_or(&[], Vec::as_slice);
    let mut tops: BTreeSet<String> = iris(scheme_props, &skos("hasTopConcept"))
        .into_iter()
        .collect();

    let mut concepts = Vec::new();
    let mut replaces: Vec<(String, String)> = Vec::new();
    for s in &order {
        let p = &props[s];
        if schemes.contains(s)
            || is_type(p, &skos("Collection"))
            || is_type(p, &skos("OrderedCollection"))
        {
            continue;
        }
        let typed = is_type(p, &skos("Concept"));
        if !typed
            && !p
                .iter()
                .any(|(k, _)| conceptish.iter().any(|c| *k == skos(c)))
        {
            continue;
        }
        let member_of: Vec<String> = ["inScheme", "topConceptOf"]
            .iter()
            .flat_map(|x| iris(p, &skos(x)))
            .collect();
        if let Some(want) = scheme_uri
            && !member_of.is_empty()
            && !member_of.iter().any(|m| m == want)
            && !tops.contains(s)
        {
            continue;
        }
        if chosen
            .as_ref()
            .is_some_and(|c| iris(p, &skos("topConceptOf")).contains(c))
        {
            tops.insert(s.clone());
        }
        let deprecated = literals(p, &format!("{OWL}deprecated"))
            .iter()
            .any(|l| matches!(l.value.trim(), "true" | "1"));
        for new in iris(p, &format!("{DCT}replaces")) {
            replaces.push((new, s.clone()));
        }
        concepts.push(Concept {
            id: s.clone(),
            pref_labels: literals(p, &skos("prefLabel")),
            alt_labels: literals(p, &skos("altLabel")),
            hidden_labels: literals(p, &skos("hiddenLabel")),
            notations: literals(p, &skos("notation"))
                .into_iter()
                .map(|l| l.value)
                .collect(),
            definitions: literals(p, &skos("definition")),
            scope_notes: literals(p, &skos("scopeNote")),
            broader: iris(p, &skos("broader")),
            narrower: iris(p, &skos("narrower")),
            related: iris(p, &skos("related")),
            exact_match: iris(p, &skos("exactMatch")),
            close_match: iris(p, &skos("closeMatch")),
            broad_match: iris(p, &skos("broadMatch")),
            narrow_match: iris(p, &skos("narrowMatch")),
            related_match: iris(p, &skos("relatedMatch")),
            deprecated,
            replaced_by: iris(p, &format!("{DCT}isReplacedBy")),
        });
    }
    // `new dct:replaces old` is `old dct:isReplacedBy new` when both are concepts here.
    let at: HashMap<String, usize> = concepts
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.clone(), i))
        .collect();
    for (new, old) in replaces {
        if let Some(&i) = at.get(&old) {
            concepts[i].replaced_by.push(new);
        }
    }
    let titles = [
        format!("{DCT}title"),
        format!("{DC}title"),
        skos("prefLabel"),
        format!("{RDFS}label"),
    ]
    .iter()
    .flat_map(|p| literals(scheme_props, p))
    .collect();
    let doc = TaxonomyDocument {
        uri: chosen,
        titles,
        top_concepts: tops.into_iter().collect(),
        concepts,
    };
    (doc, warnings)
}

/// Serializes `version` in `format`.
pub fn export(version: &Version, format: Format) -> Result<String, TaxonomyError> {
    let failed = |e: std::io::Error| TaxonomyError::Store(format!("could not serialize: {e}"));
    match format {
        Format::Json => serde_json::to_string_pretty(&version.document())
            .map_err(|e| TaxonomyError::Store(format!("could not serialize: {e}"))),
        Format::Turtle => {
            let mut ser = TurtleSerializer::new();
            for (p, iri) in prefixes() {
                ser = ser
                    .with_prefix(p, iri)
                    .map_err(|e| TaxonomyError::Store(e.to_string()))?;
            }
            let mut w = ser.for_writer(Vec::new());
            for t in triples(version) {
                w.serialize_triple(&t).map_err(failed)?;
            }
            let bytes = w.finish().map_err(failed)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        Format::Rdfxml => {
            let mut ser = RdfXmlSerializer::new();
            for (p, iri) in prefixes() {
                ser = ser
                    .with_prefix(p, iri)
                    .map_err(|e| TaxonomyError::Store(e.to_string()))?;
            }
            let mut w = ser.for_writer(Vec::new());
            for t in triples(version) {
                w.serialize_triple(&t).map_err(failed)?;
            }
            let bytes = w.finish().map_err(failed)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
    }
}

fn prefixes() -> [(&'static str, &'static str); 4] {
    [
        ("skos", SKOS),
        ("dct", DCT),
        ("owl", OWL),
        ("xsd", "http://www.w3.org/2001/XMLSchema#"),
    ]
}

fn literal(l: &Label) -> Term {
    if l.lang.is_empty() {
        Literal::new_simple_literal(&l.value).into()
    } else {
        Literal::new_language_tagged_literal_unchecked(&l.value, &l.lang).into()
    }
}

/// The version as SKOS triples: the scheme, then each concept (sorted by id).
fn triples(v: &Version) -> Vec<Triple> {
    // Stored ids are valid IRI references (checked on import), written as they are.
    let node = |id: &str| NamedNode::new_unchecked(id);
    let skos = |local: &str| NamedNode::new_unchecked(format!("{SKOS}{local}"));
    let scheme = node(
        &v.uri
            .clone()
            .unwrap_or_else(|| format!("urn:ensemble:taxonomy:{}", v.scheme)),
    );
    let mut out = vec![Triple::new(
        scheme.clone(),
        rdf::TYPE,
        skos("ConceptScheme"),
    )];
    for t in &v.titles {
        out.push(Triple::new(
            scheme.clone(),
            NamedNode::new_unchecked(format!("{DCT}title")),
            literal(t),
        ));
    }
    for top in &v.top_concepts {
        out.push(Triple::new(
            scheme.clone(),
            skos("hasTopConcept"),
            node(top),
        ));
    }
    for (id, c) in &v.concepts {
        let s = node(id);
        let mut add = |p: NamedNode, o: Term| out.push(Triple::new(s.clone(), p, o));
        add(rdf::TYPE.into(), skos("Concept").into());
        add(skos("inScheme"), scheme.clone().into());
        if v.top_concepts.contains(id) {
            add(skos("topConceptOf"), scheme.clone().into());
        }
        for (pred, labels) in [
            ("prefLabel", &c.pref_labels),
            ("altLabel", &c.alt_labels),
            ("hiddenLabel", &c.hidden_labels),
            ("definition", &c.definitions),
            ("scopeNote", &c.scope_notes),
        ] {
            for l in labels {
                add(skos(pred), literal(l));
            }
        }
        for n in &c.notations {
            add(skos("notation"), Literal::new_simple_literal(n).into());
        }
        let narrower = v.children(id).to_vec();
        for (pred, list) in [
            ("broader", &c.broader),
            ("narrower", &narrower),
            ("related", &c.related),
            ("exactMatch", &c.exact_match),
            ("closeMatch", &c.close_match),
            ("broadMatch", &c.broad_match),
            ("narrowMatch", &c.narrow_match),
            ("relatedMatch", &c.related_match),
        ] {
            for target in list {
                add(skos(pred), node(target).into());
            }
        }
        if c.deprecated {
            add(
                NamedNode::new_unchecked(format!("{OWL}deprecated")),
                Literal::new_typed_literal("true", xsd::BOOLEAN).into(),
            );
        }
        for r in &c.replaced_by {
            add(
                NamedNode::new_unchecked(format!("{DCT}isReplacedBy")),
                node(r).into(),
            );
        }
    }
    out
}
