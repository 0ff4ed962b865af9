//! The config a service's handlers read: the `--config` file (watched),
//! then the sources the builder added, in order; or the config the
//! builder was given. Loaded once, on first use.

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::{Flags, ServiceError};
use crate::config::{Config, File, Source};

/// A service's config, loaded on first use.
#[derive(Clone, Default)]
pub(super) struct Configs {
    loaded: Arc<OnceCell<Config>>,
    chosen: Option<Config>,
    sources: Vec<Arc<dyn Source>>,
}

impl Configs {
    pub(super) fn chosen(config: Config) -> Configs {
        Configs {
            chosen: Some(config),
            ..Configs::default()
        }
    }

    pub(super) fn add(&mut self, source: Arc<dyn Source>) {
        if self.chosen.is_some() || self.loaded.initialized() {
            tracing::warn!(
                source = %source.name(),
                "config source added after the service's config was given or loaded: not used"
            );
        }
        self.sources.push(source);
    }

    /// The config, loaded now if it was not yet.
    pub(super) async fn config(&self, flags: &Flags) -> Result<Config, ServiceError> {
        if let Some(config) = &self.chosen {
            return Ok(config.clone());
        }
        let config = self
            .loaded
            .get_or_try_init(|| async {
                let mut builder = Config::builder();
                if let Some(path) = flags.config.as_deref().filter(|p| !p.is_empty()) {
                    builder = builder.source(File::new(path));
                }
                for source in &self.sources {
                    builder = builder.source_arc(Arc::clone(source));
                }
                builder.load().await
            })
            .await?;
        Ok(config.clone())
    }
}
