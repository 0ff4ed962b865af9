//! The arguments of `#[micro::service(...)]`, `#[endpoint(...)]`,
//! `#[subscribe(...)]` and `#[consume(...)]`.
//!
//! Keys are an allow-list; an unknown or repeated key is an error that says
//! which keys exist.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Attribute, Ident, LitStr, Meta, Path};

use crate::errors::Errors;

/// `#[micro::service(name = "...", client = "...", crate = "...")]`.
#[derive(Default)]
pub struct ServiceArgs {
    /// The handler name on the wire.
    pub name: Option<LitStr>,
    /// The generated client's type name.
    pub client: Option<Ident>,
    /// The path of the `micro` crate.
    pub krate: Option<Path>,
}

const SERVICE_KEYS: &str = "`name`, `client`, `crate`";
const ENDPOINT_KEYS: &str = "`name`, `idempotent`";
const SUBSCRIBE_KEYS: &str = "`topic`, `queue`";
const CONSUME_KEYS: &str = "`topic`, `group`, `retry_limit`, `ack_wait`";

/// The arguments of `#[micro::service]`. A value of the right kind that says
/// something wrong is reported and parsing goes on, so every argument is
/// checked in one build.
pub fn service_args(args: TokenStream, errors: &mut Errors) -> ServiceArgs {
    let mut out = ServiceArgs::default();
    let mut problems = Vec::new();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            once(&meta, out.name.is_some())?;
            let lit = wire_name(&meta)?;
            out.name = Some(lit);
        } else if meta.path.is_ident("client") {
            once(&meta, out.client.is_some())?;
            let lit: LitStr = meta
                .value()?
                .parse()
                .map_err(|e| syn::Error::new(e.span(), "`client` takes a string, e.g. `client = \"GreeterClient\"`"))?;
            match lit.parse::<Ident>() {
                Ok(ident) => out.client = Some(ident),
                Err(_) => problems.push(syn::Error::new(
                    lit.span(),
                    "`client` names the generated type: write one identifier such as `client = \"GreeterClient\"`",
                )),
            }
        } else if meta.path.is_ident("crate") {
            once(&meta, out.krate.is_some())?;
            let lit: LitStr = meta
                .value()?
                .parse()
                .map_err(|e| syn::Error::new(e.span(), "`crate` takes a string, e.g. `crate = \"::my_micro\"`"))?;
            match lit.parse::<Path>() {
                Ok(path) => out.krate = Some(path),
                Err(_) => problems.push(syn::Error::new(
                    lit.span(),
                    "`crate` is the path of the `micro` crate as this crate names it: write it as `crate = \"::my_micro\"`",
                )),
            }
        } else {
            return Err(meta.error(format_args!(
                "unknown argument `{}` of #[micro::service]; expected one of: {SERVICE_KEYS}",
                path_text(&meta.path)
            )));
        }
        Ok(())
    });
    let result = parser.parse2(args);
    for problem in problems {
        errors.push(problem);
    }
    if let Err(e) = result {
        errors.push(e);
    }
    out
}

/// `#[endpoint]` or `#[endpoint(name = "...", idempotent)]`.
#[derive(Default)]
pub struct EndpointArgs {
    /// The method part of the wire name.
    pub name: Option<LitStr>,
    /// Whether calls may run twice safely.
    pub idempotent: bool,
}

pub fn endpoint_args(attr: &Attribute, errors: &mut Errors) -> EndpointArgs {
    let mut out = EndpointArgs::default();
    if let Meta::Path(_) = attr.meta {
        return out;
    }
    let mut seen_idempotent = false;
    let result = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("name") {
            once(&meta, out.name.is_some())?;
            out.name = Some(wire_name(&meta)?);
        } else if meta.path.is_ident("idempotent") {
            once(&meta, seen_idempotent)?;
            seen_idempotent = true;
            out.idempotent = true;
            if meta.input.peek(syn::Token![=]) {
                return Err(meta.error("`idempotent` takes no value: write `#[endpoint(idempotent)]`"));
            }
        } else {
            return Err(meta.error(format_args!(
                "unknown argument `{}` of #[endpoint]; expected one of: {ENDPOINT_KEYS}",
                path_text(&meta.path)
            )));
        }
        Ok(())
    });
    if let Err(e) = result {
        errors.push(e);
    }
    out
}

/// `#[subscribe(topic = "...", queue = "...")]`.
pub struct SubscribeArgs {
    /// The topic subscribed to.
    pub topic: LitStr,
    /// The queue group, if any.
    pub queue: Option<LitStr>,
}

/// The arguments of `#[subscribe]`; `None` when they are unusable (reported).
pub fn subscribe_args(attr: &Attribute, errors: &mut Errors) -> Option<SubscribeArgs> {
    let mut queue = None;
    let topic = topic_args(
        attr,
        errors,
        Topical {
            attribute: "subscribe",
            keys: SUBSCRIBE_KEYS,
            example: "user.created",
            missing: "a subscriber names its topic: write `#[subscribe(topic = \"user.created\")]`",
        },
        |meta| {
            if !meta.path.is_ident("queue") {
                return Ok(false);
            }
            once(meta, queue.is_some())?;
            queue = Some(word(meta, "queue", "audit")?);
            Ok(true)
        },
    )?;
    Some(SubscribeArgs { topic, queue })
}

