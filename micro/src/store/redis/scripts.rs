//! The Lua scripts that make each store call one atomic step in Redis.
//!
//! Every script takes the table's index and expiries as `KEYS`, then the
//! table's value and metadata prefixes (a record's keys are these plus its
//! key) and the table's name as its first three `ARGV`. Records are found
//! through the index, so the scripts touch keys they compute: a single
//! Redis server (or a replicated one), not Redis Cluster.

use ::redis::Script;

/// What every script may call.
const PRELUDE: &str = r"
local ix, ex, vp, mp, tbl = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]

-- Milliseconds since 1970 on the server's clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The record of key k: its value, version and metadata JSON; or nil and
-- the table whose record the value is, when Go's layout runs another
-- table's name and key into this one's (table `a` key `bc` is table `ab`
-- key `c`); or nil. A value micro did not write (no hash, or a hash
-- written for other bytes: Go wrote over it) is this table's, with version
-- '0' and no metadata; such a hash is dropped, as is one left alone.
local function record(k)
  local vk, mk = vp .. k, mp .. k
  local value = redis.call('GET', vk)
  if not value then
    redis.call('DEL', mk)
    return nil
  end
  local m = redis.call('HMGET', mk, 'version', 'metadata', 'sha1', 'table')
  if m[1] and m[3] == redis.sha1hex(value) then
    if m[4] ~= tbl then return nil, m[4] end
    return value, m[1], m[2] or ''
  end
  if m[1] then redis.call('DEL', mk) end
  return value, '0', ''
end

-- When key k expires, in ms since 1970; -1: never.
local function expiry(k, now)
  local ttl = redis.call('PTTL', vp .. k)
  if ttl < 0 then return -1 end
  return now + ttl
end

-- Takes key k out of the table's index and expiries.
local function forget(k)
  redis.call('ZREM', ix, k)
  redis.call('ZREM', ex, k)
end

-- Forgets up to 64 of the table's records that were due to expire by now
-- and are gone, so that an index of records written with a TTL and never
-- listed does not grow without end.
local function purge(now)
  local due = redis.call('ZRANGEBYSCORE', ex, '-inf', now, 'LIMIT', 0, 64)
  for _, k in ipairs(due) do
    local ttl = redis.call('PTTL', vp .. k)
    if ttl == -2 then
      forget(k)
      redis.call('DEL', mp .. k)
    elseif ttl == -1 then
      redis.call('ZREM', ex, k)
    else
      redis.call('ZADD', ex, now + ttl, k)
    end
  end
end
";

/// Reads one key. ARGV: prefixes, table, key. Returns nil when there is
/// no record, else `{key, value, version, metadata, expiry}`. A value found
/// but not in the index (Go wrote it) is indexed from now on.
const READ: &str = r"
local key = ARGV[4]
local value, version, metadata = record(key)
if not value then
  forget(key)
  return false
end
local at = expiry(key, now_ms())
if not redis.call('ZSCORE', ix, key) then
  redis.call('ZADD', ix, 0, key)
  if at >= 0 then redis.call('ZADD', ex, at, key) end
end
return {key, value, version, metadata, at}
";

/// Reads or lists the live keys from `min` to `max` (`ZRANGEBYLEX`
/// bounds) ending with `suffix`, ascending, skipping `offset` of them, at
/// most `limit` (0: all). ARGV: prefixes, table, min, max, suffix, offset,
/// limit, `1` for records (`{key, value, version, metadata, expiry}`) or
/// `0` for keys. Index entries whose value is gone are dropped on the way.
const SCAN: &str = r"
local min, max, suffix = ARGV[4], ARGV[5], ARGV[6]
local skip, limit, records = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9] == '1'
local now = now_ms()
local out = {}
while limit == 0 or #out < limit do
  local batch = redis.call('ZRANGEBYLEX', ix, min, max, 'LIMIT', 0, 256)
  if #batch == 0 then break end
  for _, k in ipairs(batch) do
    if #suffix == 0 or string.sub(k, -#suffix) == suffix then
      local value, version, metadata = record(k)
      if not value then
        forget(k)
      elseif skip > 0 then
        skip = skip - 1
      else
        if records then
          out[#out + 1] = {k, value, version, metadata, expiry(k, now)}
        else
          out[#out + 1] = k
        end
        if #out == limit then break end
      end
    end
  end
  min = '(' .. batch[#batch]
end
return out
";

/// Writes a record. KEYS: index, expiries, the database's version counter.
/// ARGV: prefixes, table, key, value, metadata JSON, condition (`''` none,
/// `absent`, or the version wanted), expiry mode (`''`, `PX`, `PXAT`) and
/// its time. Returns `{1, version}`; `{0, version found or ''}` when the
/// condition does not hold; `{2, table}` when the value's key holds that
/// table's record. A record that expires at once is written (it gets a
/// version) and gone.
const WRITE: &str = r"
local counter = KEYS[3]
local key, value, metadata = ARGV[4], ARGV[5], ARGV[6]
local want, mode, at = ARGV[7], ARGV[8], ARGV[9]
local vk, mk = vp .. key, mp .. key
local now = now_ms()
purge(now)
local old, current = record(key)
if not old and current then
  return {2, current}
end
if (want == 'absent' and old) or (want ~= '' and want ~= 'absent' and current ~= want) then
  return {0, current or ''}
end
redis.call('INCR', counter)
local version = redis.call('GET', counter)
if (mode == 'PX' and tonumber(at) <= 0) or (mode == 'PXAT' and tonumber(at) <= now) then
  redis.call('DEL', vk, mk)
  forget(key)
  return {1, version}
end
redis.call('DEL', mk)
redis.call('HSET', mk, 'version', version, 'metadata', metadata, 'sha1', redis.sha1hex(value), 'table', tbl)
if mode == '' then
  redis.call('SET', vk, value)
  redis.call('ZREM', ex, key)
elseif mode == 'PX' then
  redis.call('SET', vk, value, 'PX', at)
  redis.call('PEXPIRE', mk, at)
  redis.call('ZADD', ex, now + tonumber(at), key)
else
  redis.call('SET', vk, value, 'PXAT', at)
  redis.call('PEXPIREAT', mk, at)
  redis.call('ZADD', ex, at, key)
end
redis.call('ZADD', ix, 0, key)
return {1, version}
";

/// Deletes a record. ARGV: prefixes, table, key, the version wanted (`''`:
/// any). Returns `{1, ''}`, or `{0, version found or ''}` when the record
/// is not at the version wanted. Another table's record at the value's key
/// is no record of this one's, and stays.
const DELETE: &str = r"
local key, want = ARGV[4], ARGV[5]
purge(now_ms())
local old, current = record(key)
if not old then current = nil end
if want ~= '' and current ~= want then
  return {0, current or ''}
end
if old then redis.call('DEL', vp .. key, mp .. key) end
forget(key)
return {1, ''}
";

/// The store's scripts, loaded on first use (`EVALSHA`, then `EVAL`).
pub(super) struct Scripts {
    pub(super) read: Script,
    pub(super) scan: Script,
    pub(super) write: Script,
    pub(super) delete: Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Scripts {
            read: script(READ),
            scan: script(SCAN),
            write: script(WRITE),
            delete: script(DELETE),
        }
    }
}
