//! The `ensemble` command line, run as a user runs it: `tools` in every format, `call` in
//! process and against a server, exit codes, `config check` and `config show`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use ensemble::runtime::config::{Config, keys};
use serde_json::{Value, json};

/// The binary, with none of the caller's `ENSEMBLE_*` variables.
fn ensemble() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ensemble"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ENSEMBLE_") {
            cmd.env_remove(name);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("the ensemble binary runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json_of(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", run.stdout, run.stderr))
}

fn tools(format: &str) -> Run {
    let r = run(ensemble().args(["tools", "--format", format]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    r
}

#[test]
fn tools_are_listed_in_every_format() {
    let table = tools("table").stdout;
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("TOOL") && header.contains("ANNOTATIONS"),
        "{table}"
    );
    assert!(
        table.contains("registry_get") && table.contains("read-only"),
        "{table}"
    );

    let list = json_of(&tools("json"));
    let names: Vec<&str> = list
        .as_array()
        .expect("an array")
        .iter()
        .map(|t| t["name"].as_str().expect("a name"))
        .collect();
    assert!(names.contains(&"registry_put") && names.contains(&"workflow_run"));
    assert!(
        !names.contains(&"debug_sleep"),
        "test tools only when asked for"
    );

    let mcp = json_of(&tools("mcp"));
    let mcp_tools = mcp["tools"].as_array().expect("{\"tools\": [...]}");
    let mcp_names: Vec<&str> = mcp_tools
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(mcp_names, names);
    for t in mcp_tools {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert!(t["annotations"].is_object(), "{t}");
    }
}

/// Whether OpenAI's strict mode accepts `schema` as written: every object schema in it
/// closed (`additionalProperties: false`) and requiring all of its properties.
fn strict_allowed(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            let object =
                map.get("type") == Some(&json!("object")) || map.contains_key("properties");
            let closed = map.get("additionalProperties") == Some(&json!(false));
            let all_required = map
                .get("properties")
                .and_then(Value::as_object)
                .is_none_or(|p| {
                    let required = map.get("required").and_then(Value::as_array);
                    p.keys()
                        .all(|k| required.is_some_and(|r| r.contains(&json!(k))))
                });
            (!object || (closed && all_required)) && map.values().all(strict_allowed)
        }
        Value::Array(items) => items.iter().all(strict_allowed),
        _ => true,
    }
}

#[test]
fn openai_tools_follow_openais_rules() {
    let tools = json_of(&tools("openai"));
    let tools = tools.as_array().expect("an array of tools");
    assert!(!tools.is_empty());
    for t in tools {
        assert_eq!(t["type"], "function", "{t}");
        let f = &t["function"];
        let name = f["name"].as_str().expect("a name");
        assert!(
            (1..=64).contains(&name.len())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{name} does not match ^[a-zA-Z0-9_-]{{1,64}}$"
        );
        assert!(f["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(f["parameters"]["type"], "object", "{name}");
        let strict = f["strict"].as_bool().expect("strict is a boolean");
        assert_eq!(
            strict,
            strict_allowed(&f["parameters"]),
            "{name}: strict must be true exactly where the schema allows it"
        );
    }
}

#[test]
fn docs_tools_md_is_the_generated_reference() {
    let generated = tools("markdown").stdout;
    for section in [
        "## registry_put",
        "### Input",
        "### Output",
        "### Example",
        "| property | type | required | description |",
    ] {
        assert!(generated.contains(section), "{section} missing");
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/tools.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(generated.lines().count()));
        panic!(
            "docs/tools.md is stale (first difference at line {}); regenerate it with\n  \
             cargo run -- tools --format markdown > docs/tools.md",
            first + 1
        );
    }
}

#[test]
fn an_in_process_call_persists_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let put = run(ensemble().args([
        "call",
        "registry_put",
        "name=web/cfg",
        "version=1.0.0",
        r#"content={"port": 80}"#,
        "--data-dir",
        data,
    ]));
    assert_eq!(put.code, Some(0), "{}", put.stderr);
    assert_eq!(json_of(&put)["created"], true);

    // A second process on the same data directory reads it back.
    let get = run(ensemble().args([
        "call",
        "registry_get",
        "--args",
        r#"{"name": "web/cfg"}"#,
        "--data-dir",
        data,
    ]));
    assert_eq!(get.code, Some(0), "{}", get.stderr);
    let got = json_of(&get);
    assert_eq!(got["version"], "1.0.0");
    assert_eq!(got["content"], json!({"port": 80}));

    // An error result: exit 1, the result still on stdout, its text on stderr.
    let missing = run(ensemble().args(["call", "registry_get", "name=nope", "--data-dir", data]));
    assert_eq!(missing.code, Some(1), "{}", missing.stderr);
    assert_eq!(json_of(&missing)["isError"], true);
    assert!(
        missing.stderr.contains("`nope` not found"),
        "{}",
        missing.stderr
    );
}

