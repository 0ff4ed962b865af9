//! The stream's side of Redis: one shared connection (a
//! `ConnectionManager`, which reconnects) for publishes, acks and claims,
//! every request under a timeout; a connection of its own for each
//! consumer's blocking reads, whose response timeout outlasts the block;
//! and the Lua scripts that make the steps of a publish or a claim one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, MultiplexedConnection};
use ::redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, RedisError, Script, ScriptInvocation};
use tracing::debug;

use super::{REQUEST_TIMEOUT, failed, stream_key};
use crate::events::{Event, EventsError};

/// The longest a read blocks (`XREADGROUP .. BLOCK`).
pub(super) const BLOCK_MAX: Duration = Duration::from_secs(2);
/// How long a repeated event id is remembered.
const DEDUP_WINDOW: Duration = Duration::from_secs(120);

/// Publishes with an id: the entry is added only if the id is new.
/// KEYS: the stream, the id's key; ARGV: the event JSON, the attempt, the
/// window in ms. Returns the entry's id, or nil for a repeat.
const PUBLISH: &str = r"
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then
  return redis.call('XADD', KEYS[1], '*', 'event', ARGV[1], 'attempt', ARGV[2])
end
return false";

/// Claims entries idle for the ack wait, with their delivery counts.
/// ARGV: group, consumer, min idle ms, cursor, count. Returns the next
/// cursor and `{id, times delivered, fields}` for each entry claimed.
const RECLAIM: &str = r"
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {}
for i = 1, #r[2] do
  local e = r[2][i]
  if e then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    if p[1] then out[#out + 1] = {e[1], p[1][4], e[2]} end
  end
end
return {r[1], out}";

/// Acts on entries only while this consumer holds them (another may have
/// claimed them since). ARGV: group, consumer, mode, then the ids: in mode
/// `release`, pairs of an id and the delivery count to set ('' to keep).
/// `claim` counts a delivery, `touch` restarts the idle time, `release`
/// makes the entry idle since 1970, for the group's next claim. Returns
/// `{id, times delivered}` for each entry acted on.
const OWN: &str = r"
local group, me, mode = ARGV[1], ARGV[2], ARGV[3]
local step = 1
if mode == 'release' then step = 2 end
local out = {}
for i = 4, #ARGV, step do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  if p[1] and p[1][2] == me then
    local n = p[1][4]
    local done
    if mode == 'claim' then
      n = n + 1
      done = redis.call('XCLAIM', KEYS[1], group, me, 0, id, 'RETRYCOUNT', n, 'JUSTID')
    elseif mode == 'touch' then
      done = redis.call('XCLAIM', KEYS[1], group, me, 0, id, 'JUSTID')
    elseif ARGV[i + 1] == '' then
      done = redis.call('XCLAIM', KEYS[1], group, me, 0, id, 'TIME', 0, 'JUSTID')
    else
      n = tonumber(ARGV[i + 1])
      done = redis.call('XCLAIM', KEYS[1], group, me, 0, id, 'TIME', 0, 'RETRYCOUNT', n, 'JUSTID')
    end
    if #done > 0 then out[#out + 1] = {id, n} end
  end
end
return out";

/// Deletes a consumer if it holds nothing (deleting one that holds
/// entries would lose them). ARGV: group, consumer.
const LEAVE: &str = r"
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1";

/// What [`Redis::own`] does to the entries a consumer holds.
#[derive(Clone, Copy, Debug)]
pub(super) enum Own {
    /// Claims them again: a new delivery.
    Claim,
    /// Restarts their idle time: not a delivery.
    Touch,
}

/// An entry's fields: names and values.
pub(super) type Fields = Vec<(String, Vec<u8>)>;

/// The reclaim script's answer: the next cursor, and each entry claimed
/// with its times delivered and its fields, flat.
type Reclaimed = (String, Vec<(String, u32, Vec<Vec<u8>>)>);

/// The value of the field `name`.
pub(super) fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a [u8]> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
}

/// The connections of a stream and its scripts.
#[derive(Clone)]
pub(super) struct Redis {
    client: Client,
    manager: ConnectionManager,
    scripts: Arc<Scripts>,
}

struct Scripts {
    publish: Script,
    reclaim: Script,
    own: Script,
    leave: Script,
}

