//! Request metadata: Go Micro's `metadata.Metadata`, carried as HTTP headers.
//!
//! Keys are case-insensitive and stored in HTTP's canonical form
//! (`x-user-id` becomes `X-User-Id`), as Go Micro stores them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use http::HeaderMap;

use crate::headers;
use crate::net::Peer;

/// Key/value pairs that travel with a request as headers.
///
/// ```
/// let mut md = micro::Metadata::new();
/// md.insert("x-user-id", "42");
/// assert_eq!(md.get("X-USER-ID"), Some("42"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: BTreeMap<Cow<'static, str>, String>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, replacing any earlier value.
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl Into<String>) {
        self.entries.insert(canonical_key(key.as_ref()), value.into());
    }

    /// The value of `key`, in any letter case.
    pub fn get(&self, key: &str) -> Option<&str> {
        match self.entries.get(key) {
            Some(v) => Some(v.as_str()),
            None => self.entries.get(&canonical_key(key)).map(String::as_str),
        }
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.entries.remove(&*canonical_key(key))
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The pairs, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (&**k, v.as_str()))
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds every pair of `other`, replacing values of equal keys.
    pub fn extend(&mut self, other: &Metadata) {
        for (k, v) in other.iter() {
            self.entries.insert(Cow::Owned(k.to_owned()), v.to_owned());
        }
    }
}

/// A call's metadata, built from its request's headers the first time it
/// is read: most handlers never read it.
#[derive(Clone, Debug)]
pub(crate) enum LazyMetadata {
    /// Given as metadata (an in-process call, a context built in code).
    Built(Metadata),
    /// A request's headers, turned into metadata when first read.
    Headers {
        built: OnceLock<Metadata>,
        headers: HeaderMap,
        peer: Arc<Peer>,
    },
}

impl Default for LazyMetadata {
    fn default() -> Self {
        LazyMetadata::Built(Metadata::new())
    }
}

impl LazyMetadata {
    /// Every header as metadata, plus `Local` and `Remote` as Go Micro sets them.
    pub(crate) fn from_headers(headers: HeaderMap, peer: Arc<Peer>) -> Self {
        LazyMetadata::Headers {
            built: OnceLock::new(),
            headers,
            peer,
        }
    }

    pub(crate) fn get(&self) -> &Metadata {
        match self {
            LazyMetadata::Built(metadata) => metadata,
            LazyMetadata::Headers { built, headers, peer } => built.get_or_init(|| from_headers(headers, peer)),
        }
    }

    /// One value, in any letter case, read without building the metadata.
    pub(crate) fn find(&self, key: &str) -> Option<&str> {
        match self {
            LazyMetadata::Built(metadata) => metadata.get(key),
            LazyMetadata::Headers { built, headers, .. } => match built.get() {
                Some(metadata) => metadata.get(key),
                None => headers.get(key).and_then(|v| v.to_str().ok()),
            },
        }
    }

    pub(crate) fn get_mut(&mut self) -> &mut Metadata {
        if let LazyMetadata::Headers { built, headers, peer } = self {
            let metadata = built.take().unwrap_or_else(|| from_headers(headers, peer));
            *self = LazyMetadata::Built(metadata);
        }
        match self {
            LazyMetadata::Built(metadata) => metadata,
            LazyMetadata::Headers { .. } => unreachable!("the headers were turned into metadata above"),
        }
    }
}

impl From<Metadata> for LazyMetadata {
    fn from(metadata: Metadata) -> Self {
        LazyMetadata::Built(metadata)
    }
}

fn from_headers(map: &HeaderMap, peer: &Peer) -> Metadata {
    let mut md = Metadata::new();
    for (name, value) in map {
        if let Ok(value) = value.to_str() {
            md.insert(name.as_str(), value);
        }
    }
    md.insert(headers::LOCAL, peer.local.as_str());
    md.insert(headers::REMOTE, peer.remote.as_str());
    md
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: AsRef<str>, V: Into<String>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut md = Metadata::new();
        for (k, v) in iter {
            md.insert(k, v);
        }
        md
    }
}

impl<'a> IntoIterator for &'a Metadata {
    type Item = (&'a str, &'a str);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a str)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// Keys every call carries, in canonical form: found here, they cost no