#[test]
fn call_usage_and_protocol_errors_exit_2() {
    let unknown = run(ensemble().args(["call", "registry_gte", "--in-memory"]));
    assert_eq!(unknown.code, Some(2));
    assert!(
        unknown.stderr.contains("unknown tool `registry_gte`"),
        "{}",
        unknown.stderr
    );
    assert!(
        unknown.stderr.contains("ensemble tools"),
        "{}",
        unknown.stderr
    );
    assert!(unknown.stdout.is_empty());

    let bad_pair = run(ensemble().args(["call", "registry_get", "name", "--in-memory"]));
    assert_eq!(bad_pair.code, Some(2));
    assert!(bad_pair.stderr.contains("KEY=VALUE"), "{}", bad_pair.stderr);

    let bad_json = run(ensemble().args(["call", "registry_get", "--args", "[1]", "--in-memory"]));
    assert_eq!(bad_json.code, Some(2));
    assert!(
        bad_json.stderr.contains("give a JSON object"),
        "{}",
        bad_json.stderr
    );

    let no_tool = run(ensemble().args(["call"]));
    assert_eq!(no_tool.code, Some(2));
}

#[test]
fn a_tools_policy_setting_takes_effect() {
    // `debug_sleep` (a test-only tool) with a 100 ms deadline set by a variable.
    let r = run(ensemble()
        .args(["call", "debug_sleep", "ms=5000", "--in-memory"])
        .env("ENSEMBLE_TEST_TOOLS", "1")
        .env("ENSEMBLE_TOOLS_DEBUG_SLEEP_TIMEOUT_MS", "100"));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("did not answer within 100ms"),
        "{}",
        r.stderr
    );
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_http() -> Server {
    serve_with(&["--in-memory", "--http", "127.0.0.1:0"])
}

fn serve_with(args: &[&str]) -> Server {
    let mut child = ensemble()
        .arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ensemble serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(
            lines.read_line(&mut line).unwrap() > 0,
            "exited before listening"
        );
        if let Some(rest) = line.trim().strip_prefix("ensemble: listening on ") {
            break rest.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.lines() {});
    Server { child, url }
}

#[test]
fn call_reaches_a_running_server_with_url() {
    let server = serve_http();
    let put = run(ensemble().args([
        "call",
        "registry_put",
        "--url",
        &server.url,
        "--args",
        r#"{"name": "remote", "version": "2.0.0", "content": "hi"}"#,
    ]));
    assert_eq!(put.code, Some(0), "{}", put.stderr);
    let get = run(ensemble().args(["call", "registry_get", "name=remote", "--url", &server.url]));
    assert_eq!(get.code, Some(0), "{}", get.stderr);
    assert_eq!(json_of(&get)["content"], "hi");

    let unknown = run(ensemble().args(["call", "nope", "--url", &server.url]));
    assert_eq!(unknown.code, Some(2), "{}", unknown.stderr);
    let missing = run(ensemble().args(["call", "registry_get", "name=none", "--url", &server.url]));
    assert_eq!(missing.code, Some(1), "{}", missing.stderr);

    let mixed = run(ensemble().args([
        "call",
        "queue_stats",
        "--url",
        &server.url,
        "--data-dir",
        "x",
    ]));
    assert_eq!(mixed.code, Some(2));
    assert!(mixed.stderr.contains("with --url"), "{}", mixed.stderr);
}

