//! `cluster(...)` and `pgbouncer(...)`: checked here, and implied by a
//! `&Cluster` or `&PgBouncer` argument, so a test that takes one gets it
//! with the defaults (one standby; PgBouncer in session mode).

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Type, TypeReference};

use crate::parse::{Errors, Options, PoolArg, PoolValue};
use pool_settings::suggest::did_you_mean;

const CLUSTER_KEYS: &[&str] = &["standbys"];
const BOUNCER_KEYS: &[&str] = &["mode", "pool_size", "max_client_conn"];
const MODES: &[&str] = &["session", "transaction", "statement"];

/// The `TestSpec` fields `cluster` and `pgbouncer`, as expressions.
pub struct Topology {
    pub cluster: TokenStream,
    pub pgbouncer: TokenStream,
}

pub fn topology(opts: &Options, args: &[Type], errors: &mut Errors) -> Topology {
    let p = quote!(__pool_testkit_private);
    let none = quote!(::core::option::Option::None);
    let wants = |name: &str| args.iter().any(|t| names_reference_to(t, name));
    let cluster = match (&opts.cluster, wants("Cluster")) {
        (Some((span, pairs)), _) => cluster(*span, pairs, opts, errors),
        (None, true) => Some(1),
        (None, false) => None,
    };
    let bouncer = match (&opts.pgbouncer, wants("PgBouncer")) {
        (Some((span, pairs)), _) => bouncer(*span, pairs, opts, errors),
        (None, true) => Some(quote!(#p::BouncerSpec {
            mode: #p::PoolMode::Session,
            pool_size: #none,
            max_client_conn: #none,
        })),
        (None, false) => None,
    };
    Topology {
        cluster: match cluster {
            Some(n) => quote!(::core::option::Option::Some(#p::ClusterSpec { standbys: #n })),
            None => none.clone(),
        },
        pgbouncer: match bouncer {
            Some(spec) => quote!(::core::option::Option::Some(#spec)),
            None => none,
        },
    }
}

/// Whether `ty` is `&Name` or `&path::to::Name`.
fn names_reference_to(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Reference(TypeReference { elem, .. }) => match &**elem {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == name),
            _ => false,
        },
        _ => false,
    }
}

fn not_with_sqlite(span: Span, what: &str, opts: &Options, errors: &mut Errors) -> bool {
    if opts.sqlite.is_some() {
        errors.at(
            span,
            format!("`{what}` needs PostgreSQL: remove `sqlite`, or `{what}`"),
        );
        return false;
    }
    true
}

fn cluster(span: Span, pairs: &[PoolArg], opts: &Options, errors: &mut Errors) -> Option<usize> {
    let ok = not_with_sqlite(span, "cluster", opts, errors);
    let mut standbys = 1;
    for pair in pairs {
        match (pair.key.as_str(), &pair.value) {
            ("standbys", PoolValue::Int(n)) if (1..=8).contains(n) => standbys = *n as usize,
            ("standbys", _) => errors.at(
                pair.value_span,
                "`standbys` takes a count from 1 to 8 (each is a PostgreSQL server)",
            ),
            (other, _) => unknown(pair, other, "cluster", CLUSTER_KEYS, errors),
        }
    }
    ok.then_some(standbys)
}

fn bouncer(
    span: Span,
    pairs: &[PoolArg],
    opts: &Options,
    errors: &mut Errors,
) -> Option<TokenStream> {
    let p = quote!(__pool_testkit_private);
    let ok = not_with_sqlite(span, "pgbouncer", opts, errors);
    let mut mode = quote!(#p::PoolMode::Session);
    let mut pool_size = quote!(::core::option::Option::None);
    let mut max_client_conn = quote!(::core::option::Option::None);
    for pair in pairs {
        match (pair.key.as_str(), &pair.value) {
            ("mode", PoolValue::Str(s)) => match s.as_str() {
                "session" => mode = quote!(#p::PoolMode::Session),
                "transaction" => mode = quote!(#p::PoolMode::Transaction),
                "statement" => mode = quote!(#p::PoolMode::Statement),
                other => errors.at(
                    pair.value_span,
                    format!(
                        "unknown PgBouncer mode \"{other}\"{}; modes are {}",
                        did_you_mean(other, MODES.iter().copied()),
                        MODES.join(", ")
                    ),
                ),
            },
            ("mode", _) => errors.at(
                pair.value_span,
                "`mode` takes \"session\", \"transaction\" or \"statement\"",
            ),
            ("pool_size" | "max_client_conn", PoolValue::Int(n))
                if (1..=u64::from(u32::MAX)).contains(n) =>
            {
                let n = *n as u32;
                let value = quote!(::core::option::Option::Some(#n));
                if pair.key == "pool_size" {
                    pool_size = value;
                } else {
                    max_client_conn = value;
                }
            }
            ("pool_size" | "max_client_conn", _) => errors.at(
                pair.value_span,
                format!("`{}` takes a count of at least 1", pair.key),
            ),
            (other, _) => unknown(pair, other, "pgbouncer", BOUNCER_KEYS, errors),
        }
    }
    ok.then(|| {
        quote!(#p::BouncerSpec {
            mode: #mode,
            pool_size: #pool_size,
            max_client_conn: #max_client_conn,
        })
    })
}

fn unknown(pair: &PoolArg, key: &str, option: &str, keys: &[&str], errors: &mut Errors) {
    errors.at(
        pair.key_span,
        format!(
            "unknown `{option}` setting `{key}`{}; `{option}` takes: {}",
            did_you_mean(key, keys.iter().copied()),
            keys.join(", ")
        ),
    );
}
