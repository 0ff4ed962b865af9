//! [`Etcd`]: config kept in etcd under a key prefix, mapped as Go Micro's
//! etcd config source maps it, and followed with an etcd watch that
//! survives outages.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, EventType, GetOptions, WatchOptions, WatchStream};

use self::keys::to_layer;
use super::{Layer, Source, SourceError, Updates};
use crate::BoxFuture;

mod keys;

/// Go Micro's default prefix.
const DEFAULT_PREFIX: &str = "/micro/config/";
/// Go Micro's default endpoint.
const DEFAULT_ENDPOINT: &str = "localhost:2379";
/// The port of an endpoint given as a bare host.
const DEFAULT_PORT: &str = "2379";
/// Go Micro's default dial timeout.
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one read, or the opening of a watch, may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings on a watch's connection, so a silent peer is noticed.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Pauses between attempts to reach etcd again.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// The source's name in origins and errors.
const NAME: &str = "etcd";

/// Config in etcd: every key under a prefix (Go Micro's `/micro/config/`),
/// each value JSON, mapped as Go Micro's etcd config source maps it, so
/// one prefix configures a Go service and a micro one alike.
///
/// A key's path is the key with the prefix removed only when
/// [`strip_prefix`](Etcd::strip_prefix) is on (as in Go, off by default:
/// `/micro/config/db/host` is then `micro.config.db.host`), one leading `/`
/// trimmed, split on `/`. With the prefix stripped, `/micro/config/db/host`
/// is `db.host`, and a key of one segment holding an object
/// (`/micro/config/default` = `{"db": {...}}`) is the whole config at
/// once: its members are merged into the root. Keys apply in etcd's
/// (sorted) order, a later key replacing what an earlier one set at its
/// path, as in Go. Each value's origin is its etcd key.
///
/// Where this source departs from Go's:
/// - a key of one segment holding something other than an object sits at
///   its key (Go drops it), and a one-segment object is merged into the
///   root rather than replacing what earlier keys set;
/// - no key under the prefix is an empty config, not an error (Go fails
///   the read with `source not found: <prefix>`): a service may start
///   before its config is written, and a later write reaches it;
/// - a value that is not JSON fails the read, as in Go, naming the key; on
///   a watch the config then keeps its last good values and reports the
///   error through [`Config::errors`](crate::config::Config::errors);
/// - the watch resumes after an outage from the last revision it saw (or
///   reads everything again if etcd compacted it away), so no change is
///   lost, and a delete removes exactly its key.
///
/// ```no_run
/// use micro::config::{Config, Etcd};
///
/// # async fn demo() -> Result<(), micro::config::ConfigError> {
/// let config = Config::builder()
///     .source(Etcd::new().endpoints(["10.0.0.1:2379"]).strip_prefix(true))
///     .load()
///     .await?;
/// let host: String = config.get("db.host")?; // /micro/config/db/host
/// # Ok(()) }
/// ```
pub struct Etcd {
    endpoints: Vec<String>,
    prefix: String,
    strip_prefix: bool,
    user: Option<(String, String)>,
    dial_timeout: Duration,
    connection: Connection,
    /// What the last read saw, for the watch to start from.
    last_read: Mutex<Option<Contents>>,
}

/// The client: given by the application, or dialed (and dialed again after
/// an outage) from the options.
enum Connection {
    Given(Client),
    Dialed(Mutex<Option<Client>>),
}

/// Every key under the prefix at one revision.
#[derive(Clone, Debug, Default)]
struct Contents {
    revision: i64,
    kvs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Default for Etcd {
    fn default() -> Self {
        Etcd::new()
    }
}

impl Etcd {
    /// The prefix `/micro/config/` on `localhost:2379`, as Go Micro's
    /// defaults.
    pub fn new() -> Etcd {
        Etcd {
            endpoints: vec![DEFAULT_ENDPOINT.to_owned()],
            prefix: DEFAULT_PREFIX.to_owned(),
            strip_prefix: false,
            user: None,
            dial_timeout: DIAL_TIMEOUT,
            connection: Connection::Dialed(Mutex::new(None)),
            last_read: Mutex::new(None),
        }
    }

