//! Rows read back into records: a NULL value reads as empty, NULL or
//! non-object metadata as none (Go fails to scan those), NULL expiry as
//! none; columns are read with `try_get`, never trusted.

use std::time::SystemTime;

use serde_json::{Map, Value};
use tokio_postgres::Row;
use tracing::warn;

use super::failed;
use crate::store::{Record, StoreError};

/// The record of `key` in `row`, whose columns from `first` on are value,
/// metadata, expiry and version.
pub(super) fn record(key: String, row: &Row, first: usize) -> Result<Record, StoreError> {
    let value: Option<Vec<u8>> = row.try_get(first).map_err(failed)?;
    let metadata: Option<Value> = row.try_get(first + 1).map_err(failed)?;
    let expiry: Option<SystemTime> = row.try_get(first + 2).map_err(failed)?;
    let metadata = match metadata {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => Map::new(),
        Some(other) => {
            warn!(%key, metadata = %other, "metadata that is not a JSON object: read as none");
            Map::new()
        }
    };
    Ok(Record {
        value: value.unwrap_or_default(),
        metadata,
        expiry,
        version: version(row, first + 3)?,
        key,
    })
}

/// The version in column `at`.
pub(super) fn version(row: &Row, at: usize) -> Result<u64, StoreError> {
    let version: i64 = row.try_get(at).map_err(failed)?;
    u64::try_from(version).map_err(|_| failed(format!("a negative row version: {version}")))
}

/// A version as the SQL compares it.
pub(super) fn as_sql(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}