/// A consumer's own connection, for its blocking reads.
#[derive(Clone)]
pub(super) struct Reader {
    pub(super) conn: MultiplexedConnection,
    /// Its `CLIENT ID`, to end a blocked read early (`CLIENT UNBLOCK`).
    pub(super) id: Option<i64>,
}

impl Redis {
    pub(super) async fn connect(url: &str) -> Result<Redis, EventsError> {
        let client = Client::open(url).map_err(failed)?;
        let manager = crate::redis_link::manager(client.clone()).await.map_err(failed)?;
        Ok(Redis {
            client,
            manager,
            scripts: Arc::new(Scripts {
                publish: Script::new(PUBLISH),
                reclaim: Script::new(RECLAIM),
                own: Script::new(OWN),
                leave: Script::new(LEAVE),
            }),
        })
    }

    /// A new connection for blocking reads.
    pub(super) async fn reader(&self) -> Result<Reader, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(crate::redis_link::CONNECT_TIMEOUT))
            .set_response_timeout(Some(BLOCK_MAX + REQUEST_TIMEOUT));
        let connect = self.client.get_multiplexed_async_connection_with_config(&config);
        let mut conn = tokio::time::timeout(REQUEST_TIMEOUT, connect)
            .await
            .map_err(|_| crate::redis_link::timed_out())??;
        let id = ::redis::cmd("CLIENT").arg("ID").query_async(&mut conn).await.ok();
        Ok(Reader { conn, id })
    }

    /// Runs `cmd` on the shared connection.
    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        let mut conn = self.manager.clone();
        crate::redis_link::bounded(cmd.query_async(&mut conn)).await
    }

    async fn invoke<T: FromRedisValue>(&self, script: &ScriptInvocation<'_>) -> Result<T, RedisError> {
        let mut conn = self.manager.clone();
        crate::redis_link::bounded(script.invoke_async(&mut conn)).await
    }

    /// Adds `event` to its topic's stream in Go Micro's format; with
    /// `dedup`, only if its id was not added in the dedup window.
    pub(super) async fn add(&self, event: &Event, dedup: bool) -> Result<(), EventsError> {
        let json = event.to_json()?;
        let key = stream_key(&event.topic);
        if dedup {
            let mut script = self.scripts.publish.key(&key);
            script
                .key(dedup_key(&event.topic, &event.id))
                .arg(json)
                .arg("1")
                .arg(millis(DEDUP_WINDOW));
            let added: Option<String> = self.invoke(&script).await.map_err(failed)?;
            if added.is_none() {
                debug!(topic = %event.topic, id = %event.id, "a repeated event id: dropped");
            }
        } else {
            let mut cmd = ::redis::cmd("XADD");
            cmd.arg(&key).arg("*").arg("event").arg(json).arg("attempt").arg("1");
            self.query::<String>(&cmd).await.map_err(failed)?;
        }
        Ok(())
    }

    /// Creates `group` on `key` at `start` unless it exists: an existing
    /// group keeps its place.
    pub(super) async fn create_group(&self, key: &str, group: &str, start: &str) -> Result<(), EventsError> {
        let mut cmd = ::redis::cmd("XGROUP");
        cmd.arg("CREATE").arg(key).arg(group).arg(start).arg("MKSTREAM");
        match self.query::<()>(&cmd).await {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(failed(e)),
            _ => Ok(()),
        }
    }

    /// The entries from `from` to `to`, at most `count`.
    pub(super) async fn range(
        &self,
        key: &str,
        from: &str,
        to: &str,
        count: u64,
    ) -> Result<Vec<(String, Fields)>, EventsError> {
        let mut cmd = ::redis::cmd("XRANGE");
        cmd.arg(key).arg(from).arg(to).arg("COUNT").arg(count);
        let entries: Vec<(String, Vec<Vec<u8>>)> = self.query(&cmd).await.map_err(failed)?;
        Ok(entries.into_iter().map(|(id, flat)| (id, pairs(flat))).collect())
    }

    pub(super) async fn ack(&self, key: &str, group: &str, id: &str) -> Result<(), EventsError> {
        let mut cmd = ::redis::cmd("XACK");
        cmd.arg(key).arg(group).arg(id);
        self.query::<i64>(&cmd).await.map(drop).map_err(failed)
    }

    /// Claims up to `count` entries idle for `min_idle` from `cursor` on:
    /// the next cursor (`0-0` at the end) and the entries with their times
    /// delivered.
    pub(super) async fn reclaim(
        &self,
        key: &str,
        group: &str,
        me: &str,
        min_idle: Duration,
        cursor: &str,
        count: usize,
    ) -> Result<(String, Vec<(String, u32, Fields)>), EventsError> {
        let mut script = self.scripts.reclaim.key(key);
        script.arg(group).arg(me).arg(millis(min_idle)).arg(cursor).arg(count);
        let (next, claimed): Reclaimed = self.invoke(&script).await.map_err(failed)?;
        let claimed = claimed
            .into_iter()
            .map(|(id, times, flat)| (id, times, pairs(flat)))
            .collect();
        Ok((next, claimed))
    }

    /// Claims or touches the entries `ids` that `me` still holds: those,
    /// with their times delivered.
    pub(super) async fn own(
        &self,
        key: &str,
        group: &str,
        me: &str,
        what: Own,
        ids: &[&str],
    ) -> Result<HashMap<String, u32>, EventsError> {
        let mut script = self.scripts.own.key(key);
        let mode = match what {
            Own::Claim => "claim",
            Own::Touch => "touch",
        };
        script.arg(group).arg(me).arg(mode).arg(ids);
        let done: Vec<(String, u32)> = self.invoke(&script).await.map_err(failed)?;
        Ok(done.into_iter().collect())
    }

    /// Makes the entries `me` holds claimable by the group at once, each
    /// with its delivery count set when one is given.
    pub(super) async fn release(
        &self,
        key: &str,
        group: &str,
        me: &str,
        entries: &[(String, Option<u32>)],
    ) -> Result<(), EventsError> {
        let mut script = self.scripts.own.key(key);
        script.arg(group).arg(me).arg("release");
        for (id, times) in entries {
            script.arg(id).arg(times.map(|n| n.to_string()).unwrap_or_default());
        }
        self.invoke::<Vec<(String, u32)>>(&script)
            .await
            .map(drop)
            .map_err(failed)
    }

    /// Deletes consumer `me` from `group` if it holds nothing.
    pub(super) async fn leave(&self, key: &str, group: &str, me: &str) -> Result<bool, EventsError> {
        let mut script = self.scripts.leave.key(key);
        script.arg(group).arg(me);
        let deleted: i64 = self.invoke(&script).await.map_err(failed)?;
        Ok(deleted >= 0)
    }

    /// Ends the blocked read of connection `id` now.
    pub(super) async fn unblock(&self, id: i64) -> Result<(), RedisError> {
        let mut cmd = ::redis::cmd("CLIENT");
        cmd.arg("UNBLOCK").arg(id);
        self.query::<i64>(&cmd).await.map(drop)
    }
}

