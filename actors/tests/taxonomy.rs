//! The taxonomy actor driven through its messages, on a store on disk: the shared SKOS files
//! import with their counts; every integrity rule is enforced, all violations reported at once
//! and nothing stored; versions, deprecation and subtrees; persistence across restarts; label
//! search; classification; SKOS and JSON round trips.

use std::path::PathBuf;

use ensemble_actors::store::Store;
use ensemble_actors::taxonomy::{Subtrees, TaxonomyActor, TaxonomyMsg};
use ensemble_protocol::taxonomy::*;
use ensemble_supervision::CancellationToken;
use ractor::{Actor, ActorRef};
use serde_json::json;

type Taxo = ActorRef<TaxonomyMsg>;

async fn spawn(store: &Store) -> Taxo {
    Actor::spawn(None, TaxonomyActor, store.clone())
        .await
        .unwrap()
        .0
}

async fn temp() -> (Taxo, Store) {
    let store = Store::temporary().unwrap();
    (spawn(&store).await, store)
}

fn c() -> CancellationToken {
    CancellationToken::new()
}

async fn import(
    t: &Taxo,
    scheme: &str,
    format: Format,
    content: &str,
) -> Result<ImportResponse, TaxonomyError> {
    let req = ImportRequest {
        scheme: scheme.into(),
        format,
        content: content.into(),
        base_iri: None,
        scheme_uri: None,
    };
    ractor::call!(t, |r| TaxonomyMsg::Import(req, c(), r)).unwrap()
}

async fn import_json(
    t: &Taxo,
    scheme: &str,
    doc: serde_json::Value,
) -> Result<ImportResponse, TaxonomyError> {
    import(t, scheme, Format::Json, &doc.to_string()).await
}

async fn get(
    t: &Taxo,
    scheme: Option<&str>,
    concept: &str,
    version: Option<u32>,
) -> Result<ConceptInfo, TaxonomyError> {
    let req = GetConceptRequest {
        scheme: scheme.map(str::to_string),
        concept: concept.into(),
        version,
        language: None,
    };
    ractor::call!(t, |r| TaxonomyMsg::GetConcept(req, c(), r)).unwrap()
}

async fn export(t: &Taxo, scheme: &str, format: Format, version: Option<u32>) -> String {
    let req = ExportRequest {
        scheme: scheme.into(),
        format,
        version,
    };
    ractor::call!(t, |r| TaxonomyMsg::Export(req, c(), r))
        .unwrap()
        .unwrap()
        .content
}

async fn subtrees(t: &Taxo, ids: &[&str]) -> Subtrees {
    let ids = ids.iter().map(|s| s.to_string()).collect();
    ractor::call!(t, |r| TaxonomyMsg::Subtrees(ids, r)).unwrap()
}

async fn search(t: &Taxo, query: &str, fuzzy: bool) -> Vec<LabelHit> {
    let req = SearchLabelsRequest {
        scheme: None,
        query: query.into(),
        limit: Some(5),
        language: None,
        fuzzy: Some(fuzzy),
    };
    ractor::call!(t, |r| TaxonomyMsg::SearchLabels(req, c(), r))
        .unwrap()
        .unwrap()
        .hits
}

async fn classify(
    t: &Taxo,
    scheme: &str,
    text: &str,
    neighbours: Vec<Neighbour>,
) -> ClassifyResponse {
    let req = ClassifyRequest {
        scheme: scheme.into(),
        text: text.into(),
        limit: Some(5),
        language: None,
        collection: None,
        neighbours: None,
    };
    ractor::call!(t, |r| TaxonomyMsg::Classify(req, neighbours, c(), r))
        .unwrap()
        .unwrap()
}

fn data_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/taxonomy");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: {} is absent", dir.display());
        None
    }
}

