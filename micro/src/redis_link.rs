//! The shared Redis connection of micro's Redis backends (events, store,
//! cache): a `ConnectionManager` that reconnects, with a few quick
//! attempts per request, and every request bounded, so that calls during an
//! outage fail rather than hang.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, RedisError};

/// How long connecting may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a request may take, reconnect attempts included.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The reconnecting connection to `client`'s server; an error says why in
/// words.
pub(crate) async fn manager(client: Client) -> Result<ConnectionManager, String> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(REQUEST_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    tokio::time::timeout(REQUEST_TIMEOUT, ConnectionManager::new_with_config(client, config))
        .await
        .map_err(|_| format!("cannot connect within {REQUEST_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())
}

/// `request`, failing after [`REQUEST_TIMEOUT`].
pub(crate) async fn bounded<T>(request: impl Future<Output = Result<T, RedisError>>) -> Result<T, RedisError> {
    tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .map_err(|_| timed_out())?
}

/// The error of a request that got no answer in time.
pub(crate) fn timed_out() -> RedisError {
    RedisError::from((ErrorKind::Io, "no answer within the request timeout"))
}
