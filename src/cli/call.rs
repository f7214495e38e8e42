//! `ensemble call`: one `tools/call`, through an MCP client either way — in process (a runtime
//! on the configured data directory, served over an in-memory pipe, so the call takes the path
//! a client's does) or against a running server over Streamable HTTP.

use std::path::PathBuf;

use clap::Args;
use ensemble::runtime::Runtime;
use ensemble::runtime::config::Config;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ErrorCode};
use rmcp::service::ServiceError;
use serde_json::{Map, Value};

use super::{Failure, RuntimeArgs};

/// `ensemble call` arguments.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The tool (`ensemble tools` lists them).
    pub tool: String,
    /// Arguments as KEY=VALUE (VALUE read as JSON when it is JSON, else as a string).
    #[arg(value_name = "KEY=VALUE")]
    pub pairs: Vec<String>,
    /// Arguments as a JSON object (KEY=VALUE pairs are set over it).
    #[arg(long, value_name = "JSON", conflicts_with = "args_file")]
    pub args: Option<String>,
    /// Arguments from a file holding a JSON object ("-" for stdin).
    #[arg(long, value_name = "FILE")]
    pub args_file: Option<PathBuf>,
    /// Call a running server's Streamable HTTP endpoint, e.g. http://127.0.0.1:7300/mcp
    /// (plain HTTP). A server that requires credentials gets the bearer token or API key in
    /// the environment variable ENSEMBLE_TOKEN (or in the file ENSEMBLE_TOKEN_FILE names).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

impl CallArgs {
    /// The tool's arguments, or what is wrong with them.
    fn arguments(&self) -> Result<Map<String, Value>, String> {
        let base = match (&self.args, &self.args_file) {
            (Some(json), _) => Some(("--args".to_string(), json.clone())),
            (None, Some(path)) => {
                let text = if path.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin())
                } else {
                    std::fs::read_to_string(path)
                }
                .map_err(|e| format!("--args-file {}: {e}", path.display()))?;
                Some((format!("--args-file {}", path.display()), text))
            }
            (None, None) => None,
        };
        let mut args = match base {
            None => Map::new(),
            Some((from, text)) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => {
                    return Err(format!(
                        "{from}: give a JSON object, like {{\"name\": \"x\"}}"
                    ));
                }
                Err(e) => return Err(format!("{from}: not JSON ({e})")),
            },
        };
        for pair in &self.pairs {
            let Some((key, value)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return Err(format!(
                    "{pair:?}: arguments are KEY=VALUE (or use --args '{{...}}')"
                ));
            };
            let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
            args.insert(key.to_string(), value);
        }
        Ok(args)
    }
}

/// Makes the call and prints its result; the exit status follows the answer.
pub async fn call(config: &Config, args: CallArgs, test_tools: bool) -> Result<(), Failure> {
    let arguments = args.arguments().map_err(Failure::Usage)?;
    let params = CallToolRequestParams::new(args.tool.clone()).with_arguments(arguments);
    let answer = match &args.url {
        Some(url) => remote(url, params).await,
        None => in_process(config, params, test_tools).await,
    }?;
    report(&args.tool, answer)
}

/// What a call came to: a result, or an MCP error instead of one.
type Answer = Result<CallToolResult, ServiceError>;

async fn remote(url: &str, params: CallToolRequestParams) -> Result<Answer, Failure> {
    let client = open_session(url).await?;
    let answer = client.call_tool(params).await;
    let _ = client.cancel().await;
    Ok(answer)
}