/// A small scheme: sport > football (polyhierarchy: also under leisure) > soccer club.
fn sport(extra: serde_json::Value) -> serde_json::Value {
    let mut concepts = json!([
        {"id": "sport", "pref_labels": [{"value": "sport", "lang": "en"}, {"value": "Sport", "lang": "de"}]},
        {"id": "leisure", "pref_labels": [{"value": "leisure", "lang": "en"}]},
        {"id": "football", "broader": ["sport", "leisure"],
         "pref_labels": [{"value": "association football", "lang": "en"}],
         "alt_labels": [{"value": "soccer", "lang": "en"}],
         "hidden_labels": [{"value": "futball", "lang": "en"}]},
        {"id": "club", "broader": ["football"], "pref_labels": [{"value": "football club", "lang": "en"}]},
        {"id": "tennis", "pref_labels": [{"value": "tennis", "lang": "en"}], "narrower": [], "related": ["football"]},
    ]);
    if let (Some(list), Some(more)) = (concepts.as_array_mut(), extra.as_array()) {
        list.extend(more.iter().cloned());
    }
    json!({"uri": "http://example.org/sport", "titles": [{"value": "Sport", "lang": "en"}], "concepts": concepts})
}

#[tokio::test]
async fn the_shared_skos_files_import_with_their_counts() {
    let Some(dir) = data_dir() else { return };
    let (t, _store) = temp().await;
    let acm = std::fs::read_to_string(dir.join("acm_ccs2012.xml")).unwrap();
    let r = import(&t, "acm", Format::Rdfxml, &acm).await.unwrap();
    assert_eq!(
        (r.version, r.concepts, r.top_concepts.len()),
        (1, 2113, 13),
        "{:?}",
        r.warnings
    );
    let iptc = std::fs::read_to_string(dir.join("iptc-mediatopic-cptall-en-GB.rdf")).unwrap();
    let r = import(&t, "iptc", Format::Rdfxml, &iptc).await.unwrap();
    assert_eq!(
        (r.version, r.concepts, r.top_concepts.len()),
        (1, 1153, 17),
        "{:?}",
        r.warnings
    );

    // Relative ids of the ACM file are kept as written; paths lead to the top.
    let ml = get(&t, None, "10010147.10010257", None).await.unwrap();
    assert_eq!(
        (ml.scheme.as_str(), ml.label.as_str()),
        ("acm", "Machine learning")
    );
    assert_eq!(
        ml.paths,
        vec![vec![ConceptRef {
            id: "10010147".into(),
            label: "Computing methodologies".into()
        }]]
    );
    assert!(!ml.concept.narrower.is_empty());
    let sub = subtrees(&t, &["10010147.10010257", "nope"]).await;
    assert!(sub.members.len() > 30 && sub.members.contains(&"10010147.10010257".to_string()));
    assert_eq!(sub.unknown, ["nope"]);

    // IPTC: definitions and mappings survive.
    let arts = get(
        &t,
        Some("iptc"),
        "http://cv.iptc.org/newscodes/mediatopic/01000000",
        None,
    )
    .await
    .unwrap();
    assert!(arts.top_concept && !arts.concept.definitions.is_empty());
    assert_eq!(
        arts.concept.exact_match,
        ["http://cv.iptc.org/newscodes/subjectcode/01000000"]
    );

    // Classification finds the obvious concepts by their labels.
    let text = "An agent trained with reinforcement learning beats earlier supervised learning \
                baselines; reinforcement learning needs rewards.";
    let got = classify(&t, "acm", text, vec![]).await;
    assert_eq!(
        got.concepts[0].label, "Reinforcement learning",
        "{:#?}",
        got.concepts
    );
    assert!(
        got.concepts[0]
            .evidence
            .iter()
            .any(|e| e.text == "Reinforcement learning" && e.occurrences == 2)
    );
    assert!(
        got.concepts.iter().all(|c| c.label != "Machine learning"),
        "a parent earns nothing from its child"
    );
    let news = "The earthquake destroyed homes; officials said the earthquake struck at night.";
    let got = classify(&t, "iptc", news, vec![]).await;
    assert_eq!(got.concepts[0].label, "earthquake", "{:#?}", got.concepts);

    // Unknown concepts suggest the full id.
    let err = get(&t, Some("iptc"), "01000000", None).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("http://cv.iptc.org/newscodes/mediatopic/01000000"),
        "{err}"
    );
}

