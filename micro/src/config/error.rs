//! What can go wrong reading config.

use super::source::SourceError;

/// A config read or load failed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Nothing is set at the path.
    #[error("config has no value at `{path}`")]
    NotFound {
        /// The dotted path asked for.
        path: String,
    },
    /// The value at the path does not fit the type asked for.
    #[error("config `{path}` (from {origin}): {message}")]
    Value {
        /// The dotted path of the value that did not fit (`servers[1].port`
        /// inside arrays).
        path: String,
        /// Where the value was set: the source and its key there.
        origin: String,
        /// What was expected and what was found.
        message: String,
    },
    /// A source could not be read, or holds something that is not config.
    #[error("config source {0}")]
    Source(#[from] SourceError),
    /// A reload was refused: the new config would not read as the
    /// application's settings; the last good config stays.
    #[error("config change refused, the last good config stays: {0}")]
    Refused(Box<ConfigError>),
    /// The config was closed.
    #[error("config is closed")]
    Closed,
}

impl From<ConfigError> for crate::Error {
    /// A handler whose config read failed answers 500: the service, not the
    /// caller, is misconfigured. The caller learns which path; the values
    /// and where they were set go to the service's log only.
    fn from(err: ConfigError) -> crate::Error {
        tracing::error!(error = %err, "config read failed in a handler");
        let detail = match &err {
            ConfigError::NotFound { path } => format!("config has no value at `{path}`"),
            ConfigError::Value { path, .. } => format!("config `{path}` does not read as the service expects"),
            _ => "the service's config cannot be read".to_owned(),
        };
        crate::Error::internal_server_error("go.micro.config", detail)
    }
}
