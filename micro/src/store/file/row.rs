//! A record as the file store keeps it: a format byte, the version, the
//! expiry (nanoseconds since 1970, 0 for none), the metadata's JSON with
//! its length, then the value's bytes as they are.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::store::{Record, StoreError};

const FORMAT: u8 = 1;
const HEAD: usize = 1 + 8 + 8 + 4;

/// A stored row's version and expiry, read without the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Head {
    pub(super) version: u64,
    pub(super) expiry: Option<SystemTime>,
}

impl Head {
    pub(super) fn is_live(&self, now: SystemTime) -> bool {
        self.expiry.is_none_or(|at| at > now)
    }
}

/// Nanoseconds since 1970 (0 stands for none: 1970 is long past).
pub(super) fn nanos(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1))
}

pub(super) fn encode(record: &Record, version: u64, expiry: Option<SystemTime>) -> Result<Vec<u8>, StoreError> {
    let metadata = serde_json::to_vec(&record.metadata).map_err(|e| StoreError::Codec {
        action: "encode",
        key: record.key.clone(),
        message: e.to_string(),
    })?;
    let length = u32::try_from(metadata.len())
        .map_err(|_| StoreError::InvalidName(format!("the metadata of {} is over 4 GiB", record.key)))?;
    let mut row = Vec::with_capacity(HEAD + metadata.len() + record.value.len());
    row.push(FORMAT);
    row.extend_from_slice(&version.to_le_bytes());
    row.extend_from_slice(&expiry.map_or(0, nanos).to_le_bytes());
    row.extend_from_slice(&length.to_le_bytes());
    row.extend_from_slice(&metadata);
    row.extend_from_slice(&record.value);
    Ok(row)
}

fn corrupt(key: &str) -> StoreError {
    StoreError::Backend {
        backend: "file",
        message: format!("the row of {key} is corrupt"),
    }
}

fn u64_at(row: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(row.get(at..at + 8)?.try_into().ok()?))
}

pub(super) fn head(key: &str, row: &[u8]) -> Result<Head, StoreError> {
    if row.first() != Some(&FORMAT) {
        return Err(corrupt(key));
    }
    let version = u64_at(row, 1).ok_or_else(|| corrupt(key))?;
    let expiry = u64_at(row, 9).ok_or_else(|| corrupt(key))?;
    Ok(Head {
        version,
        expiry: (expiry != 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_nanos(expiry)),
    })
}

pub(super) fn decode(key: &str, row: &[u8]) -> Result<Record, StoreError> {
    let head = head(key, row)?;
    let length = row
        .get(17..HEAD)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| corrupt(key))?;
    let end = HEAD + length as usize;
    let metadata: Map<String, Value> = row
        .get(HEAD..end)
        .and_then(|json| serde_json::from_slice(json).ok())
        .ok_or_else(|| corrupt(key))?;
    Ok(Record {
        key: key.to_owned(),
        value: row.get(end..).ok_or_else(|| corrupt(key))?.to_vec(),
        metadata,
        expiry: head.expiry,
        version: head.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reads_back_as_written() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let record = Record::new("k", b"\0value".to_vec()).metadata("n", 1);
        let row = encode(&record, 42, Some(at)).unwrap();
        let back = decode("k", &row).unwrap();
        assert_eq!(back.value, b"\0value");
        assert_eq!(back.metadata, record.metadata);
        assert_eq!(back.expiry, Some(at));
        assert_eq!(back.version, 42);
        let none = decode("k", &encode(&record, 1, None).unwrap()).unwrap();
        assert_eq!(none.expiry, None);
    }

    #[test]
    fn a_damaged_row_is_an_error_not_a_panic() {
        let row = encode(&Record::new("k", b"v".to_vec()), 1, None).unwrap();
        for cut in 0..row.len() - 1 {
            let _ = decode("k", &row[..cut]);
        }
        assert!(decode("k", &[9, 1, 2]).is_err());
        assert!(decode("k", &row[..10]).is_err());
    }
}