#[tokio::test]
async fn skos_exports_round_trip() {
    let Some(dir) = data_dir() else { return };
    let (t, _store) = temp().await;
    let iptc = std::fs::read_to_string(dir.join("iptc-mediatopic-cptall-en-GB.rdf")).unwrap();
    import(&t, "iptc", Format::Rdfxml, &iptc).await.unwrap();
    let acm = std::fs::read_to_string(dir.join("acm_ccs2012.xml")).unwrap();
    import(&t, "acm", Format::Rdfxml, &acm).await.unwrap();
    for (scheme, format) in [
        ("iptc", Format::Turtle),
        ("acm", Format::Turtle),
        ("acm", Format::Rdfxml),
    ] {
        let text = export(&t, scheme, format, None).await;
        let again = import(&t, &format!("{scheme}-{format}"), format, &text)
            .await
            .unwrap();
        assert!(again.created);
        let a: TaxonomyDocument =
            serde_json::from_str(&export(&t, scheme, Format::Json, None).await).unwrap();
        let b: TaxonomyDocument = serde_json::from_str(
            &export(&t, &format!("{scheme}-{format}"), Format::Json, None).await,
        )
        .unwrap();
        assert_eq!(a.concepts.len(), b.concepts.len());
        assert_eq!(a.top_concepts, b.top_concepts);
        assert!(
            a.concepts == b.concepts,
            "{scheme} {format}: concepts differ after the round trip"
        );
        // Re-importing the same content into the original scheme is no new version.
        let same = import(&t, scheme, format, &text).await.unwrap();
        assert!(!same.created && same.version == 1);
    }
}

#[tokio::test]
async fn every_violation_is_reported_at_once_and_nothing_is_stored() {
    let (t, _store) = temp().await;
    let bad = json!({"concepts": [
        {"id": "a", "broader": ["b"], "pref_labels": [{"value": "A", "lang": "en"}, {"value": "Alpha", "lang": "en"}]},
        {"id": "b", "broader": ["a"], "pref_labels": [{"value": "B", "lang": "en"}],
         "alt_labels": [{"value": "B", "lang": "en"}]},
        {"id": "c", "broader": ["ghost"], "related": ["c"],
         "hidden_labels": [{"value": "x", "lang": "fr"}], "alt_labels": [{"value": "x", "lang": "fr"}]},
        {"id": "d", "pref_labels": [{"value": "D", "lang": "en"}]},
        {"id": "e", "broader": ["d"], "related": ["d"]},
        {"id": "e"},
        {"id": "not an id"},
        {"id": "f", "broader": ["f"]},
    ]});
    let err = import_json(&t, "bad", bad.clone()).await.unwrap_err();
    let TaxonomyError::Integrity { violations } = &err else {
        panic!("{err:?}")
    };
    let rules: Vec<IntegrityRule> = violations.iter().map(|v| v.rule).collect();
    for rule in [
        IntegrityRule::InvalidId,
        IntegrityRule::DuplicateConcept,
        IntegrityRule::UnknownConcept,
        IntegrityRule::BroaderCycle,
        IntegrityRule::PrefLabelPerLanguage,
        IntegrityRule::LabelsDisjoint,
        IntegrityRule::RelatedIsAncestor,
        IntegrityRule::RelatedToSelf,
    ] {
        assert!(
            rules.contains(&rule),
            "{rule:?} missing from {violations:#?}"
        );
    }
    let cycles: Vec<&Vec<String>> = violations
        .iter()
        .filter(|v| v.rule == IntegrityRule::BroaderCycle)
        .map(|v| &v.concepts)
        .collect();
    assert_eq!(
        cycles,
        [&vec!["a".to_string(), "b".into()], &vec!["f".to_string()]]
    );
    assert_eq!(
        rules
            .iter()
            .filter(|r| **r == IntegrityRule::LabelsDisjoint)
            .count(),
        2
    );
    let text = err.to_string();
    assert!(
        text.contains("nothing was stored") && text.contains("`ghost`"),
        "{text}"
    );

    let req = ListRequest {};
    let list = ractor::call!(t, |r| TaxonomyMsg::List(req, c(), r))
        .unwrap()
        .unwrap();
    assert!(list.schemes.is_empty());

    // The same report without storing, through validate.
    let req = ValidateRequest {
        format: Format::Json,
        content: bad.to_string(),
        base_iri: None,
        scheme_uri: None,
        scheme: None,
    };
    let report = ractor::call!(t, |r| TaxonomyMsg::Validate(req, c(), r))
        .unwrap()
        .unwrap();
    assert!(!report.valid);
    assert_eq!(&report.violations, violations);
}

