//! The retrieval engine against the real binary: every batch acknowledged before a SIGKILL is
//! searchable after a restart on the same data directory, and a dropped collection stays gone.

mod common;

use common::{call_ok, connect, refusal, serve_http};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_batches_survive_a_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acknowledged = Vec::new();
    {
        let server = serve_http(dir.path(), "", &[]);
        let client = connect(&server.url).await;
        call_ok(&client, "rag_create_collection", json!({"name": "kept"})).await;
        call_ok(&client, "rag_create_collection", json!({"name": "dropped"})).await;
        call_ok(
            &client,
            "rag_index",
            json!({"collection": "dropped", "documents": [{"id": "d", "text": "gone soon"}]}),
        )
        .await;
        call_ok(&client, "rag_drop_collection", json!({"name": "dropped"})).await;
        // Concurrent batches (they share commits); each acknowledged one is recorded.
        let mut tasks = Vec::new();
        for batch in 0..6 {
            let url = server.url.clone();
            tasks.push(tokio::spawn(async move {
                let client = connect(&url).await;
                let documents: Vec<_> = (0..50)
                    .map(|i| {
                        json!({"id": format!("b{batch}-{i}"), "title": format!("batch {batch}"),
                               "text": format!("document {i} of batch {batch} about durability")})
                    })
                    .collect();
                call_ok(
                    &client,
                    "rag_index",
                    json!({"collection": "kept", "documents": documents}),
                )
                .await;
                batch
            }));
        }
        for t in tasks {
            acknowledged.push(t.await.expect("batch"));
        }
        // SIGKILL: no shutdown, no final flush or commit.
        drop(server);
    }
    let server = serve_http(dir.path(), "", &[]);
    let client = connect(&server.url).await;
    let stats = call_ok(&client, "rag_stats", json!({"collection": "kept"})).await;
    assert_eq!(
        stats["collections"][0]["collection"]["documents"], 300,
        "{stats}"
    );
    for batch in acknowledged {
        let got = call_ok(
            &client,
            "rag_get",
            json!({"collection": "kept", "id": format!("b{batch}-49")}),
        )
        .await;
        assert_eq!(got["title"], format!("batch {batch}"));
    }
    let found = call_ok(
        &client,
        "rag_search",
        json!({"collection": "kept", "query": "durability batch 3", "limit": 5}),
    )
    .await;
    assert_eq!(found["total"], 300, "{found}");
    let e = refusal(
        &client,
        "rag_search",
        json!({"collection": "dropped", "query": "gone"}),
    )
    .await;
    assert!(
        e.contains("no collection \\\"dropped\\\"") || e.contains("no collection \"dropped\""),
        "{e}"
    );
    assert!(!dir.path().join("data/retrieval/dropped").exists());
    assert!(dir.path().join("data/retrieval/kept").is_dir());
}
