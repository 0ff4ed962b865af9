//! `micro::auth`: Go Micro's `auth/rules_test.go` (v5.9.0) as data, plus
//! micro's own cases (names starting `micro/`), in `data/auth_rules.json`;
//! the `Rules` store; and the JSON of the auth types, against literals
//! shaped as Go's `encoding/json` writes them.

use micro::auth::{
    Access, Account, BEARER_SCHEME, Denied, Resource, Rule, Rules, SCOPE_ACCOUNT, SCOPE_PUBLIC, Token, verify,
};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An RFC 3339 time.
fn at(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339).unwrap()
}

/// One case of the table: rules, an account or none, a resource, and
/// whether Go Micro allows it.
#[derive(Debug, Deserialize)]
pub struct Case {
    name: String,
    rules: Vec<Rule>,
    account: Option<Account>,
    resource: Resource,
    allow: bool,
}

fn table() -> Vec<Case> {
    serde_json::from_str(include_str!("data/auth_rules.json")).unwrap()
}

#[test]
fn go_micro_rules_table() {
    let cases = table();
    assert!(cases.len() >= 18, "the Go table has 18 cases");
    let mut wrong = Vec::new();
    for case in &cases {
        let verdict = verify(&case.rules, case.account.as_ref(), &case.resource);
        if verdict.is_ok() != case.allow {
            wrong.push(format!("{}: {:?}, want allow={}", case.name, verdict, case.allow));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn rules_store_verifies_like_verify() {
    for case in table() {
        let store = Rules::new();
        for rule in &case.rules {
            store.grant(rule.clone());
        }
        assert_eq!(store.list(), case.rules, "{}", case.name);
        assert_eq!(
            store.verify(case.account.as_ref(), &case.resource).is_ok(),
            case.allow,
            "{}",
            case.name
        );
    }
}

fn rule(id: &str, scope: &str, access: Access, priority: i32) -> Rule {
    Rule {
        resource: Resource::new("*", "*", "*"),
        id: id.into(),
        scope: scope.into(),
        access,
        priority,
    }
}

#[test]
fn rules_store_grant_revoke_list() {
    let rules = Rules::new();
    let resource = Resource::new("service", "greeter", "Greeter.Hello");
    assert_eq!(rules.verify(None, &resource), Err(Denied), "no rules: default deny");
    rules.grant(rule("public", SCOPE_PUBLIC, Access::Granted, 0));
    rules.grant(rule("deny-all", SCOPE_PUBLIC, Access::Denied, 0));
    assert_eq!(rules.verify(None, &resource), Ok(()), "ties: first granted decides");
    rules.grant(rule("deny-high", SCOPE_PUBLIC, Access::Denied, 10));
    assert_eq!(rules.verify(None, &resource), Err(Denied));
    let ids: Vec<String> = rules.list().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["public", "deny-all", "deny-high"]);
    assert!(rules.revoke("deny-high"));
    assert!(!rules.revoke("deny-high"));
    assert_eq!(rules.verify(None, &resource), Ok(()));
    assert!(rules.revoke("public"));
    assert_eq!(rules.verify(None, &resource), Err(Denied));
}

#[test]
fn rules_store_is_shared_across_threads() {
    let rules = std::sync::Arc::new(Rules::new());
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let rules = rules.clone();
            std::thread::spawn(move || rules.grant(rule(&i.to_string(), SCOPE_ACCOUNT, Access::Granted, i)))
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(rules.list().len(), 8);
    let account = Account::default();
    assert_eq!(rules.verify(Some(&account), &Resource::new("a", "b", "c")), Ok(()));
}

#[test]
fn denied_is_go_err_forbidden() {
    assert_eq!(Denied.to_string(), "resource forbidden");
    assert_eq!(SCOPE_PUBLIC, "");
    assert_eq!(SCOPE_ACCOUNT, "*");
    assert_eq!(BEARER_SCHEME, "Bearer ");
}

#[test]
fn unicode_case_is_folded_like_go() {
    // Go's strings.EqualFold: ſ (long s) ~ s, K (Kelvin) ~ k, ς ~ σ ~ Σ.
    let account = Account {
        scopes: vec!["ſcope".into()],
        ..Account::default()
    };
    let mut rule = rule("", "SCOPE", Access::Granted, 0);
    rule.resource = Resource::new("σervice", "Kv", "*");
    let resource = Resource::new("ΣERVICE", "kV", "X");
    assert_eq!(verify(&[rule], Some(&account), &resource), Ok(()));
}

/// `go` (JSON as Go writes it, compact, in Go's field order) read, then
/// written back byte for byte, then read again to the same value.
fn round_trip<T>(go: &str) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let value: T = serde_json::from_str(go).unwrap();
    let written = serde_json::to_string(&value).unwrap();
    assert_eq!(written, go);
    let back: T = serde_json::from_str(&written).unwrap();
    assert_eq!(back, value);
    value
}

#[test]
fn account_json_is_go_micro() {
    // What Go's encoding/json writes for auth.Account (an empty
    // secret micro leaves out; see the next test).
    let go = r#"{"metadata":{"a":"1","b":"2"},"id":"alice@example.com","type":"user","issuer":"micro","secret":"s3cret","scopes":["admin","user"]}"#;
    let account: Account = round_trip(go);
    assert_eq!(account.kind, "user");
    assert_eq!(account.scopes, ["admin", "user"]);
    assert!(!format!("{account:?}").contains("s3cret"), "Debug hides the secret");
}

#[test]
fn account_json_reads_go_nil_and_omits_empty_secret() {
    // Go's zero Account: nil map and slice are null, the secret "".
    let go = r#"{"metadata":null,"id":"","type":"","issuer":"","secret":"","scopes":null}"#;
    let account: Account = serde_json::from_str(go).unwrap();
    assert_eq!(account, Account::default());
    assert_eq!(
        serde_json::to_string(&account).unwrap(),
        r#"{"metadata":{},"id":"","type":"","issuer":"","scopes":[]}"#
    );
    let missing: Account = serde_json::from_str("{}").unwrap();
    assert_eq!(missing, Account::default());
}

#[test]
fn token_json_is_go_micro() {
    let go = r#"{"created":"2024-05-06T07:08:09.123456789Z","expiry":"2024-05-06T08:08:09+02:00","access_token":"access-abc","refresh_token":"refresh-xyz"}"#;
    let token: Token = round_trip(go);
    assert_eq!(token.created, at("2024-05-06T07:08:09.123456789Z"));
    assert_eq!(token.expiry, at("2024-05-06T06:08:09Z"));
    let debug = format!("{token:?}");
    assert!(
        !debug.contains("access-abc") && !debug.contains("refresh-xyz"),
        "{debug}"
    );
    // Go's RFC3339Nano trims trailing zeros of the fraction.
    let token = Token {
        created: at("2024-01-02T03:04:05.5Z"),
        ..Token::default()
    };
    let text = serde_json::to_value(&token).unwrap();
    assert_eq!(text["created"], "2024-01-02T03:04:05.5Z");
}

#[test]
fn token_default_is_go_zero_and_expired() {
    let token = Token::default();
    assert_eq!(
        serde_json::to_string(&token).unwrap(),
        r#"{"created":"0001-01-01T00:00:00Z","expiry":"0001-01-01T00:00:00Z","access_token":"","refresh_token":""}"#
    );
    assert!(token.expired());
    let read: Token = serde_json::from_str(
        r#"{"created":"0001-01-01T00:00:00Z","expiry":"0001-01-01T00:00:00Z","access_token":"","refresh_token":""}"#,
    )
    .unwrap();
    assert_eq!(read, token);
}

#[test]
fn token_expiry_compares_whole_seconds() {
    let now = at("2024-01-01T00:00:10.900Z");
    let expired = |expiry: OffsetDateTime| {
        Token {
            expiry,
            ..Token::default()
        }
        .expired_at(now)
    };
    assert!(
        !expired(at("2024-01-01T00:00:10.000Z")),
        "same second: not expired (Go)"
    );
    assert!(expired(at("2024-01-01T00:00:09.999Z")));
    assert!(!expired(at("2024-01-01T00:00:11Z")));
    let future = Token {
        expiry: OffsetDateTime::now_utc() + time::Duration::hours(1),
        ..Token::default()
    };
    assert!(!future.expired());
}

#[test]
fn resource_json_is_go_micro() {
    let resource: Resource = round_trip(r#"{"name":"go.micro.service.foo","type":"service","endpoint":"Foo.Bar"}"#);
    assert_eq!(resource, Resource::new("service", "go.micro.service.foo", "Foo.Bar"));
}

#[test]
fn rule_json_is_go_field_names() {
    // encoding/json of a tagless auth.Rule: exported names, declaration order.
    let go =
        r#"{"Resource":{"name":"*","type":"*","endpoint":"/foo/*"},"ID":"web","Scope":"*","Access":1,"Priority":-3}"#;
    let rule: Rule = round_trip(go);
    assert_eq!(rule.access, Access::Denied);
    assert_eq!(rule.priority, -3);
    // Go reads field names in any case; micro takes the lower-case ones too.
    let lower: Rule = serde_json::from_str(
        r#"{"resource":{"name":"*","type":"*","endpoint":"/foo/*"},"id":"web","scope":"*","access":1,"priority":-3}"#,
    )
    .unwrap();
    assert_eq!(lower, rule);
    // An unset Access grants.
    let unset: Rule = serde_json::from_str(r#"{"Resource":{"name":"*","type":"*","endpoint":"*"}}"#).unwrap();
    assert_eq!(unset.access, Access::Granted);
    // Go would take any int; micro refuses what is neither 0 nor 1.
    assert!(serde_json::from_str::<Rule>(r#"{"Resource":{},"Access":2}"#).is_err());
}
