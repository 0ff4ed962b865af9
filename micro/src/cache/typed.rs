//! On top of the bytes: typed values (JSON) and the typed read-through
//! an endpoint puts in front of a slow lookup.

use std::fmt;
use std::future::Future;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Cache, CacheError, ComputeError, Ttl};

impl dyn Cache {
    /// The value of `key`, decoded from JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<T, CacheError> {
        let (value, _) = self.get(key).await?;
        decode(key, &value)
    }

    /// Puts `value` as JSON under `key` for `ttl` (a [`Ttl`], or a
    /// `Duration`).
    pub async fn put_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: impl Into<Ttl>,
    ) -> Result<(), CacheError> {
        let value = encode(key, value)?;
        self.put(key, value, ttl.into()).await
    }

    /// Read-through: the value of `key` (JSON); when it has none, `init`
    /// computes it once, it is put for `ttl` and returned. A failed `init`
    /// puts nothing.
    ///
    /// On [`MemoryCache`](super::MemoryCache), callers that miss the same
    /// key together wait for one computation and all get its result: its
    /// value, or its error (cloned; a caller whose error type differs from
    /// the computing caller's gets the error's text, as
    /// [`CacheError::Compute`]). On Redis, each computes (see
    /// [`Cache::get_or_compute`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use micro::cache::{Cache, MemoryCache};
    /// # async fn load_user(id: u64) -> micro::Result<String> { Ok(format!("user {id}")) }
    /// # async fn demo() -> micro::Result<()> {
    /// let cache: &dyn Cache = &MemoryCache::new();
    /// let user: String = cache
    ///     .get_or_insert_with("user/7", Duration::from_secs(30), || load_user(7))
    ///     .await?;
    /// # let _ = user;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_insert_with<T, E, F, Fut>(&self, key: &str, ttl: impl Into<Ttl>, init: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<CacheError> + Clone + fmt::Display + Send + Sync + 'static,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        let compute = async move {
            let value = init().await.map_err(|e| CacheError::Compute(ComputeError::new(e)))?;
            encode(key, &value)
        };
        match self.get_or_compute(key, ttl.into(), Box::pin(compute)).await {
            Ok(bytes) => decode(key, &bytes).map_err(E::from),
            Err(CacheError::Compute(failed)) => Err(match failed.downcast_ref::<E>() {
                Some(own) => own.clone(),
                None => E::from(CacheError::Compute(failed)),
            }),
            Err(e) => Err(E::from(e)),
        }
    }
}

fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<Bytes, CacheError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| CacheError::codec("encode", key, e))
}

fn decode<T: DeserializeOwned>(key: &str, value: &[u8]) -> Result<T, CacheError> {
    serde_json::from_slice(value).map_err(|e| CacheError::codec("decode", key, e))
}
