//! Go Micro's auth types (`auth/auth.go`), with the JSON Go's
//! `encoding/json` gives them.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;

/// The scope of a rule open to everyone, with or without an account (Go's
/// `auth.ScopePublic`).
pub const SCOPE_PUBLIC: &str = "";

/// The scope of a rule open to any account (Go's `auth.ScopeAccount`).
pub const SCOPE_ACCOUNT: &str = "*";

/// The scheme of an `Authorization` header carrying a token, space
/// included (Go's `auth.BearerScheme`).
pub const BEARER_SCHEME: &str = "Bearer ";

/// An account, as an auth provider gives it (Go's `auth.Account`).
///
/// JSON: `{"metadata":{..},"id":"..","type":"..","issuer":"..","secret":"..","scopes":[..]}`,
/// Go's field order. The secret is left out when empty (Go writes `""`),
/// and Go's `null` metadata or scopes (a nil map or slice) read as empty.
/// `Debug` never shows the secret.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Any other data about the account.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: BTreeMap<String, String>,
    /// The account's ID, e.g. an email address.
    #[serde(default)]
    pub id: String,
    /// The account's type, e.g. `service` or `user`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Who issued the account (Go Micro: the namespace).
    #[serde(default)]
    pub issuer: String,
    /// The account's secret, e.g. a password; empty when not known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// The scopes the account has, matched against [`Rule::scope`].
    #[serde(default, deserialize_with = "null_as_default")]
    pub scopes: Vec<String>,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("type", &self.kind)
            .field("issuer", &self.issuer)
            .field("metadata", &self.metadata)
            .field("scopes", &self.scopes)
            .field("secret", &Redacted(!self.secret.is_empty()))
            .finish()
    }
}

/// A token, short or long lived (Go's `auth.Token`).
///
/// JSON: `{"created":"<RFC 3339>","expiry":"<RFC 3339>","access_token":"..","refresh_token":".."}`,
/// times as Go's `time.Time` writes them (RFC 3339 with as many fraction
/// digits as needed, `Z` for UTC). The default token has Go's zero times
/// (`0001-01-01T00:00:00Z`), so it is expired. `Debug` never shows the
/// token strings.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// When the token was created.
    #[serde(with = "go_time", default = "zero_time")]
    pub created: OffsetDateTime,
    /// When the token expires.
    #[serde(with = "go_time", default = "zero_time")]
    pub expiry: OffsetDateTime,
    /// The token to access resources with.
    #[serde(default)]
    pub access_token: String,
    /// The token to get a new access token with.
    #[serde(default)]
    pub refresh_token: String,
}

impl Token {
    /// Whether the token needs refreshing: its expiry, in whole seconds, is
    /// before now, in whole seconds (Go's `Token.Expired`). A token expiring
    /// this very second is not expired yet; the zero expiry is.
    pub fn expired(&self) -> bool {
        self.expired_at(OffsetDateTime::now_utc())
    }

    /// [`Token::expired`] as of `now`.
    pub fn expired_at(&self, now: OffsetDateTime) -> bool {
        self.expiry.unix_timestamp() < now.unix_timestamp()
    }
}

impl Default for Token {
    fn default() -> Self {
        Token {
            created: zero_time(),
            expiry: zero_time(),
            access_token: String::new(),
            refresh_token: String::new(),
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("created", &self.created)
            .field("expiry", &self.expiry)
            .field("access_token", &Redacted(!self.access_token.is_empty()))
            .field("refresh_token", &Redacted(!self.refresh_token.is_empty()))
            .finish()
    }
}

/// A thing rules guard, such as a service's endpoint (Go's
/// `auth.Resource`). JSON: `{"name":"..","type":"..","endpoint":".."}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resource {
    /// The resource's name, e.g. `go.micro.service.notes`; `*` in a rule
    /// matches every name.
    #[serde(default)]
    pub name: String,
    /// The resource's type, e.g. `service`; `*` in a rule matches every
    /// type.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// The endpoint, e.g. `Notes.Create` or a web path `/notes/list`; in a
    /// rule, `*` matches every endpoint and `/notes/*` every path under
    /// `/notes`.
    #[serde(default)]
    pub endpoint: String,
}

