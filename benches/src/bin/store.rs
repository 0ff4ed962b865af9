//! Data storage: micro's `store` backends against the same work done with
//! the raw crates (redb, tokio-postgres, redis), side by side in one run,
//! written to `--out` (default `store-results.md`).
//!
//! ```sh
//! cargo build --release --manifest-path benches/Cargo.toml --bin store
//! ../shared/netns-run --services postgres,redis -- benches/target/release/store            # full run
//! ../shared/netns-run --services postgres,redis -- benches/target/release/store --quick    # smoke run
//! ../shared/netns-run --services postgres,redis -- benches/target/release/store --only file
//! benches/target/release/store --only memory --scale 0.2                                   # no servers
//! ```
//!
//! Every row writes a set of keys one after the other, each write awaited,
//! then reads them back one at a time by key (each read awaited, and
//! checked): writes and reads a second, the p50 and p99 of each call's
//! latency, and the client's CPU time per call (this process, all its
//! threads: the runtime's one thread and the blocking threads file writes
//! run on; the servers' time is not counted). Each record is a 1 KiB value
//! with three metadata entries and no expiry; every key was written once
//! before the measured repeats (a warm-up), so the measured writes replace
//! records, as a service's writes mostly do.
//!
//! The raw peers do the same work by hand:
//! - **file**: micro's [`FileStore`] (redb, a write transaction per
//!   write committed with redb's default durability: fsync on commit)
//!   against raw redb on a file of its own, a write transaction per write
//!   with the same durability writing the key and a row as micro lays it
//!   out (format byte, version, expiry, the metadata's JSON and its length,
//!   then the value), on a blocking thread as micro's writes are; a read
//!   transaction per read, decoding the row and its metadata, on the
//!   runtime's thread as micro's reads are.
//! - **postgres** (`MICRO_TEST_POSTGRES_URL`): micro's `PostgresStore`
//!   (a deadpool pool, prepared statements cached per connection) against
//!   raw tokio-postgres on one connection with two statements prepared
//!   once, running micro's very SQL (Go Micro's upsert `INSERT .. ON
//!   CONFLICT (key) DO UPDATE .. RETURNING xmin::text::bigint`, and the
//!   read of one live key) on a table created by micro's DDL, so that the
//!   two differ in the client path only. The run checks, in
//!   `pg_stat_activity`, that micro's connection ran the same text.
//! - **redis** (`MICRO_TEST_REDIS_URL`): micro's `RedisStore` (one Lua
//!   script per call, on a `ConnectionManager`) against two raw rows on a
//!   `MultiplexedConnection`: plain `SET`/`GET` of the value in Go Micro's
//!   key layout (what Go Micro's redis store does: no metadata, no
//!   version, no index), and micro's own scripts by `EVALSHA` with the same
//!   keys and arguments (their text is read from micro's source when this
//!   is built, and the run checks that Redis holds a script of that hash
//!   after micro's calls).
//! - **memory**: micro's [`MemoryStore`] against a floor: a `BTreeMap`
//!   under an `RwLock`, keeping and handing back the same record (no
//!   expiry index, tables or watchers).
//!
//! A backend whose variable is unset is skipped. Everything runs on one
//! thread (a current-thread tokio runtime), the servers on the other core.
//! Each repeat measures every row: a backend's rows take turns slice by
//! slice (each phase in 20 slices, the first row rotating), so that load
//! from elsewhere on the machine falls on them alike. The table gives the
//! medians over the repeats, and micro ÷ raw the median of the repeats'
//! ratios with their range. On a virtual machine a round trip's time
//! depends on whether the other vCPU sleeps (waking it goes through the
//! hypervisor): the same loopback round trip took 13-40 µs with other work
//! keeping the machine busy and 75-110 µs on an idle one. The ratios,
//! taken within a repeat, are the numbers to compare; with short round
//! trips the client's CPU time per call weighs more in them. For steadier
//! numbers pin the processes: `taskset -c 1 netns-run .. -- taskset -c 0
//! store ..` (servers on one core, the client on the other: every round
//! trip wakes the other core) or `taskset -c 0 netns-run .. -- store ..`
//! (one core: round trips are context switches, the client's CPU counts
//! most).
//!
//! Instructions per call (the cause of a gap): build with
//! `CARGO_PROFILE_RELEASE_DEBUG=true` into another `--target-dir`, run one
//! row under `valgrind --tool=callgrind` with `--only ROW --repeats 1
//! --writes N --reads 1` for two values of N (each key is written twice,
//! warm-up and repeat), and compare `callgrind_annotate --inclusive=yes`:
//! the difference divided by the calls added. Likewise `--reads` with
//! `--writes` fixed below both.
//!
//! Options: `--quick` (a few seconds a backend, one repeat), `--repeats N`
//! (3), `--scale F` (multiplies the calls of every backend), `--only S`
//! (only the rows whose name contains `S`), `--writes N` and `--reads N`
//! (the calls of every backend, for profiles), `--out PATH`, `--dir PATH`
//! (where the redb files go; the system's temporary directory by default:
//! use a directory on the disk you mean to measure).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;
use micro::store::{
    FileStore, MemoryStore, PostgresStore, ReadOptions, Record, RedisStore, Store, Table, WriteOptions,
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use redis::aio::MultiplexedConnection;
use serde_json::{Map, Value};
use tokio_postgres::{NoTls, Statement};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The value's size.
const VALUE_BYTES: usize = 1024;
/// micro's Redis scripts, as micro is built with them.
const SCRIPTS_RS: &str = include_str!("../../../micro/src/store/redis/scripts.rs");
/// The raw redb peer's table.
const RAW_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("raw");
/// The format byte of micro's file rows (and the raw peer's).
const ROW_FORMAT: u8 = 1;
/// A file row's fixed head: format, version, expiry, metadata length.
const ROW_HEAD: usize = 1 + 8 + 8 + 4;
/// The schema (micro's "database") of the PostgreSQL tables.
const PG_SCHEMA: &str = "micro_bench";

/// The rows' names, by backend.
const MICRO_FILE: &str = "micro file";
const RAW_REDB: &str = "raw redb";
const MICRO_POSTGRES: &str = "micro postgres";
const RAW_POSTGRES: &str = "raw tokio-postgres (1 connection)";
const MICRO_REDIS: &str = "micro redis";
const RAW_SET_GET: &str = "raw redis SET/GET (Go Micro's, no metadata)";
const RAW_EVALSHA: &str = "raw redis EVALSHA (micro's scripts)";
const MICRO_MEMORY: &str = "micro memory";
const FLOOR: &str = "floor BTreeMap+RwLock";

/// How much to measure.
struct Settings {
    quick: bool,
    repeats: usize,
    scale: f64,
    /// Writes (keys) and reads of every backend, if given.
    writes: Option<usize>,
    reads: Option<usize>,
    out: String,
    only: Option<String>,
    dir: PathBuf,
}

impl Settings {
    fn from_args(args: &[String]) -> Result<Settings, Error> {
        let mut settings = Settings {
            quick: false,
            repeats: 3,
            scale: 1.0,
            writes: None,
            reads: None,
            out: "store-results.md".to_owned(),
            only: None,
            dir: std::env::temp_dir(),
        };
        let mut repeats = None;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--quick" => settings.quick = true,
                "--repeats" => repeats = Some(value()?.parse()?),
                "--scale" => settings.scale = value()?.parse()?,
                "--writes" => settings.writes = Some(value()?.parse()?),
                "--reads" => settings.reads = Some(value()?.parse()?),
                "--out" => settings.out = value()?.clone(),
                "--only" => settings.only = Some(value()?.clone()),
                "--dir" => settings.dir = PathBuf::from(value()?),
                other => {
                    return Err(
                        format!("unknown argument {other}; see the doc comment of benches/src/bin/store.rs").into(),
                    );
                }
            }
        }
        settings.repeats = repeats.unwrap_or(if settings.quick { 1 } else { 3 });
        if settings.repeats == 0 || settings.scale <= 0.0 || settings.scale.is_nan() {
            return Err("--repeats and --scale must be positive".into());
        }
        Ok(settings)
    }

    /// How many writes (distinct keys) and reads a row of `backend` does.
    fn sizes(&self, backend: Backend) -> Sizes {
        let (writes, reads) = match (backend, self.quick) {
            // A write is an fsync (a millisecond or so); a read is a few µs.
            (Backend::File, false) => (2_000, 200_000),
            (Backend::File, true) => (200, 20_000),
            (Backend::Postgres, false) => (20_000, 40_000),
            (Backend::Postgres, true) => (2_000, 4_000),
            (Backend::Redis, false) => (20_000, 40_000),
            (Backend::Redis, true) => (2_000, 4_000),
            (Backend::Memory, false) => (100_000, 1_000_000),
            (Backend::Memory, true) => (10_000, 100_000),
        };
        let scaled = |n: usize| ((n as f64 * self.scale).round() as usize).max(1);
        Sizes {
            writes: self.writes.unwrap_or_else(|| scaled(writes)).max(1),
            reads: self.reads.unwrap_or_else(|| scaled(reads)).max(1),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    File,
    Postgres,
    Redis,
    Memory,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::File => "file",
            Backend::Postgres => "postgres",
            Backend::Redis => "redis",
            Backend::Memory => "memory",
        }
    }
}

