//! The limits and timeouts of a server's transports, each set on purpose:
//! request bodies (4 MiB, 413 beyond), header read time (10 s, against
//! slowloris), header count (100), h2 concurrent streams and mux calls per
//! connection (200), header list size (16 KiB), a mux connection's idle
//! time (2 minutes) and the drain time of a shutdown (30 s).

use std::time::Duration;

/// Server limits and timeouts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// The largest request body accepted; larger ones get 413.
    pub body_limit: usize,
    /// How long a client may take to send a request's headers (HTTP/1): on
    /// a new connection, and between calls on a kept-alive one, which is
    /// closed after waiting that long (up to twice that after a call).
    pub header_read_timeout: Duration,
    /// The most headers a request may have (HTTP/1); more get 431.
    pub max_headers: usize,
    /// Concurrent streams per HTTP/2 connection, and concurrent calls per
    /// mux connection.
    pub max_concurrent_streams: u32,
    /// The largest HTTP/2 header block.
    pub max_header_list_size: u32,
    /// How long shutdown waits for in-flight calls before closing them.
    pub drain_timeout: Duration,
    /// How long a mux connection may go without a call before it is closed
    /// (with `GOAWAY`, so the client knows no call was cut off), and how
    /// long a mux peer may leave the answers written to it unread. Longer
    /// than a client's idle time (its pool TTL, a minute by default), so a
    /// well-behaved client closes first.
    pub idle_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            body_limit: 4 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            max_headers: 100,
            max_concurrent_streams: 200,
            max_header_list_size: 16 * 1024,
            drain_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

impl ServerOptions {
    /// Sets [`body_limit`](Self::body_limit).
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets [`header_read_timeout`](Self::header_read_timeout).
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`max_headers`](Self::max_headers).
    #[must_use]
    pub fn max_headers(mut self, count: usize) -> Self {
        self.max_headers = count;
        self
    }

    /// Sets [`max_concurrent_streams`](Self::max_concurrent_streams).
    #[must_use]
    pub fn max_concurrent_streams(mut self, streams: u32) -> Self {
        self.max_concurrent_streams = streams;
        self
    }

    /// Sets [`max_header_list_size`](Self::max_header_list_size).
    #[must_use]
    pub fn max_header_list_size(mut self, bytes: u32) -> Self {
        self.max_header_list_size = bytes;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`drain_timeout`](Self::drain_timeout).
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }
}
