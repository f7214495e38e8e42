//! The MCP transport over stdin and stdout: newline-delimited JSON-RPC, as rmcp's own
//! `AsyncRwTransport`, with a direct decoder for `tools/call`.
//!
//! rmcp reads every incoming message as its `ClientJsonRpcMessage`, an untagged enum over
//! requests, responses and notifications whose request side is itself a list of one variant
//! per method: serde buffers the message and tries the variants in turn, building an error for
//! each that does not match. That is about 2 µs a message, a sixth of the server's whole CPU
//! time for a small tool call. A `tools/call` request (nearly all the traffic of a busy
//! server) is decoded here straight into its variant instead (about 0.7 µs): a first pass reads
//! only `jsonrpc`, `id` and `method`, a second reads the request with rmcp's own
//! `CallToolRequest` deserializer, so `_meta` and every field mean what they mean in rmcp.
//! Any other message, and any `tools/call` the direct path cannot read, takes rmcp's decoder.
//!
//! Sending frames messages as rmcp's codec does (the JSON, then a newline).
//!
//! With [`LineTransport::with_fast_lane`], a plain `tools/call` of an initialized session (a
//! tool without a context and not offered as a task, no `_meta`, no input round, no log level
//! set by the client) is served by the transport itself, as [`crate::mcp`]'s HTTP fast lane
//! serves stateless ones: the call runs on a task of its own and its answer is written from
//! there, instead of going through rmcp's service loop (a request context, two cancellation
//! tokens and a hand-off back to the loop per call). `notifications/cancelled` stops such a
//! call as rmcp stops its own; every other message goes to rmcp.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rmcp::model::{
    CallToolRequest, ClientJsonRpcMessage, ClientNotification, ClientRequest, ErrorData,
    JsonRpcNotification, JsonRpcRequest, RequestId, ServerJsonRpcMessage, ServerNotification,
    ServerResult,
};
use rmcp::service::RoleServer;
use rmcp::transport::Transport;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::mcp::{CallsInFlight, Era, McpService, PlainCall};

/// How long the end of a session waits for the fast lane's calls in flight (rmcp waits as
/// long for its own).
const DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest message accepted, as rmcp's default: a longer line is dropped (and logged)
/// without being buffered, and the session goes on.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// A JSON-RPC transport on a reader and a writer of newline-delimited messages.
pub struct LineTransport<R: AsyncRead, W: AsyncWrite> {
    read: BufReader<R>,
    /// The line being read; a read cancelled half-way leaves its bytes here for the next.
    line: Vec<u8>,
    /// Dropping the rest of a line that was too long.
    discarding: bool,
    max_line: usize,
    /// What a message may hold.
    limits: Arc<crate::limits::Limits>,
    /// Shared with the fast lane's calls, which write their own answers.
    write: Writer<W>,
    lane: Option<Lane>,
}

/// The writing half, shared by rmcp's sends and the fast lane's calls; `None` once closed.
type Writer<W> = Arc<tokio::sync::Mutex<Option<W>>>;

/// Writes `item` as one line on `write`, as rmcp's codec frames it (the JSON, then a
/// newline): encoded before the lock is taken, written and flushed under it.
fn send_on<W>(
    write: &Writer<W>,
    item: ServerJsonRpcMessage,
) -> impl Future<Output = Result<(), std::io::Error>> + Send + use<W>
where
    W: AsyncWrite + Send + Unpin + 'static,
{
    let write = write.clone();
    async move {
        let mut line = serde_json::to_vec(&item).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut open = write.lock().await;
        let Some(w) = open.as_mut() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the transport is closed",
            ));
        };
        w.write_all(&line).await?;
        w.flush().await
    }
}

/// The fast lane's state (see the module's documentation).
struct Lane {
    service: McpService,
    /// The session's protocol era, once the `initialize` answer has gone out.
    era: Option<Era>,
    /// `notifications/initialized` has come in.
    initialized: bool,
    /// The lane's calls in flight, to cancel by request id.
    in_flight: CallsInFlight,
    /// Calls the lane took.
    taken: Arc<AtomicU64>,
    /// The lane's call tasks, waited for when the session ends.
    tasks: tokio_util::task::TaskTracker,
}

/// How many calls a transport's fast lane took (for tests and diagnostics).
#[derive(Debug, Clone, Default)]
pub struct FastLaneCount(Arc<AtomicU64>);

