//! The SQL of a table in Go Micro's layout, for PostgreSQL and CockroachDB:
//! the row `(key text primary key, value bytea, metadata jsonb, expiry
//! timestamptz)`, in schema `<database>` of the connected database on
//! PostgreSQL (Go Micro's core postgres store) or in database `<database>`
//! on CockroachDB (its cockroach store). Names are Go's mapping of the
//! database and table (only `[a-zA-Z0-9_]` is left), lower-cased and quoted,
//! which names the same table as Go's unquoted names.
//!
//! A record's version is a column every row already has: PostgreSQL's
//! `xmin` (the transaction that wrote the row), CockroachDB's MVCC
//! timestamp. Go's services keep sharing the table unchanged.

/// The database server's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// CockroachDB.
    Cockroach,
}

impl Dialect {
    /// The kind `SELECT version()` answered.
    pub(crate) fn of(version: &str) -> Dialect {
        if version.contains("CockroachDB") {
            Dialect::Cockroach
        } else {
            Dialect::Postgres
        }
    }

    fn version(self) -> &'static str {
        match self {
            Dialect::Postgres => "xmin::text::bigint",
            Dialect::Cockroach => "floor(crdb_internal_mvcc_timestamp)::INT8",
        }
    }

    /// `key` as it sorts and compares byte by byte, as every store orders.
    fn key(self) -> &'static str {
        match self {
            Dialect::Postgres => r#"key COLLATE "C""#,
            // CockroachDB compares strings byte by byte already.
            Dialect::Cockroach => "key",
        }
    }
}

/// A live row: not expired by the server's clock.
const LIVE: &str = "(expiry IS NULL OR expiry > now())";

/// Every statement on one table.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) create: Vec<String>,
    pub(crate) read_one: String,
    pub(crate) read_many: String,
    pub(crate) list: String,
    pub(crate) upsert: String,
    pub(crate) create_only: String,
    pub(crate) update_if: String,
    pub(crate) delete: String,
    pub(crate) delete_if: String,
    pub(crate) version_of: String,
    pub(crate) sweep: String,
    /// The function and trigger that tell changes to watchers
    /// (PostgreSQL 14 and later; none on CockroachDB).
    pub(crate) notify: Vec<String>,
}

/// The channel changes are told on.
pub(crate) const CHANNEL: &str = "micro_store";

fn quote(name: &str) -> String {
    format!("\"{}\"", name.to_ascii_lowercase())
}

impl Sql {
    /// The statements of `table` in `database`: both already mapped by
    /// Go's rule, so nothing but letters, digits and `_` is spliced.
    pub(crate) fn new(dialect: Dialect, database: &str, table: &str) -> Sql {
        let (db, name) = (quote(database), quote(table));
        let path = match dialect {
            Dialect::Postgres => format!("{db}.{name}"),
            Dialect::Cockroach => format!("{db}.public.{name}"),
        };
        let lower = table.to_ascii_lowercase();
        let mut create = match dialect {
            Dialect::Postgres => vec![format!("CREATE SCHEMA IF NOT EXISTS {db}")],
            Dialect::Cockroach => vec![format!("CREATE DATABASE IF NOT EXISTS {db}")],
        };
        create.extend([
            format!(
                "CREATE TABLE IF NOT EXISTS {path} (key text NOT NULL, value bytea, metadata JSONB, \
                 expiry timestamp with time zone, CONSTRAINT \"{lower}_pkey\" PRIMARY KEY (key))"
            ),
            format!("CREATE INDEX IF NOT EXISTS \"key_index_{lower}\" ON {path} USING btree (\"key\")"),
            format!("CREATE INDEX IF NOT EXISTS \"metadata_index_{lower}\" ON {path} USING GIN (\"metadata\")"),
        ]);
        let (v, key) = (dialect.version(), dialect.key());
        let set = "value = EXCLUDED.value, metadata = EXCLUDED.metadata, expiry = EXCLUDED.expiry";
        Sql {
            create,
            read_one: format!("SELECT value, metadata, expiry, {v} FROM {path} WHERE key = $1 AND {LIVE}"),
            read_many: format!(
                "SELECT key, value, metadata, expiry, {v} FROM {path} \
                 WHERE key LIKE $1 ESCAPE '\\' AND key LIKE $2 ESCAPE '\\' AND {LIVE} \
                 ORDER BY {key} LIMIT $3 OFFSET $4"
            ),
            list: format!(
                "SELECT key FROM {path} \
                 WHERE key LIKE $1 ESCAPE '\\' AND key LIKE $2 ESCAPE '\\' AND ($3::text IS NULL OR {key} > $3) \
                 AND {LIVE} ORDER BY {key} LIMIT $4 OFFSET $5"
            ),
            upsert: format!(
                "INSERT INTO {path} (key, value, metadata, expiry) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key) DO UPDATE SET {set} RETURNING {v}"
            ),
            create_only: format!(
                "INSERT INTO {path} AS r (key, value, metadata, expiry) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key) DO UPDATE SET {set} WHERE r.expiry IS NOT NULL AND r.expiry <= now() \
                 RETURNING {v}"
            ),
            update_if: format!(
                "UPDATE {path} SET value = $2, metadata = $3, expiry = $4 \
                 WHERE key = $1 AND {v} = $5 AND {LIVE} RETURNING {v}"
            ),
            delete: format!("DELETE FROM {path} WHERE key = $1"),
            delete_if: format!("DELETE FROM {path} WHERE key = $1 AND {v} = $2 AND {LIVE}"),
            version_of: format!("SELECT {v} FROM {path} WHERE key = $1 AND {LIVE}"),
            sweep: format!("DELETE FROM {path} WHERE expiry IS NOT NULL AND expiry <= now()"),
            notify: match dialect {
                Dialect::Postgres => notify(&db, &path),
                Dialect::Cockroach => Vec::new(),
            },
        }
    }
}

