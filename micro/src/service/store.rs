//! The store a service uses: the one `--store` names (at `--store_address`),
//! else the one the builder was given, else the embedded file store in the
//! service's data directory (`<data_dir>/store`, one file per database).
//! Its default database is `--store_database` (else `micro`) and its
//! default table `--store_table` (else the service's name, as Go Micro's
//! service sets it). Opened once, on first use.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::OnceCell;

use super::events::data_dir;
use super::{Flags, ServiceError};
use crate::store::{FileStore, MemoryStore, Store, Table};

/// The backends `--store` can name.
const CHOICES: &str = "file, memory, postgres and redis";

/// Checks a `--store` value before anything starts.
pub(super) fn check(flags: &Flags) -> Result<(), ServiceError> {
    match flags.store.as_deref() {
        None | Some("" | "file" | "memory") => Ok(()),
        Some("postgres" | "cockroach") if cfg!(feature = "postgres") => Ok(()),
        Some(name @ ("postgres" | "cockroach")) => Err(ServiceError::Flags(format!(
            "--store {name} needs micro built with the `postgres` feature"
        ))),
        Some("redis") if cfg!(feature = "redis") => Ok(()),
        Some("redis") => Err(ServiceError::Flags(
            "--store redis needs micro built with the `redis` feature".to_owned(),
        )),
        Some(other) => Err(ServiceError::Flags(format!(
            "--store {other:?} is not available: micro provides {CHOICES}"
        ))),
    }
}

/// A service's store, opened on first use.
#[derive(Clone)]
pub(super) struct Stores {
    opened: Arc<OnceCell<Arc<dyn Store>>>,
    chosen: Option<Arc<dyn Store>>,
}

impl Stores {
    pub(super) fn new(chosen: Option<Arc<dyn Store>>) -> Self {
        Stores {
            opened: Arc::default(),
            chosen,
        }
    }

    /// The store, opened now if it was not yet.
    pub(super) async fn store(&self, flags: &Flags, service: &str) -> Result<Arc<dyn Store>, ServiceError> {
        check(flags)?;
        let store = self
            .opened
            .get_or_try_init(|| open(flags, service, self.chosen.clone()))
            .await?;
        Ok(Arc::clone(store))
    }
}

/// The default database and table the flags give.
fn defaults(flags: &Flags, service: &str) -> Table {
    let pick =
        |flag: &Option<String>, default: &str| flag.as_deref().filter(|s| !s.is_empty()).unwrap_or(default).to_owned();
    Table::new(pick(&flags.store_database, "micro"), pick(&flags.store_table, service))
}

async fn open(flags: &Flags, service: &str, chosen: Option<Arc<dyn Store>>) -> Result<Arc<dyn Store>, ServiceError> {
    let address = flags.store_address.as_deref().filter(|a| !a.is_empty());
    let defaults = defaults(flags, service);
    let store: Arc<dyn Store> = match (flags.store.as_deref(), chosen) {
        (Some("memory"), _) => Arc::new(MemoryStore::with_defaults(defaults)),
        #[cfg(feature = "postgres")]
        (Some("postgres" | "cockroach"), _) => {
            // Go Micro's default: a local CockroachDB.
            let address = address.unwrap_or("postgresql://root@localhost:26257?sslmode=disable");
            Arc::new(crate::store::PostgresStore::with_defaults(address, defaults).await?)
        }
        #[cfg(feature = "redis")]
        (Some("redis"), _) => Arc::new(
            crate::store::RedisStore::with_defaults(address.unwrap_or("redis://127.0.0.1:6379"), defaults).await?,
        ),
        (None | Some(""), Some(chosen)) => chosen,
        _ => {
            let dir = address.map_or_else(|| data_dir(flags, service).join("store"), PathBuf::from);
            tracing::info!(dir = %dir.display(), "store: the embedded file store");
            Arc::new(FileStore::with_defaults(dir, defaults)?)
        }
    };
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_the_services_unless_a_flag_names_one() {
        assert_eq!(defaults(&Flags::default(), "todo"), Table::new("micro", "todo"));
        let flags = Flags {
            store_database: Some("shop".into()),
            store_table: Some("items".into()),
            ..Flags::default()
        };
        assert_eq!(defaults(&flags, "todo"), Table::new("shop", "items"));
    }

    #[test]
    fn unknown_or_unbuilt_backends_are_refused() {
        let flags = |store: &str| Flags {
            store: Some(store.into()),
            ..Flags::default()
        };
        assert!(check(&flags("bolt")).is_err());
        assert!(check(&flags("file")).is_ok());
        assert_eq!(check(&flags("postgres")).is_ok(), cfg!(feature = "postgres"));
    }
}
