//! Input-required results (SEP-2322, protocol 2026-07-28): how a tool that asks its client for
//! something (elicitation, sampling, roots) is served to a client that takes no server→client
//! requests.
//!
//! The actor asks through its [`ToolContext`] exactly as it does for an older client. The
//! handler collects what it asks, answers the `tools/call` with an `InputRequiredResult`
//! (`inputRequests` keyed by the names the tool gave, and a `requestState`), and parks the
//! running call here. The client retries `tools/call` with `inputResponses` and the echoed
//! `requestState`; the handler finds the parked call, hands the answers to the waiting actor and
//! drives the call on, to its result or to the next input-required round.
//!
//! `requestState` is HMAC-sealed (rmcp's `RequestStateCodec`, a key per process) over a random
//! id and bound to the tool's name, so a forged or edited state is refused with -32602 and a
//! state cannot be replayed against another tool. A parked call is answered once; it is dropped
//! (and its actor told to stop) after [`PARK_TTL`] without an answer.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::ErrorData;
use rmcp::model::{
    ClientCapabilities, ClientResult, CreateMessageResult, ElicitResult, InputRequest,
    InputResponses, ListRootsResult, RequestStateCodec, SealOptions, ServerRequest,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::context::{ContextError, ContextEvent};
use crate::router::catalog::PromptError;
use crate::router::{BoxFuture, PromptResult, ToolError, ToolOutput};

/// How long a parked call waits for the client's next round.
pub(super) const PARK_TTL: Duration = Duration::from_secs(300);
/// After a tool's first request, how long to wait for the others it makes at the same time,
/// so that they reach the client in one round.
pub(super) const GATHER: Duration = Duration::from_millis(25);

pub(super) type Answer = oneshot::Sender<Result<ClientResult, ContextError>>;

/// How a parked request ended: a tool call's or a prompt's answer.
pub(super) enum Finished {
    Tool(Result<ToolOutput, ToolError>),
    Prompt(Result<PromptResult, PromptError>),
}

impl Finished {
    /// Whether the request failed (a tool's `isError` result included).
    pub(super) fn failed(&self) -> bool {
        match self {
            Finished::Tool(Ok(ToolOutput::Content(r))) => r.is_error == Some(true),
            Finished::Tool(Ok(_)) | Finished::Prompt(Ok(_)) => false,
            Finished::Tool(Err(_)) | Finished::Prompt(Err(_)) => true,
        }
    }
}

/// A call between rounds, or being driven in one.
pub(super) struct Running {
    /// What the sealed state is bound to: the tool's name, or `prompt:<name>`.
    pub(super) tool: String,
    pub(super) call: BoxFuture<Finished>,
    pub(super) events: mpsc::UnboundedReceiver<ContextEvent>,
    /// Stops the actor's work: the client cancelled, or the call expired while parked.
    pub(super) cancel: CancellationToken,
    /// Requests waiting for the client, by key.
    pub(super) pending: BTreeMap<String, (InputRequest, Answer)>,
    /// Keys used so far (a key is asked once per call).
    pub(super) asked: u32,
    /// A capability the tool asked for that the client did not declare.
    pub(super) refused: Option<&'static str>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // A call dropped before its result (expired, or its client went away) stops its work.
        self.cancel.cancel();
    }
}

impl Running {
    /// The call, its context's channel and its stop token, to run on as a task (nothing is
    /// cancelled); only when no request waits for the client.
    pub(super) fn into_task_parts(
        mut self,
    ) -> (
        BoxFuture<Result<ToolOutput, ToolError>>,
        mpsc::UnboundedReceiver<ContextEvent>,
        CancellationToken,
    ) {
        let call = std::mem::replace(&mut self.call, Box::pin(std::future::pending()));
        let call: BoxFuture<Result<ToolOutput, ToolError>> = Box::pin(async move {
            match call.await {
                Finished::Tool(r) => r,
                // Only tool calls become tasks.
                Finished::Prompt(_) => Err(ToolError::Runtime("a prompt is not a task".into())),
            }
        });
        let (_, closed) = mpsc::unbounded_channel();
        let events = std::mem::replace(&mut self.events, closed);
        // What `self` cancels on drop from here on is a token nobody holds.
        let cancel = std::mem::take(&mut self.cancel);
        (call, events, cancel)
    }
}

/// The parked calls of every session of one server (stateless clients come back on another
/// request, often another connection).
#[derive(Clone)]
pub(super) struct Parking {
    inner: Arc<ParkingInner>,
}

struct ParkingInner {
    codec: RequestStateCodec,
    parked: Mutex<HashMap<String, (Instant, Running)>>,
}

