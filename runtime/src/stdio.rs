//! stdin and stdout for the stdio transport, read and written by the runtime's own I/O driver
//! when they are pipes or sockets, which is what an MCP client gives a server it spawns.
//!
//! tokio's `Stdin` and `Stdout` hand every read and every write to the blocking thread pool
//! (the portable way to do I/O on a descriptor that may be a terminal or a file), so each
//! message crosses threads twice more on its way in and out. A pipe or a socket can be
//! polled like any other descriptor instead: it is switched to non-blocking mode and
//! registered with the reactor, and put back in blocking mode when dropped, so the process that
//! shares it finds it as it was. A terminal or a regular file keeps tokio's portable path.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::net::unix::pipe;

pub mod transport;

pub use transport::LineTransport;

/// The server's stdin as an [`AsyncRead`]. Lone surrogate escapes in the JSON it carries are
/// repaired on the way ([`crate::surrogates`]), so such a message is answered instead of dropped.
#[derive(Debug)]
pub struct Input {
    end: In,
    /// Bytes read but not handed on yet: the lines being repaired.
    held: Vec<u8>,
    /// `held[..given]` has been handed on; `held[given..ready]` is repaired and ready; the rest
    /// is a line still arriving. Indices, not draining, so that a long line costs no
    /// quadratic copying.
    given: usize,
    ready: usize,
}

impl Input {
    fn new(end: In) -> Self {
        Self {
            end,
            held: Vec::new(),
            given: 0,
            ready: 0,
        }
    }
}

/// The server's stdout as an [`AsyncWrite`].
#[derive(Debug)]
pub struct Output(Out);

#[derive(Debug)]
enum In {
    Pipe(Polled<pipe::Receiver>),
    Socket(Polled<UnixStream>),
    Std(tokio::io::Stdin),
}

#[derive(Debug)]
enum Out {
    Pipe(Polled<pipe::Sender>),
    Socket(Polled<UnixStream>),
    Std(tokio::io::Stdout),
}

/// A descriptor end registered with the reactor, put back in blocking mode when dropped.
#[derive(Debug)]
struct Polled<T: Restore>(Option<T>);

/// Deregisters an end and puts its descriptor back in blocking mode.
trait Restore: Sized {
    fn restore(self);
}

impl Restore for pipe::Receiver {
    fn restore(self) {
        let _ = self.into_blocking_fd();
    }
}

impl Restore for pipe::Sender {
    fn restore(self) {
        let _ = self.into_blocking_fd();
    }
}

impl Restore for UnixStream {
    fn restore(self) {
        if let Ok(stream) = self.into_std() {
            let _ = stream.set_nonblocking(false);
        }
    }
}

impl<T: Restore> Drop for Polled<T> {
    fn drop(&mut self) {
        if let Some(end) = self.0.take() {
            end.restore();
        }
    }
}

impl<T: Restore + Unpin> Polled<T> {
    fn end(&mut self) -> Pin<&mut T> {
        // Only `Drop` takes the end out, and nothing polls after it.
        Pin::new(self.0.as_mut().expect("polled end present until drop"))
    }
}

/// stdin and stdout for an rmcp transport (`service.serve(stdio())`), each polled by the
/// reactor when it is a pipe or a socket. Must be called within a tokio runtime with I/O
/// enabled.
pub fn stdio() -> (Input, Output) {
    let input = polled_input(io::stdin().as_fd()).unwrap_or_else(|| In::Std(tokio::io::stdin()));
    let output =
        polled_output(io::stdout().as_fd()).unwrap_or_else(|| Out::Std(tokio::io::stdout()));
    tracing::debug!(
        stdin = input.kind(),
        stdout = output.kind(),
        "stdio transport"
    );
    (Input::new(input), Output(output))
}

/// The MCP transport on [`stdio`]: newline-delimited JSON-RPC with the direct `tools/call`
/// decoder of [`transport`].
pub fn stdio_transport() -> LineTransport<Input, Output> {
    let (input, output) = stdio();
    LineTransport::new(input, output)
}

/// What a descriptor is, as far as polling it goes.
enum Kind {
    Pipe,
    Socket,
    Other,
}

/// A duplicate of `fd` (same open file, its own descriptor number) and what it is.
fn duplicate(fd: BorrowedFd<'_>) -> Option<(OwnedFd, Kind)> {
    let file = File::from(fd.try_clone_to_owned().ok()?);
    let kind = file.metadata().ok()?.file_type();
    let kind = if kind.is_fifo() {
        Kind::Pipe
    } else if kind.is_socket() {
        Kind::Socket
    } else {
        Kind::Other
    };
    Some((file.into(), kind))
}

fn socket(fd: OwnedFd) -> Option<UnixStream> {
    let stream = std::os::unix::net::UnixStream::from(fd);
    stream.set_nonblocking(true).ok()?;
    UnixStream::from_std(stream).ok()
}

