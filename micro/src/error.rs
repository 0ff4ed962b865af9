//! Go Micro's error: `{"id","code","detail","status"}`.
//!
//! Every error that crosses the wire is an [`Error`]. Its JSON form is exactly
//! Go Micro's (`errors.Error` in `go-micro.dev/v5/errors`), so a Go Micro client
//! reads a micro error and the reverse.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A `Result` whose error is a Go Micro [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error id micro's server uses for errors it raises itself.
pub(crate) const SERVER_ID: &str = "go.micro.server";
/// The error id micro's client uses for errors it raises itself.
pub(crate) const CLIENT_ID: &str = "go.micro.client";

/// How the detail of a caught panic's error starts.
pub(crate) const PANICKED: &str = "panic recovered: ";

/// Whether `error` is a caught panic's.
pub(crate) fn is_panic(error: &Error) -> bool {
    error.code == 500 && error.id == SERVER_ID && error.detail.starts_with(PANICKED)
}

/// A Go Micro error: an id naming where it came from, an HTTP-like code, a
/// human-readable detail and the code's status text.
///
/// `Display` prints the JSON, as Go's `Error()` does.
///
/// ```
/// let err = micro::Error::not_found("go.micro.srv.greeter", "user alice does not exist");
/// assert_eq!(
///     err.to_string(),
///     r#"{"id":"go.micro.srv.greeter","code":404,"detail":"user alice does not exist","status":"Not Found"}"#
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    /// Who raised the error, e.g. `go.micro.client` or a service name.
    #[serde(default)]
    pub id: String,
    /// The HTTP-like status code (400, 404, 408, 500 ...).
    #[serde(default)]
    pub code: i32,
    /// What went wrong, for a human.
    #[serde(default)]
    pub detail: String,
    /// The status text of `code` (`"Not Found"`).
    #[serde(default)]
    pub status: String,
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:literal;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(id: impl Into<String>, detail: impl Into<String>) -> Self {
                Self::new(id, detail, $code)
            }
        )*
    };
}

impl Error {
    /// An error with any code; `status` is the code's standard text.
    pub fn new(id: impl Into<String>, detail: impl Into<String>, code: i32) -> Self {
        Error {
            id: id.into(),
            code,
            detail: detail.into(),
            status: status_text(code).into_owned(),
        }
    }

    constructors! {
        /// 400 Bad Request.
        bad_request => 400;
        /// 401 Unauthorized.
        unauthorized => 401;
        /// 403 Forbidden.
        forbidden => 403;
        /// 404 Not Found.
        not_found => 404;
        /// 405 Method Not Allowed.
        method_not_allowed => 405;
        /// 408 Request Timeout.
        timeout => 408;
        /// 409 Conflict.
        conflict => 409;
        /// 413 Request Entity Too Large.
        payload_too_large => 413;
        /// 415 Unsupported Media Type.
        unsupported_media_type => 415;
        /// 500 Internal Server Error.
        internal_server_error => 500;
        /// 501 Not Implemented.
        not_implemented => 501;
        /// 502 Bad Gateway.
        bad_gateway => 502;
        /// 503 Service Unavailable.
        service_unavailable => 503;
        /// 504 Gateway Timeout.
        gateway_timeout => 504;
    }

    /// Reads an error back from its JSON, as Go's `errors.Parse`: text that is
    /// not an error's JSON becomes the `detail` of an error with code 0.
    pub fn parse(text: &str) -> Self {
        match serde_json::from_str::<Error>(text) {
            Ok(err) => err,
            Err(_) => Error {
                id: String::new(),
                code: 0,
                detail: text.to_owned(),
                status: String::new(),
            },
        }
    }

    /// The JSON form, as it travels in the `Micro-Error` header and bodies.
    pub fn to_json(&self) -> String {
        // Serializing four plain fields cannot fail; keep a readable fallback anyway.
        serde_json::to_string(self).unwrap_or_else(|_| format!("{{\"detail\":{:?}}}", self.detail))
    }

    /// The HTTP status that matches `code`, or 500 when the code is not one.
    pub fn http_status(&self) -> http::StatusCode {
        u16::try_from(self.code)
            .ok()
            .and_then(|c| http::StatusCode::from_u16(c).ok())
            .filter(|s| s.as_u16() >= 400)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl std::error::Error for Error {}

/// Go's `http.StatusText`: the texts Go uses, which differ from the current
/// RFC names in a few places (413 is "Request Entity Too Large").
pub(crate) fn status_text(code: i32) -> Cow<'static, str> {
    let text = match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        499 => "",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => {
            return u16::try_from(code)
                .ok()
                .and_then(|c| http::StatusCode::from_u16(c).ok())
                .and_then(|s| s.canonical_reason())
                .map_or(Cow::Borrowed(""), Cow::Borrowed);
        }
    };
    Cow::Borrowed(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_go_field_order() {
        let err = Error::timeout("go.micro.client", "call timeout: context deadline exceeded");
        assert_eq!(
            err.to_json(),
            r#"{"id":"go.micro.client","code":408,"detail":"call timeout: context deadline exceeded","status":"Request Timeout"}"#
        );
    }

    #[test]
    fn parse_round_trips_and_keeps_plain_text_as_detail() {
        let err = Error::payload_too_large("x", "too big");
        assert_eq!(Error::parse(&err.to_json()), err);
        let plain = Error::parse("rpc: can't find service Foo");
        assert_eq!(plain.code, 0);
        assert_eq!(plain.detail, "rpc: can't find service Foo");
    }

    #[test]
    fn http_status_falls_back_to_500() {
        assert_eq!(Error::not_found("a", "b").http_status(), 404);
        assert_eq!(Error::new("a", "b", 0).http_status(), 500);
        assert_eq!(Error::new("a", "b", 200).http_status(), 500);
        assert_eq!(Error::new("a", "b", 70000).http_status(), 500);
    }

    #[test]
    fn status_texts_are_gos() {
        assert_eq!(status_text(413), "Request Entity Too Large");
        assert_eq!(status_text(418), "I'm a teapot");
        assert_eq!(status_text(1), "");
    }
}
