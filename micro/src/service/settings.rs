//! The service's settings from its config file: the `micro` section of the
//! `--config` file holds Go Micro's flags by name (`server_address`,
//! `registry`, `store_address` ...), below the environment and the command
//! line. Defaults < file < `MICRO_*` env < flags.
//!
//! ```yaml
//! micro:
//!   server_address: 127.0.0.1:8080
//!   registry: mdns
//!   client_retries: 2
//! ```

use std::ffi::OsString;
use std::path::Path;

use clap::ArgMatches;
use clap::error::ErrorKind;

use crate::config::Format;

/// The section of the config file that holds the service's settings.
pub(super) const SECTION: &str = "micro";

/// `--name=value` for each setting of the config file's `micro` section
/// that neither the command line nor the environment gave.
pub(super) fn from_file(matches: &ArgMatches, command: &mut clap::Command) -> Result<Vec<OsString>, clap::Error> {
    let Some(path) = matches.get_one::<String>("config").filter(|p| !p.is_empty()) else {
        return Ok(Vec::new());
    };
    let fail = |command: &mut clap::Command, message: String| command.error(ErrorKind::ValueValidation, message);
    let path = Path::new(path);
    let text = std::fs::read_to_string(path).map_err(|e| fail(command, format!("--config {}: {e}", path.display())))?;
    let format = Format::from_path(path).ok_or_else(|| {
        fail(
            command,
            format!("--config {}: name the file .json, .yaml, .yml or .toml", path.display()),
        )
    })?;
    let doc = format
        .parse(&text)
        .map_err(|e| fail(command, format!("--config {}: {e}", path.display())))?;
    let Some(section) = doc.get(SECTION) else {
        return Ok(Vec::new());
    };
    let serde_json::Value::Object(section) = section else {
        return Err(fail(
            command,
            format!("--config {}: `{SECTION}` is not a map of settings", path.display()),
        ));
    };
    let known: Vec<String> = command
        .get_arguments()
        .map(|a| a.get_id().as_str().to_owned())
        .collect();
    let mut out = Vec::new();
    for (key, value) in section {
        let id = key.replace('-', "_");
        if !known.contains(&id) || id == "config" {
            return Err(fail(
                command,
                format!("--config {}: `{SECTION}.{key}` is not a micro setting", path.display()),
            ));
        }
        if matches.value_source(&id).is_some() {
            continue;
        }
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            serde_json::Value::Object(_) => {
                return Err(fail(
                    command,
                    format!(
                        "--config {}: `{SECTION}.{key}` must be a value, not a map",
                        path.display()
                    ),
                ));
            }
        };
        let text = crate::config::substitute_env(&text);
        out.push(format!("--{id}={text}").into());
    }
    Ok(out)
}
