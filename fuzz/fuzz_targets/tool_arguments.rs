//! Every tool's arguments, as the router decodes and its engine handles them, on an
//! in-memory runtime: a result or an error that says what is wrong, never a panic or a hang.
//!
//! The first byte picks the tool (of all the runtime serves, by name); the rest is the
//! arguments' JSON.
#![no_main]

use ensemble_runtime::Runtime;
use libfuzzer_sys::fuzz_target;

struct World {
    tokio: tokio::runtime::Runtime,
    runtime: Runtime,
    tools: Vec<String>,
}

fn world() -> World {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let runtime = tokio
        .block_on(Runtime::builder().in_memory().build())
        .expect("an in-memory runtime");
    let mut tools: Vec<String> = runtime
        .router()
        .list()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    tools.sort();
    World {
        tokio,
        runtime,
        tools,
    }
}

thread_local! {
    static WORLD: World = world();
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, json)) = data.split_first() else {
        return;
    };
    // The limits the transports apply first (a deeper message never reaches a tool).
    if ensemble_runtime::limits::scan(json, &ensemble_runtime::limits::Limits::default()).is_err() {
        return;
    }
    let Ok(args) = serde_json::from_slice::<serde_json::Value>(json) else {
        return;
    };
    WORLD.with(|w| {
        let tool = &w.tools[usize::from(pick) % w.tools.len()];
        // No deadline of ours: a call that hangs is libFuzzer's `-timeout` to catch.
        let _ = w.tokio.block_on(w.runtime.router().call(tool, args, None));
    });
});
