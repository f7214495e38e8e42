//! A request to `/mcp` as the HTTP server gets it (the whole axum app of an in-memory runtime:
//! the body limits, the stateless and session fast lanes, rmcp's handling): an answer, never a
//! panic or a hang.
//!
//! The first byte picks the method and headers; the rest is the body.
#![no_main]

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use ensemble_runtime::Runtime;
use ensemble_runtime::http::{HttpOptions, app};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tokio_util::sync::CancellationToken;

struct World {
    tokio: tokio::runtime::Runtime,
    app: axum::Router,
    _runtime: Runtime,
}

fn world() -> World {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let runtime = tokio
        .block_on(Runtime::builder().in_memory().build())
        .expect("an in-memory runtime");
    let opts = HttpOptions {
        addr: "127.0.0.1:7300".parse().expect("an address"),
        allow_origins: Vec::new(),
    };
    // The app starts the dashboard's sampler: inside the runtime, as `http::serve` builds it.
    let app = {
        let _inside = tokio.enter();
        app(&runtime, &opts, CancellationToken::new())
    };
    World {
        tokio,
        app,
        _runtime: runtime,
    }
}

thread_local! {
    static WORLD: World = world();
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let method = match flags >> 6 {
        0 | 1 => "POST",
        2 => "GET",
        _ => "DELETE",
    };
    let mut req = Request::builder()
        .method(method)
        .uri("/mcp")
        .header("host", "127.0.0.1:7300")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    match flags & 3 {
        1 => req = req.header("mcp-protocol-version", "2025-06-18"),
        2 => req = req.header("mcp-protocol-version", "2026-07-28"),
        _ => {}
    }
    // The headers a 2026-07-28 request repeats from its body, so the stateless lane is reached.
    if flags & 4 != 0 {
        let probe = ensemble_runtime::governance::http::probe(body);
        if let Some(m) = probe
            .method
            .filter(|m| m.parse::<axum::http::HeaderValue>().is_ok())
        {
            req = req.header("mcp-method", m);
        }
        if let Some(n) = probe
            .name
            .filter(|n| n.parse::<axum::http::HeaderValue>().is_ok())
        {
            req = req.header("mcp-name", n);
        }
    }
    if flags & 8 != 0 {
        req = req.header("mcp-session-id", "not-a-session");
    }
    if flags & 16 != 0 {
        req = req.header("last-event-id", "0/f0");
    }
    let Ok(req) = req.body(Body::from(body.to_vec())) else {
        return;
    };
    WORLD.with(|w| {
        let mut app = w.app.clone();
        w.tokio.block_on(async move {
            let answer = tokio::time::timeout(
                Duration::from_secs(5),
                tower_service::Service::call(&mut app, req),
            )
            .await
            .expect("an answer within 5 s");
            let Ok(answer) = answer;
            // An SSE stream may stay open (a standalone GET): what it sends within a moment.
            let _ =
                tokio::time::timeout(Duration::from_millis(50), answer.into_body().collect()).await;
        });
    });
});
