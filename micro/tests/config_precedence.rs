//! The service's settings: defaults < the `--config` file's `micro`
//! section < `MICRO_*` environment < command-line flags (RELIABILITY.md
//! R26, the precedence table). Each case runs this binary again with its
//! own environment (the `parse` test, which does nothing unless
//! `PRECEDENCE_ARGS` is set) and reads the flags it printed.

use std::path::PathBuf;
use std::process::Command;

use micro::Flags;

/// Prints the flags parsed from `PRECEDENCE_ARGS` (tab-separated) and the
/// environment, or the error, when this binary is run for a case.
#[test]
fn parse() {
    let Ok(args) = std::env::var("PRECEDENCE_ARGS") else {
        return;
    };
    let outcome = match Flags::parse_from(args.split('\t')) {
        Ok(flags) => serde_json::json!({
            "address": flags.server_address,
            "retries": flags.client_retries,
            "metadata": flags.metadata_pairs().unwrap().len(),
        }),
        Err(err) => serde_json::json!({"error": err.to_string()}),
    };
    println!("PRECEDENCE {outcome}");
}

/// Runs the `parse` case with `args` and `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "parse", "--nocapture", "--test-threads=1"])
        .env_remove("MICRO_SERVER_ADDRESS")
        .env_remove("MICRO_CONFIG")
        .env_remove("MICRO_CLIENT_RETRIES")
        .env(
            "PRECEDENCE_ARGS",
            std::iter::once("svc")
                .chain(args.iter().copied())
                .collect::<Vec<_>>()
                .join("\t"),
        );
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("PRECEDENCE ").map(|(_, json)| json.to_owned()))
        .unwrap_or_else(|| panic!("no outcome: {stdout}"));
    serde_json::from_str(&line).unwrap()
}

/// A config file holding `micro.server_address` and `micro.client_retries`.
fn file(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(
        &path,
        "micro:\n  server_address: 127.0.0.1:1001\n  client_retries: 1\n  server_metadata: [a=1, b=2]\napp:\n  name: x\n",
    )
    .unwrap();
    path
}

#[test]
fn defaults_then_file_then_env_then_flags() {
    let dir = std::env::temp_dir().join(format!("micro-precedence-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = file(&dir);
    let config = config.to_str().unwrap();

    // (file, env, flag) given -> the server address read.
    let table: [(bool, bool, bool, Option<&str>); 8] = [
        (false, false, false, None),
        (true, false, false, Some("127.0.0.1:1001")),
        (false, true, false, Some("127.0.0.1:1002")),
        (false, false, true, Some("127.0.0.1:1003")),
        (true, true, false, Some("127.0.0.1:1002")),
        (true, false, true, Some("127.0.0.1:1003")),
        (false, true, true, Some("127.0.0.1:1003")),
        (true, true, true, Some("127.0.0.1:1003")),
    ];
    for (with_file, with_env, with_flag, want) in table {
        let mut args = Vec::new();
        if with_file {
            args.extend(["--config", config]);
        }
        if with_flag {
            args.push("--server_address=127.0.0.1:1003");
        }
        let env: &[(&str, &str)] = match with_env {
            true => &[("MICRO_SERVER_ADDRESS", "127.0.0.1:1002")],
            false => &[],
        };
        let got = run(&args, env);
        let case = format!("file {with_file}, env {with_env}, flag {with_flag}: {got}");
        assert_eq!(got["address"].as_str(), want, "{case}");
        // The file's other settings apply whatever overrides the address.
        assert_eq!(got["retries"].as_u64(), with_file.then_some(1), "{case}");
        assert_eq!(got["metadata"], if with_file { 2 } else { 0 }, "{case}");
    }

    // The config file named by MICRO_CONFIG, and bad files named clearly.
    assert_eq!(run(&[], &[("MICRO_CONFIG", config)])["address"], "127.0.0.1:1001");
    let bad = dir.join("bad.yaml");
    let bad_path = bad.to_str().unwrap();
    std::fs::write(&bad, "micro:\n  server_adress: typo\n").unwrap();
    let err = run(&["--config", bad_path], &[])["error"].as_str().unwrap().to_owned();
    assert!(
        err.contains("micro.server_adress") && err.contains("not a micro setting"),
        "{err}"
    );
    std::fs::write(&bad, "micro: [unclosed\n").unwrap();
    let err = run(&["--config", bad_path], &[])["error"].as_str().unwrap().to_owned();
    assert!(err.contains("YAML"), "{err}");
    let missing = dir.join("missing.json");
    let err = run(&["--config", missing.to_str().unwrap()], &[])["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(err.contains("missing.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
