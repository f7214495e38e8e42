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
//! Sending is rmcp's (its codec and framing, on an `AsyncRwTransport` used only for writing).

use std::borrow::Cow;

use rmcp::model::{
    CallToolRequest, ClientJsonRpcMessage, ClientRequest, ErrorData, JsonRpcRequest, RequestId,
    ServerJsonRpcMessage,
};
use rmcp::service::RoleServer;
use rmcp::transport::Transport;
use rmcp::transport::async_rw::AsyncRwTransport;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};

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
    write: AsyncRwTransport<RoleServer, tokio::io::Empty, W>,
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
            write: AsyncRwTransport::new(tokio::io::empty(), write),
        }
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
        self.write.send(item)
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
            let decoded = (!line.is_empty()).then(|| decode(line));
            self.line.clear();
            match decoded {
                None => {}
                Some(Decoded::Message(m)) => return Some(*m),
                Some(Decoded::Ignore(why)) => tracing::debug!("ignoring a message: {why}"),
                Some(Decoded::Invalid(id, why)) => {
                    tracing::debug!("refusing a message: {why}");
                    let answer =
                        ServerJsonRpcMessage::error(ErrorData::invalid_request(why, None), id);
                    if self.write.send(answer).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.write.close().await
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