/// allocation.
const KNOWN: &[&str] = &[
    "Accept",
    "Accept-Encoding",
    "Content-Length",
    "Content-Type",
    "Host",
    "Local",
    "Micro-Endpoint",
    "Micro-Id",
    "Micro-Method",
    "Micro-Service",
    "Micro-Topic",
    "Remote",
    "Timeout",
    "User-Agent",
];

/// Go's `http.CanonicalHeaderKey`: the first letter and every letter after a
/// hyphen upper case, the rest lower case. Keys holding a byte that is not a
/// header token byte are returned as they are, as Go does.
pub(crate) fn canonical_key(key: &str) -> Cow<'static, str> {
    if let Some(known) = KNOWN.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        return Cow::Borrowed(known);
    }
    let valid = key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid || is_canonical(key) {
        return Cow::Owned(key.to_owned());
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = true;
    for c in key.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    Cow::Owned(out)
}

/// Whether `key` is in canonical form already (the common case: keys that
/// come from metadata or from Go Micro).
fn is_canonical(key: &str) -> bool {
    let mut upper = true;
    key.bytes().all(|b| {
        let ok = if upper {
            !b.is_ascii_lowercase()
        } else {
            !b.is_ascii_uppercase()
        };
        upper = b == b'-';
        ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lazy_metadata_is_built_from_headers_once_and_then_editable() {
        let mut headers = HeaderMap::new();
        headers.insert("x-user-id", http::HeaderValue::from_static("7"));
        let peer = Arc::new(Peer {
            local: "127.0.0.1:1".into(),
            remote: "127.0.0.1:2".into(),
        });
        let mut lazy = LazyMetadata::from_headers(headers, peer);
        assert_eq!(lazy.get().get("X-User-Id"), Some("7"));
        lazy.get_mut().insert("X-Extra", "1");
        let metadata = lazy.get();
        assert_eq!(metadata.get("x-user-id"), Some("7"));
        assert_eq!(metadata.get("Remote"), Some("127.0.0.1:2"));
        assert_eq!(metadata.get("X-Extra"), Some("1"));
        // Edited before it was ever read, too.
        let mut headers = HeaderMap::new();
        headers.insert("x-a", http::HeaderValue::from_static("a"));
        let mut unread = LazyMetadata::from_headers(
            headers,
            Arc::new(Peer {
                local: String::new(),
                remote: String::new(),
            }),
        );
        unread.get_mut().insert("X-B", "b");
        assert_eq!(
            (unread.get().get("X-A"), unread.get().get("X-B")),
            (Some("a"), Some("b"))
        );
        assert_eq!(LazyMetadata::from(Metadata::new()).get().iter().count(), 0);
    }

    #[test]
    fn keys_are_canonical_and_case_insensitive() {
        let md: Metadata = [("x-user-ID", "1"), ("micro-endpoint", "A.B")].into_iter().collect();
        assert_eq!(md.get("X-User-Id"), Some("1"));
        assert_eq!(md.get("x-user-id"), Some("1"));
        assert_eq!(md.get("Micro-Endpoint"), Some("A.B"));
        assert_eq!(
            md.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["Micro-Endpoint", "X-User-Id"]
        );
    }

    #[test]
    fn request_headers_become_metadata_when_first_read_and_stay_editable() {
        let peer = Arc::new(Peer {
            local: "127.0.0.1:1".into(),
            remote: "127.0.0.1:2".into(),
        });
        let mut map = HeaderMap::new();
        map.insert("x-user-id", http::HeaderValue::from_static("42"));
        let read_first = LazyMetadata::from_headers(map.clone(), Arc::clone(&peer));
        assert_eq!(read_first.get().get("X-User-Id"), Some("42"));
        assert_eq!(read_first.get().get("Remote"), Some("127.0.0.1:2"));
        assert_eq!(read_first.get().get("Local"), Some("127.0.0.1:1"));
        for mut lazy in [read_first, LazyMetadata::from_headers(map, peer)] {
            lazy.get_mut().insert("x-more", "1");
            let md = lazy.clone();
            assert_eq!(md.get().get("X-More"), Some("1"));
            assert_eq!(md.get().get("X-User-Id"), Some("42"));
            assert_eq!(md.get().len(), 4);
        }
    }

    #[test]
    fn invalid_keys_are_kept_verbatim() {
        assert_eq!(canonical_key("has space"), "has space");
        assert_eq!(canonical_key("content-type"), "Content-Type");
    }
}
