//! A record: Go Micro's `store.Record` (key, value bytes, metadata, expiry)
//! with the version its store gave it.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

/// One key's value, metadata and expiry, as a store holds it.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Record {
    /// The key.
    pub key: String,
    /// The value's bytes.
    pub value: Vec<u8>,
    /// Metadata: a JSON object, as Go Micro's `map[string]interface{}`.
    pub metadata: Map<String, Value>,
    /// When the record expires: past it, no read or list returns it.
    /// `None` never expires.
    pub expiry: Option<SystemTime>,
    /// The version the store gave the record when it was written last;
    /// 0 on a record not read from a store. Conditional writes compare it.
    pub version: u64,
}

impl Record {
    /// A record of `key` holding `value`.
    pub fn new(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Record {
            key: key.into(),
            value: value.into(),
            ..Record::default()
        }
    }

    /// Adds a metadata entry.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Makes the record expire `ttl` from now (Go Micro's `Record.Expiry`).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.expiry = SystemTime::now().checked_add(ttl);
        self
    }

    /// Makes the record expire at `at`.
    #[must_use]
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expiry = Some(at);
        self
    }

    /// The time left before it expires (Go Micro reads `Expiry` so):
    /// `None` for a record that never expires, zero for one expired.
    pub fn remaining(&self) -> Option<Duration> {
        let at = self.expiry?;
        Some(at.duration_since(SystemTime::now()).unwrap_or_default())
    }

    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expiry.is_some_and(|at| at <= now)
    }
}