#[derive(Clone, Copy)]
struct Sizes {
    writes: usize,
    reads: usize,
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let settings = Settings::from_args(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(&settings))
}

/// What every row writes: the value, its metadata, and micro's record of
/// both (cloned for each write, as micro's `write` takes a record).
struct Data {
    value: Vec<u8>,
    metadata: Map<String, Value>,
    /// The metadata as one JSON value (what tokio-postgres takes).
    metadata_json: Value,
    record: Record,
}

impl Data {
    fn new() -> Data {
        // Printable, and not one byte repeated: nothing compresses it.
        let mut state: u32 = 0x2545_f491;
        let value: Vec<u8> = (0..VALUE_BYTES)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                b'!' + (state % 90) as u8
            })
            .collect();
        let record = Record::new("", value.clone())
            .metadata("content-type", "application/json")
            .metadata("owner", "orders-service")
            .metadata("revision", 3);
        Data {
            value,
            metadata: record.metadata.clone(),
            metadata_json: Value::Object(record.metadata.clone()),
            record,
        }
    }

    /// The record micro writes as `key`.
    fn record(&self, key: &str) -> Record {
        let mut record = self.record.clone();
        record.key = key.to_owned();
        record
    }
}

/// A record as a raw peer reads it back (what micro's [`Record`] holds).
struct RawRecord {
    key: String,
    value: Vec<u8>,
    metadata: Map<String, Value>,
    expiry: Option<SystemTime>,
    version: u64,
}