/// A pipe or socket at `fd` registered with the reactor; `None` for anything else, or when the
/// descriptor cannot be used that way (the caller then falls back to the portable path).
fn polled_input(fd: BorrowedFd<'_>) -> Option<In> {
    match duplicate(fd)? {
        (fd, Kind::Pipe) => pipe::Receiver::from_owned_fd(fd)
            .ok()
            .map(|p| In::Pipe(Polled(Some(p)))),
        (fd, Kind::Socket) => socket(fd).map(|s| In::Socket(Polled(Some(s)))),
        (_, Kind::Other) => None,
    }
}

fn polled_output(fd: BorrowedFd<'_>) -> Option<Out> {
    match duplicate(fd)? {
        (fd, Kind::Pipe) => pipe::Sender::from_owned_fd(fd)
            .ok()
            .map(|p| Out::Pipe(Polled(Some(p)))),
        (fd, Kind::Socket) => socket(fd).map(|s| Out::Socket(Polled(Some(s)))),
        (_, Kind::Other) => None,
    }
}

impl In {
    fn kind(&self) -> &'static str {
        match self {
            In::Pipe(_) => "pipe (polled)",
            In::Socket(_) => "socket (polled)",
            In::Std(_) => "blocking pool",
        }
    }
}

impl Out {
    fn kind(&self) -> &'static str {
        match self {
            Out::Pipe(_) => "pipe (polled)",
            Out::Socket(_) => "socket (polled)",
            Out::Std(_) => "blocking pool",
        }
    }
}

impl In {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self {
            In::Pipe(p) => p.end().poll_read(cx, buf),
            In::Socket(s) => s.end().poll_read(cx, buf),
            In::Std(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

/// Whether newly read bytes may hold, or end in part of, a surrogate escape.
fn suspicious(new: &[u8]) -> bool {
    crate::surrogates::may_hold_surrogate(new)
        || new[new.len().saturating_sub(11)..].contains(&b'\\')
}

impl AsyncRead for Input {
    /// Bytes pass straight through while nothing in them looks like a surrogate escape. When
    /// something does, whole lines (one JSON-RPC message each) are collected, repaired, and
    /// handed on.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.given < this.ready {
                let n = (this.ready - this.given).min(buf.remaining());
                buf.put_slice(&this.held[this.given..this.given + n]);
                this.given += n;
                if this.given == this.held.len() {
                    this.held.clear();
                    (this.given, this.ready) = (0, 0);
                }
                return Poll::Ready(Ok(()));
            }
            let scanned = this.held.len();
            if this.held.is_empty() {
                let start = buf.filled().len();
                match this.end.poll_read(cx, buf) {
                    Poll::Ready(Ok(())) => {
                        let new = &buf.filled()[start..];
                        if new.is_empty() || !suspicious(new) {
                            return Poll::Ready(Ok(()));
                        }
                        // Take them back and go line by line.
                        this.held.extend_from_slice(new);
                        buf.set_filled(start);
                    }
                    other => return other,
                }
            } else {
                let mut chunk = [0u8; 8192];
                let mut more = ReadBuf::new(&mut chunk);
                match this.end.poll_read(cx, &mut more) {
                    Poll::Ready(Ok(())) if more.filled().is_empty() => {
                        // End of input: what is left is a last line without its newline.
                        let ready = this.ready;
                        crate::surrogates::repair(&mut this.held[ready..]);
                        this.ready = this.held.len();
                        continue;
                    }
                    Poll::Ready(Ok(())) => this.held.extend_from_slice(more.filled()),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            // Complete lines among the bytes just added.
            if let Some(nl) = this.held[scanned..].iter().rposition(|b| *b == b'\n') {
                let end = scanned + nl + 1;
                let ready = this.ready;
                crate::surrogates::repair(&mut this.held[ready..end]);
                this.ready = end;
            }
        }
    }
}

impl AsyncWrite for Output {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Out::Pipe(p) => p.end().poll_write(cx, buf),
            Out::Socket(s) => s.end().poll_write(cx, buf),
            Out::Std(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Out::Pipe(p) => p.end().poll_flush(cx),
            Out::Socket(s) => s.end().poll_flush(cx),
            Out::Std(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Out::Pipe(p) => p.end().poll_shutdown(cx),
            Out::Socket(s) => s.end().poll_shutdown(cx),
            Out::Std(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Whether a read on `r` with nothing written would wait (blocking mode) rather than fail at
    /// once with `WouldBlock` (non-blocking mode). `w` writes one byte 50 ms later either way,
    /// and the byte is consumed, so the stream is empty again afterwards.
    fn blocks(r: &mut impl Read, w: impl Write + Send + 'static) -> bool {
        let mut w = w;
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            w.write_all(b"x").expect("write");
        });
        let mut byte = [0u8; 1];
        let blocked = match r.read(&mut byte) {
            Ok(1) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            other => panic!("unexpected read result {other:?}"),
        };
        writer.join().expect("writer");
        while !blocked && r.read(&mut byte).is_err() {
            std::thread::yield_now();
        }
        blocked
    }

    #[tokio::test]
    async fn pipes_are_polled_and_put_back_in_blocking_mode() {
        let (mut r, w) = std::io::pipe().expect("pipe");
        let (mut r_back, w_back) = std::io::pipe().expect("pipe");

        let mut input = Input::new(polled_input(r.as_fd()).expect("a pipe is polled"));
        let mut output = Output(polled_output(w_back.as_fd()).expect("a pipe is polled"));
        assert_eq!(input.end.kind(), "pipe (polled)");
        assert_eq!(output.0.kind(), "pipe (polled)");

        // Bytes go through both ends.
        (&w).write_all(b"{\"jsonrpc\":\"2.0\"}\n").expect("write");
        let mut buf = [0u8; 18];
        input.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"{\"jsonrpc\":\"2.0\"}\n");
        output.write_all(b"answer\n").await.expect("write");
        output.flush().await.expect("flush");
        let mut back = [0u8; 7];
        r_back.read_exact(&mut back).expect("read back");
        assert_eq!(&back, b"answer\n");

        // While polled, the shared open file is non-blocking; after drop, blocking again.
        let clone = |w: &std::io::PipeWriter| w.try_clone().expect("clone writer");
        assert!(
            !blocks(&mut r, clone(&w)),
            "the pipe should be non-blocking while polled"
        );
        drop(input);
        drop(output);
        assert!(
            blocks(&mut r, clone(&w)),
            "dropping should restore blocking mode"
        );
        assert!(blocks(&mut r_back, clone(&w_back)));
    }

