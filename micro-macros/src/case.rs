//! Go Micro's method names: Go methods are exported, so `greeting` is `Greeting`.

/// `snake_case` (or anything else) to `PascalCase`: each `_`-separated part
/// gets an upper-case first letter; the rest is kept.
pub fn pascal(ident: &str) -> String {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    let mut out = String::with_capacity(ident.len());
    for part in ident.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pascal;

    #[test]
    fn pascal_case() {
        assert_eq!(pascal("greeting"), "Greeting");
        assert_eq!(pascal("say_hello"), "SayHello");
        assert_eq!(pascal("get_url"), "GetUrl");
        assert_eq!(pascal("r#type"), "Type");
        assert_eq!(pascal("_private_call"), "PrivateCall");
        assert_eq!(pascal("getURL"), "GetURL");
    }
}
