//! [`File`]: a JSON, YAML or TOML file, watched for changes.

use std::path::{Path, PathBuf};

use super::{Format, Layer, Source, SourceError};
use crate::BoxFuture;

/// A config file: JSON, YAML or TOML by its extension (or
/// [`format`](File::format)), each value's key its dotted path in the file.
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

    /// Reads and parses the file now.
    pub(crate) async fn load(&self) -> Result<Layer, SourceError> {
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| SourceError::new(self.source_name(), e.to_string()))?;
        self.parse(&text)
    }
}

impl Source for File {
    fn name(&self) -> String {
        self.source_name()
    }

    fn read(&self) -> BoxFuture<'_, Result<Layer, SourceError>> {
        Box::pin(self.load())
    }
}
