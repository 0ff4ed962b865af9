//! The header names of Go Micro's HTTP transport (`transport/headers`).

/// The request's sequence id; its presence marks a Go Micro client.
pub const ID: &str = "Micro-Id";
/// The target service, e.g. `helloworld`.
pub const SERVICE: &str = "Micro-Service";
/// The endpoint, `Type.Method`, e.g. `Helloworld.Greeting`.
pub const ENDPOINT: &str = "Micro-Endpoint";
/// The legacy name of the endpoint header.
pub const METHOD: &str = "Micro-Method";
/// The error JSON of a failed call.
pub const ERROR: &str = "Micro-Error";
/// The stream id of a streaming call.
pub const STREAM: &str = "Micro-Stream";
/// The topic of a message delivered through the server.
pub const TOPIC: &str = "Micro-Topic";
/// The protocol a caller speaks (`mucp`).
pub const PROTOCOL: &str = "Micro-Protocol";
/// The legacy target header; when present Go Micro uses the legacy codecs.
pub const TARGET: &str = "Micro-Target";
/// The caller's deadline budget in decimal nanoseconds.
pub const TIMEOUT: &str = "Timeout";
/// Metadata key holding the server's local address, as Go Micro sets it.
pub const LOCAL: &str = "Local";
/// Metadata key holding the caller's address, as Go Micro sets it.
pub const REMOTE: &str = "Remote";

/// Whether a metadata key describes one hop of a call rather than the
/// request as a whole, so that a call made from inside a handler must not
/// forward it (Go Micro forwards them all and then overwrites a few).
pub(crate) fn is_hop_specific(key: &str) -> bool {
    const HOP: &[&str] = &[
        "Accept",
        "Accept-Encoding",
        "Connection",
        "Content-Length",
        "Content-Type",
        "Expect",
        "Host",
        "Keep-Alive",
        "Proxy-Authorization",
        "Proxy-Connection",
        "Te",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "User-Agent",
        LOCAL,
        REMOTE,
        TIMEOUT,
        ID,
        SERVICE,
        ENDPOINT,
        METHOD,
        ERROR,
        STREAM,
        TOPIC,
        PROTOCOL,
        TARGET,
    ];
    let key = key.strip_prefix("X-").or_else(|| key.strip_prefix("x-")).unwrap_or(key);
    HOP.iter().any(|h| h.eq_ignore_ascii_case(key))
}

/// The call headers as [`http::HeaderName`]s.
pub(crate) mod names {
    use http::HeaderName;

    pub(crate) const ID: HeaderName = HeaderName::from_static("micro-id");
    pub(crate) const SERVICE: HeaderName = HeaderName::from_static("micro-service");
    pub(crate) const ENDPOINT: HeaderName = HeaderName::from_static("micro-endpoint");
    /// `Micro-Error` and its `X-` twin, which Go Micro's server writes beside it.
    pub(crate) const ERROR: [HeaderName; 2] = [
        HeaderName::from_static("micro-error"),
        HeaderName::from_static("x-micro-error"),
    ];
    pub(crate) const TIMEOUT: HeaderName = HeaderName::from_static("timeout");
    pub(crate) const STREAM: HeaderName = HeaderName::from_static("micro-stream");
}
