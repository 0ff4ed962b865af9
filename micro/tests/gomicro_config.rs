//! Config interop with real Go Micro: the same environment, JSON files and
//! etcd keys loaded by Go Micro's config (the Go peer's `config` and
//! `config-etcd` subcommands, `tests/gomicro/config.go`) and by micro's
//! give the same values at the same paths, and the merge rules agree.
//! Ignored unless `MICRO_TEST_GOMICRO` names the built peer; run inside
//! `netns-run` (`--services etcd` for the etcd leg).
//!
//! Go's env source turns `8080` into a number and `true` into a boolean,
//! where micro keeps the text and parses it when read: each of Go's values
//! is compared with micro's read as Go's type (`get::<i64>` for a Go
//! integer, `get::<bool>` for a Go boolean, ...). Files and etcd values are
//! JSON on both sides, and file-only configs are compared whole, exactly.
//!
//! The Go peer runs with an environment of the case's variables only
//! (`env_clear`), and micro's `Env::from_vars` gets the same variables in
//! the same order: sorted by name, the order `std::process::Command`
//! passes them in (Go's env source keeps the first of two clashing
//! variables, as micro's does). The peer's binary carries Go Micro v4 and
//! v5, which register the same protobuf names, and sets
//! `GOLANG_PROTOBUF_REGISTRATION_CONFLICT=ignore` in its own environment
//! when it is not set (`tests/gomicro/protoconflict`): every case sets it
//! itself, so Go's environment is exactly the case's, and an env source
//! with no prefix sees it on both sides.

mod peer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use micro::config::{Config, Env, File, Snapshot};
use serde_json::{Value, json};
use tokio::process::Command;

use peer::peer_program;

/// Set in every case's environment (see the module's doc).
const PROTOBUF_POLICY: (&str, &str) = ("GOLANG_PROTOBUF_REGISTRATION_CONFLICT", "ignore");

/// One source, given to both sides in the same place of the load order.
#[derive(Clone, Debug)]
enum Src {
    /// Every variable: Go's `env.NewSource()`, micro's `Env::from_vars`.
    Env,
    /// `env.WithPrefix(P)` / `Env::prefix(P)`.
    EnvPrefix(&'static str),
    /// `env.WithStrippedPrefix(P)` / `Env::stripped_prefix(P)`.
    EnvStripped(&'static str),
    /// `file.WithPath(path)` / `File::new(path)`.
    File(PathBuf),
}

/// A case's environment: its variables plus the protobuf policy, sorted by
/// name as `Command` passes them.
fn environment(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all: BTreeMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    all.insert(PROTOBUF_POLICY.0.to_owned(), PROTOBUF_POLICY.1.to_owned());
    all.into_iter().collect()
}

/// Runs the Go peer with exactly `env` as its environment; the JSON line
/// it printed (Go's `config.Map()`).
async fn go_run(args: &[String], env: &[(String, String)]) -> Value {
    let mut command = Command::new(peer_program());
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let output = peer::output(command).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Go peer failed: {args:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line from the Go peer: {stdout}\nstderr: {stderr}"));
    serde_json::from_str(line).expect("the Go peer's line is JSON")
}

/// Go Micro's config of `sources`, with `env` as the environment.
async fn go_config(sources: &[Src], env: &[(String, String)]) -> Value {
    let mut args = vec!["config".to_owned()];
    for source in sources {
        match source {
            Src::Env => args.push("--env".to_owned()),
            Src::EnvPrefix(p) => args.extend(["--env-prefix".to_owned(), (*p).to_owned()]),
            Src::EnvStripped(p) => args.extend(["--env-stripped-prefix".to_owned(), (*p).to_owned()]),
            Src::File(path) => args.extend(["--file".to_owned(), path.display().to_string()]),
        }
    }
    go_run(&args, env).await
}

/// micro's config of `sources`, the env sources reading `env`.
async fn micro_config(sources: &[Src], env: &[(String, String)]) -> Arc<Snapshot> {
    let mut builder = Config::builder();
    for source in sources {
        let vars = || Env::from_vars(env.iter().cloned());
        builder = match source {
            Src::Env => builder.source(vars()),
            Src::EnvPrefix(p) => builder.source(vars().prefix(*p)),
            Src::EnvStripped(p) => builder.source(vars().stripped_prefix(*p)),
            Src::File(path) => builder.source(File::new(path)),
        };
    }
    let config = builder.load().await.expect("micro loads the same sources");
    let snapshot = config.snapshot();
    config.close();
    snapshot
}

/// Both sides' view of the same sources and environment.
async fn both(sources: &[Src], vars: &[(&str, &str)]) -> (Value, Arc<Snapshot>) {
    let env = environment(vars);
    let go = go_config(sources, &env).await;
    let micro = micro_config(sources, &env).await;
    (go, micro)
}

/// Go's leaves: the dotted path of every value that is not a non-empty
/// object (an empty object is a leaf, as in `Snapshot::keys`).
fn leaves<'a>(value: &'a Value, path: &str, out: &mut BTreeMap<String, &'a Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                leaves(child, &at, out);
            }
        }
        _ => {
            out.insert(path.to_owned(), value);
        }
    }
}