    /// A source reading through `client`, already connected (the
    /// endpoint, auth and timeout options do not apply to it).
    pub fn from_client(client: Client) -> Etcd {
        Etcd {
            connection: Connection::Given(client),
            ..Etcd::new()
        }
    }

    /// The etcd endpoints: `host:port`, a bare host (port 2379, as in Go)
    /// or a URL; comma-separated lists are split. None means
    /// `localhost:2379`.
    pub fn endpoints<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, endpoints: I) -> Etcd {
        let list: Vec<String> = endpoints
            .into_iter()
            .flat_map(|e| e.as_ref().split(',').map(str::trim).map(endpoint).collect::<Vec<_>>())
            .filter(|e| !e.is_empty())
            .collect();
        self.endpoints = if list.is_empty() {
            vec![DEFAULT_ENDPOINT.to_owned()]
        } else {
            list
        };
        self
    }

    /// Reads the keys starting with `prefix` (default `/micro/config/`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Etcd {
        self.prefix = prefix.into();
        self
    }

    /// Whether the prefix is removed from the keys' paths (default false,
    /// as Go Micro's `StripPrefix`).
    pub fn strip_prefix(mut self, strip: bool) -> Etcd {
        self.strip_prefix = strip;
        self
    }

    /// Authenticates as `user` (Go Micro's `Auth`).
    pub fn auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Etcd {
        self.user = Some((user.into(), password.into()));
        self
    }

    /// How long connecting to etcd may take (default 3 s, as Go Micro's).
    pub fn dial_timeout(mut self, timeout: Duration) -> Etcd {
        self.dial_timeout = timeout;
        self
    }

    /// The endpoints dialed.
    pub fn endpoint_list(&self) -> &[String] {
        &self.endpoints
    }

    fn unavailable(&self, message: impl fmt::Display) -> SourceError {
        let at = match self.connection {
            Connection::Given(_) => "the given client".to_owned(),
            Connection::Dialed(_) => self.endpoints.join(", "),
        };
        SourceError::new(NAME, format!("{message} (prefix {}, etcd at {at})", self.prefix))
    }

    async fn client(&self) -> Result<Client, SourceError> {
        let slot = match &self.connection {
            Connection::Given(client) => return Ok(client.clone()),
            Connection::Dialed(slot) => slot,
        };
        if let Some(client) = lock(slot).as_ref() {
            return Ok(client.clone());
        }
        let mut options = ConnectOptions::new()
            .with_connect_timeout(self.dial_timeout)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT);
        if let Some((user, password)) = &self.user {
            options = options
                .with_user(user.as_str(), password.as_str())
                .with_auto_token_refresh(true);
        }
        // Dialing is lazy but for the authentication, which needs an answer.
        let client = tokio::time::timeout(self.dial_timeout, Client::connect(&self.endpoints, Some(options)))
            .await
            .map_err(|_| self.unavailable(format!("no answer within {:?}", self.dial_timeout)))?
            .map_err(|e| self.unavailable(e))?;
        *lock(slot) = Some(client.clone());
        Ok(client)
    }

    /// Drops a dialed client, so the next attempt dials afresh.
    fn forget_client(&self) {
        if let Connection::Dialed(slot) = &self.connection {
            lock(slot).take();
        }
    }

    /// Reads every key under the prefix.
    async fn fetch(&self) -> Result<Contents, SourceError> {
        let mut client = self.client().await?;
        let options = if self.prefix.is_empty() {
            GetOptions::new().with_all_keys()
        } else {
            GetOptions::new().with_prefix()
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, client.get(self.prefix.as_str(), Some(options)))
            .await
            .map_err(|_| self.unavailable(format!("no answer within {REQUEST_TIMEOUT:?}")))
            .and_then(|answer| answer.map_err(|e| self.unavailable(e)));
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                self.forget_client();
                return Err(err);
            }
        };
        Ok(Contents {
            revision: response.header().map_or(0, |h| h.revision()),
            kvs: response
                .kvs()
                .iter()
                .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
                .collect(),
        })
    }

    /// Opens a watch on the prefix from revision `from`.
    async fn open(&self, from: i64) -> Result<WatchStream, SourceError> {
        let mut client = self.client().await?;
        let options = if self.prefix.is_empty() {
            WatchOptions::new().with_all_keys()
        } else {
            WatchOptions::new().with_prefix()
        };
        let options = options.with_prev_key().with_start_revision(from);
        tokio::time::timeout(REQUEST_TIMEOUT, client.watch(self.prefix.as_str(), Some(options)))
            .await
            .map_err(|_| self.unavailable(format!("no answer to a watch within {REQUEST_TIMEOUT:?}")))?
            .map_err(|e| self.unavailable(e))
    }

    fn layer(&self, contents: &Contents) -> Result<Layer, SourceError> {
        let strip = self.strip_prefix.then_some(self.prefix.as_str());
        to_layer(contents.kvs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())), strip)
    }

    /// Follows the prefix until the config closes: each change's new
    /// layer is sent; an outage is reported once, then etcd is retried
    /// with backoff and followed again from the last revision seen.
    async fn follow(&self, updates: &Updates) {
        let mut known = lock(&self.last_read).take();
        let mut backoff = Backoff::default();
        let mut down = false;
        loop {
            let mut contents = match known.take() {
                Some(contents) => contents,
                None => match self.fetch().await {
                    Ok(contents) => {
                        if !updates.send(self.layer(&contents)).await {
                            return;
                        }
                        if down {
                            tracing::info!(prefix = %self.prefix, "etcd config source is back");
                        }
                        down = false;
                        backoff.reset();
                        contents
                    }
                    Err(err) => {
                        if !self.outage(updates, &mut down, err).await {
                            return;
                        }
                        backoff.pause().await;
                        continue;
                    }
                },
            };
            let mut stream = match self.open(contents.revision + 1).await {
                Ok(stream) => stream,
                Err(err) => {
                    self.forget_client();
                    known = Some(contents);
                    if !self.outage(updates, &mut down, err).await {
                        return;
                    }
                    backoff.pause().await;
                    continue;
                }
            };
            let end = loop {
                let response = match stream.message().await {
                    Ok(Some(response)) => response,
                    Ok(None) => break End::Lost("etcd ended the watch".to_owned()),
                    Err(e) => break End::Lost(e.to_string()),
                };
                if response.canceled() {
                    if response.compact_revision() > 0 {
                        break End::Reread(format!(
                            "revision {} was compacted (compaction at {})",
                            contents.revision + 1,
                            response.compact_revision()
                        ));
                    }
                    break End::Lost(format!("etcd canceled the watch: {}", response.cancel_reason()));
                }
                if response.created() {
                    let now = response.header().map_or(0, |h| h.revision());
                    if now < contents.revision {
                        // A new etcd (its revisions start again): what we hold is not its state.
                        break End::Reread(format!(
                            "etcd is at revision {now}, before the {} seen",
                            contents.revision
                        ));
                    }
                    if down {
                        tracing::info!(prefix = %self.prefix, "etcd config source is back");
                        down = false;
                        backoff.reset();
                        // Clears the outage the config reports; unchanged values change nothing.
                        if !updates.send(self.layer(&contents)).await {
                            return;
                        }
                    }
                }
                if response.events().is_empty() {
                    continue;
                }
                for event in response.events() {
                    let Some(kv) = event.kv() else {
                        continue;
                    };
                    match event.event_type() {
                        EventType::Put => contents.kvs.insert(kv.key().to_vec(), kv.value().to_vec()),
                        EventType::Delete => contents.kvs.remove(kv.key()),
                    };
                    contents.revision = contents.revision.max(kv.mod_revision());
                }
                tracing::debug!(
                    prefix = %self.prefix,
                    revision = contents.revision,
                    events = response.events().len(),
                    "etcd config changed"
                );
                if !updates.send(self.layer(&contents)).await {
                    return;
                }
            };
            match end {
                End::Reread(why) => {
                    tracing::info!(prefix = %self.prefix, "etcd config watch restarts with a full read: {why}");
                }
                End::Lost(why) => {
                    self.forget_client();
                    known = Some(contents);
                    let err = self.unavailable(format!("lost the watch: {why}"));
                    if !self.outage(updates, &mut down, err).await {
                        return;
                    }
                    backoff.pause().await;
                }
            }
        }
    }

    /// Reports the first failure of an outage; true while the config is
    /// open.
    async fn outage(&self, updates: &Updates, down: &mut bool, err: SourceError) -> bool {
        if *down {
            tracing::debug!(error = %err, "etcd config source still unreachable");
            return !updates.is_closed();
        }
        *down = true;
        updates.send(Err(err)).await
    }
}