/// Whether a read gave back what was written.
fn check(key: &str, data: &Data, value: &[u8], metadata: Option<&Map<String, Value>>) -> Result<(), Error> {
    if value != data.value.as_slice() || metadata.is_some_and(|m| *m != data.metadata) {
        return Err(format!("{key}: read back something else than was written").into());
    }
    Ok(())
}

/// A row as micro's file store lays it out, written by hand.
fn encode_row(version: u64, expiry: Option<SystemTime>, metadata: &Map<String, Value>, value: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(metadata).unwrap_or_default();
    let nanos = expiry
        .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut row = Vec::with_capacity(ROW_HEAD + json.len() + value.len());
    row.push(ROW_FORMAT);
    row.extend_from_slice(&version.to_le_bytes());
    row.extend_from_slice(&nanos.to_le_bytes());
    row.extend_from_slice(&(json.len() as u32).to_le_bytes());
    row.extend_from_slice(&json);
    row.extend_from_slice(value);
    row
}

/// The record in a row [`encode_row`] wrote.
fn decode_row(key: &str, row: &[u8]) -> Result<RawRecord, Error> {
    let corrupt = || format!("the row of {key} is corrupt");
    let u64_at = |at: usize| -> Result<u64, Error> {
        let bytes = row.get(at..at + 8).ok_or_else(corrupt)?;
        Ok(u64::from_le_bytes(bytes.try_into()?))
    };
    if row.first() != Some(&ROW_FORMAT) {
        return Err(corrupt().into());
    }
    let (version, nanos) = (u64_at(1)?, u64_at(9)?);
    let length = u32::from_le_bytes(row.get(17..ROW_HEAD).ok_or_else(corrupt)?.try_into()?) as usize;
    let json = row.get(ROW_HEAD..ROW_HEAD + length).ok_or_else(corrupt)?;
    Ok(RawRecord {
        key: key.to_owned(),
        value: row[ROW_HEAD + length..].to_vec(),
        metadata: serde_json::from_slice(json)?,
        expiry: (nanos != 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)),
        version,
    })
}

/// Raw redb: a file of its own, one transaction per call.
struct RawRedb {
    db: Arc<Database>,
    /// The last version given (the raw peer keeps it in memory).
    version: AtomicU64,
}

impl RawRedb {
    async fn write(&self, key: &str, data: &Data) -> Result<u64, Error> {
        let version = self.version.fetch_add(1, Ordering::Relaxed) + 1;
        let row = encode_row(version, None, &data.metadata, &data.value);
        let (db, key) = (Arc::clone(&self.db), key.to_owned());
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            let tx = db.begin_write()?;
            {
                let mut table = tx.open_table(RAW_TABLE)?;
                table.insert(key.as_str(), row.as_slice())?;
            }
            tx.commit()?;
            Ok(())
        })
        .await??;
        Ok(version)
    }

    fn read(&self, key: &str) -> Result<RawRecord, Error> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(RAW_TABLE)?;
        let row = table.get(key)?.ok_or_else(|| format!("{key}: not found"))?;
        decode_row(key, row.value())
    }
}

/// micro's SQL for a table at `path` (`"schema"."table"`), as
/// micro/src/store/postgres/sql.rs writes it for PostgreSQL.
struct PgSql {
    create: Vec<String>,
    upsert: String,
    read: String,
}

impl PgSql {
    fn new(table: &str) -> PgSql {
        let lower = table.to_ascii_lowercase();
        let path = format!("\"{PG_SCHEMA}\".\"{lower}\"");
        let v = "xmin::text::bigint";
        let set = "value = EXCLUDED.value, metadata = EXCLUDED.metadata, expiry = EXCLUDED.expiry";
        PgSql {
            create: vec![
                format!("CREATE SCHEMA IF NOT EXISTS \"{PG_SCHEMA}\""),
                format!(
                    "CREATE TABLE IF NOT EXISTS {path} (key text NOT NULL, value bytea, metadata JSONB, \
                     expiry timestamp with time zone, CONSTRAINT \"{lower}_pkey\" PRIMARY KEY (key))"
                ),
                format!("CREATE INDEX IF NOT EXISTS \"key_index_{lower}\" ON {path} USING btree (\"key\")"),
                format!("CREATE INDEX IF NOT EXISTS \"metadata_index_{lower}\" ON {path} USING GIN (\"metadata\")"),
            ],
            upsert: format!(
                "INSERT INTO {path} (key, value, metadata, expiry) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key) DO UPDATE SET {set} RETURNING {v}"
            ),
            read: format!(
                "SELECT value, metadata, expiry, {v} FROM {path} WHERE key = $1 AND (expiry IS NULL OR expiry > now())"
            ),
        }
    }
}

/// Raw tokio-postgres: one connection, micro's statements prepared once.
struct RawPostgres {
    client: tokio_postgres::Client,
    upsert: Statement,
    read: Statement,
}

impl RawPostgres {
    async fn connect(url: &str, sql: &PgSql) -> Result<RawPostgres, Error> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("the raw postgres connection failed: {e}");
            }
        });
        for statement in &sql.create {
            client.batch_execute(statement).await?;
        }
        let upsert = client.prepare(&sql.upsert).await?;
        let read = client.prepare(&sql.read).await?;
        Ok(RawPostgres { client, upsert, read })
    }

    async fn write(&self, key: &str, data: &Data) -> Result<u64, Error> {
        let expiry: Option<SystemTime> = None;
        let row = self
            .client
            .query_one(
                &self.upsert,
                &[&key, &data.value.as_slice(), &data.metadata_json, &expiry],
            )
            .await?;
        Ok(u64::try_from(row.try_get::<_, i64>(0)?)?)
    }

    async fn read(&self, key: &str) -> Result<RawRecord, Error> {
        let row = self
            .client
            .query_opt(&self.read, &[&key])
            .await?
            .ok_or_else(|| format!("{key}: not found"))?;
        let value: Option<Vec<u8>> = row.try_get(0)?;
        let metadata = match row.try_get::<_, Option<Value>>(1)? {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        Ok(RawRecord {
            key: key.to_owned(),
            value: value.unwrap_or_default(),
            metadata,
            expiry: row.try_get(2)?,
            version: u64::try_from(row.try_get::<_, i64>(3)?)?,
        })
    }
}