impl FastLaneCount {
    /// Calls taken so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Lane {
    /// The call in `message` and the session's era, if the lane takes the call (its
    /// arguments are moved out of `message`, which is not used again then).
    fn takes(&self, message: &mut ClientJsonRpcMessage) -> Option<(PlainCall, Era)> {
        let era = self.era.filter(|_| self.initialized)?;
        if !self.service.logs_nothing() {
            return None;
        }
        Some((self.service.take_plain(message)?, era))
    }

    /// Runs a call the lane took on a task of its own, which writes the answer.
    fn spawn<W: AsyncWrite + Send + Unpin + 'static>(
        &self,
        call: PlainCall,
        era: Era,
        write: &Writer<W>,
    ) {
        let PlainCall {
            id,
            route,
            args,
            progress,
            who,
            session,
        } = call;
        let cancel = self.in_flight.start(&id);
        self.taken.fetch_add(1, Ordering::Relaxed);
        let (service, write, in_flight) =
            (self.service.clone(), write.clone(), self.in_flight.clone());
        self.tasks.spawn(async move {
            let heartbeat = progress.map(|token| {
                let write = write.clone();
                (token, move |note: ServerNotification| {
                    let sending = send_on(&write, ServerJsonRpcMessage::notification(note));
                    async move {
                        let _ = sending.await;
                    }
                })
            });
            let answer = service
                .answer_plain(
                    id.clone(),
                    &route,
                    args,
                    (&who, &session),
                    cancel.clone(),
                    era,
                    heartbeat,
                )
                .await;
            in_flight.end(&id);
            // A cancelled request gets no answer (as rmcp does, and as MCP asks).
            if cancel.is_cancelled() {
                return;
            }
            if let Err(e) = send_on(&write, answer).await {
                tracing::debug!(error = %e, "a tool call's answer could not be written");
            }
        });
    }

    /// Notes what the session's handshake and cancellations mean for the lane.
    fn observe(&mut self, message: &ClientJsonRpcMessage) {
        if let ClientJsonRpcMessage::Notification(JsonRpcNotification {
            notification: ClientNotification::InitializedNotification(_),
            ..
        }) = message
        {
            self.initialized = true;
        }
        self.in_flight.observe(message);
    }
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    /// A transport reading messages from `read` and writing them to `write`.
    pub fn new(read: R, write: W) -> Self {
        Self {
            read: BufReader::new(read),
            line: Vec::new(),
            discarding: false,
            max_line: MAX_LINE,
            limits: Arc::default(),
            write: Arc::new(tokio::sync::Mutex::new(Some(write))),
            lane: None,
        }
    }

    /// Serves plain tool calls of an initialized session itself, for `service` (the handler
    /// rmcp serves on this transport, or a clone of it: they share the session's log level).
    pub fn with_fast_lane(mut self, service: McpService) -> Self {
        self.lane = Some(Lane {
            service,
            era: None,
            initialized: false,
            in_flight: CallsInFlight::default(),
            taken: Arc::default(),
            tasks: tokio_util::task::TaskTracker::new(),
        });
        self
    }

    /// How many calls the fast lane took (zero without one).
    pub fn fast_lane_count(&self) -> FastLaneCount {
        FastLaneCount(
            self.lane
                .as_ref()
                .map(|l| l.taken.clone())
                .unwrap_or_default(),
        )
    }

    /// The same with other limits on what a message may hold (depth, strings, arrays).
    pub fn with_limits(mut self, limits: Arc<crate::limits::Limits>) -> Self {
        self.limits = limits;
        self
    }

    /// The same with another limit on a message's length.
    pub fn with_max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line;
        self
    }

    /// Reads up to the next newline into `self.line`, never holding more than `max_line`
    /// bytes of it. Cancel-safe: nothing is consumed from the reader that is not in `line`.
    async fn read_line(&mut self) -> Read {
        loop {
            let (used, done) = {
                let available = match self.read.fill_buf().await {
                    Ok(b) => b,
                    Err(e) => return Read::Failed(e),
                };
                if available.is_empty() {
                    return Read::Eof;
                }
                let newline = newline_at(available);
                let take = newline.map_or(available.len(), |i| i + 1);
                if self.discarding {
                    self.discarding = newline.is_none();
                    (take, None)
                } else if self.line.len() + take > self.max_line {
                    self.line.clear();
                    self.discarding = newline.is_none();
                    (take, Some(Read::TooLong))
                } else {
                    self.line.extend_from_slice(&available[..take]);
                    (take, newline.map(|_| Read::Line))
                }
            };
            self.read.consume(used);
            if let Some(done) = done {
                return done;
            }
        }
    }
}

enum Read {
    Line,
    TooLong,
    Eof,
    Failed(std::io::Error),
}

fn newline_at(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

/// The first pass over a message: what the direct path needs to know.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    id: Option<RequestId>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
}

