//! Watching a table with LISTEN/NOTIFY: a trigger on the table (Go's
//! writers are seen too) tells each change on one channel; a connection of
//! the watch's own listens, and a task turns the notices of its table and
//! prefix into changes. The watch ends with an error when that connection
//! is lost: watch again, and read what may have changed meanwhile.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use tracing::debug;

use super::sql::{CHANNEL, Dialect};
use super::{PostgresStore, failed};
use crate::store::{Change, ReadOptions, Record, Scope, StoreError, Watch};

/// Changes a watcher may fall behind by before the task waits for it.
const BACKLOG: usize = 256;

/// A notice, as the trigger writes it.
#[derive(Deserialize)]
struct Notice {
    /// Schema and table.
    s: String,
    t: String,
    /// The key, and whether it was deleted.
    k: String,
    d: bool,
    /// The row when it fitted: value (base64), metadata, expiry (seconds
    /// since 1970), version.
    v: Option<String>,
    m: Option<Value>,
    e: Option<f64>,
    x: Option<u64>,
    /// Too big to send: read it.
    #[serde(default)]
    big: bool,
}

impl PostgresStore {
    /// Watches `prefix` in `scope`'s table.
    pub(super) async fn watch_prefix(&self, prefix: &str, scope: Scope) -> Result<Watch, StoreError> {
        if self.inner.dialect == Dialect::Cockroach {
            return Err(StoreError::Unsupported {
                backend: "postgres",
                operation: "watch on CockroachDB",
            });
        }
        let client = self.client().await?;
        let table = self.table(&client, &scope).await?;
        for statement in &table.sql.notify {
            client.batch_execute(statement).await.map_err(failed)?;
        }
        drop(client);
        let (listener, mut connection) = self.inner.config.connect(NoTls).await.map_err(failed)?;
        let (notices_tx, mut notices) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                let notice = match message {
                    Ok(AsyncMessage::Notification(n)) => Ok(n.payload().to_owned()),
                    Ok(_) => continue,
                    Err(e) => Err(failed(format!("the watch's connection: {e}"))),
                };
                let lost = notice.is_err();
                if notices_tx.send(notice).is_err() || lost {
                    break;
                }
            }
        });
        listener
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(failed)?;
        let at = scope.resolve(&self.inner.defaults);
        let (schema, name) = (
            super::mapped(at.database)?.to_ascii_lowercase(),
            super::mapped(at.table)?.to_ascii_lowercase(),
        );
        let (tx, rx) = mpsc::channel(BACKLOG);
        let (store, prefix) = (self.clone(), prefix.to_owned());
        tokio::spawn(async move {
            // Listening as long as the watch lives.
            let _listener = listener;
            loop {
                let notice = tokio::select! {
                    notice = notices.recv() => notice,
                    () = tx.closed() => break,
                };
                let change = match notice {
                    None => break,
                    Some(Err(e)) => Err(e),
                    Some(Ok(payload)) => match serde_json::from_str::<Notice>(&payload) {
                        Ok(n) if n.s == schema && n.t == name && n.k.starts_with(&prefix) => {
                            match store.change(n, &scope).await {
                                Ok(Some(change)) => Ok(change),
                                Ok(None) => continue,
                                Err(e) => Err(e),
                            }
                        }
                        Ok(_) => continue,
                        Err(e) => {
                            debug!(error = %e, "a notice that is not micro's: ignored");
                            continue;
                        }
                    },
                };
                let lost = change.is_err();
                if tx.send(change).await.is_err() || lost {
                    break;
                }
            }
        });
        Ok(Watch::remote(rx))
    }

    /// The change a notice tells; `None` for a record gone before it could
    /// be read.
    async fn change(&self, notice: Notice, scope: &Scope) -> Result<Option<Change>, StoreError> {
        if notice.d {
            return Ok(Some(Change::Delete { key: notice.k }));
        }
        if notice.big {
            let options = ReadOptions {
                scope: scope.clone(),
                ..ReadOptions::default()
            };
            return match self.read_records(&notice.k, options).await {
                Ok(mut records) => Ok(records.pop().map(Change::Put)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            };
        }
        let value = match &notice.v {
            // PostgreSQL's base64 breaks lines.
            Some(text) => STANDARD
                .decode(text.replace(['\n', '\r'], ""))
                .map_err(|e| failed(format!("a notice's value: {e}")))?,
            None => Vec::new(),
        };
        let metadata = match notice.m {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let expiry = notice
            .e
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s));
        Ok(Some(Change::Put(Record {
            key: notice.k,
            value,
            metadata,
            expiry,
            version: notice.x.unwrap_or_default(),
        })))
    }
}
