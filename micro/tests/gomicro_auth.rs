//! `micro::auth::verify` judged by real Go Micro: the Go peer
//! (`tests/gomicro/`, `auth-verify`) runs go-micro.dev/v5 v5.9.0's
//! `auth.Verify` on every case of `data/auth_rules.json` (Go Micro's own
//! `rules_test.go` and micro's cases) and on generated ones (priorities,
//! ties, case differences, Unicode folding, path wildcards, `Foo.*`), and
//! micro must give the same verdict on each. Ignored unless
//! `MICRO_TEST_GOMICRO` names the built peer; needs no network.

mod peer;

use std::io::Write;
use std::process::{Command, Stdio};

use micro::auth::{Access, Account, Resource, Rule, verify};
use serde::Deserialize;
use serde_json::json;

use peer::peer_program;

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    rules: Vec<Rule>,
    account: Option<Account>,
    resource: Resource,
}

fn table() -> Vec<Case> {
    serde_json::from_str(include_str!("data/auth_rules.json")).unwrap()
}

/// Pieces the generated cases are made of: the values of each field,
/// chosen so that matches, near misses and case differences are common.
const TYPES: &[&str] = &["*", "service", "SERVICE", "web", "Servi\u{17f}e"];
const NAMES: &[&str] = &[
    "*",
    "go.micro.service.foo",
    "GO.MICRO.SERVICE.FOO",
    "go.micro.*",
    "other",
];
const ENDPOINTS: &[&str] = &[
    "*",
    "Foo.Bar",
    "foo.bar",
    "Foo.*",
    "/foo/bar",
    "/FOO/*",
    "/foo/*",
    "/*",
    "/foo/bar/*",
    "/bar/*",
    "foo/*",
    "",
    "/",
    "//*",
    "/foo/bar/baz/*",
    "\u{212a}elvin",
];
const RESOURCE_ENDPOINTS: &[&str] = &[
    "Foo.Bar",
    "/foo/bar",
    "/FOO/BAR",
    "/foo/bar/",
    "",
    "/",
    "foo/bar",
    "a//b",
    "kelvin",
    "Foo.Baz",
];
const SCOPES: &[&str] = &[
    "",
    "*",
    "admin",
    "ADMIN",
    "user",
    "\u{3c3}cope",
    "\u{3a3}COPE",
    "\u{3c2}cope",
];

fn pick<'a>(rng: &mut fastrand::Rng, from: &[&'a str]) -> &'a str {
    from[rng.usize(..from.len())]
}

/// Random cases, the same every run.
fn generated(count: usize) -> Vec<Case> {
    let mut rng = fastrand::Rng::with_seed(0x006d_6963_726f);
    (0..count)
        .map(|i| {
            let rules = (0..rng.usize(0..6))
                .map(|r| Rule {
                    resource: Resource::new(pick(&mut rng, TYPES), pick(&mut rng, NAMES), pick(&mut rng, ENDPOINTS)),
                    id: format!("r{r}"),
                    scope: pick(&mut rng, SCOPES).into(),
                    access: if rng.bool() { Access::Granted } else { Access::Denied },
                    // Few priorities, so ties are common.
                    priority: rng.i32(-2..=2),
                })
                .collect();
            let account = rng.bool().then(|| Account {
                id: "acc".into(),
                scopes: (0..rng.usize(0..3))
                    .map(|_| pick(&mut rng, SCOPES).to_owned())
                    .collect(),
                ..Account::default()
            });
            let resource = Resource::new(
                pick(&mut rng, &TYPES[1..]),
                pick(&mut rng, &["go.micro.service.foo", "Go.Micro.Service.Foo", "other"]),
                pick(&mut rng, RESOURCE_ENDPOINTS),
            );
            Case {
                name: format!("generated/{i}"),
                rules,
                account,
                resource,
            }
        })
        .collect()
}

/// Go Micro's verdicts on `cases`, one `allow` or `forbidden` each.
fn go_verdicts(cases: &[Case]) -> Vec<String> {
    let input: Vec<_> = cases
        .iter()
        .map(|c| json!({"rules": c.rules, "account": c.account, "resource": c.resource}))
        .collect();
    let mut child = Command::new(peer_program())
        .arg("auth-verify")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Go Micro peer");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&serde_json::to_vec(&input).unwrap()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the Go peer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn same_verdicts_as_go(cases: Vec<Case>) {
    let go = go_verdicts(&cases);
    assert_eq!(go.len(), cases.len(), "one verdict per case: {go:?}");
    let mut disagreements = Vec::new();
    for (case, go) in cases.iter().zip(&go) {
        let micro = match verify(&case.rules, case.account.as_ref(), &case.resource) {
            Ok(()) => "allow",
            Err(_) => "forbidden",
        };
        if micro != go {
            disagreements.push(format!("{}: micro {micro}, Go {go}: {case:?}", case.name));
        }
    }
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}

#[test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
fn table_verdicts_match_go_micro() {
    same_verdicts_as_go(table());
}

#[test]
#[ignore = "needs the Go Micro peer: MICRO_TEST_GOMICRO"]
fn generated_verdicts_match_go_micro() {
    let cases = generated(5000);
    let allowed = cases
        .iter()
        .filter(|c| verify(&c.rules, c.account.as_ref(), &c.resource).is_ok())
        .count();
    assert!(
        allowed > 50 && allowed < 4950,
        "both verdicts are exercised: {allowed} allowed"
    );
    same_verdicts_as_go(cases);
}