/// The text of one of micro's Lua scripts (a `const NAME: &str = r"..."`
/// of micro/src/store/redis/scripts.rs).
fn lua(name: &str) -> Result<&'static str, Error> {
    let start = format!("const {name}: &str = r\"");
    let at = SCRIPTS_RS
        .find(&start)
        .ok_or_else(|| format!("no script {name} in micro's scripts.rs"))?
        + start.len();
    let end = SCRIPTS_RS[at..]
        .find("\";")
        .ok_or_else(|| format!("script {name} does not end"))?;
    Ok(&SCRIPTS_RS[at..at + end])
}

/// The Redis keys of a table of micro's database `micro` (micro's
/// store/redis/keys.rs: Go Micro's value key, micro's hash, index,
/// expiries and version counter).
struct RedisNames {
    table: String,
    value: String,
    meta: String,
    index: String,
    expiries: String,
    counter: String,
}

impl RedisNames {
    fn of(table: &str) -> RedisNames {
        let database = "micro";
        let scoped = format!("{}:{database}:{table}", database.len());
        RedisNames {
            table: table.to_owned(),
            value: table.to_owned(),
            meta: format!("~micro-store:meta:{table}"),
            index: format!("~micro-store:index:{scoped}"),
            expiries: format!("~micro-store:expiry:{scoped}"),
            counter: format!("~micro-store:version:{database}"),
        }
    }
}

/// A row the read script returns: key, value, version, metadata, expiry.
type ScriptRow = (String, Vec<u8>, String, Vec<u8>, i64);

/// micro's Redis scripts, run by hand with `EVALSHA`.
struct RawScripts {
    conn: MultiplexedConnection,
    names: RedisNames,
    read: String,
    write: String,
}

impl RawScripts {
    /// The hashes of micro's read and write scripts (its prelude, then
    /// the body, as micro builds them).
    fn hashes() -> Result<(String, String), Error> {
        let prelude = lua("PRELUDE")?;
        let hash = |body: &str| redis::Script::new(&format!("{prelude}{body}")).get_hash().to_owned();
        Ok((hash(lua("READ")?), hash(lua("WRITE")?)))
    }

    async fn new(conn: MultiplexedConnection, table: &str) -> Result<RawScripts, Error> {
        let mut load = conn.clone();
        let prelude = lua("PRELUDE")?;
        let mut sha = Vec::new();
        for body in [lua("READ")?, lua("WRITE")?] {
            let hash: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(format!("{prelude}{body}"))
                .query_async(&mut load)
                .await?;
            sha.push(hash);
        }
        let [read, write] = <[String; 2]>::try_from(sha).map_err(|_| "two scripts loaded")?;
        Ok(RawScripts {
            conn,
            names: RedisNames::of(table),
            read,
            write,
        })
    }

    async fn write(&self, key: &str, data: &Data) -> Result<u64, Error> {
        let metadata = serde_json::to_vec(&data.metadata)?;
        let names = &self.names;
        let mut conn = self.conn.clone();
        let (done, version): (i64, String) = redis::cmd("EVALSHA")
            .arg(&self.write)
            .arg(3)
            .arg(&names.index)
            .arg(&names.expiries)
            .arg(&names.counter)
            .arg(&names.value)
            .arg(&names.meta)
            .arg(&names.table)
            .arg(key)
            .arg(&data.value)
            .arg(metadata)
            .arg("")
            .arg("")
            .arg(0)
            .query_async(&mut conn)
            .await?;
        if done != 1 {
            return Err(format!("{key}: the write script answered {done} {version}").into());
        }
        Ok(version.parse()?)
    }

    async fn read(&self, key: &str) -> Result<RawRecord, Error> {
        let names = &self.names;
        let mut conn = self.conn.clone();
        let row: Option<ScriptRow> = redis::cmd("EVALSHA")
            .arg(&self.read)
            .arg(2)
            .arg(&names.index)
            .arg(&names.expiries)
            .arg(&names.value)
            .arg(&names.meta)
            .arg(&names.table)
            .arg(key)
            .query_async(&mut conn)
            .await?;
        let (key, value, version, metadata, expiry) = row.ok_or_else(|| format!("{key}: not found"))?;
        let metadata = if metadata.is_empty() {
            Map::new()
        } else {
            serde_json::from_slice(&metadata)?
        };
        Ok(RawRecord {
            key,
            value,
            metadata,
            expiry: u64::try_from(expiry)
                .ok()
                .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms)),
            version: version.parse()?,
        })
    }
}

/// Go Micro's redis store by hand: `SET`/`GET` of the value at the table's
/// name followed by the key.
struct RawSetGet {
    conn: MultiplexedConnection,
    table: String,
}