/// What a line holds.
#[derive(Debug)]
pub enum Decoded {
    /// A message for the service.
    Message(Box<ClientJsonRpcMessage>),
    /// Nothing to answer: not JSON (answering garbage can start an error storm with a peer
    /// that echoes it), or a notification that could not be read (notifications get no
    /// answer; other SDKs ignore the ones they do not know).
    Ignore(String),
    /// A request that could not be read: answered with an invalid-request error.
    Invalid(Option<RequestId>, String),
}

/// Decodes one message (without its newline) that is within `limits`; one over them is
/// refused before it is parsed (a request by its id, when it has one).
pub fn decode_within(line: &[u8], limits: &crate::limits::Limits) -> Decoded {
    match crate::limits::scan(line, limits) {
        Ok(()) => decode(line),
        // The head alone: its parse skips the rest without building it. A notification gets
        // no answer; a message too deep for even that is answered without an id, as JSON-RPC
        // answers a request whose id could not be read.
        Err(e) => match serde_json::from_slice::<Head>(line) {
            Ok(Head { id: Some(id), .. }) => Decoded::Invalid(Some(id), e.to_string()),
            Ok(_) => Decoded::Ignore(e.to_string()),
            Err(_) => Decoded::Invalid(None, e.to_string()),
        },
    }
}

/// Decodes one message (without its newline).
pub fn decode(line: &[u8]) -> Decoded {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if let Ok(head) = serde_json::from_slice::<Head>(line)
        && head.jsonrpc.as_deref() == Some("2.0")
        && head.method.as_deref() == Some("tools/call")
        && let Some(id) = head.id
        && let Ok(call) = serde_json::from_slice::<CallToolRequest>(line)
    {
        return Decoded::Message(Box::new(ClientJsonRpcMessage::Request(
            JsonRpcRequest::new(id, ClientRequest::CallToolRequest(call)),
        )));
    }
    match serde_json::from_slice::<ClientJsonRpcMessage>(line) {
        Ok(message) => Decoded::Message(Box::new(message)),
        Err(e) if e.is_syntax() || e.is_eof() => Decoded::Ignore(format!("not JSON: {e}")),
        Err(e) => {
            // Well-formed JSON of the wrong shape: a request gets told, by its id.
            let value: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
            match value.get("id") {
                None => Decoded::Ignore(format!("an unreadable notification: {e}")),
                Some(id) => Decoded::Invalid(
                    serde_json::from_value::<RequestId>(id.clone()).ok(),
                    format!("invalid request: {e}"),
                ),
            }
        }
    }
}

