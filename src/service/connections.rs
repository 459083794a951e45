//! Accepted connections, bounded: a cap on how many are open at once, a handshake timeout (a peer
//! that sends nothing after connecting) and an idle timeout (a peer that stops sending). Refusals
//! are logged (at most once a second, with a count) and counted in the metrics.
//!
//! Why here, on the socket: hyper waits for an HTTP/2 preface without limit, and a request whose
//! body stalls holds its connection for as long as the peer likes; 366 silent sockets at a
//! descriptor limit of 256 locked every new client out. The server also sends HTTP/2 keepalive
//! pings (`server.rs`), which a live peer answers, so an open but idle client keeps its
//! connection: only a peer that sends nothing at all, not even ping acknowledgements, meets the
//! idle timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How connections are bounded: defined with the settings that give them, in [`crate::config`].
pub use crate::config::ConnectionLimits;

/// Open connections and refusals, shared by the accept loop and every connection.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    open: AtomicUsize,
    refused_over_cap: AtomicU64,
    closed_handshake: AtomicU64,
    closed_idle: AtomicU64,
    /// Refusals since the last log line, and when it was written (ms since `started`).
    unlogged: AtomicU64,
    last_log_ms: AtomicU64,
}

impl ConnectionCounters {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Connections closed at accept because `max_connections` were open.
    pub fn refused_over_cap(&self) -> u64 {
        self.refused_over_cap.load(Ordering::Acquire)
    }

    /// Connections closed because their first byte did not come within the handshake timeout.
    pub fn closed_handshake(&self) -> u64 {
        self.closed_handshake.load(Ordering::Acquire)
    }

    /// Connections closed after the idle timeout without a byte.
    pub fn closed_idle(&self) -> u64 {
        self.closed_idle.load(Ordering::Acquire)
    }

    /// Logs a refusal, at most once a second (with the count since the last line).
    fn log_refusal(&self, reason: &'static str, started: std::time::Instant) {
        let n = self.unlogged.fetch_add(1, Ordering::AcqRel) + 1;
        let now = started.elapsed().as_millis() as u64;
        let last = self.last_log_ms.load(Ordering::Acquire);
        if (last == 0 || now.saturating_sub(last) >= 1000)
            && self
                .last_log_ms
                .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.unlogged.store(0, Ordering::Release);
            tracing::warn!(
                reason,
                refused_since_last_line = n,
                open = self.open(),
                "connection refused or closed"
            );
        }
    }
}

/// The admission of accepted sockets.
#[derive(Clone, Debug)]
pub struct Gate {
    limits: ConnectionLimits,
    counters: Arc<ConnectionCounters>,
    started: std::time::Instant,
}

impl Gate {
    /// A gate enforcing `limits`, counting into `counters`.
    pub fn new(limits: ConnectionLimits, counters: Arc<ConnectionCounters>) -> Gate {
        Gate {
            limits,
            counters,
            started: std::time::Instant::now(),
        }
    }

    /// Admits `socket` as a bounded connection, or closes it (returns `None`) when the cap is
    /// reached.
    pub fn admit(&self, socket: TcpStream) -> Option<Bounded> {
        let open = self.counters.open.fetch_add(1, Ordering::AcqRel) + 1;
        if open > self.limits.max_connections {
            self.counters.open.fetch_sub(1, Ordering::AcqRel);
            self.counters
                .refused_over_cap
                .fetch_add(1, Ordering::AcqRel);
            self.counters.log_refusal("connection cap", self.started);
            drop(socket);
            return None;
        }
        Some(Bounded {
            inner: socket,
            timer: Box::pin(tokio::time::sleep(self.limits.handshake_timeout)),
            seen_a_byte: false,
            gate: self.clone(),
        })
    }
}

/// An admitted connection: counted while open, closed by the handshake or idle timeout.
pub struct Bounded {
    inner: TcpStream,
    timer: Pin<Box<Sleep>>,
    seen_a_byte: bool,
    gate: Gate,
}

impl Drop for Bounded {
    fn drop(&mut self) {
        self.gate.counters.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connected for Bounded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for Bounded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.seen_a_byte = true;
                    let next = Instant::now() + self.gate.limits.idle_timeout;
                    self.timer.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let (reason, counter) = if self.seen_a_byte {
                        ("idle timeout", &self.gate.counters.closed_idle)
                    } else {
                        ("handshake timeout", &self.gate.counters.closed_handshake)
                    };
                    counter.fetch_add(1, Ordering::AcqRel);
                    self.gate.counters.log_refusal(reason, self.gate.started);
                    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, reason)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Bounded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    fn gate(max: usize, handshake_ms: u64, idle_ms: u64) -> Gate {
        Gate::new(
            ConnectionLimits {
                max_connections: max,
                handshake_timeout: Duration::from_millis(handshake_ms),
                idle_timeout: Duration::from_millis(idle_ms),
            },
            Arc::new(ConnectionCounters::default()),
        )
    }

    #[tokio::test]
    async fn a_silent_peer_is_closed_at_the_handshake_timeout() {
        let gate = gate(10, 50, 10_000);
        let (_client, server) = pair().await;
        let mut conn = gate.admit(server).unwrap();
        let mut buf = [0u8; 8];
        let e = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(gate.counters.closed_handshake(), 1);
        drop(conn);
        assert_eq!(gate.counters.open(), 0);
    }

    #[tokio::test]
    async fn a_peer_that_stops_sending_is_closed_at_the_idle_timeout() {
        let gate = gate(10, 10_000, 80);
        let (mut client, server) = pair().await;
        let mut conn = gate.admit(server).unwrap();
        client.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).await.unwrap();
        let e = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(gate.counters.closed_idle(), 1);
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_refused_and_counted() {
        let gate = gate(2, 10_000, 10_000);
        let mut kept = Vec::new();
        for _ in 0..2 {
            let (c, s) = pair().await;
            kept.push((c, gate.admit(s).expect("under the cap")));
        }
        let (_c, s) = pair().await;
        assert!(gate.admit(s).is_none());
        assert_eq!(gate.counters.refused_over_cap(), 1);
        assert_eq!(gate.counters.open(), 2);
        kept.pop();
        let (_c, s) = pair().await;
        assert!(
            gate.admit(s).is_some(),
            "a closed connection frees its place"
        );
    }
}
