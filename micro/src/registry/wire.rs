//! What a node's registry metadata says of how to call it, written by a
//! micro node when it registers and read by clients once per node, when the
//! registry cache stores it: the codec to call it with, whether it serves
//! mux, whether it is a micro node.
//!
//! Go Micro nodes register `protocol=mucp` (JSON and protobuf over HTTP);
//! Go Micro's legacy nodes name no protocol and speak JSON-RPC.

use std::collections::BTreeMap;

use crate::codec::Codec;

/// The node metadata pair that marks a micro node.
pub(crate) const FRAMEWORK: (&str, &str) = ("framework", "micro-rs");

/// The node metadata pair of nodes that serve mux.
pub(crate) const MUX: (&str, &str) = ("mux", "1");

/// The node metadata key listing the content types a node serves.
pub(crate) const CONTENT_TYPES_KEY: &str = "content-types";

/// The metadata a micro node registers: what Go Micro clients look for,
/// what marks it a micro node serving mux, the codecs it serves, and the
/// user's own pairs, which win.
pub(crate) fn node_metadata(user: &BTreeMap<String, String>, registry: &str, broker: &str) -> BTreeMap<String, String> {
    let mut metadata = user.clone();
    for (k, v) in [
        ("protocol", "mucp"),
        ("server", "mucp"),
        ("transport", "http"),
        ("registry", registry),
        ("broker", broker),
        FRAMEWORK,
        MUX,
    ] {
        metadata.entry(k.to_owned()).or_insert_with(|| v.to_owned());
    }
    metadata
        .entry(CONTENT_TYPES_KEY.to_owned())
        .or_insert_with(|| crate::codec::SUPPORTED.join(","));
    metadata
}

/// What a client reads of a node's metadata on every call, read once when
/// the registry cache stores the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Wire {
    /// The codec to call it with, unless the call forces one.
    pub(crate) codec: Codec,
    /// Whether it serves mux.
    pub(crate) mux: bool,
    /// Whether it is a micro node, which needs no `Micro-Id` (a Go Micro
    /// server tells the calls on a connection apart by it) and no
    /// `Micro-Service` (it knows its name).
    pub(crate) micro: bool,
}

impl Wire {
    pub(crate) fn of(node_metadata: &BTreeMap<String, String>) -> Wire {
        let is = |(key, value): (&str, &str)| node_metadata.get(key).is_some_and(|v| v == value);
        Wire {
            codec: codec_for(node_metadata),
            mux: is(MUX),
            micro: is(FRAMEWORK),
        }
    }
}

/// MessagePack with nodes that list it; JSON with nodes that speak `mucp`;
/// Go Micro's legacy JSON-RPC with nodes that name no protocol.
fn codec_for(node_metadata: &BTreeMap<String, String>) -> Codec {
    let serves = |ct: &str| {
        node_metadata.get(CONTENT_TYPES_KEY).is_some_and(|list| {
            list.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii() == ct.as_bytes())
        })
    };
    if serves(Codec::Msgpack.content_type()) {
        Codec::Msgpack
    } else if node_metadata.contains_key("protocol") {
        Codec::Json
    } else {
        Codec::JsonRpc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_follows_node_metadata() {
        let mut md = BTreeMap::new();
        assert_eq!(codec_for(&md), Codec::JsonRpc);
        md.insert("protocol".to_owned(), "mucp".to_owned());
        assert_eq!(codec_for(&md), Codec::Json);
        md.insert(
            CONTENT_TYPES_KEY.to_owned(),
            "application/msgpack,application/json".to_owned(),
        );
        assert_eq!(codec_for(&md), Codec::Msgpack);
    }

    #[test]
    fn a_micro_node_says_so_and_the_user_wins() {
        let user = [("mux".to_owned(), "0".to_owned())].into_iter().collect();
        let metadata = node_metadata(&user, "mdns", "http");
        let wire = Wire::of(&metadata);
        assert!(wire.micro);
        assert!(!wire.mux, "the user's own value is kept");
        assert_eq!(wire.codec, Codec::Msgpack);
    }
}