/// Why a watch ended.
enum End {
    /// Read everything again, then watch from there.
    Reread(String),
    /// etcd is unreachable: try again later from the last revision seen.
    Lost(String),
}

impl Source for Etcd {
    fn name(&self) -> String {
        NAME.to_owned()
    }

    fn read(&self) -> BoxFuture<'_, Result<Layer, SourceError>> {
        Box::pin(async move {
            let contents = self.fetch().await?;
            let layer = self.layer(&contents);
            *lock(&self.last_read) = Some(contents);
            layer
        })
    }

    fn watch(self: Arc<Self>, updates: Updates) -> Option<BoxFuture<'static, ()>> {
        Some(Box::pin(async move {
            tokio::select! {
                () = updates.closed() => {}
                () = self.follow(&updates) => {}
            }
        }))
    }
}

impl fmt::Debug for Etcd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Etcd");
        match self.connection {
            Connection::Given(_) => out.field("client", &"given"),
            Connection::Dialed(_) => out.field("endpoints", &self.endpoints),
        };
        out.field("prefix", &self.prefix)
            .field("strip_prefix", &self.strip_prefix)
            .field("user", &self.user.as_ref().map(|(user, _)| user))
            .field("dial_timeout", &self.dial_timeout)
            .finish_non_exhaustive()
    }
}