#[test]
fn serve_takes_its_settings_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ensemble.toml");
    std::fs::write(
        &file,
        "[server]\nhttp = \"127.0.0.1:0\"\n\n[store]\nin_memory = true\n",
    )
    .unwrap();
    let server = serve_with(&["--config", file.to_str().unwrap()]);
    let r = run(ensemble().args(["call", "registry_list", "--url", &server.url]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(json_of(&r)["items"].is_array(), "{}", r.stdout);
}

#[test]
fn call_without_a_server_says_so() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let r = run(ensemble().args([
        "call",
        "queue_stats",
        "--url",
        &format!("http://127.0.0.1:{port}/mcp"),
    ]));
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("is `ensemble serve --http` running there?"),
        "{}",
        r.stderr
    );
    let r = run(ensemble().args(["call", "queue_stats", "--url", "127.0.0.1:7300"]));
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("like http://127.0.0.1:7300/mcp"),
        "{}",
        r.stderr
    );
}

const MISTAKES: &str = r#"[server]
htp = "127.0.0.1:7300"
log_format = "xml"

[store]
cache_capacity = 5

[execution]
max_concurrent = 0
scheduling_policy = "LIFO"

[engines.registri]
timeout_ms = 5

[engines.workflow.breaker]
failure_rate_threshold = 150

[tools.registry_gte]
bulkhead = 3

[dashbord]
"#;

#[test]
fn config_check_lists_every_mistake_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ensemble.toml");
    std::fs::write(&file, MISTAKES).unwrap();
    let file = file.to_str().unwrap();
    let r = run(ensemble().args(["config", "check", file]));
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    let expected = [
        (2, "`server.htp`: unknown key (did you mean `http`?)"),
        (
            3,
            "`server.log_format`: \"xml\" is not accepted: use \"text\" or \"json\"",
        ),
        (
            6,
            "`store.cache_capacity`: unknown key (did you mean `cache_capacity_bytes`?)",
        ),
        (
            9,
            "`execution.max_concurrent`: expected a whole number from 1",
        ),
        (
            10,
            "`execution.scheduling_policy`: \"LIFO\" is not accepted: use \"FIFO\"",
        ),
        (
            12,
            "`engines.registri`: there is no engine `registri` (did you mean `registry`?)",
        ),
        (
            16,
            "`engines.workflow.breaker.failure_rate_threshold`: expected a percentage from 0 to 100",
        ),
        (
            18,
            "`tools.registry_gte`: there is no tool `registry_gte` (did you mean `registry_get`?)",
        ),
        (21, "`dashbord`: unknown key"),
    ];
    assert!(
        r.stderr.contains(&format!("{} problems", expected.len())),
        "{}",
        r.stderr
    );
    for (line, text) in expected {
        let want = format!("{file}:{line}: {text}");
        assert!(
            r.stderr.contains(&want),
            "missing: {want}\n---\n{}",
            r.stderr
        );
    }

    // The same file refuses to start every command that builds a runtime, with exit 2.
    for args in [
        &["serve", "--in-memory"][..],
        &["tools"][..],
        &["call", "queue_stats", "--in-memory"][..],
    ] {
        let r = run(ensemble().args(args).args(["--config", file]));
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("`server.htp`"), "{args:?}: {}", r.stderr);
    }

    let syntax = dir.path().join("syntax.toml");
    std::fs::write(&syntax, "[server]\nhttp = \n").unwrap();
    let r = run(ensemble().args(["config", "check", syntax.to_str().unwrap()]));
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr.contains("syntax.toml:2:") && r.stderr.contains("TOML syntax"),
        "{}",
        r.stderr
    );

    let r = run(ensemble().args(["config", "check", "/nonexistent/ensemble.toml"]));
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("cannot be read"), "{}", r.stderr);
}