    #[tokio::test]
    async fn lone_surrogates_are_repaired_even_when_cut_by_a_read() {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let mut input = Input::new(polled_input(ours.as_fd()).expect("a socket is polled"));
        let writer = std::thread::spawn(move || {
            for part in [
                &b"{\"a\":\"plain\"}\n{\"b\":\"x\\ud8"[..],
                b"00 \\ud83d",
                b"\\ude00 \\\\ud800\"}\n{\"c\":1}\n",
            ] {
                theirs.write_all(part).expect("write");
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 7]; // smaller than a line: handed on in pieces
        while !got.ends_with(b"{\"c\":1}\n") {
            let n = input.read(&mut buf).await.expect("read");
            assert!(n > 0, "early end after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        writer.join().expect("writer");
        assert_eq!(
            String::from_utf8(got).expect("utf-8"),
            "{\"a\":\"plain\"}\n{\"b\":\"x\\ufffd \\ud83d\\ude00 \\\\ud800\"}\n{\"c\":1}\n"
        );
    }

    #[tokio::test]
    async fn a_long_line_with_an_escape_streams_through() {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let mut input = Input::new(polled_input(ours.as_fd()).expect("a socket is polled"));
        let line = format!("{{\"a\":\"\\ud800{}\"}}\n", "x".repeat(1 << 20));
        let sent = line.clone();
        let writer = std::thread::spawn(move || {
            theirs.write_all(sent.as_bytes()).expect("write");
        });
        let mut got = Vec::with_capacity(line.len());
        let mut buf = [0u8; 4096];
        while got.len() < line.len() {
            let n = input.read(&mut buf).await.expect("read");
            assert!(n > 0, "early end at {}", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        writer.join().expect("writer");
        assert_eq!(got.len(), line.len());
        assert!(got.starts_with(b"{\"a\":\"\\ufffdxxx"));
        assert!(got.ends_with(b"xxx\"}\n"));
    }

    #[tokio::test]
    async fn sockets_are_polled() {
        let (mut ours, mut theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let mut input = Input::new(polled_input(ours.as_fd()).expect("a socket is polled"));
        let mut output = Output(polled_output(ours.as_fd()).expect("a socket is polled"));
        assert_eq!(input.end.kind(), "socket (polled)");
        let clone = |s: &std::os::unix::net::UnixStream| s.try_clone().expect("clone socket");
        assert!(
            !blocks(&mut ours, clone(&theirs)),
            "the socket should be non-blocking while polled"
        );
        theirs.write_all(b"ping\n").expect("write");
        let mut buf = [0u8; 5];
        input.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping\n");
        output.write_all(b"pong\n").await.expect("write");
        drop(input);
        drop(output);
        let mut back = [0u8; 5];
        theirs.read_exact(&mut back).expect("read back");
        assert_eq!(&back, b"pong\n");
        assert!(
            blocks(&mut ours, clone(&theirs)),
            "dropping should restore blocking mode"
        );
    }

    #[tokio::test]
    async fn regular_files_keep_the_portable_path() {
        let file = tempfile_in_target();
        assert!(polled_input(file.as_fd()).is_none());
        assert!(polled_output(file.as_fd()).is_none());
    }

    fn tempfile_in_target() -> File {
        let path = std::env::temp_dir().join(format!(
            "ensemble-stdio-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .expect("temp file");
        let _ = std::fs::remove_file(&path);
        file
    }
}