impl RawSetGet {
    async fn write(&self, key: &str, data: &Data) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(format!("{}{key}", self.table))
            .arg(&data.value)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn read(&self, key: &str) -> Result<Vec<u8>, Error> {
        let mut conn = self.conn.clone();
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(format!("{}{key}", self.table))
            .query_async(&mut conn)
            .await?;
        Ok(value.ok_or_else(|| format!("{key}: not found"))?)
    }
}

/// The memory floor: a map under a lock, keeping what micro's memory
/// store keeps of a record.
#[derive(Default)]
struct Floor {
    rows: RwLock<FloorRows>,
}

#[derive(Default)]
struct FloorRows {
    records: BTreeMap<String, Kept>,
    version: u64,
}

struct Kept {
    value: Vec<u8>,
    metadata: Map<String, Value>,
    expiry: Option<SystemTime>,
    version: u64,
}

impl Floor {
    fn write(&self, key: &str, data: &Data) -> u64 {
        let (value, metadata) = (data.value.clone(), data.metadata.clone());
        let mut rows = self.rows.write().unwrap_or_else(|p| p.into_inner());
        rows.version += 1;
        let version = rows.version;
        let kept = Kept {
            value,
            metadata,
            expiry: None,
            version,
        };
        rows.records.insert(key.to_owned(), kept);
        version
    }

    fn read(&self, key: &str) -> Result<RawRecord, Error> {
        let rows = self.rows.read().unwrap_or_else(|p| p.into_inner());
        let kept = rows.records.get(key).ok_or_else(|| format!("{key}: not found"))?;
        Ok(RawRecord {
            key: key.to_owned(),
            value: kept.value.clone(),
            metadata: kept.metadata.clone(),
            expiry: kept.expiry,
            version: kept.version,
        })
    }
}

/// What writes and reads: a micro store, or a raw client.
enum Side {
    Micro(Arc<dyn Store>),
    Redb(RawRedb),
    Postgres(RawPostgres),
    SetGet(RawSetGet),
    Scripts(RawScripts),
    Floor(Floor),
}

impl Side {
    /// Writes `data` as `key`.
    async fn write(&self, key: &str, data: &Data) -> Result<(), Error> {
        let version = match self {
            Side::Micro(store) => store.write(data.record(key), WriteOptions::default()).await?,
            Side::Redb(raw) => raw.write(key, data).await?,
            Side::Postgres(raw) => raw.write(key, data).await?,
            Side::SetGet(raw) => {
                raw.write(key, data).await?;
                1
            }
            Side::Scripts(raw) => raw.write(key, data).await?,
            Side::Floor(floor) => floor.write(key, data),
        };
        std::hint::black_box(version);
        Ok(())
    }

    /// Reads `key` back, checking that it holds `data`.
    async fn read(&self, key: &str, data: &Data) -> Result<(), Error> {
        let raw = match self {
            Side::Micro(store) => {
                let records = store.read(key, ReadOptions::default()).await?;
                let [record] = records.as_slice() else {
                    return Err(format!("{key}: {} records read", records.len()).into());
                };
                check(key, data, &record.value, Some(&record.metadata))?;
                std::hint::black_box((&record.key, record.expiry, record.version));
                return Ok(());
            }
            Side::Redb(raw) => raw.read(key)?,
            Side::Postgres(raw) => raw.read(key).await?,
            Side::SetGet(raw) => {
                let value = raw.read(key).await?;
                return check(key, data, &value, None);
            }
            Side::Scripts(raw) => raw.read(key).await?,
            Side::Floor(floor) => floor.read(key)?,
        };
        check(key, data, &raw.value, Some(&raw.metadata))?;
        std::hint::black_box((&raw.key, raw.expiry, raw.version));
        Ok(())
    }
}

/// One row of the table.
struct Row {
    name: String,
    side: Side,
    samples: Vec<Sample>,
}

/// A backend's rows: micro's first, then its raw peers.
struct Group {
    backend: Backend,
    sizes: Sizes,
    keys: Vec<String>,
    rows: Vec<Row>,
}

/// One repeat's numbers for one row.
#[derive(Clone, Copy)]
struct Sample {
    /// Calls a second.
    writes: f64,
    reads: f64,
    /// Latency, in µs.
    write_p50: f64,
    write_p99: f64,
    read_p50: f64,
    read_p99: f64,
    /// This process's CPU time per call, in µs.
    write_cpu: f64,
    read_cpu: f64,
}

/// This process's CPU time so far, all threads.
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Each phase is cut into this many slices, and the rows of a backend take
/// turns slice by slice (the first rotating): load from elsewhere on the
/// machine falls on all of them alike.
const SLICES: usize = 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Write,
    Read,
}

/// One row's tally of one phase.
struct Tally {
    latency: Histogram<u64>,
    time: Duration,
    cpu: Duration,
    calls: usize,
}

impl Tally {
    fn new() -> Result<Tally, Error> {
        Ok(Tally {
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3)?,
            time: Duration::ZERO,
            cpu: Duration::ZERO,
            calls: 0,
        })
    }

    /// Calls a second, the p50 and p99 in µs, and CPU µs a call.
    fn numbers(&self) -> (f64, f64, f64, f64) {
        let micros = |q: f64| self.latency.value_at_quantile(q) as f64 / 1000.0;
        (
            self.calls as f64 / self.time.as_secs_f64(),
            micros(0.5),
            micros(0.99),
            self.cpu.as_secs_f64() * 1e6 / self.calls as f64,
        )
    }
}