/// A function in the schema and a trigger on the table: each change is told
/// on [`CHANNEL`] as JSON, with the row (its value base64, its version the
/// writing transaction's id, which is the row's `xmin`) when that fits in a
/// notice, else with its key only (`big`), to be read. A key too long for
/// a notice is not told.
fn notify(db: &str, path: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE OR REPLACE FUNCTION {db}.micro_store_notify() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
  r record;
  head jsonb;
  payload text;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  head := jsonb_build_object('s', TG_TABLE_SCHEMA, 't', TG_TABLE_NAME, 'k', r.key, 'd', TG_OP = 'DELETE');
  payload := head::text;
  IF TG_OP <> 'DELETE' THEN
    payload := (head || jsonb_build_object('v', encode(r.value, 'base64'), 'm', r.metadata,
      'e', extract(epoch from r.expiry), 'x', txid_current() % 4294967296))::text;
    IF octet_length(payload) > 7900 THEN
      payload := (head || jsonb_build_object('big', true))::text;
    END IF;
  END IF;
  IF octet_length(payload) <= 7900 THEN
    PERFORM pg_notify('{CHANNEL}', payload);
  END IF;
  RETURN NULL;
END $f$"
        ),
        format!(
            "CREATE OR REPLACE TRIGGER micro_store_notify AFTER INSERT OR UPDATE OR DELETE ON {path} \
             FOR EACH ROW EXECUTE FUNCTION {db}.micro_store_notify()"
        ),
    ]
}

/// A LIKE pattern matching keys that start with `prefix` (taken literally:
/// `\`, `%` and `_` escaped, which Go Micro's stores do not do).
pub(crate) fn starts_with(prefix: &str) -> String {
    format!("{}%", escape(prefix))
}

/// A LIKE pattern matching keys that end with `suffix`, literally.
pub(crate) fn ends_with(suffix: &str) -> String {
    format!("%{}", escape(suffix))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_literal() {
        assert_eq!(starts_with("user_1%"), r"user\_1\%%");
        assert_eq!(ends_with(r"a\b"), r"%a\\b");
    }

    #[test]
    fn postgres_keeps_go_micros_core_layout() {
        let sql = Sql::new(Dialect::Postgres, "micro", "Orders");
        assert_eq!(sql.create[0], r#"CREATE SCHEMA IF NOT EXISTS "micro""#);
        assert!(sql.create[1].starts_with(r#"CREATE TABLE IF NOT EXISTS "micro"."orders" (key text NOT NULL"#));
        assert!(sql.create[1].contains(r#"CONSTRAINT "orders_pkey" PRIMARY KEY (key)"#));
        assert!(sql.create[3].contains(r#""metadata_index_orders""#));
        assert!(
            sql.upsert
                .contains("ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
        );
        assert!(sql.read_one.contains("xmin::text::bigint"));
        assert!(sql.list.contains(r#"ORDER BY key COLLATE "C""#));
        assert!(
            sql.sweep.starts_with(r#"DELETE FROM "micro"."orders""#),
            "its own table only"
        );
    }

    #[test]
    fn cockroach_uses_a_database_and_the_mvcc_timestamp() {
        let sql = Sql::new(Dialect::Cockroach, "go_micro", "t");
        assert_eq!(sql.create[0], r#"CREATE DATABASE IF NOT EXISTS "go_micro""#);
        assert!(sql.create[1].contains(r#""go_micro".public."t""#));
        assert!(sql.update_if.contains("crdb_internal_mvcc_timestamp"));
        assert!(!sql.list.contains("COLLATE"));
        assert_eq!(Dialect::of("CockroachDB CCL v23.1.0"), Dialect::Cockroach);
        assert_eq!(Dialect::of("PostgreSQL 15.18 on x86_64"), Dialect::Postgres);
    }
}
