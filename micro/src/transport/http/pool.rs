//! Keep-alive HTTP/1.1 connections for unary calls, pooled by node address.
//!
//! A call takes an idle connection to its node, or opens one, sends its
//! request, reads the whole answer and puts the connection back. At most
//! `max_idle` connections per node wait idle, none longer than the TTL.

use foldhash::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::debug;

use crate::error::{CLIENT_ID, Error};
use crate::transport::{Delivery, Failure};

/// Idle HTTP/1.1 connections by node address.
#[derive(Debug)]
pub(crate) struct Pool {
    connect_timeout: Duration,
    max_idle: usize,
    ttl: Duration,
    idle: Mutex<Idle>,
}

#[derive(Debug, Default)]
struct Idle {
    by_address: HashMap<Box<str>, Vec<Parked>>,
    /// When expired connections of every node were last closed.
    swept: Option<Instant>,
}

#[derive(Debug)]
struct Parked {
    connection: Connection,
    since: Instant,
}

/// One HTTP/1.1 connection; it carries one call at a time.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) sender: SendRequest<Full<Bytes>>,
    /// The `Host` of its requests: the node's address.
    pub(crate) host: HeaderValue,
}

/// A connection for a call, and whether it served calls before.
pub(crate) struct Checkout {
    pub(crate) connection: Connection,
    pub(crate) reused: bool,
}

impl Pool {
    pub(crate) fn new(connect_timeout: Duration, max_idle: usize, ttl: Duration) -> Pool {
        Pool {
            connect_timeout,
            max_idle,
            ttl,
            idle: Mutex::default(),
        }
    }

    /// An idle connection to `address` that takes a request now, or a new one.
    pub(crate) async fn checkout(&self, address: &str) -> Result<Checkout, Failure> {
        while let Some(mut connection) = self.take(address) {
            // Ready at once unless the connection is still finishing its last
            // answer; an error means the peer closed it.
            if connection.sender.ready().await.is_ok() {
                return Ok(Checkout {
                    connection,
                    reused: true,
                });
            }
        }
        // Boxed: connecting is rare, and its future would otherwise widen every call's.
        Ok(Checkout {
            connection: Box::pin(self.connect(address)).await?,
            reused: false,
        })
    }

    /// A new connection to `address`; failing, the call was not sent.
    pub(crate) async fn connect(&self, address: &str) -> Result<Connection, Failure> {
        let refused = |detail: String| {
            Failure::new(
                Error::internal_server_error(CLIENT_ID, format!("connection error calling {address}: {detail}")),
                Delivery::NotSent,
            )
        };
        let host = HeaderValue::try_from(address).map_err(|_| {
            Failure::new(
                Error::bad_request(CLIENT_ID, format!("cannot call address {address:?}: not a host:port")),
                Delivery::NotSent,
            )
        })?;
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(refused(e.to_string())),
            Err(_) => return Err(refused(format!("no connection within {:?}", self.connect_timeout))),
        };
        if let Err(e) = stream.set_nodelay(true) {
            debug!(address, error = %e, "cannot set TCP_NODELAY");
        }
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| refused(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "HTTP/1.1 connection closed");
            }
        });
        Ok(Connection { sender, host })
    }

    /// Puts back a connection whose answer was read in full.
    pub(crate) fn put(&self, address: &str, connection: Connection) {
        let now = Instant::now();
        let mut idle = self.lock();
        if idle.swept.is_none_or(|at| now.duration_since(at) >= self.ttl) {
            idle.sweep(now, self.ttl);
        }
        let parked = Parked { connection, since: now };
        match idle.by_address.get_mut(address) {
            Some(list) if list.len() >= self.max_idle => {}
            Some(list) => list.push(parked),
            None if self.max_idle == 0 => {}
            None => {
                idle.by_address.insert(address.into(), vec![parked]);
            }
        }
    }

    /// The most recently used idle connection to `address` that is open and
    /// younger than the TTL.
    fn take(&self, address: &str) -> Option<Connection> {
        let now = Instant::now();
        let mut idle = self.lock();
        let list = idle.by_address.get_mut(address)?;
        while let Some(parked) = list.pop() {
            if now.duration_since(parked.since) < self.ttl && !parked.connection.sender.is_closed() {
                return Some(parked.connection);
            }
        }
        None
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Idle {
    /// Closes the connections idle for `ttl` or longer, and closed ones.
    fn sweep(&mut self, now: Instant, ttl: Duration) {
        self.by_address.retain(|_, list| {
            list.retain(|p| now.duration_since(p.since) < ttl && !p.connection.sender.is_closed());
            !list.is_empty()
        });
        self.swept = Some(now);
    }
}