#[test]
fn a_flag_beats_a_variable_which_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ensemble.toml");
    std::fs::write(
        &file,
        "[store]\ndata_dir = \"from-file\"\n\n[execution]\nmax_concurrent = 2\nqueue_capacity = 3\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let r = run(ensemble()
        .args(["config", "show", "--max-concurrent", "4"])
        .env("ENSEMBLE_CONFIG", file)
        .env("ENSEMBLE_EXECUTION_MAX_CONCURRENT", "3")
        .env("ENSEMBLE_STORE_DATA_DIR", "from-env"));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let line = |key: &str| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} not shown:\n{}", r.stdout))
            .to_string()
    };
    let max = line("max_concurrent");
    assert!(
        max.contains("= 4") && max.ends_with("# flag --max-concurrent"),
        "{max}"
    );
    let dir_line = line("data_dir");
    assert!(
        dir_line.contains("\"from-env\"")
            && dir_line.ends_with("# environment variable ENSEMBLE_STORE_DATA_DIR"),
        "{dir_line}"
    );
    let queue = line("queue_capacity");
    assert!(
        queue.contains("= 3") && queue.ends_with(&format!("# {file}:6")),
        "{queue}"
    );
    let policy = line("scheduling_policy");
    assert!(policy.ends_with("# default"), "{policy}");

    // What `config show` prints is itself a valid configuration with those values.
    let shown = dir.path().join("shown.toml");
    std::fs::write(&shown, &r.stdout).unwrap();
    let check = run(ensemble().args(["config", "check", shown.to_str().unwrap()]));
    assert_eq!(check.code, Some(0), "{}", check.stderr);
    let config: Config = toml::from_str(&r.stdout).unwrap();
    assert_eq!(config.execution.max_concurrent, 4);
    assert_eq!(config.store.data_dir, Path::new("from-env"));
}

#[test]
fn a_mistyped_variable_is_refused_with_the_right_name() {
    let r = run(ensemble()
        .args(["config", "show"])
        .env("ENSEMBLE_DATA_DIR", "/tmp/x"));
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("ENSEMBLE_DATA_DIR"), "{}", r.stderr);
    assert!(r.stderr.contains("ENSEMBLE_STORE_DATA_DIR"), "{}", r.stderr);
}

#[test]
fn a_bad_log_filter_is_refused_not_ignored() {
    for args in [&["tools"][..], &["serve", "--in-memory"][..]] {
        let r = run(ensemble().args(args).env("ENSEMBLE_LOG", "info,rmcp=loud"));
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains("ENSEMBLE_LOG=\"info,rmcp=loud\" is not a log filter"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn the_example_configuration_is_valid_and_all_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ensemble.toml");
    let r = run(ensemble().args(["config", "check", path.to_str().unwrap()]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    let config: Config = toml::from_str(&text).unwrap();
    assert_eq!(
        config,
        Config::default(),
        "examples/ensemble.toml must show the defaults"
    );
    // Every key is shown (commented when it has no default), for every engine.
    for key in keys::KEYS.iter().filter(|k| !k.path.starts_with("tools.")) {
        let paths: Vec<String> = if key.path.contains(keys::ENGINE) {
            keys::ENGINES
                .iter()
                .map(|e| key.path.replace(keys::ENGINE, e))
                .collect()
        } else {
            vec![key.path.to_string()]
        };
        for path in paths {
            let (table, leaf) = path.rsplit_once('.').unwrap();
            let section = text
                .split(&format!("[{table}]\n"))
                .nth(1)
                .unwrap_or_else(|| panic!("[{table}] missing"));
            let section = section.split("\n[").next().unwrap_or_default();
            assert!(
                section.lines().any(|l| {
                    let l = l.trim_start_matches("# ");
                    l.starts_with(&format!("{leaf} = "))
                }),
                "{path} missing from examples/ensemble.toml"
            );
        }
    }
}

#[test]
fn version_help_and_completions() {
    let v = run(ensemble().arg("version"));
    assert_eq!(v.code, Some(0));
    let mut lines = v.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("ensemble {}", env!("CARGO_PKG_VERSION")).as_str())
    );
    assert!(
        lines.next().is_some_and(|l| l.starts_with("rmcp 3.")),
        "{}",
        v.stdout
    );
    assert!(
        v.stdout.contains("MCP protocol versions: 2024-11-05"),
        "{}",
        v.stdout
    );
    assert!(v.stdout.contains("2025-11-25"), "{}", v.stdout);

    for cmd in [
        &["serve"][..],
        &["tools"][..],
        &["call"][..],
        &["config", "check"][..],
        &["config", "show"][..],
        &["completions"][..],
        &["version"][..],
    ] {
        let r = run(ensemble().args(cmd).arg("--help"));
        assert_eq!(r.code, Some(0), "{cmd:?}");
        assert!(
            r.stdout.contains("Example"),
            "{cmd:?} --help shows no example:\n{}",
            r.stdout
        );
    }

    let bash = run(ensemble().args(["completions", "bash"]));
    assert_eq!(bash.code, Some(0));
    assert!(bash.stdout.contains("ensemble") && bash.stdout.contains("serve"));
}
