//! File formats: JSON, YAML and TOML, each read into one JSON document.

use std::path::Path;

/// The format of a config file or text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// JSON (`.json`).
    Json,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// TOML (`.toml`).
    Toml,
}

impl Format {
    /// The format a file's extension names, if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }

    /// `text` as a JSON document.
    pub fn parse(self, text: &str) -> Result<serde_json::Value, String> {
        match self {
            Format::Json => serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}")),
            Format::Yaml => {
                if text.trim().is_empty() {
                    return Ok(serde_json::Value::Object(Default::default()));
                }
                serde_norway::from_str(text).map_err(|e| format!("invalid YAML: {e}"))
            }
            // toml's Display quotes the failing line, which may hold a
            // secret: say where, not what.
            Format::Toml => toml::from_str(text).map_err(|e| {
                let line = e
                    .span()
                    .map_or(0, |span| text[..span.start.min(text.len())].lines().count().max(1));
                format!("invalid TOML at line {line}: {}", e.message())
            }),
        }
    }

    /// The format's name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Toml => "toml",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_parse_to_the_same_document() {
        let want = json!({"db": {"host": "x", "port": 5432, "tags": ["a", "b"]}});
        let json = r#"{"db": {"host": "x", "port": 5432, "tags": ["a", "b"]}}"#;
        let yaml = "db:\n  host: x\n  port: 5432\n  tags: [a, b]\n";
        let toml = "[db]\nhost = \"x\"\nport = 5432\ntags = [\"a\", \"b\"]\n";
        assert_eq!(Format::Json.parse(json).unwrap(), want);
        assert_eq!(Format::Yaml.parse(yaml).unwrap(), want);
        assert_eq!(Format::Toml.parse(toml).unwrap(), want);
        assert!(Format::Yaml.parse("db: [unclosed").unwrap_err().contains("YAML"));
        assert_eq!(Format::from_path(Path::new("/etc/app/config.YML")), Some(Format::Yaml));
        assert_eq!(Format::from_path(Path::new("./cfg")), None);
    }
}