/// An MCP session with the server at `url` (`--url`), or what to fix.
pub(super) async fn open_session(
    url: &str,
) -> Result<rmcp::service::RunningService<rmcp::RoleClient, ()>, Failure> {
    if url.starts_with("https://") {
        // No TLS stack is built in (it would be most of the client's size): `ensemble serve`
        // itself speaks plain HTTP, usually on loopback.
        return Err(Failure::Usage(format!(
            "--url {url:?}: this client speaks plain HTTP only; call the server's http:// \
             address (ensemble serve --http listens on plain HTTP)"
        )));
    }
    if !url.starts_with("http://") {
        return Err(Failure::Usage(format!(
            "--url {url:?}: give the server's MCP endpoint, like http://127.0.0.1:7300/mcp"
        )));
    }
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    let credential = credential()?;
    if let Some(credential) = &credential {
        config = config.auth_header(credential.clone());
    }
    let transport = rmcp::transport::StreamableHttpClientTransport::from_config(config);
    ().serve(transport).await.map_err(|e| {
        let hint = if credential.is_some() {
            "is `ensemble serve --http` running there, and does it accept the credential in \
             ENSEMBLE_TOKEN?"
        } else {
            "is `ensemble serve --http` running there? A server that requires credentials \
             takes a bearer token or an API key from ENSEMBLE_TOKEN (or a file named by \
             ENSEMBLE_TOKEN_FILE)"
        };
        Failure::Usage(format!(
            "could not open an MCP session at {url}: {e}; {hint}"
        ))
    })
}

/// The credential `--url` sends as `Authorization: Bearer …` (a token, or a service account's
/// API key): `ENSEMBLE_TOKEN`, else the first line of the file `ENSEMBLE_TOKEN_FILE` names.
/// Never a flag: a flag shows in `ps` to every user of the machine.
fn credential() -> Result<Option<String>, Failure> {
    if let Some(token) = std::env::var("ENSEMBLE_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(token));
    }
    let Some(path) = std::env::var_os("ENSEMBLE_TOKEN_FILE").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::Usage(format!(
            "ENSEMBLE_TOKEN_FILE={}: {e}",
            std::path::Path::new(&path).display()
        ))
    })?;
    match text.lines().next().map(str::trim).filter(|t| !t.is_empty()) {
        Some(token) => Ok(Some(token.to_string())),
        None => Err(Failure::Usage(format!(
            "ENSEMBLE_TOKEN_FILE={}: the file is empty; put the token on its first line",
            std::path::Path::new(&path).display()
        ))),
    }
}

async fn in_process(
    config: &Config,
    params: CallToolRequestParams,
    test_tools: bool,
) -> Result<Answer, Failure> {
    let runtime = Runtime::builder()
        .config(config)
        .test_tools(test_tools)
        .build()
        .await
        .map_err(|e| Failure::Usage(format!("the runtime could not start: {e}")))?;
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    let service = runtime.mcp_service();
    let server = tokio::spawn(async move {
        if let Ok(running) = service.serve(server_end).await {
            let _ = running.waiting().await;
        }
    });
    let answer = match ().serve(client_end).await {
        Ok(client) => {
            let answer = client.call_tool(params).await;
            let _ = client.cancel().await;
            Ok(answer)
        }
        Err(e) => Err(Failure::Usage(format!(
            "the in-process MCP session failed: {e}"
        ))),
    };
    // The client is gone, so the server's session ends; then the engines stop and the store
    // is flushed before the process exits.
    let _ = server.await;
    runtime
        .shutdown()
        .await
        .map_err(|e| Failure::Failed(format!("shutting down: {e}")))?;
    answer
}

/// Prints the answer: the structured result as JSON on stdout (the whole result when it has
/// no structured content), and on an error result its text on stderr too.
fn report(tool: &str, answer: Answer) -> Result<(), Failure> {
    match answer {
        Ok(result) => {
            let is_error = result.is_error == Some(true);
            let shown = match &result.structured_content {
                Some(v) => v.clone(),
                None => serde_json::to_value(&result).unwrap_or(Value::Null),
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&shown).unwrap_or_default()
            );
            if is_error {
                let text: Vec<String> = result
                    .content
                    .iter()
                    .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                    .collect();
                eprintln!(
                    "ensemble call: `{tool}` answered with an error: {}",
                    text.join(" ")
                );
                return Err(Failure::Exit(1));
            }
            Ok(())
        }
        Err(ServiceError::McpError(e)) => {
            let hint = if e.code == ErrorCode::INVALID_PARAMS
                && e.data.as_ref().and_then(|d| d.get("tool")).is_some()
            {
                "; `ensemble tools` lists the tools"
            } else {
                ""
            };
            Err(Failure::Usage(format!(
                "{} (JSON-RPC error {}){hint}",
                e.message, e.code.0
            )))
        }
        Err(e) => Err(Failure::Usage(format!("the call got no answer: {e}"))),
    }
}
