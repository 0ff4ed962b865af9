//! What the macro reads from a type as written: stream halves, the context,
//! the halves of a `Result`, `Self`, and whether a type can be named
//! outside the impl block.
//!
//! The macro sees tokens, not types, so it goes by the last path segment
//! (`Sender`, `Context`, `Result`), as rustc's own lints do for well-known
//! names; the spanned type checks then catch what the names got wrong.

use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{GenericArgument, PathArguments, Type};

/// How a parameter takes part in a call.
pub enum Param<'a> {
    /// A request value.
    Value(&'a Type),
    /// `Sender<T>`: responses go out.
    Sender(&'a Type),
    /// `Receiver<T>`: requests come in.
    Receiver(&'a Type),
    /// `Stream<In, Out>`: both ways.
    Stream(&'a Type, &'a Type),
}

/// The last segment of a plain path type, with its generic arguments.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

/// The type arguments of a path segment (`<A, B>`), lifetimes skipped.
fn type_args(segment: &syn::PathSegment) -> Vec<&Type> {
    match &segment.arguments {
        PathArguments::AngleBracketed(args) => args
            .args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A stream half by the last segment of its type; other types are values.
/// Returns what the parameter is (`None` when it cannot be told) and the
/// problem with it, if any.
pub fn classify(ty: &Type) -> (Option<Param<'_>>, Option<&'static str>) {
    if let Type::Reference(r) = ty
        && let Some(segment) = last_segment(&r.elem)
        && matches!(segment.ident.to_string().as_str(), "Sender" | "Receiver" | "Stream")
    {
        let (param, problem) = classify(&r.elem);
        return (
            param,
            problem.or(Some("take the stream by value: it belongs to this call")),
        );
    }
    let Some(segment) = last_segment(ty) else {
        return (Some(Param::Value(ty)), None);
    };
    match (segment.ident.to_string().as_str(), type_args(segment).as_slice()) {
        ("Sender", [t]) => (Some(Param::Sender(t)), None),
        ("Receiver", [t]) => (Some(Param::Receiver(t)), None),
        ("Stream", [i, o]) => (Some(Param::Stream(i, o)), None),
        ("Sender", _) => (None, Some("name the message type of the sender: `Sender<Response>`")),
        ("Receiver", _) => (None, Some("name the message type of the receiver: `Receiver<Request>`")),
        ("Stream", _) => (
            None,
            Some("name the message types of the stream: `Stream<Request, Response>`"),
        ),
        _ => (Some(Param::Value(ty)), None),
    }
}

/// `()`
pub fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

/// `&Context`, `&micro::Context`, `&'a Context` ...
pub fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => r.mutability.is_none() && is_context_by_value(&r.elem),
        _ => false,
    }
}

/// `Context`, `micro::Context` ...
pub fn is_context_by_value(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == "Context")
}

/// The type arguments of `Result<..>` as written, or `None` for another type.
fn result_args(ty: &Type) -> Option<Vec<&Type>> {
    let last = last_segment(ty)?;
    (last.ident == "Result").then(|| type_args(last))
}

/// `T` of `Result<T>` or `Result<T, E>`, as written.
pub fn result_ok_type(ty: &Type) -> Option<Type> {
    result_args(ty)?.first().map(|t| (*t).clone())
}

/// `E` of `Result<T, E>` when it is written out (`micro::Result<T>` has none).
pub fn result_err_type(ty: &Type) -> Option<Type> {
    result_args(ty)?.get(1).map(|t| (*t).clone())
}

/// Whether a type can be named in the generated client as it is: owned,
/// sized, no `impl Trait`, no inferred parts. Used for what is read from
/// a signature with errors, where anything else becomes a generic.
pub fn is_nameable(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => {
            p.qself.is_none()
                && p.path.segments.iter().all(|s| match &s.arguments {
                    PathArguments::None => true,
                    PathArguments::AngleBracketed(args) => args.args.iter().all(|a| match a {
                        GenericArgument::Type(t) => is_nameable(t),
                        _ => false,
                    }),
                    PathArguments::Parenthesized(_) => false,
                })
        }
        Type::Tuple(t) => t.elems.iter().all(is_nameable),
        Type::Array(a) => is_nameable(&a.elem),
        Type::Paren(p) => is_nameable(&p.elem),
        Type::Group(g) => is_nameable(&g.elem),
        _ => false,
    }
}

/// Replaces `Self` in a type with the service type, so the type can be named
/// outside the impl block (in the client and the descriptor).
pub fn replace_self(mut ty: Type, self_ty: &Type) -> Type {
    struct ReplaceSelf<'a>(&'a Type);
    impl VisitMut for ReplaceSelf<'_> {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if let Type::Path(path) = ty
                && path.qself.is_none()
                && path.path.segments.first().is_some_and(|s| s.ident == "Self")
            {
                if path.path.segments.len() == 1 {
                    *ty = self.0.clone();
                    return;
                }
                let self_ty = self.0;
                let rest: Vec<_> = path.path.segments.iter().skip(1).cloned().collect();
                let span = path.span();
                *ty = syn::parse_quote_spanned!(span=> <#self_ty>::#(#rest)::*);
                return;
            }
            visit_mut::visit_type_mut(self, ty);
        }
    }
    ReplaceSelf(self_ty).visit_type_mut(&mut ty);
    ty
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(text: &str) -> Type {
        match syn::parse_str(text) {
            Ok(ty) => ty,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn text(ty: Option<Type>) -> Option<String> {
        ty.map(|t| quote::quote!(#t).to_string())
    }

    #[test]
    fn result_halves_as_written() {
        let both = ty("Result<Response, MyError>");
        assert_eq!(text(result_ok_type(&both)).as_deref(), Some("Response"));
        assert_eq!(text(result_err_type(&both)).as_deref(), Some("MyError"));
        let alias = ty("micro::Result<Response>");
        assert!(result_ok_type(&alias).is_some());
        assert!(result_err_type(&alias).is_none());
        assert!(result_ok_type(&ty("Response")).is_none());
    }

    #[test]
    fn nameable_types_are_owned_and_written_out() {
        assert!(is_nameable(&ty("Request")));
        assert!(is_nameable(&ty("Vec<(u8, String)>")));
        assert!(!is_nameable(&ty("&Request")));
        assert!(!is_nameable(&ty("impl Serialize")));
        assert!(!is_nameable(&ty("Cow<'a, str>")));
    }

    #[test]
    fn stream_by_reference_is_still_read_as_a_stream() {
        let sender = ty("&Sender<Response>");
        let (param, problem) = classify(&sender);
        assert!(matches!(param, Some(Param::Sender(_))));
        assert!(problem.is_some());
    }
}