impl<R, W> Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let Some(lane) = &mut self.lane
            && let ServerJsonRpcMessage::Response(r) = &item
            && let ServerResult::InitializeResult(init) = &r.result
        {
            lane.era = Some(Era::of(&init.protocol_version));
        }
        send_on(&self.write, item)
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            match self.read_line().await {
                Read::Line => {}
                Read::TooLong => {
                    tracing::error!(
                        max_bytes = self.max_line,
                        "an incoming message was longer than the limit; dropped"
                    );
                    continue;
                }
                Read::Eof => return None,
                Read::Failed(e) => {
                    tracing::error!(error = %e, "reading stdin failed");
                    return None;
                }
            }
            let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let decoded = (!line.is_empty()).then(|| decode_within(line, &self.limits));
            self.line.clear();
            match decoded {
                None => {}
                Some(Decoded::Message(mut m)) => {
                    if let Some(lane) = &mut self.lane {
                        lane.observe(&m);
                        if let Some((call, era)) = lane.takes(&mut m) {
                            lane.spawn(call, era, &self.write);
                            continue;
                        }
                    }
                    return Some(*m);
                }
                Some(Decoded::Ignore(why)) => tracing::debug!("ignoring a message: {why}"),
                Some(Decoded::Invalid(id, why)) => {
                    tracing::debug!("refusing a message: {why}");
                    let answer =
                        ServerJsonRpcMessage::error(ErrorData::invalid_request(why, None), id);
                    if send_on(&self.write, answer).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        // As rmcp at the end of a session: calls in flight get a while to answer, then the
        // rest are cancelled.
        if let Some(lane) = &self.lane {
            lane.tasks.close();
            if tokio::time::timeout(DRAIN, lane.tasks.wait())
                .await
                .is_err()
            {
                tracing::warn!("timed out waiting for calls in flight at the end of the session");
            }
            lane.in_flight.cancel_all();
        }
        // As rmcp's own transport: the writer is dropped, and later sends fail.
        drop(self.write.lock().await.take());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{ClientNotification, NumberOrString};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn call_of(d: Decoded) -> (RequestId, CallToolRequest) {
        match d {
            Decoded::Message(m) => match *m {
                ClientJsonRpcMessage::Request(JsonRpcRequest {
                    id,
                    request: ClientRequest::CallToolRequest(c),
                    ..
                }) => (id, c),
                other => panic!("not a tools/call: {other:?}"),
            },
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn a_tools_call_decodes_as_rmcp_decodes_it() {
        let lines: [&[u8]; 4] = [
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"},"_meta":{"progressToken":"p1","x":1}}}"#,
            br#"{"params":{"arguments":{"a":[1,{"b":null}]},"name":"echo"},"method":"tools/call","id":"s-1","jsonrpc":"2.0"}"#,
            // Escapes in the method name, a BOM, and a task request.
            b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools\\/call\",\"params\":{\"name\":\"e\"}}",
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"e","task":{"ttl":1000},"requestState":"abc","inputResponses":{}}}"#,
        ];
        for line in lines {
            let (id, fast) = call_of(decode(line));
            let plain = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
            let rmcp: ClientJsonRpcMessage = serde_json::from_slice(plain).expect("rmcp reads it");
            let ClientJsonRpcMessage::Request(JsonRpcRequest {
                id: rid,
                request: ClientRequest::CallToolRequest(slow),
                ..
            }) = rmcp
            else {
                panic!("rmcp read another message")
            };
            assert_eq!(id, rid);
            assert_eq!(
                serde_json::to_value(&fast.params).unwrap(),
                serde_json::to_value(&slow.params).unwrap()
            );
            assert_eq!(
                fast.extensions.get::<rmcp::model::RequestMetaObject>(),
                slow.extensions.get::<rmcp::model::RequestMetaObject>()
            );
        }
        let (id, call) = call_of(decode(lines[0]));
        assert_eq!(id, NumberOrString::Number(7));
        assert_eq!(call.params.name, "echo");
    }

    #[test]
    fn other_messages_and_bad_ones_take_rmcps_way_or_are_told() {
        let note = decode(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert!(matches!(
            note,
            Decoded::Message(m) if matches!(*m, ClientJsonRpcMessage::Notification(ref n)
                if matches!(n.notification, ClientNotification::InitializedNotification(_)))
        ));
        assert!(matches!(
            decode(br#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#),
            Decoded::Message(_)
        ));
        assert!(matches!(decode(b"{not json"), Decoded::Ignore(_)));
        // A notification of the wrong shape gets no answer.
        assert!(matches!(
            decode(br#"{"jsonrpc":"2.0","method":5}"#),
            Decoded::Ignore(_)
        ));
        // A tools/call the direct path cannot read goes to rmcp's decoder, which makes it a
        // custom request (the service then answers it).
        assert!(matches!(
            decode(br#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{}}"#),
            Decoded::Message(_)
        ));
        // A request of no shape at all is told, by its id.
        match decode(br#"{"jsonrpc":"2.0","id":9,"method":5}"#) {
            Decoded::Invalid(Some(NumberOrString::Number(9)), why) => {
                assert!(why.contains("invalid request"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn lines_are_read_whole_and_a_too_long_one_is_dropped_alone() {
        let (mut client, server) = tokio::io::duplex(64);
        let (read, write) = tokio::io::split(server);
        let mut t = LineTransport::new(read, write).with_max_line(100);
        let writer = tokio::spawn(async move {
            let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e"}}"#;
            client.write_all(&call[..10]).await.unwrap();
            client.write_all(&call[10..]).await.unwrap();
            client.write_all(b"\r\n\n").await.unwrap();
            client.write_all(&[b'x'; 300]).await.unwrap();
            client.write_all(b"\n").await.unwrap();
            client.write_all(call).await.unwrap();
            client.write_all(b"\n").await.unwrap();
            // An unreadable request is answered on the write side.
            client
                .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":5}\n")
                .await
                .unwrap();
            let mut answer = vec![0u8; 256];
            let n = client.read(&mut answer).await.unwrap();
            client.shutdown().await.unwrap();
            String::from_utf8_lossy(&answer[..n]).to_string()
        });
        for _ in 0..2 {
            let m = t.receive().await.expect("a message");
            assert!(matches!(m, ClientJsonRpcMessage::Request(_)), "{m:?}");
        }
        assert!(t.receive().await.is_none(), "end of input");
        let answer = writer.await.unwrap();
        assert!(
            answer.contains("\"id\":5") && answer.contains("-32600"),
            "{answer}"
        );
    }
}
