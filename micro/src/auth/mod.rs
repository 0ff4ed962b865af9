//! Authentication and authorization: Go Micro's `auth` package.
//!
//! Here now: Go Micro's types with their exact JSON ([`Account`],
//! [`Token`], [`Resource`], [`Rule`], [`Access`]), its constants
//! ([`SCOPE_PUBLIC`], [`SCOPE_ACCOUNT`], [`BEARER_SCHEME`]), and its rule
//! check: [`verify`] is Go Micro's `auth.Verify` (default deny, highest
//! priority first, the first rule that applies decides), and [`Rules`] an
//! in-memory, thread-safe rule store that verifies with it.
//!
//! Next, built on these: JWT tokens (Go Micro's RS256 `jwt` auth), the
//! enforcement of rules on the server and the client, and TLS.

mod account;
mod rules;

pub use account::{Access, Account, BEARER_SCHEME, Resource, Rule, SCOPE_ACCOUNT, SCOPE_PUBLIC, Token};
pub use rules::{Denied, Rules, verify};
