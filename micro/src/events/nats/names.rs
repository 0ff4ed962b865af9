//! Topic and group names as JetStream takes them. Go Micro uses a topic as
//! its stream's name and a group as its consumer's, which JetStream
//! rejects when they hold `.`, `*`, `>`, `/`, `\` or white space; micro
//! writes such a character as `_` and its code in hex (`a.b` → `a_2Eb`), so
//! every name Go can use maps to itself and the rest to a legal name.

/// The stream holding `topic`.
pub(super) fn stream(topic: &str) -> String {
    escape(topic)
}

/// The durable consumer (and deliver group) of `group`.
pub(super) fn durable(group: &str) -> String {
    escape(group)
}

/// The subject events of `topic` are published on: the topic itself, as
/// Go Micro publishes, unless it is no literal subject (white space or a
/// wildcard token), then its stream's name.
pub(super) fn subject(topic: &str) -> String {
    let literal = !topic.is_empty()
        && !topic.chars().any(char::is_whitespace)
        && topic
            .split('.')
            .all(|token| !token.is_empty() && token != "*" && token != ">");
    if literal { topic.to_owned() } else { escape(topic) }
}

/// Where a group's events are pushed: fixed per stream and group, so two
/// members creating the group at once create the same consumer.
pub(super) fn deliver_subject(stream: &str, durable: &str) -> String {
    format!("_MICRO.events.{stream}.{durable}")
}

fn escape(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control() {
            let mut buffer = [0; 4];
            for byte in c.encode_utf8(&mut buffer).bytes() {
                escaped.push_str(&format!("_{byte:02X}"));
            }
        } else {
            escaped.push(c);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_go_can_use_are_kept_and_the_rest_mapped() {
        assert_eq!(stream("orders"), "orders");
        assert_eq!(durable("billing-v2"), "billing-v2");
        assert_eq!(stream("orders.created"), "orders_2Ecreated");
        assert_eq!(durable("a b>c*"), "a_20b_3Ec_2A");
        assert_eq!(subject("orders.created"), "orders.created");
        assert_eq!(subject("orders.*"), "orders_2E_2A");
        assert_eq!(subject("a b"), "a_20b");
        assert_eq!(subject("a..b"), "a_2E_2Eb");
    }
}
