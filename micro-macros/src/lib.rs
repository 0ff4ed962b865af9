//! Procedural macros of [micro](https://docs.rs/micro): `#[micro::service]`,
//! `#[endpoint]` and `#[subscribe]`. Use them through the `micro` crate, which re-exports
//! them; the generated code depends on `micro` alone.
//!
//! The macro runs in four stages: `attr` parses attribute arguments,
//! `model` turns the `impl` block into one model entry per endpoint (reading
//! each signature with `signature`, and types with `types`), `validate`
//! checks what spans several endpoints, and `expand` writes the code. Every
//! stage reports into one `errors::Errors`, so a build shows every mistake
//! of an `impl` block at once; an endpoint with a mistake is still
//! generated as a stub, so the mistake is reported once, not again at each
//! use.

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod attr;
mod case;
mod docs;
mod errors;
mod expand;
mod model;
mod read;
mod signature;
mod types;
mod validate;

use proc_macro::TokenStream;

/// Turns an inherent `impl` block into a micro service.
///
/// Methods marked `#[endpoint]` become RPC endpoints named `Type.Method`
/// (`greeting` on `Helloworld` is `Helloworld.Greeting`). Each is an
/// `async fn` taking `&self`, optionally `ctx: &Context`, and one request
/// value, and returning `Result<T, E>` with `T: Serialize` and
/// `E: Into<micro::Error>`.
///
/// Methods marked `#[subscribe(topic = "..")]` receive the messages
/// published to a topic (see [`macro@subscribe`]).
///
/// Generated beside the block: the server dispatch (`impl micro::server::Handler`),
/// a typed client `<Type>Client`, and a descriptor of the endpoints for the
/// registry.
///
/// Arguments: `name = "Wire"` (the handler name on the wire), `client = "Ident"`
/// (the client type's name), `crate = "path"` (where `micro` is, if renamed).
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::service(args.into(), input.into()).into()
}

/// Marks a method of a `#[micro::service]` impl block as a subscriber.
///
/// `#[subscribe(topic = "user.created")]` calls the method with every
/// message published to the topic; `queue = "audit"` makes the service one
/// member of a queue group, in which each message goes to one member. The
/// method is an `async fn` taking `&self`, optionally `ctx: &Context`, and
/// the message value (`DeserializeOwned`, decoded by the message's
/// `Content-Type`), and returning `Result<(), E>` with `E: Into<micro::Error>`.
/// Used anywhere else it is an error.
#[proc_macro_attribute]
pub fn subscribe(_args: TokenStream, input: TokenStream) -> TokenStream {
    expand::misplaced("subscribe", input.into()).into()
}

/// Marks a method of a `#[micro::service]` impl block as an event
/// consumer (`micro::events`).
///
/// `#[consume(topic = "orders", group = "billing", retry_limit = 5,
/// ack_wait = "30s")]` calls the method with every event of the topic the
/// group is given (each event goes to one member of the group): `Ok` acks
/// it, an error or a panic nacks it, to be delivered again with backoff, and
/// after `retry_limit` redeliveries it goes to the dead-letter topic. The
/// method is an `async fn` taking `&self`, optionally `ctx: &Context` (the
/// event's metadata) and the payload value (`DeserializeOwned`, JSON), and
/// returning `Result<(), E>` with `E: Into<micro::Error>`. Used anywhere
/// else it is an error.
#[proc_macro_attribute]
pub fn consume(_args: TokenStream, input: TokenStream) -> TokenStream {
    expand::misplaced("consume", input.into()).into()
}

/// Marks a method of a `#[micro::service]` impl block as an endpoint.
///
/// Arguments: `name = "Method"` (the method part of the wire name) and
/// `idempotent` (calls may be retried after a transport failure). Used
/// anywhere else it is an error.
#[proc_macro_attribute]
pub fn endpoint(_args: TokenStream, input: TokenStream) -> TokenStream {
    expand::misplaced("endpoint", input.into()).into()
}