impl std::fmt::Debug for Parking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parking").finish_non_exhaustive()
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back on std's per-process random hasher keys.
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
        }
    }
    bytes
}

impl Parking {
    pub(super) fn new() -> Self {
        Self {
            inner: Arc::new(ParkingInner {
                codec: RequestStateCodec::new_unchecked(random_bytes::<32>().to_vec()),
                parked: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Parks `running`; the sealed `requestState` that finds it again.
    pub(super) fn park(&self, running: Running) -> String {
        let id: String = random_bytes::<16>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let state = self.inner.codec.seal_with(
            id.as_bytes(),
            &SealOptions::new()
                .associated_data(running.tool.as_bytes())
                .ttl(PARK_TTL),
        );
        let now = Instant::now();
        let mut parked = self.inner.parked.lock().unwrap_or_else(|p| p.into_inner());
        // Expired calls go when the next one parks (dropping one cancels its work).
        parked.retain(|_, (at, _)| now.duration_since(*at) < PARK_TTL);
        parked.insert(id, (now, running));
        state
    }

    /// The call `state` parked for `tool`, taken out (a round is answered once).
    pub(super) fn resume(&self, tool: &str, state: &str) -> Result<Running, ErrorData> {
        let id = self
            .inner
            .codec
            .open_with(state, tool.as_bytes())
            .map_err(|e| {
                ErrorData::invalid_params(
                    format!("requestState refused: {e} (forged, edited, for another tool, or expired); call `{tool}` again without it"),
                    None,
                )
            })?;
        let id = String::from_utf8_lossy(&id).into_owned();
        let mut parked = self.inner.parked.lock().unwrap_or_else(|p| p.into_inner());
        // Expired calls also go when one is resumed, not only when the next one parks.
        parked.retain(|_, (at, _)| at.elapsed() < PARK_TTL);
        match parked.remove(&id) {
            Some((_, running)) => Ok(running),
            None => Err(ErrorData::invalid_params(
                format!(
                    "requestState names no call of `{tool}` waiting for input (answered already, or expired after {} s); call it again without requestState",
                    PARK_TTL.as_secs()
                ),
                None,
            )),
        }
    }
}

/// A context request as an MRTR input request; else the capability the client lacks for it
/// (`None`: not a request a client can answer in a round).
pub(super) fn input_request(
    request: ServerRequest,
    caps: Option<&ClientCapabilities>,
) -> Result<InputRequest, Option<&'static str>> {
    match request {
        ServerRequest::CreateMessageRequest(r) => match caps {
            Some(c) if c.sampling.is_some() => Ok(InputRequest::CreateMessage(r)),
            _ => Err(Some("sampling")),
        },
        ServerRequest::ElicitRequest(r) => match caps {
            Some(c) if c.elicitation.is_some() => Ok(InputRequest::Elicitation(r)),
            _ => Err(Some("elicitation")),
        },
        ServerRequest::ListRootsRequest(r) => match caps {
            Some(c) if c.roots.is_some() => Ok(InputRequest::ListRoots(r)),
            _ => Err(Some("roots")),
        },
        _ => Err(None),
    }
}

/// The client capabilities naming `capability`, for a -32021 error.
pub(super) fn required(capability: &str) -> ClientCapabilities {
    let b = ClientCapabilities::builder();
    match capability {
        "sampling" => b.enable_sampling().build(),
        "elicitation" => b.enable_elicitation().build(),
        "roots" => b.enable_roots().build(),
        _ => b.build(),
    }
}

/// The client's answer to `request`, typed; `None` when it does not have the answer's shape.
pub(crate) fn client_result(
    request: &InputRequest,
    answer: serde_json::Value,
) -> Option<ClientResult> {
    match request {
        InputRequest::CreateMessage(_) => serde_json::from_value::<CreateMessageResult>(answer)
            .ok()
            .map(|r| ClientResult::CreateMessageResult(Box::new(r))),
        InputRequest::Elicitation(_) => serde_json::from_value::<ElicitResult>(answer)
            .ok()
            .map(ClientResult::ElicitResult),
        InputRequest::ListRoots(_) => serde_json::from_value::<ListRootsResult>(answer)
            .ok()
            .map(ClientResult::ListRootsResult),
        _ => None,
    }
}

/// Hands the client's answers to the requests waiting for them. Keys nobody asked for are
/// ignored; an answer of the wrong shape leaves its request pending (it is asked again).
pub(super) fn deliver(running: &mut Running, responses: InputResponses) {
    for (key, answer) in responses {
        let Some((request, _)) = running.pending.get(&key) else {
            continue;
        };
        if let Some(result) = client_result(request, answer)
            && let Some((_, reply)) = running.pending.remove(&key)
        {
            let _ = reply.send(Ok(result));
        }
    }
}
