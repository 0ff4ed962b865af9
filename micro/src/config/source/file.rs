//! [`File`]: a JSON, YAML or TOML file, watched for changes.

mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Format, Layer, Source, SourceError, Updates};
use crate::BoxFuture;

/// A config file: JSON, YAML or TOML by its extension (or
/// [`format`](File::format)), each value's key its dotted path in the file.
///
/// The file is watched through its directory, so an edit in place, a new
/// file renamed over it, a delete and recreate, and a Kubernetes
/// ConfigMap's symlink swap all reach the config (as does an edit of the
/// file a symlink points to). Events are debounced, then the file is read
/// again and its content sent only when it differs from the last read. A
/// file that is missing, unreadable or not valid config is reported once
/// per failure while the config keeps its last values. Where the directory
/// cannot be watched, the file is read every second instead.
#[derive(Clone, Debug)]
pub struct File {
    path: PathBuf,
    format: Option<Format>,
}

impl File {
    /// The file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> File {
        File {
            path: path.into(),
            format: None,
        }
    }

    /// Reads the file as `format` whatever its extension.
    pub fn format(mut self, format: Format) -> File {
        self.format = Some(format);
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn source_name(&self) -> String {
        format!("file {}", self.path.display())
    }

    /// Parses `text` as this file's content.
    pub(crate) fn parse(&self, text: &str) -> Result<Layer, SourceError> {
        let format = self.format.or_else(|| Format::from_path(&self.path)).ok_or_else(|| {
            SourceError::new(
                self.source_name(),
                "unknown format: name the file .json, .yaml, .yml or .toml, or set File::format",
            )
        })?;
        let doc = format
            .parse(text)
            .map_err(|message| SourceError::new(self.source_name(), message))?;
        Layer::from_json(&self.source_name(), doc)
    }

    /// Parses the file's raw content.
    fn parse_bytes(&self, bytes: &[u8]) -> Result<Layer, SourceError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| SourceError::new(self.source_name(), format!("the file is not UTF-8 text: {e}")))?;
        self.parse(text)
    }

    /// The file's raw content now, or why it cannot be read.
    async fn read_bytes(&self) -> Result<Vec<u8>, SourceError> {
        tokio::fs::read(&self.path)
            .await
            .map_err(|e| SourceError::new(self.source_name(), e.to_string()))
    }

    /// Reads and parses the file now.
    pub(crate) async fn load(&self) -> Result<Layer, SourceError> {
        self.parse_bytes(&self.read_bytes().await?)
    }
}

impl Source for File {
    fn name(&self) -> String {
        self.source_name()
    }

    fn read(&self) -> BoxFuture<'_, Result<Layer, SourceError>> {
        Box::pin(self.load())
    }

    fn watch(self: Arc<Self>, updates: Updates) -> Option<BoxFuture<'static, ()>> {
        Some(Box::pin(watch::run(self, updates)))
    }
}