#[tokio::test]
async fn cycles_are_found_in_polyhierarchies_and_narrower_counts_as_inverse_broader() {
    let (t, _store) = temp().await;
    // x > y > z stated with narrower; z > x via broader closes the loop; w has two parents.
    let doc = json!({"concepts": [
        {"id": "x", "narrower": ["y"], "broader": ["z"]},
        {"id": "y", "narrower": ["z", "w"]},
        {"id": "z"},
        {"id": "v", "narrower": ["w"]},
        {"id": "w"},
    ]});
    let err = import_json(&t, "loop", doc).await.unwrap_err();
    let TaxonomyError::Integrity { violations } = err else {
        panic!()
    };
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].concepts, ["x", "y", "z"]);
    // Without the closing edge the same polyhierarchy is fine, and narrower became broader.
    let doc = json!({"concepts": [
        {"id": "x", "narrower": ["y"]}, {"id": "y", "narrower": ["z", "w"]}, {"id": "z"},
        {"id": "v", "narrower": ["w"]}, {"id": "w"},
    ]});
    let r = import_json(&t, "poly", doc).await.unwrap();
    assert_eq!(r.top_concepts, ["v", "x"]);
    let w = get(&t, Some("poly"), "w", None).await.unwrap();
    assert_eq!(w.concept.broader, ["v", "y"]);
    assert_eq!(w.paths.len(), 2);
    let req = RelativesRequest {
        scheme: None,
        concept: "w".into(),
        depth: None,
        version: None,
    };
    let up = ractor::call!(t, |r| TaxonomyMsg::Ancestors(req, c(), r))
        .unwrap()
        .unwrap();
    let ids: Vec<(&str, u32)> = up
        .concepts
        .iter()
        .map(|r| (r.id.as_str(), r.distance))
        .collect();
    assert_eq!(ids, [("v", 1), ("y", 1), ("x", 2)]);
    let req = RelativesRequest {
        scheme: Some("poly".into()),
        concept: "x".into(),
        depth: Some(1),
        version: None,
    };
    let down = ractor::call!(t, |r| TaxonomyMsg::Descendants(req, c(), r))
        .unwrap()
        .unwrap();
    assert_eq!(down.concepts.len(), 1);
}

#[tokio::test]
async fn subtrees_follow_polyhierarchy_and_deprecation() {
    let (t, _store) = temp().await;
    let v1 = sport(
        json!([{"id": "soccer-old", "deprecated": true, "replaced_by": ["football"],
                            "pref_labels": [{"value": "soccer (old)", "lang": "en"}]}]),
    );
    import_json(&t, "sport", v1).await.unwrap();
    let s = subtrees(&t, &["leisure"]).await;
    assert_eq!(s.members, ["club", "football", "leisure", "soccer-old"]);
    let s = subtrees(&t, &["sport", "tennis", "unknown-1"]).await;
    assert_eq!(
        s.members,
        ["club", "football", "soccer-old", "sport", "tennis"]
    );
    assert_eq!(s.unknown, ["unknown-1"]);
    // Version 2 drops the deprecated concept; it still maps into its replacement's subtree.
    let v2 = sport(json!([{"id": "chess", "pref_labels": [{"value": "chess", "lang": "en"}]}]));
    let r = import_json(&t, "sport", v2).await.unwrap();
    assert_eq!(r.version, 2);
    assert!(
        r.warnings.is_empty(),
        "a concept retired with a replacement is no loss: {:?}",
        r.warnings
    );
    let s = subtrees(&t, &["football", "soccer-old"]).await;
    assert_eq!(s.members, ["club", "football", "soccer-old"]);
    assert!(s.unknown.is_empty());
}