/// The key remembering that `id` was published to `topic`. Not under
/// `stream-`: Go's janitor takes every `stream-*` key for a stream. The
/// topic's length keeps topic and id apart whatever they hold.
fn dedup_key(topic: &str, id: &str) -> String {
    format!("micro-events-id:{}:{topic}:{id}", topic.len())
}

/// `[name, value, name, value, ..]` as pairs.
fn pairs(flat: Vec<Vec<u8>>) -> Fields {
    let mut fields = Vec::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
        fields.push((String::from_utf8_lossy(&name).into_owned(), value));
    }
    fields
}

/// `d` in whole milliseconds, as Redis takes them (a signed 64-bit count).
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keys_keep_topic_and_id_apart() {
        assert_ne!(dedup_key("a:b", "c"), dedup_key("a", "b:c"));
        assert!(!dedup_key("t", "1").starts_with("stream-"));
    }

    #[test]
    fn flat_fields_pair_up() {
        let fields = pairs(vec![
            b"event".to_vec(),
            b"{}".to_vec(),
            b"attempt".to_vec(),
            b"2".to_vec(),
        ]);
        assert_eq!(field(&fields, "attempt"), Some(&b"2"[..]));
        assert_eq!(field(&fields, "event"), Some(&b"{}"[..]));
        assert_eq!(field(&fields, "missing"), None);
    }
}