/// `#[consume(topic = "...", group = "...", retry_limit = 5, ack_wait = "30s")]`.
pub struct ConsumeArgs {
    /// The topic consumed.
    pub topic: LitStr,
    /// The group, if any.
    pub group: Option<LitStr>,
    /// Redeliveries before the dead-letter topic.
    pub retry_limit: Option<u32>,
    /// The ack wait in milliseconds.
    pub ack_wait_ms: Option<u64>,
}

/// The arguments of `#[consume]`; `None` when they are unusable (reported).
pub fn consume_args(attr: &Attribute, errors: &mut Errors) -> Option<ConsumeArgs> {
    let mut group = None;
    let mut retry_limit = None;
    let mut ack_wait_ms = None;
    let topic = topic_args(
        attr,
        errors,
        Topical {
            attribute: "consume",
            keys: CONSUME_KEYS,
            example: "orders",
            missing: "a consumer names its topic: write `#[consume(topic = \"orders\", group = \"billing\")]`",
        },
        |meta| {
            if meta.path.is_ident("group") {
                once(meta, group.is_some())?;
                group = Some(word(meta, "group", "billing")?);
            } else if meta.path.is_ident("retry_limit") {
                once(meta, retry_limit.is_some())?;
                let lit: syn::LitInt = meta.value()?.parse().map_err(|e| {
                    syn::Error::new(e.span(), "`retry_limit` takes a whole number, e.g. `retry_limit = 5`")
                })?;
                retry_limit = Some(lit.base10_parse::<u32>()?);
            } else if meta.path.is_ident("ack_wait") {
                once(meta, ack_wait_ms.is_some())?;
                let lit: LitStr = meta
                    .value()?
                    .parse()
                    .map_err(|e| syn::Error::new(e.span(), "`ack_wait` takes a duration, e.g. `ack_wait = \"30s\"`"))?;
                ack_wait_ms = Some(duration_ms(&lit)?);
            } else {
                return Ok(false);
            }
            Ok(true)
        },
    )?;
    Some(ConsumeArgs {
        topic,
        group,
        retry_limit,
        ack_wait_ms,
    })
}

/// What differs between the attributes that name a topic.
struct Topical {
    attribute: &'static str,
    keys: &'static str,
    example: &'static str,
    missing: &'static str,
}

/// Parses an attribute that names a topic: `topic` here, every other
/// argument by `other` (which says whether it knew it); the topic is
/// required. `None` when the arguments are unusable (reported).
fn topic_args(
    attr: &Attribute,
    errors: &mut Errors,
    what: Topical,
    mut other: impl FnMut(&ParseNestedMeta<'_>) -> syn::Result<bool>,
) -> Option<LitStr> {
    let mut topic = None;
    let result = match &attr.meta {
        Meta::Path(_) => Ok(()),
        _ => attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("topic") {
                once(&meta, topic.is_some())?;
                topic = Some(word(&meta, "topic", what.example)?);
            } else if !other(&meta)? {
                return Err(meta.error(format_args!(
                    "unknown argument `{}` of #[{}]; expected one of: {}",
                    path_text(&meta.path),
                    what.attribute,
                    what.keys
                )));
            }
            Ok(())
        }),
    };
    if let Err(e) = result {
        errors.push(e);
        return None;
    }
    if topic.is_none() {
        errors.spanned(attr, what.missing);
    }
    topic
}

/// A positive duration written as a number and a unit: `500ms`, `30s`,
/// `2m`, `1h`.
fn duration_ms(lit: &LitStr) -> syn::Result<u64> {
    let text = lit.value();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "ms" => Some(1),
        "s" => Some(1_000),
        "m" => Some(60_000),
        "h" => Some(3_600_000),
        _ => None,
    };
    match (number.parse::<u64>(), scale) {
        (Ok(n), Some(scale)) if n > 0 => n
            .checked_mul(scale)
            .ok_or_else(|| syn::Error::new(lit.span(), "the duration is too long")),
        _ => Err(syn::Error::new(
            lit.span(),
            "an ack wait is a positive whole number and a unit (`ms`, `s`, `m`, `h`), e.g. `ack_wait = \"30s\"`",
        )),
    }
}

/// A topic or queue name: a non-empty string without white space.
fn word(meta: &ParseNestedMeta<'_>, key: &str, example: &str) -> syn::Result<LitStr> {
    let lit: LitStr = meta.value()?.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("`{key}` takes a string, e.g. `{key} = \"{example}\"`"),
        )
    })?;
    let value = lit.value();
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(syn::Error::new(
            lit.span(),
            format!("a {key} is a non-empty name without spaces, e.g. `{key} = \"{example}\"`"),
        ));
    }
    Ok(lit)
}

fn once(meta: &ParseNestedMeta<'_>, seen: bool) -> syn::Result<()> {
    if seen {
        return Err(meta.error(format_args!("`{}` is given twice; keep one", path_text(&meta.path))));
    }
    Ok(())
}

/// A wire name: a non-empty string without dots or white space.
fn wire_name(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    let value = meta.value()?;
    let lit: LitStr = value
        .parse()
        .map_err(|e| syn::Error::new(e.span(), "`name` takes a string, e.g. `name = \"Greeting\"`"))?;
    let value = lit.value();
    if value.is_empty() || value.contains('.') || value.chars().any(char::is_whitespace) {
        return Err(syn::Error::new(
            lit.span(),
            "a wire name is one word without dots or spaces, e.g. `name = \"Greeting\"`",
        ));
    }
    Ok(lit)
}

fn path_text(path: &Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// Whether `attr` is one of ours, `#[endpoint]` or `#[micro::endpoint]`,
/// matched by its last path segment.
pub fn is_helper(attr: &Attribute, name: &str) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == name)
}