#[tokio::test]
async fn versions_are_kept_and_removals_warned() {
    let (t, _store) = temp().await;
    assert_eq!(
        import_json(&t, "sport", sport(json!([])))
            .await
            .unwrap()
            .version,
        1
    );
    let mut v2 = sport(json!([]));
    v2["concepts"]
        .as_array_mut()
        .unwrap()
        .retain(|c| c["id"] != "tennis");
    let r = import_json(&t, "sport", v2).await.unwrap();
    assert_eq!((r.version, r.created), (2, true));
    assert_eq!(r.warnings.len(), 1);
    assert!(r.warnings[0].contains("`tennis`") && r.warnings[0].contains("without a replacement"));
    let err = get(&t, Some("sport"), "tennis", None).await.unwrap_err();
    assert!(
        matches!(err, TaxonomyError::UnknownConcept { .. }),
        "{err:?}"
    );
    let old = get(&t, Some("sport"), "tennis", Some(1)).await.unwrap();
    assert_eq!((old.version, old.label.as_str()), (1, "tennis"));
    // Without a scheme an id of an earlier version is still found when a version is named.
    assert_eq!(
        get(&t, None, "tennis", Some(1)).await.unwrap().scheme,
        "sport"
    );
    let old = export(&t, "sport", Format::Json, Some(1)).await;
    assert!(old.contains("tennis"));
    let err = get(&t, Some("sport"), "sport", Some(3)).await.unwrap_err();
    assert!(err.to_string().contains("versions are 1 to 2"), "{err}");
    let req = ListRequest {};
    let list = ractor::call!(t, |r| TaxonomyMsg::List(req, c(), r))
        .unwrap()
        .unwrap();
    assert_eq!(list.schemes[0].versions.len(), 2);
    assert_eq!(list.schemes[0].title.as_deref(), Some("Sport"));
}

#[tokio::test]
async fn bad_input_never_loses_stored_data_and_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (t, running) = Actor::spawn(None, TaxonomyActor, store.clone())
        .await
        .unwrap();
    import_json(&t, "sport", sport(json!([]))).await.unwrap();
    assert!(store.flush_count() >= 1, "answered before any flush");
    let err = import(
        &t,
        "sport",
        Format::Turtle,
        "@prefix skos: <x> .\n<a> skos:broader ",
    )
    .await
    .unwrap_err();
    let TaxonomyError::Parse { line, column, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(line.is_some() && column.is_some(), "{err}");
    let err = import(
        &t,
        "sport",
        Format::Json,
        "{\"concepts\": [\n {\"id\": 1}]}",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    let xml = "<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n\
               <rdf:Description rdf:about=\"a\">\n</rdf:RDF>";
    let err = import(&t, "sport", Format::Rdfxml, xml).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("rdfxml content does not parse at line"),
        "{err}"
    );
    let cyclic = json!({"concepts": [{"id": "a", "broader": ["a"]}]});
    assert!(import_json(&t, "sport", cyclic).await.is_err());
    let err = import_json(&t, "bad id!", sport(json!([])))
        .await
        .unwrap_err();
    assert!(matches!(err, TaxonomyError::InvalidArgument { .. }));
    let err = get(&t, Some("nope"), "a", None).await.unwrap_err();
    assert!(
        err.to_string().contains("known schemes are: sport"),
        "{err}"
    );
    assert_eq!(get(&t, None, "football", None).await.unwrap().version, 1);

    t.stop(None);
    running.await.unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let t = spawn(&store).await;
    let football = get(&t, None, "football", None).await.unwrap();
    assert_eq!(
        (football.version, football.label.as_str()),
        (1, "association football")
    );
    assert_eq!(
        subtrees(&t, &["sport"]).await.members,
        ["club", "football", "sport"]
    );
    assert_eq!(search(&t, "soccer", false).await[0].concept, "football");
    let again = import_json(&t, "sport", sport(json!([]))).await.unwrap();
    assert!(!again.created);
}