fn nanos(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// Makes calls `range` of `phase` on `side` (call `i` is on key `i`, modulo
/// the keys), each awaited before the next, adding them to `tally`.
async fn slice(
    side: &Side,
    data: &Data,
    keys: &[String],
    phase: Phase,
    range: std::ops::Range<usize>,
    tally: &mut Tally,
) -> Result<(), Error> {
    let (started, cpu) = (Instant::now(), process_cpu());
    for i in range.clone() {
        let key = &keys[i % keys.len()];
        let at = Instant::now();
        match phase {
            Phase::Write => side.write(key, data).await?,
            Phase::Read => side.read(key, data).await?,
        }
        tally.latency.record(nanos(at.elapsed()))?;
    }
    tally.time += started.elapsed();
    tally.cpu += process_cpu().saturating_sub(cpu);
    tally.calls += range.len();
    Ok(())
}

/// Measures `rows` (of `group`): each writes every key, then reads
/// `sizes.reads` of them; slice by slice in turns, `first` going first.
async fn measure(group: &Group, rows: &[usize], data: &Data, sizes: Sizes, first: usize) -> Result<Vec<Sample>, Error> {
    let mut tallies = Vec::new();
    for _ in rows {
        tallies.push([Tally::new()?, Tally::new()?]);
    }
    for (p, phase) in [Phase::Write, Phase::Read].into_iter().enumerate() {
        let calls = if phase == Phase::Write {
            sizes.writes
        } else {
            sizes.reads
        };
        let per = calls.div_ceil(SLICES);
        for s in 0..SLICES {
            let range = (s * per).min(calls)..((s + 1) * per).min(calls);
            if range.is_empty() {
                break;
            }
            for turn in 0..rows.len() {
                let i = (turn + first + s) % rows.len();
                let side = &group.rows[rows[i]].side;
                slice(side, data, &group.keys, phase, range.clone(), &mut tallies[i][p]).await?;
            }
        }
    }
    Ok(tallies
        .iter()
        .map(|[write, read]| {
            let (writes, write_p50, write_p99, write_cpu) = write.numbers();
            let (reads, read_p50, read_p99, read_cpu) = read.numbers();
            Sample {
                writes,
                reads,
                write_p50,
                write_p99,
                read_p50,
                read_p99,
                write_cpu,
                read_cpu,
            }
        })
        .collect())
}

/// What to remove when the run ends.
#[derive(Default)]
struct Cleanup {
    dir: Option<PathBuf>,
    postgres: Option<(tokio_postgres::Client, Vec<String>)>,
    redis: Option<(MultiplexedConnection, String)>,
}

impl Cleanup {
    async fn run(self) {
        if let Some(dir) = self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((client, tables)) = self.postgres {
            for table in tables {
                let _ = client
                    .batch_execute(&format!("DROP TABLE IF EXISTS \"{PG_SCHEMA}\".\"{table}\""))
                    .await;
            }
            // Only if nothing else is in it.
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{PG_SCHEMA}\""))
                .await;
        }
        if let Some((mut conn, pattern)) = self.redis {
            let mut cursor = 0u64;
            loop {
                let scanned: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await;
                let Ok((next, keys)) = scanned else { break };
                if !keys.is_empty() {
                    let _ = redis::cmd("DEL").arg(keys).query_async::<i64>(&mut conn).await;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
    }
}

fn row(name: &str, side: Side) -> Row {
    Row {
        name: name.to_owned(),
        side,
        samples: Vec::new(),
    }
}

fn group(settings: &Settings, backend: Backend, rows: Vec<Row>) -> Group {
    let sizes = settings.sizes(backend);
    Group {
        backend,
        sizes,
        keys: (0..sizes.writes).map(|i| format!("orders/{i:08}")).collect(),
        rows,
    }
}

async fn file_group(settings: &Settings, cleanup: &mut Cleanup) -> Result<Group, Error> {
    let dir = settings.dir.join(format!("micro-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    cleanup.dir = Some(dir.clone());
    let micro = FileStore::open(dir.join("micro"))?;
    let raw = RawRedb {
        db: Arc::new(Database::create(dir.join("raw.redb"))?),
        version: AtomicU64::new(0),
    };
    Ok(group(
        settings,
        Backend::File,
        vec![
            row(MICRO_FILE, Side::Micro(Arc::new(micro))),
            row(RAW_REDB, Side::Redb(raw)),
        ],
    ))
}

async fn postgres_group(settings: &Settings, url: &str, cleanup: &mut Cleanup) -> Result<Group, Error> {
    let pid = std::process::id();
    let (micro_table, raw_table) = (format!("micro_{pid}"), format!("raw_{pid}"));
    let raw = RawPostgres::connect(url, &PgSql::new(&raw_table)).await?;
    let (admin, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    cleanup.postgres = Some((admin, vec![micro_table.clone(), raw_table]));
    let micro = PostgresStore::with_defaults(url, Table::new(PG_SCHEMA, &micro_table)).await?;
    // micro's connection is to have run the raw peer's very SQL: its last
    // statement is in pg_stat_activity.
    let data = Data::new();
    let expected = PgSql::new(&micro_table);
    let micro = Side::Micro(Arc::new(micro));
    // Its first write also starts a sweep of expired rows (then one a
    // minute), on the same connection: the second write is the last.
    micro.write("check", &data).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    micro.write("check", &data).await?;
    same_sql(cleanup, &expected.upsert).await?;
    micro.read("check", &data).await?;
    same_sql(cleanup, &expected.read).await?;
    Ok(group(
        settings,
        Backend::Postgres,
        vec![row(MICRO_POSTGRES, micro), row(RAW_POSTGRES, Side::Postgres(raw))],
    ))
}

/// Whether a connection other than ours last ran `sql`, word for word.
async fn same_sql(cleanup: &Cleanup, sql: &str) -> Result<(), Error> {
    let Some((admin, _)) = &cleanup.postgres else {
        return Ok(());
    };
    let row = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query = $1",
            &[&sql],
        )
        .await?;
    if row.try_get::<_, i64>(0)? == 0 {
        let others = admin
            .query(
                "SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()",
                &[],
            )
            .await?;
        let ran: Vec<String> = others.iter().filter_map(|r| r.try_get(0).ok()).collect();
        return Err(format!("micro's connection did not run the raw peer's SQL {sql:?}, but {ran:?}").into());
    }
    Ok(())
}

async fn redis_group(settings: &Settings, url: &str, cleanup: &mut Cleanup) -> Result<Group, Error> {
    let pid = std::process::id();
    let client = redis::Client::open(url)?;
    let conn = client.get_multiplexed_async_connection().await?;
    cleanup.redis = Some((conn.clone(), format!("*bench_*_{pid}_*")));
    let micro = RedisStore::with_defaults(url, Table::new("micro", format!("bench_micro_{pid}_"))).await?;
    let micro = Side::Micro(Arc::new(micro));
    // micro's calls load its scripts: Redis is to hold the raw peer's.
    let data = Data::new();
    micro.write("check", &data).await?;
    micro.read("check", &data).await?;
    let (read, write) = RawScripts::hashes()?;
    let mut admin = conn.clone();
    let exists: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&read)
        .arg(&write)
        .query_async(&mut admin)
        .await?;
    if exists != [true, true] {
        return Err("micro's scripts are not the ones the raw EVALSHA row runs".into());
    }
    let scripts = RawScripts::new(conn.clone(), &format!("bench_scripts_{pid}_")).await?;
    if (scripts.read.as_str(), scripts.write.as_str()) != (read.as_str(), write.as_str()) {
        return Err("Redis hashes the scripts otherwise".into());
    }
    let set_get = RawSetGet {
        conn,
        table: format!("bench_set_{pid}_"),
    };
    Ok(group(
        settings,
        Backend::Redis,
        vec![
            row(MICRO_REDIS, micro),
            row(RAW_SET_GET, Side::SetGet(set_get)),
            row(RAW_EVALSHA, Side::Scripts(scripts)),
        ],
    ))
}

fn memory_group(settings: &Settings) -> Group {
    group(
        settings,
        Backend::Memory,
        vec![
            row(MICRO_MEMORY, Side::Micro(Arc::new(MemoryStore::new()))),
            row(FLOOR, Side::Floor(Floor::default())),
        ],
    )
}

async fn run(settings: &Settings) -> Result<(), Error> {
    let mut cleanup = Cleanup::default();
    let loads = load();
    let result = measure_all(settings, &mut cleanup).await;
    let loads = format!("{loads} at the start, {} at the end", load());
    cleanup.run().await;
    let (groups, skipped) = result?;
    let report = report(settings, &groups, &skipped, &loads);
    println!("{report}");
    std::fs::write(&settings.out, &report)?;
    eprintln!("written to {}", settings.out);
    Ok(())
}

async fn measure_all(settings: &Settings, cleanup: &mut Cleanup) -> Result<(Vec<Group>, Vec<String>), Error> {
    let wanted = |name: &str| settings.only.as_ref().is_none_or(|only| name.contains(only.as_str()));
    let any = |names: &[&str]| names.iter().any(|n| wanted(n));
    let mut groups = Vec::new();
    let mut skipped = Vec::new();
    if any(&[MICRO_FILE, RAW_REDB]) {
        groups.push(file_group(settings, cleanup).await?);
    }
    if any(&[MICRO_POSTGRES, RAW_POSTGRES]) {
        match std::env::var("MICRO_TEST_POSTGRES_URL") {
            Ok(url) => groups.push(postgres_group(settings, &url, cleanup).await?),
            Err(_) => skipped.push("postgres (MICRO_TEST_POSTGRES_URL is not set)".to_owned()),
        }
    }
    if any(&[MICRO_REDIS, RAW_SET_GET, RAW_EVALSHA]) {
        match std::env::var("MICRO_TEST_REDIS_URL") {
            Ok(url) => groups.push(redis_group(settings, &url, cleanup).await?),
            Err(_) => skipped.push("redis (MICRO_TEST_REDIS_URL is not set)".to_owned()),
        }
    }
    if any(&[MICRO_MEMORY, FLOOR]) {
        groups.push(memory_group(settings));
    }
    for note in &skipped {
        eprintln!("skipped: {note}");
    }
    let data = Data::new();
    let wanted_rows: Vec<Vec<usize>> = groups
        .iter()
        .map(|g| (0..g.rows.len()).filter(|&i| wanted(&g.rows[i].name)).collect())
        .collect();
    // Every key written once (and read): the measured writes replace.
    for (group, rows) in groups.iter().zip(&wanted_rows) {
        if rows.is_empty() {
            continue;
        }
        eprintln!("warming up {}", group.backend.name());
        let sizes = Sizes {
            writes: group.sizes.writes,
            reads: group.sizes.writes.min(group.sizes.reads),
        };
        measure(group, rows, &data, sizes, 0).await?;
    }
    for repeat in 0..settings.repeats {
        eprintln!("repeat {} of {}", repeat + 1, settings.repeats);
        for (group, rows) in groups.iter_mut().zip(&wanted_rows) {
            if rows.is_empty() {
                continue;
            }
            let samples = measure(group, rows, &data, group.sizes, repeat).await?;
            for (&index, sample) in rows.iter().zip(samples) {
                let row = &mut group.rows[index];
                eprintln!(
                    "  {:<44} write {:>8.0}/s p50 {:>7.1} p99 {:>7.1} µs ({:>5.1} µs CPU)  read {:>8.0}/s p50 {:>7.1} p99 {:>7.1} µs ({:>5.1} µs CPU)",
                    row.name,
                    sample.writes,
                    sample.write_p50,
                    sample.write_p99,
                    sample.write_cpu,
                    sample.reads,
                    sample.read_p50,
                    sample.read_p99,
                    sample.read_cpu,
                );
                row.samples.push(sample);
            }
        }
    }
    Ok((groups, skipped))
}

/// The median of `values`.
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A row's median of one number.
fn of(row: &Row, f: fn(&Sample) -> f64) -> f64 {
    median(row.samples.iter().map(f).collect())
}

/// micro ÷ raw of one number: the median of the repeats' ratios (each
/// repeat measures both in turns), and the lowest and highest of them.
fn ratio(micro: &Row, raw: &Row, f: fn(&Sample) -> f64) -> String {
    let per_repeat: Vec<f64> = micro
        .samples
        .iter()
        .zip(&raw.samples)
        .map(|(m, r)| f(m) / f(r))
        .collect();
    let min = per_repeat.iter().copied().fold(f64::INFINITY, f64::min);
    let max = per_repeat.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.2} ({min:.2}-{max:.2})", median(per_repeat))
}

fn report(settings: &Settings, groups: &[Group], skipped: &[String], loads: &str) -> String {
    let data = Data::new();
    let metadata = serde_json::to_string(&data.metadata).unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "## Store\n");
    let _ = writeln!(
        out,
        "{} repeats (medians). Each row writes its keys one after the other, each write awaited (replacing \
         records written in a warm-up), then reads them back by key one at a time, each read awaited and \
         checked; a backend's rows take turns, {SLICES} slices a phase. A {VALUE_BYTES}-byte value, metadata `{metadata}`, no expiry. Latency: each call's. CPU: \
         the client process's time per call, all its threads (the servers' not counted). One runtime thread; {}; \
         load average {loads}.\n",
        settings.repeats,
        machine()
    );
    let sizes: Vec<String> = groups
        .iter()
        .map(|g| {
            format!(
                "{} {} writes, {} reads",
                g.backend.name(),
                g.sizes.writes,
                g.sizes.reads
            )
        })
        .collect();
    let _ = writeln!(out, "Calls per row and repeat: {}.\n", sizes.join("; "));
    let _ = writeln!(
        out,
        "Raw peers: file: redb, one write transaction per write (redb's default durability, fsync on \
         commit) on a blocking thread, one read transaction per read, the same row layout as micro's; \
         postgres: tokio-postgres on ONE connection (micro: its deadpool pool) with micro's upsert and read \
         SQL prepared once, on a table made by micro's DDL; redis: a MultiplexedConnection (micro: a \
         ConnectionManager), plain SET/GET (what Go Micro's store does: no metadata, no version) and micro's \
         own Lua scripts by EVALSHA; memory: a floor, a BTreeMap under an RwLock keeping the same record.\n"
    );
    if !skipped.is_empty() {
        let _ = writeln!(out, "Skipped: {}.\n", skipped.join("; "));
    }
    let _ = writeln!(
        out,
        "| stack | writes/s | reads/s | write p50 µs | write p99 µs | read p50 µs | read p99 µs | write CPU µs/op | read CPU µs/op |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for group in groups {
        for row in group.rows.iter().filter(|r| !r.samples.is_empty()) {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                row.name,
                of(row, |s| s.writes),
                of(row, |s| s.reads),
                of(row, |s| s.write_p50),
                of(row, |s| s.write_p99),
                of(row, |s| s.read_p50),
                of(row, |s| s.read_p99),
                of(row, |s| s.write_cpu),
                of(row, |s| s.read_cpu),
            );
        }
    }
    let mut ratios = String::new();
    for group in groups {
        let Some((micro, raws)) = group.rows.split_first() else {
            continue;
        };
        if micro.samples.is_empty() {
            continue;
        }
        for raw in raws.iter().filter(|r| r.samples.len() == micro.samples.len()) {
            let _ = writeln!(
                ratios,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                micro.name,
                raw.name,
                ratio(micro, raw, |s| s.writes),
                ratio(micro, raw, |s| s.reads),
                ratio(micro, raw, |s| s.write_p99),
                ratio(micro, raw, |s| s.read_p99),
                ratio(micro, raw, |s| s.write_cpu),
                ratio(micro, raw, |s| s.read_cpu),
            );
        }
    }
    if !ratios.is_empty() {
        let _ = writeln!(
            out,
            "\nmicro ÷ raw: the median of the repeats' ratios (lowest-highest). Writes and reads: \
             below 1 is micro slower; p99 and CPU: above 1 is micro slower.\n"
        );
        let _ = writeln!(
            out,
            "| micro | ÷ raw | writes | reads | write p99 | read p99 | write CPU | read CPU |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
        out.push_str(&ratios);
    }
    out
}

/// The CPU model and count, for the report.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} × {model}, loopback")
}

/// The load average over the last minute (other work on the machine
/// shows in it).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