/// Every leaf of Go's config is in micro's at the same path and equal read
/// as Go's type; micro has no leaf Go lacks.
fn assert_same_values(case: &str, go: &Value, micro: &Snapshot) {
    let mut go_leaves = BTreeMap::new();
    leaves(go, "", &mut go_leaves);
    let context = || format!("{case}: Go {go}\nmicro {}", micro.to_json());
    for (path, want) in &go_leaves {
        let fail = |err: micro::config::ConfigError| -> ! {
            panic!("{case}: micro cannot read {path} as Go's {want}: {err}\n{}", context())
        };
        match want {
            Value::Bool(b) => assert_eq!(
                micro.get::<bool>(path).unwrap_or_else(|e| fail(e)),
                *b,
                "{case}: {path}\n{}",
                context()
            ),
            Value::Number(n) if n.is_i64() => assert_eq!(
                micro.get::<i64>(path).unwrap_or_else(|e| fail(e)),
                n.as_i64().unwrap(),
                "{case}: {path}\n{}",
                context()
            ),
            Value::Number(n) if n.is_u64() => assert_eq!(
                micro.get::<u64>(path).unwrap_or_else(|e| fail(e)),
                n.as_u64().unwrap(),
                "{case}: {path}\n{}",
                context()
            ),
            Value::Number(n) => assert_eq!(
                micro.get::<f64>(path).unwrap_or_else(|e| fail(e)),
                n.as_f64().unwrap(),
                "{case}: {path}\n{}",
                context()
            ),
            Value::String(s) => assert_eq!(
                &micro.get::<String>(path).unwrap_or_else(|e| fail(e)),
                s,
                "{case}: {path}\n{}",
                context()
            ),
            // Null, arrays and empty objects: the same JSON.
            _ => assert_eq!(
                &micro.get::<Value>(path).unwrap_or_else(|e| fail(e)),
                *want,
                "{case}: {path}\n{}",
                context()
            ),
        }
    }
    for key in micro.keys() {
        assert!(
            go_leaves.contains_key(&key),
            "{case}: micro has {key}, Go has no value there\n{}",
            context()
        );
    }
}