#[tokio::test]
async fn label_search_ranks_exact_prefix_fuzzy_and_hides_hidden_labels() {
    let (t, _store) = temp().await;
    import_json(&t, "sport", sport(json!([]))).await.unwrap();
    let hits = search(&t, "football", false).await;
    assert_eq!(
        hits[0].concept, "club",
        "`football club` starts with the query"
    );
    assert_eq!(hits[0].match_kind, MatchKind::Prefix);
    assert_eq!(
        hits[1].concept, "football",
        "a word of `association football`"
    );
    let hits = search(&t, "Soccer", true).await;
    assert_eq!(
        (hits[0].match_kind, hits[0].label_kind),
        (MatchKind::Exact, LabelKind::Alt)
    );
    assert_eq!(hits[0].label, "association football");
    let hits = search(&t, "assoc", true).await;
    assert_eq!(
        (hits[0].concept.as_str(), hits[0].match_kind),
        ("football", MatchKind::Prefix)
    );
    let hits = search(&t, "socer", true).await;
    assert_eq!(
        (
            hits[0].concept.as_str(),
            hits[0].match_kind,
            hits[0].distance
        ),
        ("football", MatchKind::Fuzzy, 1)
    );
    assert!(search(&t, "socer", false).await.is_empty());
    let hits = search(&t, "futball", true).await;
    assert_eq!(hits[0].label_kind, LabelKind::Hidden);
    assert_eq!(hits[0].matched, None);
    assert_eq!(hits[0].label, "association football");
    let hits = search(&t, "tenis", true).await;
    assert_eq!(hits[0].concept, "tennis");
}

#[tokio::test]
async fn classification_combines_labels_and_neighbour_votes() {
    let (t, _store) = temp().await;
    let doc = sport(json!([{"id": "soccer-old", "deprecated": true, "replaced_by": ["football"]}]));
    import_json(&t, "sport", doc).await.unwrap();
    let got = classify(
        &t,
        "sport",
        "The football club signed a tennis player.",
        vec![],
    )
    .await;
    let labels: Vec<&str> = got.concepts.iter().map(|c| c.concept.as_str()).collect();
    assert_eq!(
        labels,
        ["club", "tennis"],
        "the phrase claims its words; no parent credit"
    );
    assert_eq!(got.concepts[0].score, 1.0);
    let neighbours = vec![
        Neighbour {
            categories: vec!["soccer-old".into()],
            score: 0.9,
        },
        Neighbour {
            categories: vec!["tennis".into(), "elsewhere".into()],
            score: 0.3,
        },
        Neighbour {
            categories: vec!["football".into()],
            score: 0.6,
        },
    ];
    let got = classify(&t, "sport", "A report on soccer.", neighbours).await;
    assert_eq!(got.neighbours_used, 3);
    let top = &got.concepts[0];
    assert_eq!(top.concept, "football");
    assert!((top.vote_score - 1.5 / 1.8).abs() < 1e-4, "{top:?}");
    let sources: Vec<EvidenceSource> = top.evidence.iter().map(|e| e.source).collect();
    assert!(
        sources.contains(&EvidenceSource::Label) && sources.contains(&EvidenceSource::Neighbours)
    );
    assert!(got.concepts.iter().all(|c| c.concept != "soccer-old"));
}

#[tokio::test]
async fn the_json_form_round_trips_through_turtle_and_rdfxml() {
    let (t, _store) = temp().await;
    let mut doc = sport(json!([{"id": "http://example.org/x", "notations": ["01"],
        "definitions": [{"value": "An example.", "lang": "en"}], "scope_notes": [{"value": "note"}],
        "exact_match": ["http://other.org/1"], "close_match": ["http://other.org/2"],
        "broad_match": ["http://other.org/3"], "narrow_match": ["http://other.org/4"],
        "related_match": ["http://other.org/5"], "deprecated": true}]));
    doc["top_concepts"] = json!(["sport", "leisure", "tennis"]);
    import_json(&t, "sport", doc).await.unwrap();
    let original = export(&t, "sport", Format::Json, None).await;
    for format in [Format::Turtle, Format::Rdfxml] {
        let text = export(&t, "sport", format, None).await;
        let scheme = format!("copy-{format}");
        import(&t, &scheme, format, &text).await.unwrap();
        assert_eq!(
            export(&t, &scheme, Format::Json, None).await,
            original,
            "{format}:\n{text}"
        );
    }
    let x = get(&t, Some("sport"), "http://example.org/x", None)
        .await
        .unwrap();
    assert!(x.concept.deprecated && x.concept.notations == ["01"]);
    let tennis = get(&t, Some("sport"), "football", None).await.unwrap();
    assert_eq!(tennis.concept.related, ["tennis"], "related is symmetric");
    assert_eq!(tennis.concept.narrower, ["club"]);
}
