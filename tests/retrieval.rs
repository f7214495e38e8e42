//! The retrieval engine end to end in an embedded runtime, every answer checked against its
//! tool's output schema: index, search, get, upsert, delete; queries full of operators and
//! unicode; empty and unknown collections; refused batches that write nothing; category
//! filters that follow the taxonomy's subtrees (a deprecated concept's documents found through
//! its replacement); metadata filters; artifacts from the registry with their digest.

mod common;

use ensemble::runtime::Runtime;
use serde_json::{Value, json};

async fn runtime() -> Runtime {
    Runtime::builder()
        .in_memory()
        .build()
        .await
        .expect("runtime")
}

async fn ok(rt: &Runtime, tool: &str, args: Value) -> Value {
    common::checked(rt, tool, args).await
}

async fn refused(rt: &Runtime, tool: &str, args: Value) -> String {
    common::router_refusal(rt, tool, args).await
}

fn ids(answer: &Value) -> Vec<String> {
    answer["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["id"].as_str().expect("id").to_string())
        .collect()
}

async fn papers(rt: &Runtime) {
    ok(rt, "rag_create_collection", json!({"name": "papers"})).await;
    let indexed = ok(
        rt,
        "rag_index",
        json!({"collection": "papers", "documents": [
            {"id": "p1", "title": "Protein folding", "text": "Chaperones help proteins fold into their native structures."},
            {"id": "p2", "title": "Glacier retreat", "text": "Mountain glaciers are retreating as temperatures rise."},
            {"id": "p3", "title": "Folding of RNA", "text": "RNA molecules fold; proteins are not involved here at all."},
            {"id": "p4", "text": "Volcanic ash affects the climate for years after an eruption."}
        ]}),
    )
    .await;
    assert_eq!(indexed["indexed"], 4);
    assert_eq!(indexed["documents"], 4);
}

#[tokio::test]
async fn index_search_get_upsert_and_delete() {
    let rt = runtime().await;
    papers(&rt).await;
    let found = ok(
        &rt,
        "rag_search",
        json!({"collection": "papers", "query": "how do proteins fold?"}),
    )
    .await;
    assert_eq!(ids(&found)[0], "p1", "{found}");
    assert_eq!(found["total"], 2, "p1 and p3 match: {found}");
    let snippet = found["hits"][0]["snippet"].as_str().expect("snippet");
    assert!(
        snippet.contains("**proteins**") && snippet.contains("**fold**"),
        "{snippet}"
    );
    assert_eq!(found["hits"][0]["title"], "Protein folding");

    let got = ok(&rt, "rag_get", json!({"collection": "papers", "id": "p2"})).await;
    assert_eq!(
        got["text"],
        "Mountain glaciers are retreating as temperatures rise."
    );

    // Upsert: p2 now speaks of proteins, and glaciers are gone from the collection.
    let upserted = ok(
        &rt,
        "rag_index",
        json!({"collection": "papers", "documents": [
            {"id": "p2", "title": "Heat shock", "text": "Heat shock proteins refold damaged proteins."}
        ]}),
    )
    .await;
    assert_eq!(upserted["documents"], 4, "replaced, not added: {upserted}");
    let glaciers = ok(
        &rt,
        "rag_search",
        json!({"collection": "papers", "query": "glaciers"}),
    )
    .await;
    assert_eq!(glaciers["total"], 0, "{glaciers}");
    let proteins = ok(
        &rt,
        "rag_search",
        json!({"collection": "papers", "query": "proteins"}),
    )
    .await;
    assert_eq!(proteins["total"], 3, "{proteins}");

    // Paging: the second page starts where the first ended.
    let page1 = ok(
        &rt,
        "rag_search",
        json!({"collection": "papers", "query": "proteins", "limit": 2}),
    )
    .await;
    let page2 = ok(
        &rt,
        "rag_search",
        json!({"collection": "papers", "query": "proteins", "limit": 2, "offset": 2}),
    )
    .await;
    assert_eq!([ids(&page1), ids(&page2)].concat(), ids(&proteins));

    let deleted = ok(
        &rt,
        "rag_delete",
        json!({"collection": "papers", "ids": ["p1", "nope"]}),
    )
    .await;
    assert_eq!(deleted["deleted"], 1);
    assert_eq!(deleted["missing"], json!(["nope"]));
    assert_eq!(deleted["documents"], 3);
    let e = refused(&rt, "rag_get", json!({"collection": "papers", "id": "p1"})).await;
    assert!(e.contains("no document \"p1\""), "{e}");

    let stats = ok(&rt, "rag_stats", json!({"collection": "papers"})).await;
    let s = &stats["collections"][0];
    assert_eq!(s["collection"]["documents"], 3);
    assert_eq!(s["collection"]["language"], "english");
    assert_eq!(s["collection"]["title_weight"], 3);
    assert!(s["commits"].as_u64().expect("commits") >= 3, "{stats}");
    assert!(s["searches"].as_u64().expect("searches") >= 5, "{stats}");
}

#[tokio::test]
async fn queries_full_of_operators_and_unicode_never_fail() {
    let rt = runtime().await;
    papers(&rt).await;
    for query in [
        "title:\"protein\" AND -folding* (chaperones) ~2 ^3 || && ! [x TO y] {a} \\ /regex/",
        "Ünïcødé 日本語のテキスト 🙂 protéine ✓ \u{200b}",
        "\"unterminated",
        "+ - && || ! ( ) { } [ ] ^ \" ~ * ? : \\ /",
        "",
        "the and of",
    ] {
        let found = ok(
            &rt,
            "rag_search",
            json!({"collection": "papers", "query": query}),
        )
        .await;
        assert!(found["hits"].is_array(), "{query}: {found}");
    }
    let found = ok(
        &rt,
        "rag_search",
        json!({"collection": "papers", "query": "title:\"proteins\" AND -fold*"}),
    )
    .await;
    assert_eq!(
        ids(&found)[0],
        "p1",
        "operators are words, not syntax: {found}"
    );
}

#[tokio::test]
async fn empty_and_unknown_collections() {
    let rt = runtime().await;
    let e = refused(
        &rt,
        "rag_search",
        json!({"collection": "nothing", "query": "x"}),
    )
    .await;
    assert!(
        e.contains("no collection \"nothing\"") && e.contains("rag_create_collection"),
        "{e}"
    );
    ok(&rt, "rag_create_collection", json!({"name": "empty"})).await;
    let found = ok(
        &rt,
        "rag_search",
        json!({"collection": "empty", "query": "anything"}),
    )
    .await;
    assert_eq!(found["total"], 0);
    let e = refused(
        &rt,
        "rag_index",
        json!({"collection": "emtpy", "documents": []}),
    )
    .await;
    assert!(e.contains("the collections are: empty"), "{e}");
    let e = refused(&rt, "rag_create_collection", json!({"name": "empty"})).await;
    assert!(e.contains("exists already"), "{e}");
    for (args, says) in [
        (json!({"name": "Bad Name"}), "not a valid collection name"),
        (json!({"name": "x", "language": "klingon"}), "english"),
        (json!({"name": "x", "analyzer": "fancy"}), "stemmed"),
        (json!({"name": "x", "title_weight": 0}), "1 to 10"),
        (json!({"name": "x", "ranking": {"k1": -1.0}}), "ranking.k1"),
    ] {
        let e = refused(&rt, "rag_create_collection", args.clone()).await;
        assert!(e.contains(says), "{args}: {e}");
    }
    let e = refused(
        &rt,
        "rag_search",
        json!({"collection": "empty", "query": "x", "limit": 900, "offset": 200}),
    )
    .await;
    assert!(e.contains("at most 1000"), "{e}");
    let dropped = ok(&rt, "rag_drop_collection", json!({"name": "empty"})).await;
    assert_eq!(dropped["documents"], 0);
    let e = refused(
        &rt,
        "rag_search",
        json!({"collection": "empty", "query": "x"}),
    )
    .await;
    assert!(e.contains("no collection"), "{e}");
}

#[tokio::test]
async fn a_bad_batch_names_every_problem_and_writes_nothing() {
    let rt = runtime().await;
    papers(&rt).await;
    let e = refused(
        &rt,
        "rag_index",
        json!({"collection": "papers", "documents": [
            {"id": "ok", "text": "a fine document about proteins"},
            {"id": "", "text": "no id"},
            {"id": "blank", "text": "   ", "metadata": {"k": "v"}},
            {"id": "", "text": "no id either"},
            {"id": "meta", "text": "x", "metadata": {"nested": {"a": 1}}},
            {"id": "cat", "text": "x", "categories": [""]}
        ]}),
    )
    .await;
    for says in [
        "documents[1] (id \"\")",
        "documents[3] (id \"\")",
        "documents[4] (id \"meta\"): metadata \"nested\"",
        "documents[5] (id \"cat\")",
    ] {
        assert!(e.contains(says), "{says}: {e}");
    }
    let got = refused(&rt, "rag_get", json!({"collection": "papers", "id": "ok"})).await;
    assert!(
        got.contains("no document"),
        "nothing of the batch was written: {got}"
    );
    let stats = ok(&rt, "rag_stats", json!({})).await;
    assert_eq!(stats["collections"][0]["collection"]["documents"], 4);
    // A document without words is no problem (a corpus has them); it is found by nothing.
    let blank = ok(
        &rt,
        "rag_index",
        json!({"collection": "papers", "documents": [{"id": "blank", "text": ""}]}),
    )
    .await;
    assert_eq!(blank["documents"], 5);
}

#[tokio::test]
async fn explain_shows_each_terms_part_of_the_score() {
    let rt = runtime().await;
    papers(&rt).await;
    let found = ok(
        &rt,
        "rag_search",
        json!({"collection": "papers", "query": "protein folding", "explain": true}),
    )
    .await;
    let hit = &found["hits"][0];
    let parts = hit["explanation"].as_array().expect("explanation");
    let sum: f64 = parts
        .iter()
        .map(|p| p["score"].as_f64().expect("score"))
        .sum();
    let score = hit["score"].as_f64().expect("score");
    assert!(
        (sum - score).abs() < 1e-4 * score.max(1.0),
        "{sum} vs {score}: {found}"
    );
    let terms: Vec<&str> = found["terms"]
        .as_array()
        .expect("terms")
        .iter()
        .map(|t| t["term"].as_str().expect("term"))
        .collect();
    assert_eq!(terms, ["protein", "fold"]);
    // Feedback switched on for one search adds terms from the best documents.
    let expanded = ok(
        &rt,
        "rag_search",
        json!({"collection": "papers", "query": "protein folding", "explain": true,
               "ranking": {"feedback": {"docs": 2, "terms": 5}}}),
    )
    .await;
    assert!(
        expanded["terms"]
            .as_array()
            .expect("terms")
            .iter()
            .any(|t| t["expansion"] == true),
        "{expanded}"
    );
}

#[tokio::test]
async fn metadata_filters_match_values_and_array_elements() {
    let rt = runtime().await;
    ok(&rt, "rag_create_collection", json!({"name": "notes"})).await;
    ok(
        &rt,
        "rag_index",
        json!({"collection": "notes", "documents": [
            {"id": "a", "text": "deploy the service", "metadata": {"team": "core", "tags": ["ops", "prod"], "year": 2025}},
            {"id": "b", "text": "deploy the website", "metadata": {"team": "web", "tags": ["prod"], "year": 2026, "public": true}},
            {"id": "c", "text": "deploy nothing", "metadata": {"team": "core", "year": 2026}}
        ]}),
    )
    .await;
    let search = |filter: Value| {
        let rt = &rt;
        async move {
            let f = ok(
                rt,
                "rag_search",
                json!({"collection": "notes", "query": "deploy", "filter": {"metadata": filter}}),
            )
            .await;
            let mut ids = ids(&f);
            ids.sort();
            ids
        }
    };
    assert_eq!(search(json!({"team": "core"})).await, ["a", "c"]);
    assert_eq!(search(json!({"tags": "prod"})).await, ["a", "b"]);
    assert_eq!(search(json!({"year": 2026, "team": "core"})).await, ["c"]);
    assert_eq!(search(json!({"public": true})).await, ["b"]);
    assert_eq!(
        search(json!({"team": ["web", "core"], "year": 2025})).await,
        ["a"]
    );
    let e = refused(
        &rt,
        "rag_search",
        json!({"collection": "notes", "query": "deploy", "filter": {"metadata": {"team": {"x": 1}}}}),
    )
    .await;
    assert!(e.contains("filter.metadata.team"), "{e}");
}

#[tokio::test]
async fn category_filters_follow_the_taxonomy_subtree() {
    let rt = runtime().await;
    let v1 = json!({
        "concepts": [
            {"id": "science", "pref_labels": [{"value": "science", "lang": "en"}]},
            {"id": "biology", "broader": ["science"], "pref_labels": [{"value": "biology", "lang": "en"}]},
            {"id": "genetics", "broader": ["biology"], "pref_labels": [{"value": "genetics", "lang": "en"}]},
            {"id": "geology", "broader": ["science"], "pref_labels": [{"value": "geology", "lang": "en"}]},
            {"id": "zoology", "broader": ["biology"], "pref_labels": [{"value": "zoology", "lang": "en"}]}
        ]
    });
    ok(
        &rt,
        "taxonomy_import",
        json!({"scheme": "fields", "format": "json", "content": v1.to_string()}),
    )
    .await;
    ok(&rt, "rag_create_collection", json!({"name": "lib"})).await;
    ok(
        &rt,
        "rag_index",
        json!({"collection": "lib", "documents": [
            {"id": "g1", "text": "study of genes and heredity", "categories": ["genetics"]},
            {"id": "z1", "text": "study of animals", "categories": ["zoology"]},
            {"id": "r1", "text": "study of rocks", "categories": ["geology"]},
            {"id": "b1", "text": "study of living things", "categories": ["biology"]},
            {"id": "x1", "text": "study of anything", "categories": ["unfiled"]}
        ]}),
    )
    .await;
    let filtered = |categories: Value| {
        let rt = &rt;
        async move {
            let f = ok(
                rt,
                "rag_search",
                json!({"collection": "lib", "query": "study", "filter": {"categories": categories}}),
            )
            .await;
            let mut ids = ids(&f);
            ids.sort();
            (ids, f["unknown_categories"].clone())
        }
    };
    assert_eq!(filtered(json!(["biology"])).await.0, ["b1", "g1", "z1"]);
    assert_eq!(
        filtered(json!(["science"])).await.0,
        ["b1", "g1", "r1", "z1"]
    );
    assert_eq!(
        filtered(json!(["genetics", "geology"])).await.0,
        ["g1", "r1"]
    );
    // A concept the taxonomy does not know matches only as given, and is named.
    let (ids_unknown, unknown) = filtered(json!(["unfiled"])).await;
    assert_eq!(ids_unknown, ["x1"]);
    assert_eq!(unknown, json!(["unfiled"]));

    // Version 2 retires zoology in favour of a new concept, animal-biology: its documents
    // (still classified `zoology`) are found through the replacement and its ancestors.
    let v2 = json!({
        "concepts": [
            {"id": "science", "pref_labels": [{"value": "science", "lang": "en"}]},
            {"id": "biology", "broader": ["science"], "pref_labels": [{"value": "biology", "lang": "en"}]},
            {"id": "genetics", "broader": ["biology"], "pref_labels": [{"value": "genetics", "lang": "en"}]},
            {"id": "geology", "broader": ["science"], "pref_labels": [{"value": "geology", "lang": "en"}]},
            {"id": "animal-biology", "broader": ["biology"], "pref_labels": [{"value": "animal biology", "lang": "en"}]},
            {"id": "zoology", "deprecated": true, "replaced_by": ["animal-biology"]}
        ]
    });
    let imported = ok(
        &rt,
        "taxonomy_import",
        json!({"scheme": "fields", "format": "json", "content": v2.to_string()}),
    )
    .await;
    assert_eq!(imported["version"], 2, "{imported}");
    assert_eq!(filtered(json!(["animal-biology"])).await.0, ["z1"]);
    assert_eq!(filtered(json!(["biology"])).await.0, ["b1", "g1", "z1"]);
}

#[tokio::test]
async fn artifacts_are_indexed_with_their_digest() {
    let rt = runtime().await;
    ok(&rt, "rag_create_collection", json!({"name": "docs"})).await;
    let put = ok(
        &rt,
        "registry_put",
        json!({"name": "guides/deploy", "version": "1.0.0",
               "content": {"title": "Deploying", "text": "Roll out with canaries first."}}),
    )
    .await;
    let indexed = ok(
        &rt,
        "rag_index_artifact",
        json!({"collection": "docs", "artifact": "guides/deploy@1.0.0", "categories": ["ops"]}),
    )
    .await;
    assert_eq!(indexed["id"], "guides/deploy@1.0.0");
    assert_eq!(indexed["digest"], put["digest"]);
    let found = ok(
        &rt,
        "rag_search",
        json!({"collection": "docs", "query": "canary rollout"}),
    )
    .await;
    let hit = &found["hits"][0];
    assert_eq!(hit["title"], "Deploying");
    assert_eq!(hit["metadata"]["digest"], put["digest"]);
    assert_eq!(hit["metadata"]["version"], "1.0.0");
    // Bytes that are not text are refused with why.
    ok(
        &rt,
        "registry_put",
        json!({"name": "blob", "version": "1.0.0", "content_base64": "AAEC", "media_type": "application/octet-stream"}),
    )
    .await;
    let e = refused(
        &rt,
        "rag_index_artifact",
        json!({"collection": "docs", "artifact": "blob"}),
    )
    .await;
    assert!(e.contains("application/octet-stream"), "{e}");
    let e = refused(
        &rt,
        "rag_index_artifact",
        json!({"collection": "docs", "artifact": "missing@1.0.0"}),
    )
    .await;
    assert!(e.contains("missing"), "{e}");
}
