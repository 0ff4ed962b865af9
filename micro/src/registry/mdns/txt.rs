//! Go Micro's mDNS TXT encoding of a node (`registry/mdns_registry.go`): the
//! JSON of `{"Metadata","Service","Version","Endpoints"}`, zlib-compressed,
//! hex-encoded, split into TXT strings of at most 255 characters with no
//! `key=` prefix. A reader joins the strings in order and reverses the steps.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use serde::{Deserialize, Serialize};

use crate::registry::Endpoint;

/// The longest TXT string.
const CHUNK: usize = 255;
/// The most a decoded record may inflate to; larger records are rejected.
const MAX_DECODED: u64 = 1024 * 1024;

/// What a node's TXT record carries; the keys are capitalised because Go's
/// struct has no JSON tags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeTxt {
    #[serde(rename = "Metadata", default, deserialize_with = "null_map")]
    pub(crate) metadata: BTreeMap<String, String>,
    #[serde(rename = "Service", default)]
    pub(crate) service: String,
    #[serde(rename = "Version", default)]
    pub(crate) version: String,
    #[serde(rename = "Endpoints", default, deserialize_with = "null_vec")]
    pub(crate) endpoints: Vec<Endpoint>,
}

fn null_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

fn null_vec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Endpoint>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

/// Encodes a node's record into TXT strings.
pub(crate) fn encode(txt: &NodeTxt) -> Result<Vec<String>, String> {
    let json = serde_json::to_vec(txt).map_err(|e| e.to_string())?;
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
    zlib.write_all(&json).map_err(|e| e.to_string())?;
    let compressed = zlib.finish().map_err(|e| e.to_string())?;
    let encoded = hex::encode(compressed);
    Ok(encoded
        .as_bytes()
        .chunks(CHUNK)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect())
}

/// Decodes TXT strings, in order, back into a node's record.
pub(crate) fn decode<'a>(strings: impl IntoIterator<Item = &'a str>) -> Result<NodeTxt, String> {
    let joined: String = strings.into_iter().collect();
    let compressed = hex::decode(joined.trim()).map_err(|e| format!("TXT is not hex: {e}"))?;
    let mut json = Vec::new();
    ZlibDecoder::new(compressed.as_slice())
        .take(MAX_DECODED + 1)
        .read_to_end(&mut json)
        .map_err(|e| format!("TXT is not zlib: {e}"))?;
    if json.len() as u64 > MAX_DECODED {
        return Err(format!("TXT inflates to more than {MAX_DECODED} bytes"));
    }
    serde_json::from_slice(&json).map_err(|e| format!("TXT is not a Go Micro record: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Value;

    fn sample(endpoints: usize) -> NodeTxt {
        NodeTxt {
            metadata: [("protocol".to_owned(), "mucp".to_owned())].into(),
            service: "helloworld".into(),
            version: "latest".into(),
            endpoints: (0..endpoints)
                .map(|i| Endpoint {
                    name: format!("Helloworld.Method{i}"),
                    request: Some(Value::named(format!("Request{i}"))),
                    ..Endpoint::default()
                })
                .collect(),
        }
    }

    #[test]
    fn round_trips_in_chunks_of_255() {
        let txt = sample(40);
        let strings = encode(&txt).unwrap();
        assert!(strings.len() > 1, "a large record is split");
        assert!(strings.iter().all(|s| s.len() <= 255 && !s.contains('=')));
        assert!(strings[..strings.len() - 1].iter().all(|s| s.len() == 255));
        assert_eq!(decode(strings.iter().map(String::as_str)).unwrap(), txt);
    }

    #[test]
    fn json_uses_go_field_names() {
        let strings = encode(&sample(0)).unwrap();
        let compressed = hex::decode(strings.concat()).unwrap();
        let mut json = String::new();
        ZlibDecoder::new(compressed.as_slice())
            .read_to_string(&mut json)
            .unwrap();
        assert_eq!(
            json,
            r#"{"Metadata":{"protocol":"mucp"},"Service":"helloworld","Version":"latest","Endpoints":[]}"#
        );
    }

    #[test]
    fn reads_what_go_writes() {
        // Go writes nil maps and slices as null.
        let go = br#"{"Metadata":null,"Service":"greeter","Version":"1.0","Endpoints":null}"#;
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(go).unwrap();
        let encoded = hex::encode(zlib.finish().unwrap());
        let txt = decode([encoded.as_str()]).unwrap();
        assert_eq!((txt.service.as_str(), txt.version.as_str()), ("greeter", "1.0"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(["zz"]).is_err());
        assert!(decode(["00ff"]).is_err());
        assert!(decode([""]).is_err());
    }
}
