//! `${VAR}` in config values: replaced by the variable's value, value by
//! value (never on the merged text, so a quote in a value cannot break the
//! config). `${VAR:-default}` gives `default` when the variable is unset
//! or empty; an unset variable without a default is `""`, as in Go Micro;
//! `$${` is a literal `${`.

use std::borrow::Cow;

/// `text` with every `${NAME}` replaced through `lookup`.
pub(crate) fn substitute<'a>(text: &'a str, lookup: &dyn Fn(&str) -> Option<String>) -> Cow<'a, str> {
    if !text.contains("${") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(escaped) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
            continue;
        }
        match tail
            .strip_prefix("${")
            .and_then(|body| body.find('}').map(|end| (&body[..end], &body[end + 1..])))
        {
            Some((inner, after)) => {
                let (name, default) = match inner.split_once(":-") {
                    Some((name, default)) => (name, Some(default)),
                    None => (inner, None),
                };
                if is_name(name) {
                    let value = lookup(name).filter(|v| !(v.is_empty() && default.is_some()));
                    out.push_str(&value.unwrap_or_else(|| default.unwrap_or_default().to_owned()));
                } else {
                    out.push_str(&tail[..tail.len() - after.len()]);
                }
                rest = after;
            }
            None => {
                out.push('$');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The names of the variables `text` refers to.
pub(crate) fn variables(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices("${").filter_map(|(at, _)| {
        let body = &text[at + 2..];
        let end = body.find(['}', ':'])?;
        Some(&body[..end]).filter(|name| is_name(name))
    })
}

/// Go Micro's variable names: `[A-Za-z0-9_]+`.
fn is_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".to_owned()),
            "QUOTE" => Some("a\"b\\c".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_values() {
        assert_eq!(substitute("postgres://${HOST}:5432", &vars), "postgres://db.local:5432");
        assert_eq!(substitute("${QUOTE}", &vars), "a\"b\\c");
        assert_eq!(substitute("[${UNSET}]", &vars), "[]");
        assert_eq!(substitute("${UNSET:-x}/${EMPTY:-y}/${HOST:-z}", &vars), "x/y/db.local");
        assert_eq!(
            substitute("$${HOST} $5 ${not a name} ${open", &vars),
            "${HOST} $5 ${not a name} ${open"
        );
        assert!(matches!(substitute("plain", &vars), Cow::Borrowed(_)));
    }
}