impl Resource {
    /// A resource of a type, a name and an endpoint.
    pub fn new(kind: impl Into<String>, name: impl Into<String>, endpoint: impl Into<String>) -> Self {
        Resource {
            name: name.into(),
            kind: kind.into(),
            endpoint: endpoint.into(),
        }
    }
}

/// What a rule does to the requests it applies to (Go's `auth.Access`).
///
/// JSON: the number, `0` or `1`. `Granted` is `0`, so a rule whose access
/// is not set grants, as in Go. Go's `Access` is any `int`, and a rule with
/// another number never decides; micro refuses such JSON instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Access {
    /// The rule grants access (Go's `AccessGranted`, `0`).
    #[default]
    Granted = 0,
    /// The rule denies access (Go's `AccessDenied`, `1`).
    Denied = 1,
}

impl Serialize for Access {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(*self as i64)
    }
}

impl<'de> Deserialize<'de> for Access {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match i64::deserialize(deserializer)? {
            0 => Ok(Access::Granted),
            1 => Ok(Access::Denied),
            other => Err(de::Error::invalid_value(
                de::Unexpected::Signed(other),
                &"0 (granted) or 1 (denied)",
            )),
        }
    }
}

/// A rule about who may access a resource (Go's `auth.Rule`).
///
/// Go's `Rule` has no JSON tags, so its JSON names are Go's field names:
/// `{"Resource":{..},"ID":"..","Scope":"..","Access":0,"Priority":0}`.
/// Go reads the names in any case; micro reads these and the lower-case
/// ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    /// The resources the rule applies to; `*` in the type, the name or the
    /// endpoint matches any (see [`verify`](super::verify)).
    #[serde(rename = "Resource", alias = "resource")]
    pub resource: Resource,
    /// The rule's ID, e.g. `public`; [`Rules::revoke`](super::Rules::revoke)
    /// removes rules by it.
    #[serde(rename = "ID", alias = "id", default)]
    pub id: String,
    /// Who the rule is for: [`SCOPE_PUBLIC`] (`""`) everyone,
    /// [`SCOPE_ACCOUNT`] (`*`) any account, otherwise accounts having this
    /// scope.
    #[serde(rename = "Scope", alias = "scope", default)]
    pub scope: String,
    /// Whether the rule grants or denies.
    #[serde(rename = "Access", alias = "access", default)]
    pub access: Access,
    /// The rule's priority: the higher, the sooner it is checked.
    #[serde(rename = "Priority", alias = "priority", default)]
    pub priority: i32,
}

/// Go's zero `time.Time`, `0001-01-01T00:00:00Z`.
fn zero_time() -> OffsetDateTime {
    // 0001-01-01T00:00:00Z is -62135596800 in Unix seconds, inside the
    // range `time` supports; the fallback is never taken.
    OffsetDateTime::from_unix_timestamp(-62_135_596_800).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Reads `null` as the default, as Go reads JSON `null` into a nil map or
/// slice.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Shows whether a secret is set, never the secret.
struct Redacted(bool);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "<redacted>" } else { "<empty>" })
    }
}

/// `time::OffsetDateTime` as Go's `time.Time` JSON: RFC 3339, fraction
/// digits trimmed, `Z` for UTC.
mod go_time {
    use serde::de::{self, Deserializer};
    use serde::{Deserialize, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub(super) fn serialize<S: Serializer>(value: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        let text = value.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
        // Go reads `null` as "no change": the zero time here.
        match Option::<std::borrow::Cow<'de, str>>::deserialize(deserializer)? {
            None => Ok(super::zero_time()),
            Some(text) => OffsetDateTime::parse(&text, &Rfc3339).map_err(de::Error::custom),
        }
    }
}