/// An endpoint as Go Micro reads it: a bare host gets port 2379. URLs
/// (which Go skips) are kept.
fn endpoint(address: &str) -> String {
    if address.is_empty() || address.contains("://") {
        return address.to_owned();
    }
    if let Some(rest) = address.strip_prefix('[') {
        // [v6] or [v6]:port
        return match rest.split_once(']') {
            Some((_, "")) => format!("{address}:{DEFAULT_PORT}"),
            _ => address.to_owned(),
        };
    }
    match address.matches(':').count() {
        0 => format!("{address}:{DEFAULT_PORT}"),
        1 => address.to_owned(),
        _ => format!("[{address}]:{DEFAULT_PORT}"),
    }
}

/// Pauses growing from 100 ms to 2 s.
#[derive(Default)]
struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    async fn pause(&mut self) {
        let pause = self.next.unwrap_or(BACKOFF_FIRST);
        self.next = Some((pause * 2).min(BACKOFF_CAP));
        tokio::time::sleep(pause).await;
    }

    fn reset(&mut self) {
        self.next = None;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_go() {
        assert_eq!(Etcd::new().endpoint_list(), ["localhost:2379"]);
        assert_eq!(
            Etcd::new()
                .endpoints(["10.0.0.1, h:1", "http://u:2", "[::1]", "::1", "[::1]:5"])
                .endpoint_list(),
            [
                "10.0.0.1:2379",
                "h:1",
                "http://u:2",
                "[::1]:2379",
                "[::1]:2379",
                "[::1]:5"
            ]
        );
        assert_eq!(Etcd::new().endpoints([""]).endpoint_list(), ["localhost:2379"]);
    }
}