/// A directory of this test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("micro-gomicro-config-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Writes `value` as `name` (JSON) and returns the file as a source.
    fn json(&self, name: &str, value: &Value) -> Src {
        let path = self.0.join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        Src::File(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The spec's checklist environment (config-auth.md §8, items 3 and 4),
/// with variables the prefix must leave out.
const APP_VARS: &[(&str, &str)] = &[
    ("APP_DB_HOST", "x"),
    ("APP_DB_PORT", "8080"),
    ("APP_FEATURE_BETA", "true"),
    ("APP_RATIO", "1.5"),
    ("APP_LIST", "a,b"),
    ("APPLE", "2"),
    ("OTHER_APP_X", "3"),
    ("app_lower", "4"),
];

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn env_with_a_stripped_prefix() {
    let (go, micro) = both(&[Src::EnvStripped("APP")], APP_VARS).await;
    // Go's view, as the spec has it: `8080` a number, `true` a boolean,
    // `1.5` and `a,b` text.
    assert_eq!(
        go,
        json!({
            "db": {"host": "x", "port": 8080},
            "feature": {"beta": true},
            "ratio": "1.5",
            "list": "a,b",
        })
    );
    assert_same_values("stripped prefix APP", &go, &micro);
    // micro reads `a,b` as Go's StringSlice does.
    assert_eq!(micro.get::<Vec<String>>("list").unwrap(), ["a", "b"]);
    assert_eq!(micro.get::<f64>("ratio").unwrap(), 1.5);
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn env_with_a_kept_prefix() {
    let (go, micro) = both(&[Src::EnvPrefix("APP")], APP_VARS).await;
    assert_eq!(
        go,
        json!({"app": {
            "db": {"host": "x", "port": 8080},
            "feature": {"beta": true},
            "ratio": "1.5",
            "list": "a,b",
        }})
    );
    assert_same_values("prefix APP", &go, &micro);
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn env_with_prefixes_in_turn() {
    // Two env sources, the later winning: `APP_DB_HOST` (as `db.host`)
    // under `OVR_DB_HOST`, and a kept prefix beside them.
    let vars = &[
        ("APP_DB_HOST", "app"),
        ("APP_DB_PORT", "1"),
        ("OVR_DB_HOST", "ovr"),
        ("OVR_DB_USER", "u"),
    ];
    let sources = [Src::EnvStripped("APP"), Src::EnvStripped("OVR"), Src::EnvPrefix("OVR")];
    let (go, micro) = both(&sources, vars).await;
    assert_eq!(
        go,
        json!({
            "db": {"host": "ovr", "port": 1, "user": "u"},
            "ovr": {"db": {"host": "ovr", "user": "u"}},
        })
    );
    assert_same_values("stripped APP, stripped OVR, prefix OVR", &go, &micro);
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn env_without_a_prefix() {
    // Every variable of a small environment: Go's number and boolean
    // spellings, text Go leaves as text, a double `_` (an empty key),
    // mixed case, and clashing variables (the first one wins: `A_B` sorts
    // before `a`, `X` before `X_Y`).
    let vars = &[
        ("DB_HOST", "localhost"),
        ("DB_PORT", "5432"),
        ("FLAG_ON", "T"),
        ("FLAG_OFF", "f"),
        ("FLAG_UPPER", "FALSE"),
        ("NUM_ONE", "1"),
        ("NUM_PLUS", "+5"),
        ("NUM_PAD", "007"),
        ("NUM_NEG", "-3"),
        ("NUM_BIG", "99999999999999999999"),
        ("NUM_EXP", "1e3"),
        ("TEXT_SPACE", " 5"),
        ("TEXT_EQ", "a=b"),
        ("DOUBLE__UNDERSCORE", "1"),
        ("MixedCase_Key", "v"),
        ("A_B", "2"),
        ("a", "1"),
        ("X", "1"),
        ("X_Y", "2"),
    ];
    let (go, micro) = both(&[Src::Env], vars).await;
    assert_eq!(go["a"], json!({"b": 2}));
    assert_eq!(go["x"], json!(1));
    assert_eq!(go["double"], json!({"": {"underscore": 1}}));
    assert_eq!(go["num"]["big"], json!("99999999999999999999"));
    assert_eq!(go["golang"]["protobuf"]["registration"]["conflict"], json!("ignore"));
    assert_same_values("no prefix", &go, &micro);
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn env_over_a_json_file() {
    // The checklist's item 1: env AMQP_HOST beats the file's amqp.host,
    // amqp.port stays; plus an env scalar over a file object, and an env
    // object over a file's non-empty scalar (dropped) and empty one
    // (replacing it).
    let dir = TempDir::new();
    let file = dir.json(
        "config.json",
        &json!({
            "amqp": {"host": "file", "port": 5672},
            "db": {"host": "f", "port": 1},
            "mode": "fast",
            "level": "",
            "list": [1, 2],
        }),
    );
    let vars = &[
        ("AMQP_HOST", "env"),
        ("DB", "text"),
        ("MODE_X", "1"),
        ("LEVEL_X", "2"),
        ("LIST", "3,4"),
    ];
    let (go, micro) = both(&[file.clone(), Src::Env], vars).await;
    assert_eq!(go["amqp"], json!({"host": "env", "port": 5672}));
    assert_eq!(go["db"], json!("text"));
    assert_eq!(go["mode"], json!("fast"));
    assert_eq!(go["level"], json!({"x": 2}));
    assert_eq!(go["list"], json!("3,4"));
    assert_same_values("file then env", &go, &micro);

    // The other way round: the file wins.
    let (go, micro) = both(&[Src::Env, file], vars).await;
    assert_eq!(go["amqp"], json!({"host": "file", "port": 5672}));
    assert_same_values("env then file", &go, &micro);

    // With a stripped prefix, as a service would configure it.
    let vars = &[("APP_AMQP_HOST", "env"), ("APP_AMQP_VHOST", "/v")];
    let file = dir.json("app.json", &json!({"amqp": {"host": "file", "port": 5672}}));
    let (go, micro) = both(&[file, Src::EnvStripped("APP")], vars).await;
    assert_eq!(go, json!({"amqp": {"host": "env", "port": 5672, "vhost": "/v"}}));
    assert_same_values("file then env APP", &go, &micro);
}

/// Loads `files` (JSON, in order) on both sides and compares the whole
/// config exactly; returns Go's.
async fn merged_files(case: &str, files: &[Value]) -> Value {
    let dir = TempDir::new();
    let sources: Vec<Src> = files
        .iter()
        .enumerate()
        .map(|(i, v)| dir.json(&format!("{i}.json"), v))
        .collect();
    let (go, micro) = both(&sources, &[]).await;
    assert_eq!(
        micro.to_json(),
        go,
        "{case}: micro's merge differs from Go's (in {})",
        dir.path().display()
    );
    assert_same_values(case, &go, &micro);
    go
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn files_deep_merge() {
    let go = merged_files(
        "deep merge",
        &[
            json!({"db": {"host": "a", "port": 1, "opts": {"x": 1, "y": 2}}, "keep": true}),
            json!({"db": {"port": 2, "opts": {"y": 3, "z": {"deep": [1]}}}, "new": "n"}),
        ],
    )
    .await;
    assert_eq!(
        go,
        json!({
            "db": {"host": "a", "port": 2, "opts": {"x": 1, "y": 3, "z": {"deep": [1]}}},
            "keep": true,
            "new": "n",
        })
    );
    // An empty object merges nothing in; over an object it changes nothing.
    merged_files(
        "empty objects",
        &[json!({"a": {"x": 1}, "b": {}}), json!({"a": {}, "b": {}, "c": {}})],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn files_replace_arrays() {
    let go = merged_files(
        "arrays replaced",
        &[
            json!({"list": [1, 2, 3], "objs": [{"a": 1}, {"b": 2}], "gone": [1], "grow": []}),
            json!({"list": [4], "objs": [{"c": 3}], "gone": [], "grow": ["x", "y"]}),
        ],
    )
    .await;
    assert_eq!(
        go,
        json!({"list": [4], "objs": [{"c": 3}], "gone": [], "grow": ["x", "y"]})
    );
    // An array over a scalar, a scalar over an array.
    merged_files(
        "arrays and scalars",
        &[
            json!({"a": "x", "b": [1], "c": 0}),
            json!({"a": [1], "b": "y", "c": [2]}),
        ],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn files_later_non_objects_replace_objects() {
    let go = merged_files(
        "scalar, null, array over an object",
        &[
            json!({"s": {"x": 1}, "n": {"x": 1}, "arr": {"x": 1}, "e": {"x": 1}, "z": {"x": 1}, "f": {"x": 1}}),
            json!({"s": "str", "n": null, "arr": [1], "e": "", "z": 0, "f": false}),
        ],
    )
    .await;
    assert_eq!(
        go,
        json!({"s": "str", "n": null, "arr": [1], "e": "", "z": 0, "f": false})
    );
    // A later null deep inside, and a later scalar over a deep object.
    merged_files(
        "nested null and scalar",
        &[
            json!({"a": {"b": {"c": 1}, "d": {"e": {"f": 1}}}}),
            json!({"a": {"b": null, "d": 7}}),
        ],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn files_later_objects_over_scalars() {
    // Over a non-empty scalar (or array) a later object is dropped.
    let go = merged_files(
        "object over non-empty scalars",
        &[
            json!({"s": "x", "s0": "0", "n": 5, "neg": -1, "fl": 0.5, "t": true, "l": [1], "deep": {"v": "x"}}),
            json!({"s": {"k": 1}, "s0": {"k": 1}, "n": {"k": 1}, "neg": {"k": 1}, "fl": {"k": 1},
                   "t": {"k": 1}, "l": {"k": 1}, "deep": {"v": {"k": 1}}}),
        ],
    )
    .await;
    assert_eq!(
        go,
        json!({"s": "x", "s0": "0", "n": 5, "neg": -1, "fl": 0.5, "t": true, "l": [1], "deep": {"v": "x"}})
    );
    // Over an empty one ("", 0, 0.0, false, null, []) it replaces it.
    let go = merged_files(
        "object over empty scalars",
        &[
            json!({"s": "", "n": 0, "fz": 0.0, "f": false, "z": null, "l": [], "deep": {"v": 0}}),
            json!({"s": {"k": 1}, "n": {"k": 1}, "fz": {"k": 1}, "f": {"k": 1}, "z": {"k": 1},
                   "l": {"k": 1}, "deep": {"v": {"k": 1}}}),
        ],
    )
    .await;
    assert_eq!(
        go,
        json!({"s": {"k": 1}, "n": {"k": 1}, "fz": {"k": 1}, "f": {"k": 1}, "z": {"k": 1},
               "l": {"k": 1}, "deep": {"v": {"k": 1}}})
    );
}

#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn three_files_merge_in_order() {
    let go = merged_files(
        "three files",
        &[
            json!({"a": {"x": 1}, "b": "x", "c": {"x": 1}, "d": {"x": 1}, "e": 1}),
            json!({"a": 0, "b": {"y": 1}, "c": null, "d": {"y": 2}, "e": {"y": 1}}),
            json!({"a": {"y": 2}, "b": {"z": 1}, "c": {"y": 1}, "d": {"x": 3}, "e": ""}),
        ],
    )
    .await;
    assert_eq!(
        go,
        json!({"a": {"y": 2}, "b": "x", "c": {"y": 1}, "d": {"x": 3, "y": 2}, "e": ""})
    );
}

/// Of two clashing variables Go keeps the first unless it is empty as Go
/// types it (`""`, an integer 0, a `ParseBool` false): Go's env source
/// merges each variable in with `mergo.Map` without override, which fills
/// empty values. `E=""` then `E_X=1` is `e.x`, and of `N=0` and `n=5`
/// (one path) the later `5` wins. micro's `Env` does the same.
#[tokio::test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
async fn env_clash_over_an_empty_first_value() {
    let vars = &[
        ("E", ""),
        ("E_X", "1"),
        ("F", "false"),
        ("F_X", "1"),
        ("G", "F"),
        ("G_X", "1"),
        ("Z", "0"),
        ("Z_B", "2"),
        ("N", "0"),
        ("n", "5"),
        ("S", "x"),
        ("s", "y"),
        ("T", "00"),
        ("T_X", "1"),
    ];
    let (go, micro) = both(&[Src::Env], vars).await;
    assert_eq!(
        go,
        json!({
            "e": {"x": 1},
            "f": {"x": 1},
            "g": {"x": 1},
            "z": {"b": 2},
            "n": 5,
            "s": "x",
            "t": {"x": 1},
            "golang": {"protobuf": {"registration": {"conflict": "ignore"}}},
        })
    );
    assert_same_values("clash over an empty first value", &go, &micro);
}

/// The etcd leg: Go Micro v4's etcd config source (the peer's
/// `config-etcd`; no v5 plugin can be had) and micro's `Etcd` read the
/// same keys under a prefix of the test's own.
#[cfg(feature = "etcd")]
mod etcd {
    use super::*;
    use micro::config::Etcd;

    fn endpoint() -> String {
        std::env::var("MICRO_TEST_ETCD_ENDPOINTS")
            .expect("MICRO_TEST_ETCD_ENDPOINTS: run inside `netns-run --services etcd`")
            .split(',')
            .next()
            .unwrap()
            .to_owned()
    }

    /// Keys under a prefix of this test's own, removed when dropped.
    struct Keys {
        client: etcd_client::Client,
        prefix: String,
    }

    impl Keys {
        async fn put(kvs: &[(&str, Value)]) -> Keys {
            let prefix = format!("/gomicro-config-{}/", uuid::Uuid::new_v4().simple());
            let mut client = etcd_client::Client::connect([endpoint()], None).await.unwrap();
            for (key, value) in kvs {
                client
                    .put(format!("{prefix}{key}"), value.to_string(), None)
                    .await
                    .unwrap();
            }
            Keys { client, prefix }
        }

        async fn put_raw(&mut self, key: &str, value: &str) {
            self.client
                .put(format!("{}{key}", self.prefix), value, None)
                .await
                .unwrap();
        }

        async fn remove(mut self) {
            self.client
                .delete(
                    self.prefix.as_str(),
                    Some(etcd_client::DeleteOptions::new().with_prefix()),
                )
                .await
                .unwrap();
        }
    }

    fn go_args(prefix: &str, strip: bool) -> Vec<String> {
        let mut args = vec![
            "config-etcd".to_owned(),
            "--etcd".to_owned(),
            endpoint(),
            "--etcd-prefix".to_owned(),
            prefix.to_owned(),
        ];
        if strip {
            args.push("--etcd-strip".to_owned());
        }
        args
    }

    async fn micro_etcd(prefix: &str, strip: bool) -> Result<Arc<Snapshot>, micro::config::ConfigError> {
        let config = Config::builder()
            .source(Etcd::new().endpoints([endpoint()]).prefix(prefix).strip_prefix(strip))
            .load()
            .await?;
        let snapshot = config.snapshot();
        config.close();
        Ok(snapshot)
    }

    /// Both sides' view of the keys under `prefix`.
    async fn both_etcd(prefix: &str, strip: bool) -> (Value, Arc<Snapshot>) {
        let go = go_run(&go_args(prefix, strip), &environment(&[])).await;
        let micro = micro_etcd(prefix, strip).await.expect("micro reads the same keys");
        (go, micro)
    }

    /// Objects at one key, leaf values at nested keys, later keys setting
    /// inside (or replacing) what an earlier key set, and a whole-config
    /// object at a key of one segment (sorted first: Go's replaces the
    /// root, micro's merges into it, the same when it comes first).
    fn layout() -> Vec<(&'static str, Value)> {
        vec![
            (
                "_all",
                json!({"service": {"name": "svc", "tags": ["a", "b"]}, "debug": false}),
            ),
            ("app/db", json!({"host": "h", "port": 5432, "opts": {"ssl": true}})),
            ("app/db/port", json!(5433)),
            ("app/db/opts/timeout", json!("1s")),
            ("app/name", json!("orders")),
            ("app/ratio", json!(1.5)),
            ("app/list", json!([1, {"x": null}])),
            ("app/none", json!(null)),
            ("app/empty", json!({})),
            ("app/scalar", json!(1)),
            ("app/scalar/inner", json!(2)),
            ("app/tree", json!({"x": {"y": 1}})),
            ("app/tree/x", json!({"z": 2})),
            ("deep/a/b/c/d", json!("leaf")),
        ]
    }

    #[tokio::test]
    #[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO, and etcd: MICRO_TEST_ETCD_ENDPOINTS"]
    async fn etcd_keys_with_the_prefix_stripped() {
        let keys = Keys::put(&layout()).await;
        let (go, micro) = both_etcd(&keys.prefix, true).await;
        assert_eq!(
            go,
            json!({
                "service": {"name": "svc", "tags": ["a", "b"]},
                "debug": false,
                "app": {
                    "db": {"host": "h", "port": 5433, "opts": {"ssl": true, "timeout": "1s"}},
                    "name": "orders",
                    "ratio": 1.5,
                    "list": [1, {"x": null}],
                    "none": null,
                    "empty": {},
                    "scalar": {"inner": 2},
                    "tree": {"x": {"z": 2}},
                },
                "deep": {"a": {"b": {"c": {"d": "leaf"}}}},
            })
        );
        assert_eq!(micro.to_json(), go, "etcd, prefix stripped");
        assert_same_values("etcd, prefix stripped", &go, &micro);
        keys.remove().await;
    }

    #[tokio::test]
    #[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO, and etcd: MICRO_TEST_ETCD_ENDPOINTS"]
    async fn etcd_keys_with_the_prefix_kept() {
        let keys = Keys::put(&layout()).await;
        let (go, micro) = both_etcd(&keys.prefix, false).await;
        // The prefix's segment leads every path (Go Micro's default).
        let top = keys.prefix.trim_matches('/');
        assert_eq!(go[top]["app"]["db"]["port"], json!(5433));
        assert_eq!(go[top]["_all"]["service"]["name"], json!("svc"));
        assert_eq!(micro.to_json(), go, "etcd, prefix kept");
        assert_same_values("etcd, prefix kept", &go, &micro);
        keys.remove().await;
    }

    #[tokio::test]
    #[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO, and etcd: MICRO_TEST_ETCD_ENDPOINTS"]
    async fn etcd_value_that_is_not_json_fails_both() {
        let mut keys = Keys::put(&[("app/ok", json!(1))]).await;
        keys.put_raw("app/bad", "not json").await;
        let mut command = Command::new(peer_program());
        command
            .args(go_args(&keys.prefix, true))
            .env_clear()
            .env(PROTOBUF_POLICY.0, PROTOBUF_POLICY.1);
        let go = peer::output(command).await;
        let stdout = String::from_utf8_lossy(&go.stdout);
        assert!(!go.status.success(), "Go loaded a non-JSON value: {stdout}");
        assert!(stdout.starts_with("error "), "{stdout}");
        let err = micro_etcd(&keys.prefix, true).await.unwrap_err();
        assert!(err.to_string().contains("app/bad"), "{err}");
        keys.remove().await;
    }

    /// Where micro's `Etcd` departs from Go's on purpose (its doc lists
    /// these): proof that Go does what that doc says it does.
    #[tokio::test]
    #[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO, and etcd: MICRO_TEST_ETCD_ENDPOINTS"]
    async fn etcd_departures_are_as_documented() {
        // A one-segment object key after other keys: Go's replaces the
        // root, micro's merges into it; a one-segment scalar: Go drops it,
        // micro keeps it at its key.
        let keys = Keys::put(&[
            ("a/b", json!(1)),
            ("default", json!({"a": {"c": 2}, "d": true})),
            ("name", json!("svc")),
        ])
        .await;
        let (go, micro) = both_etcd(&keys.prefix, true).await;
        assert_eq!(go, json!({"a": {"c": 2}, "d": true}));
        assert_eq!(
            micro.to_json(),
            json!({"a": {"b": 1, "c": 2}, "d": true, "name": "svc"})
        );
        keys.remove().await;

        // No key under the prefix: Go fails the load, micro's is empty.
        let empty = format!("/gomicro-config-{}/", uuid::Uuid::new_v4().simple());
        let mut command = Command::new(peer_program());
        command
            .args(go_args(&empty, true))
            .env_clear()
            .env(PROTOBUF_POLICY.0, PROTOBUF_POLICY.1);
        let go = peer::output(command).await;
        let stdout = String::from_utf8_lossy(&go.stdout);
        assert!(!go.status.success() && stdout.contains("source not found"), "{stdout}");
        assert_eq!(micro_etcd(&empty, true).await.unwrap().to_json(), json!({}));
    }
}
