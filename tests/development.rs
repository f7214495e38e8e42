//! The development learner through its MCP tools: learning a codebase, suggesting the imports a
//! file needs, checking its conventions; bad input, large files, persistence across a restart,
//! the memory budget, export and import; and `ensemble learn development DIR`.

use std::path::Path;

use ensemble::actors::learning::LearnerConfig;
use ensemble::runtime::Runtime;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, object};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

async fn connect(runtime: &Runtime) -> Client {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let service = runtime.mcp_service();
    tokio::spawn(async move {
        if let Ok(running) = service.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(client_io).await.expect("client")
}

async fn call(c: &Client, tool: &str, args: Value) -> Result<Value, String> {
    let r = c
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(object(args)))
        .await
        .map_err(|e| e.to_string())?;
    if r.is_error == Some(true) {
        return Err(format!("{:?}", r.content));
    }
    r.structured_content
        .ok_or_else(|| "no structured result".into())
}

/// A small codebase with every `use` form, its own conventions (std, then other crates, then
/// its own modules; snake_case functions; `file` for `File::open`).
fn codebase(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"path": format!("src/m{i}.rs"), "content": format!(
                "use std::collections::{{HashMap, BTreeMap}};\n\
                 use std::io::{{self, Read as _}};\n\
                 use std::fs::File;\n\n\
                 use serde::{{Deserialize, Serialize}};\n\
                 use tokio::sync::Mutex as AsyncMutex;\n\
                 use rayon::prelude::*;\n\n\
                 use crate::store::Store;\n\
                 use super::config::Config;\n\n\
                 #[derive(Serialize, Deserialize)]\n\
                 pub struct Thing{i} {{ map: HashMap<String, u32>, tree: BTreeMap<u8, u8> }}\n\n\
                 pub fn read_thing_{i}(path: &str, s: &Store, c: &Config) -> io::Result<String> {{\n\
                 \x20   let file = File::open(path)?;\n\
                 \x20   let lock = AsyncMutex::new(0);\n\
                 \x20   let mut out = String::new();\n\
                 \x20   let _ = (file, lock, s, c);\n\
                 \x20   Ok(out)\n\
                 }}\n"
            )})
        })
        .collect()
}

const NEW_FILE: &str = "\
pub struct Index { map: HashMap<String, Store> }

pub fn load(path: &str) -> io::Result<Index> {
    let file = File::open(path)?;
    let _ = file;
    Ok(Index { map: HashMap::new() })
}
";

