//! On top of the bytes: typed values (JSON, as Go Micro's `Record.Encode`
//! writes them) and paging by cursor.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ListOptions, ReadOptions, Record, Store, StoreError, WriteOptions};

/// A page of keys, and where the next one starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page {
    /// The keys, ascending.
    pub keys: Vec<String>,
    /// The cursor of the next page ([`ListOptions::after`]); `None` on the
    /// last page.
    pub next: Option<String>,
}

impl dyn Store {
    /// The value of `key`, decoded from JSON.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, StoreError> {
        let record = self.get_record(key, ReadOptions::default()).await?;
        serde_json::from_slice(&record.value).map_err(|e| StoreError::Codec {
            action: "decode",
            key: key.to_owned(),
            message: e.to_string(),
        })
    }

    /// Writes `value` as JSON to `key`; returns its version.
    pub async fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<u64, StoreError> {
        self.put_with(key, value, WriteOptions::default()).await
    }

    /// Writes `value` as JSON to `key` as `options` say; returns its
    /// version.
    pub async fn put_with<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        options: WriteOptions,
    ) -> Result<u64, StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Codec {
            action: "encode",
            key: key.to_owned(),
            message: e.to_string(),
        })?;
        self.write(Record::new(key, bytes), options).await
    }

    /// The record of `key` (exact: the options' prefix and suffix are
    /// ignored).
    pub async fn get_record(&self, key: &str, mut options: ReadOptions) -> Result<Record, StoreError> {
        options.prefix = false;
        options.suffix = false;
        let records = self.read(key, options).await?;
        records
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound { key: key.to_owned() })
    }

    /// A page of at most `options`' limit keys (100 when it has none),
    /// and the cursor of the next.
    pub async fn list_page(&self, mut options: ListOptions) -> Result<Page, StoreError> {
        if options.filter.limit == 0 {
            options.filter.limit = 100;
        }
        let limit = options.filter.limit;
        let keys = self.list(options).await?;
        let next = (keys.len() == limit).then(|| keys.last().cloned()).flatten();
        Ok(Page { keys, next })
    }
}
