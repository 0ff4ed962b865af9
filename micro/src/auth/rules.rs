//! Go Micro's rule check (`auth/rules.go`) and an in-memory rule store.

use std::sync::{PoisonError, RwLock};

use super::account::{Access, Account, Resource, Rule, SCOPE_ACCOUNT, SCOPE_PUBLIC};

/// Access to a resource is denied: a rule denied it, or no rule granted it.
/// The text is Go Micro's `auth.ErrForbidden`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, thiserror::Error)]
#[error("resource forbidden")]
pub struct Denied;

/// Whether `account` (`None`: no account) may access `resource` under
/// `rules`: Go Micro's `auth.Verify`.
///
/// 1. A rule applies to the resource when its type is `*` or the
///    resource's type, its name `*` or the resource's name (no other
///    globs), and its endpoint `*`, the resource's endpoint, or, when the
///    endpoint has a `/`, one of its prefixes followed by `/*`: `/foo/bar`
///    is matched by `/*`, `/foo/*` and `/foo/bar/*`. An RPC endpoint
///    `Foo.Bar` has no `Foo.*`.
/// 2. The rules that apply are taken by priority, highest first, rules of
///    one priority in their order in `rules`.
/// 3. The first rule that is for this account decides, granting or
///    denying: a public rule (scope `""`) is for everyone; without an
///    account, no other rule is; scope `*` is for any account; any other
///    scope is for the accounts having it.
/// 4. When no rule decides, access is denied.
///
/// Types, names, endpoints and account scopes are compared ignoring case,
/// like Go's `strings.EqualFold`: character by character, two characters
/// being equal when they are, or their lower cases are, or their upper
/// cases are (so `ſ` equals `s` and `K`, the Kelvin sign, equals `k`, as in
/// Go). The rule scopes `""` and `*` are compared exactly, as in Go.
pub fn verify(rules: &[Rule], account: Option<&Account>, resource: &Resource) -> Result<(), Denied> {
    let endpoints = endpoint_candidates(&resource.endpoint);
    let mut applying: Vec<&Rule> = rules
        .iter()
        .filter(|rule| {
            matches_or_star(&rule.resource.kind, &resource.kind)
                && matches_or_star(&rule.resource.name, &resource.name)
                && endpoints.iter().any(|e| fold_eq(e, &rule.resource.endpoint))
        })
        .collect();
    // `sort_by_key` is stable: ties keep the order of `rules`.
    applying.sort_by_key(|rule| std::cmp::Reverse(rule.priority));

    for rule in applying {
        let for_account = if rule.scope == SCOPE_PUBLIC {
            true
        } else if let Some(account) = account {
            rule.scope == SCOPE_ACCOUNT || account.scopes.iter().any(|s| fold_eq(s, &rule.scope))
        } else {
            false
        };
        if for_account {
            return match rule.access {
                Access::Granted => Ok(()),
                Access::Denied => Err(Denied),
            };
        }
    }
    Err(Denied)
}

/// The endpoints a rule may name to apply to `endpoint`: `*`, the endpoint,
/// and, when it has a `/`, each prefix of its `/`-separated parts followed
/// by `/*` (Go joins `comps[0:i]` for every `i` from 1 to the number of
/// parts, so `/foo/bar` gives `/*`, `/foo/*` and `/foo/bar/*`).
fn endpoint_candidates(endpoint: &str) -> Vec<String> {
    let mut candidates = vec!["*".to_owned(), endpoint.to_owned()];
    if endpoint.contains('/') {
        let mut prefix = String::new();
        for (i, part) in endpoint.split('/').enumerate() {
            if i > 0 {
                prefix.push('/');
            }
            prefix.push_str(part);
            candidates.push(format!("{prefix}/*"));
        }
    }
    candidates
}

/// Whether a rule's `pattern` is `*` or `value`, ignoring case.
fn matches_or_star(pattern: &str, value: &str) -> bool {
    pattern == "*" || fold_eq(pattern, value)
}

/// `a` and `b` equal ignoring case, close to Go's `strings.EqualFold`
/// (simple Unicode case folding, character by character).
fn fold_eq(a: &str, b: &str) -> bool {
    if a.len() == b.len() && a.eq_ignore_ascii_case(b) {
        return true;
    }
    let mut xs = a.chars();
    let mut ys = b.chars();
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if char_fold_eq(x, y) => continue,
            _ => return false,
        }
    }
}

/// Two characters equal ignoring case: equal, or of one lower case, or of
/// one upper case (single-character mappings only).
fn char_fold_eq(x: char, y: char) -> bool {
    if x == y {
        return true;
    }
    fn single(mut mapped: impl Iterator<Item = char>) -> Option<char> {
        let first = mapped.next()?;
        mapped.next().is_none().then_some(first)
    }
    let lower = |c: char| single(c.to_lowercase());
    let upper = |c: char| single(c.to_uppercase());
    matches!((lower(x), lower(y)), (Some(a), Some(b)) if a == b)
        || matches!((upper(x), upper(y)), (Some(a), Some(b)) if a == b)
}

/// Rules in memory, to grant, revoke, list and verify with: Go Micro's
/// `auth.Rules` without a provider behind it. Thread-safe; rules are kept
/// in the order granted, which orders rules of one priority.
#[derive(Debug, Default)]
pub struct Rules {
    rules: RwLock<Vec<Rule>>,
}

impl Rules {
    /// No rules: every request is denied until a rule grants it.
    pub fn new() -> Self {
        Rules::default()
    }

    /// Adds `rule`, after those already granted. A rule with the ID of one
    /// already there is added too; [`Rules::revoke`] removes both.
    pub fn grant(&self, rule: Rule) {
        self.rules.write().unwrap_or_else(PoisonError::into_inner).push(rule);
    }

    /// Removes the rules whose ID is `id`; whether there were any.
    pub fn revoke(&self, id: &str) -> bool {
        let mut rules = self.rules.write().unwrap_or_else(PoisonError::into_inner);
        let before = rules.len();
        rules.retain(|rule| rule.id != id);
        rules.len() != before
    }

    /// The rules, in the order granted.
    pub fn list(&self) -> Vec<Rule> {
        self.rules.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// [`verify`] with these rules.
    pub fn verify(&self, account: Option<&Account>, resource: &Resource) -> Result<(), Denied> {
        let rules = self.rules.read().unwrap_or_else(PoisonError::into_inner);
        verify(&rules, account, resource)
    }
}