fn ranked(answer: &Value, name: &str) -> Vec<String> {
    answer["names"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["name"] == name)
        .map(|n| {
            n["candidates"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["path"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_codebase_learned_suggests_its_imports_and_checks_its_conventions() {
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let c = connect(&runtime).await;
    let learned = call(
        &c,
        "development_learn",
        json!({"files": codebase(12), "crate": "app", "dependencies": ["serde", "tokio", "rayon"]}),
    )
    .await
    .unwrap();
    assert_eq!(learned["learned"], 12, "{learned}");
    // Plain, grouped, `self`, `crate::` and `super::` imports; renames and globs are the file's
    // own names, not learned as paths.
    let answer = call(
        &c,
        "development_suggest_imports",
        json!({"content": NEW_FILE, "crate": "app"}),
    )
    .await
    .unwrap();
    assert_eq!(ranked(&answer, "HashMap")[0], "std::collections::HashMap");
    assert_eq!(ranked(&answer, "File")[0], "std::fs::File");
    assert_eq!(ranked(&answer, "io")[0], "std::io");
    assert_eq!(ranked(&answer, "Store")[0], "crate::store::Store");
    assert!(
        ranked(&answer, "Index").is_empty(),
        "defined here: {answer}"
    );
    // Another crate does not see `app`'s own paths.
    let other = call(
        &c,
        "development_suggest_imports",
        json!({"content": NEW_FILE, "crate": "other"}),
    )
    .await
    .unwrap();
    assert!(ranked(&other, "Store").is_empty(), "{other}");

    // Conventions: a function in the wrong case, a `use` group out of order.
    let broken = "\
use crate::store::Store;
use std::collections::HashMap;

pub fn ReadAll(s: &Store) -> HashMap<u8, u8> { let _ = s; HashMap::new() }
";
    let style = call(
        &c,
        "development_check_style",
        json!({"content": broken, "crate": "app"}),
    )
    .await
    .unwrap();
    let findings = style["findings"].as_array().unwrap();
    let naming = findings.iter().find(|f| f["rule"] == "naming").unwrap();
    assert_eq!(naming["fix"], "read_all");
    assert_eq!(naming["line"], 4);
    assert!(naming["confidence"].as_f64().unwrap() >= 0.9);
    let order = findings.iter().find(|f| f["rule"] == "use_order").unwrap();
    assert!(
        order["fix"]
            .as_str()
            .unwrap()
            .starts_with("order the `use` groups std"),
        "{order}"
    );
    // The codebase's own way is no deviation.
    let clean = call(
        &c,
        "development_check_style",
        json!({"content": codebase(1)[0]["content"], "crate": "app"}),
    )
    .await
    .unwrap();
    assert_eq!(clean["findings"], json!([]), "{clean}");
    assert_eq!(clean["checked"]["naming:function"], "crate");
}

#[tokio::test]
async fn dependencies_rank_candidates_from_other_crates_last() {
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let c = connect(&runtime).await;
    let file = |krate: &str| {
        json!({"path": "src/lib.rs", "content": format!(
            "use {krate}::sync::Mutex;\nfn f() -> Mutex<u8> {{ Mutex::new(0) }}\n")})
    };
    for (krate, n) in [("parking_lot", 5), ("tokio", 2)] {
        for i in 0..n {
            call(
                &c,
                "development_learn",
                json!({"files": [file(krate)], "crate": format!("c{krate}{i}")}),
            )
            .await
            .unwrap();
        }
    }
    let body = "fn g() -> Mutex<u8> { Mutex::new(1) }\n";
    let any = call(&c, "development_suggest_imports", json!({"content": body}))
        .await
        .unwrap();
    assert_eq!(ranked(&any, "Mutex")[0], "parking_lot::sync::Mutex");
    let tokio_only = call(
        &c,
        "development_suggest_imports",
        json!({"content": body, "dependencies": ["tokio"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        ranked(&tokio_only, "Mutex"),
        ["tokio::sync::Mutex", "parking_lot::sync::Mutex"]
    );
}

#[tokio::test]
async fn a_test_file_reaches_its_own_library_by_name() {
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let c = connect(&runtime).await;
    for i in 0..3 {
        call(
            &c,
            "development_learn",
            json!({"files": [{"path": "src/lib.rs", "content":
                "use std::collections::HashMap;\nfn f() -> HashMap<u8, u8> { HashMap::new() }\n"}],
                   "crate": format!("other{i}")}),
        )
        .await
        .unwrap();
    }
    // `Widget` is known nowhere; `HashMap` is std's everywhere learned.
    let body =
        "#[test]\nfn t() { let w = Widget::new(); let m: HashMap<u8, u8> = HashMap::new(); }\n";
    let ask = |path: &str| json!({"content": body, "path": path, "crate": "my-gadget", "dependencies": []});
    let test = call(&c, "development_suggest_imports", ask("tests/widgets.rs"))
        .await
        .unwrap();
    assert_eq!(ranked(&test, "Widget"), ["my_gadget::Widget"]);
    assert_eq!(
        ranked(&test, "HashMap"),
        ["std::collections::HashMap", "my_gadget::HashMap"],
        "known paths first, the guess after them"
    );
    // Inside the library, the crate is `crate::`, not its name: no guess.
    let lib = call(&c, "development_suggest_imports", ask("src/widgets.rs"))
        .await
        .unwrap();
    assert!(ranked(&lib, "Widget").is_empty(), "{lib}");
    assert_eq!(ranked(&lib, "HashMap"), ["std::collections::HashMap"]);
}

#[tokio::test]
async fn bad_files_are_listed_the_rest_learned_and_bad_requests_say_what_to_fix() {
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let c = connect(&runtime).await;
    let huge = format!("// {}\n", "x".repeat(5 << 20));
    let big: String = (0..20_000)
        .map(|i| format!("fn f{i}() -> HashMap<u8, u8> {{ HashMap::new() }}\n"))
        .collect();
    let big = format!("use std::collections::HashMap;\n{big}");
    let r = call(
        &c,
        "development_learn",
        json!({"files": [
            {"path": "src/ok.rs", "content": "use std::fs::File;\nfn f() -> File { todo!() }\n"},
            {"path": "src/broken.rs", "content": "fn f( {\n"},
            {"path": "src/huge.rs", "content": huge},
            {"path": "README.md", "content": "# not rust"},
            {"path": "src/big.rs", "content": big},
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(r["learned"], 2, "{r}");
    let skipped: Vec<(String, String)> = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_string(),
                s["error"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(skipped[0].0 == "src/broken.rs" && skipped[0].1.contains("line 1"));
    assert!(skipped[1].1.contains("limit"), "{skipped:?}");
    assert!(skipped[2].1.contains("Rust"), "{skipped:?}");

    let e = call(
        &c,
        "development_suggest_imports",
        json!({"content": "fn f( {"}),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("not Rust the parser can read") && e.contains("line 1"),
        "{e}"
    );
    let e = call(
        &c,
        "development_check_style",
        json!({"content": "fn f() {}", "min_confidence": 3}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("min_confidence"), "{e}");
    let e = call(&c, "learning_stats", json!({"learner": "gardening"}))
        .await
        .unwrap_err();
    assert!(e.contains("shell") && e.contains("development"), "{e}");
    // What was learned before the errors is intact.
    let answer = call(
        &c,
        "development_suggest_imports",
        json!({"content": "fn g() -> File { todo!() }"}),
    )
    .await
    .unwrap();
    assert_eq!(ranked(&answer, "File")[0], "std::fs::File");
}

#[tokio::test]
async fn what_was_learned_survives_a_restart_and_moves_between_instances() {
    let dir = tempfile::tempdir().unwrap();
    let first = Runtime::builder()
        .data_dir(dir.path())
        .build()
        .await
        .unwrap();
    let c = connect(&first).await;
    call(
        &c,
        "development_learn",
        json!({"files": codebase(6), "crate": "app"}),
    )
    .await
    .unwrap();
    let before = call(
        &c,
        "development_suggest_imports",
        json!({"content": NEW_FILE, "crate": "app"}),
    )
    .await
    .unwrap();
    let snap = call(&c, "learning_export", json!({"learner": "development"}))
        .await
        .unwrap();
    let artifact = call(
        &c,
        "registry_get",
        json!({"name": snap["name"], "version": snap["version"]}),
    )
    .await
    .unwrap();
    let _ = c.cancel().await;
    first.shutdown().await.unwrap();

    let again = Runtime::builder()
        .data_dir(dir.path())
        .build()
        .await
        .unwrap();
    let c = connect(&again).await;
    let after = call(
        &c,
        "development_suggest_imports",
        json!({"content": NEW_FILE, "crate": "app"}),
    )
    .await
    .unwrap();
    assert_eq!(before, after);
    let stats = call(&c, "learning_stats", json!({"learner": "development"}))
        .await
        .unwrap();
    assert_eq!(stats["observations"], 6, "{stats}");
    let _ = c.cancel().await;
    again.shutdown().await.unwrap();

    // Another instance imports the snapshot and answers the same; twice counts once.
    let other = Runtime::builder().in_memory().build().await.unwrap();
    let c = connect(&other).await;
    call(
        &c,
        "registry_put",
        json!({"name": artifact["name"], "version": artifact["version"],
               "content_base64": artifact["content_base64"], "media_type": artifact["media_type"]}),
    )
    .await
    .unwrap();
    let reference = format!(
        "{}@{}",
        snap["name"].as_str().unwrap(),
        snap["version"].as_str().unwrap()
    );
    for _ in 0..2 {
        call(
            &c,
            "learning_import",
            json!({"learner": "development", "artifact": reference}),
        )
        .await
        .unwrap();
    }
    let imported = call(
        &c,
        "development_suggest_imports",
        json!({"content": NEW_FILE, "crate": "app"}),
    )
    .await
    .unwrap();
    assert_eq!(before, imported);
}

#[tokio::test]
async fn the_memory_budget_holds_by_evicting_the_least_worth() {
    let budget = 96 << 10;
    let runtime = Runtime::builder()
        .in_memory()
        .development_learner(LearnerConfig {
            memory_budget_bytes: budget,
            ..LearnerConfig::default()
        })
        .build()
        .await
        .unwrap();
    let c = connect(&runtime).await;
    for batch in 0..20 {
        let files: Vec<Value> = (0..10)
            .map(|i| {
                let n = batch * 10 + i;
                json!({"path": format!("src/f{n}.rs"), "content": format!(
                    "use dep{n}::module{n}::Item{n};\nuse std::fmt::Debug;\n\
                     fn f{n}(x: Item{n}) -> impl Debug {{ x }}\n")})
            })
            .collect();
        call(
            &c,
            "development_learn",
            json!({"files": files, "crate": format!("krate{batch}")}),
        )
        .await
        .unwrap();
    }
    let stats = call(&c, "learning_stats", json!({"learner": "development"}))
        .await
        .unwrap();
    assert!(stats["evicted"].as_u64().unwrap() > 0, "{stats}");
    assert!(
        stats["memory_bytes"].as_u64().unwrap() <= budget as u64,
        "{stats}"
    );
    // The patterns seen most survive.
    let answer = call(
        &c,
        "development_suggest_imports",
        json!({"content": "fn g(x: u8) -> impl Debug { x }"}),
    )
    .await
    .unwrap();
    assert_eq!(ranked(&answer, "Debug")[0], "std::fmt::Debug");
}

fn write(dir: &Path, path: &str, text: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn ensemble_learn_development_walks_a_workspace() {
    let src = tempfile::tempdir().unwrap();
    write(src.path(), "Cargo.toml", "[workspace]\nmembers = [\"a\"]\n");
    write(
        src.path(),
        "a/Cargo.toml",
        "[package]\nname = \"a-crate\"\nversion = \"0.1.0\"\n\n[dependencies]\nserde-json = \"1\"\n",
    );
    for (i, f) in codebase(3).iter().enumerate() {
        write(
            src.path(),
            &format!("a/src/m{i}.rs"),
            f["content"].as_str().unwrap(),
        );
    }
    write(src.path(), "a/src/broken.rs", "fn f( {\n");
    write(src.path(), "a/target/debug/gen.rs", "use nothing::Here;\n");
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["learn", "development"])
        .arg(src.path())
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("learned 3 files"), "{stdout}");
    assert!(
        stderr.contains("broken.rs") && !stderr.contains("gen.rs"),
        "{stderr}"
    );
    // The crate's own paths were learned under its name.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["call", "development_suggest_imports", "crate=a-crate"])
        .arg(format!("content={NEW_FILE}"))
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        ranked(&answer, "Store")[0],
        "crate::store::Store",
        "{answer}"
    );
    // Not a directory: a usage error that says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ensemble"))
        .args(["learn", "development", "/no/such/dir", "--in-memory"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
}

#[tokio::test]
async fn a_name_no_codebase_imported_is_found_where_a_learned_crate_defines_it() {
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let c = connect(&runtime).await;
    // The `geo` crate defines `Polygon` in `shapes` and re-exports it at its root; nobody has
    // imported it yet.
    call(
        &c,
        "development_learn",
        json!({"crate": "geo", "files": [
            {"path": "src/lib.rs", "content": "pub mod shapes;\npub use shapes::Polygon;\n"},
            {"path": "src/shapes.rs", "content": "pub struct Polygon;\nstruct Hidden;\n"},
            {"path": "tests/t.rs", "content": "pub struct FromTests;\n"},
        ]}),
    )
    .await
    .unwrap();
    let body = "fn area(p: &Polygon, h: Hidden, t: FromTests) -> f64 { 0.0 }\n";
    let answer = call(
        &c,
        "development_suggest_imports",
        json!({"content": body, "dependencies": ["geo"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        ranked(&answer, "Polygon"),
        ["geo::Polygon", "geo::shapes::Polygon"],
        "{answer}"
    );
    assert!(ranked(&answer, "Hidden").is_empty(), "private: {answer}");
    assert!(
        ranked(&answer, "FromTests").is_empty(),
        "not the library: {answer}"
    );
    // A file that cannot depend on `geo` is not offered its paths.
    let other = call(
        &c,
        "development_suggest_imports",
        json!({"content": body, "dependencies": ["serde"]}),
    )
    .await
    .unwrap();
    assert!(ranked(&other, "Polygon").is_empty(), "{other}");
}

#[tokio::test]
async fn the_standard_library_is_known_before_any_code_is_learned() {
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let c = connect(&runtime).await;
    // Nothing learned: std's own items still have their paths; a module only where the file
    // uses it as a path's root, and no function for a bare name a method could share.
    let body = "fn f(h: BinaryHeap<u8>, n: NonZeroU32) -> usize {\n\
                \x20   let m = mem::size_of::<u8>();\n    h.len().max(m) + swap\n}\n";
    let answer = call(&c, "development_suggest_imports", json!({"content": body}))
        .await
        .unwrap();
    assert_eq!(
        ranked(&answer, "BinaryHeap").first().map(String::as_str),
        Some("std::collections::BinaryHeap"),
        "{answer}"
    );
    assert_eq!(
        ranked(&answer, "NonZeroU32").first().map(String::as_str),
        Some("std::num::NonZeroU32"),
        "{answer}"
    );
    assert_eq!(
        ranked(&answer, "mem").first().map(String::as_str),
        Some("std::mem"),
        "{answer}"
    );
    assert!(ranked(&answer, "max").is_empty(), "{answer}");
    assert!(ranked(&answer, "swap").is_empty(), "{answer}");
    // A `no_std` file is offered core's and alloc's paths.
    let no_std = format!("#![no_std]\nextern crate alloc;\n{body}");
    let answer = call(
        &c,
        "development_suggest_imports",
        json!({"content": no_std}),
    )
    .await
    .unwrap();
    assert_eq!(
        ranked(&answer, "BinaryHeap").first().map(String::as_str),
        Some("alloc::collections::BinaryHeap"),
        "{answer}"
    );
}

#[tokio::test]
async fn module_layout_breaks_are_found_against_the_codebase_habit() {
    let runtime = Runtime::builder().in_memory().build().await.unwrap();
    let c = connect(&runtime).await;
    // A crate that files modules with submodules as `src/a.rs` beside `src/a/`, and keeps its
    // unit tests last.
    let files: Vec<Value> = (0..12)
        .map(|i| {
            json!({"path": format!("src/m{i}.rs"), "content": format!(
                "mod inner{i};\npub fn f{i}() -> u8 {{ {i} }}\n\
                 #[cfg(test)]\nmod tests {{\n    #[test]\n    fn t() {{ assert_eq!(super::f{i}(), {i}); }}\n}}\n")})
        })
        .collect();
    call(
        &c,
        "development_learn",
        json!({"crate": "tidy", "files": files}),
    )
    .await
    .unwrap();
    let check = |path: &str, content: &str| {
        call(
            &c,
            "development_check_style",
            json!({"content": content, "path": path, "crate": "tidy"}),
        )
    };
    let layout = |answer: &Value| -> Vec<(u64, String)> {
        answer["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["rule"] == "module_layout")
            .map(|f| {
                (
                    f["line"].as_u64().unwrap_or(0),
                    f["fix"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    // Following both habits: nothing to say.
    let good = "mod inner;\npub fn g() {}\n#[cfg(test)]\nmod tests {}\n";
    let answer = check("src/g.rs", good).await.unwrap();
    assert!(layout(&answer).is_empty(), "{answer}");
    assert_eq!(answer["checked"]["module_layout:file"], "crate", "{answer}");
    // The same module filed as `src/g/mod.rs`.
    let answer = check("src/g/mod.rs", good).await.unwrap();
    assert_eq!(
        layout(&answer),
        [(1, "rename `src/g/mod.rs` to `src/g.rs`".to_string())],
        "{answer}"
    );
    // Unit tests before the other items.
    let early = "mod inner;\n#[cfg(test)]\nmod tests {}\npub fn g() {}\n";
    let answer = check("src/g.rs", early).await.unwrap();
    assert_eq!(
        layout(&answer),
        [(3, "move `mod tests` to the end of the file".to_string())],
        "{answer}"
    );
    // A leaf module filed as `mod.rs` departs from the habit too; a crate root and an
    // integration test's helper (`tests/common/mod.rs`, which must be so) say nothing.
    for path in ["src/leaf/mod.rs", "src/lib.rs", "tests/common/mod.rs"] {
        let leaf = "pub fn g() {}\n";
        let answer = check(path, leaf).await.unwrap();
        let expected: Vec<(u64, String)> = if path == "src/leaf/mod.rs" {
            vec![(1, "rename `src/leaf/mod.rs` to `src/leaf.rs`".to_string())]
        } else {
            Vec::new()
        };
        assert_eq!(layout(&answer), expected, "{path}: {answer}");
    }
}
