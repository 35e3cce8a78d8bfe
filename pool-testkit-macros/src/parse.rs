//! The attribute's arguments into a model. Every problem is collected with
//! its span and parsing goes on, so that all of them are reported at once.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned as _;
use syn::{LitStr, Path};

use pool_settings::suggest::did_you_mean;

/// Errors collected while reading the input.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    pub fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.push(syn::Error::new(span, msg));
    }

    pub fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// A value and where it was written.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

/// `migrations = "dir"` or `migrations = false`.
#[derive(Clone, Debug)]
pub enum Migrations {
    Dir(String),
    Off,
}

/// A literal given to a `pool(...)` key.
#[derive(Clone, Debug)]
pub enum PoolValue {
    Int(u64),
    Bool(bool),
    Str(String),
}

/// One `pool(key = value)`.
#[derive(Clone, Debug)]
pub struct PoolArg {
    pub key: String,
    pub key_span: Span,
    pub value: PoolValue,
    pub value_span: Span,
}

/// Everything the attribute was given.
#[derive(Default)]
pub struct Options {
    pub migrations: Option<Spanned<Migrations>>,
    pub fixtures: Vec<Spanned<String>>,
    pub fixtures_dir: Option<Spanned<String>>,
    pub pool: Vec<PoolArg>,
    pub config: Option<Path>,
    pub profile: Option<Spanned<String>>,
    pub env: Vec<(Spanned<String>, Spanned<String>)>,
    pub env_span: Option<Span>,
    pub flavor: Option<Spanned<String>>,
    pub worker_threads: Option<Spanned<usize>>,
    pub sqlite: Option<Span>,
    /// `cluster(...)`: its span and `key = value` pairs.
    pub cluster: Option<(Span, Vec<PoolArg>)>,
    /// `pgbouncer(...)`: its span and `key = value` pairs.
    pub pgbouncer: Option<(Span, Vec<PoolArg>)>,
    pub krate: Option<Path>,
}

/// The attribute's keys, for errors and suggestions.
pub const KEYS: &[&str] = &[
    "migrations",
    "fixtures",
    "fixtures_dir",
    "pool",
    "config",
    "profile",
    "env",
    "flavor",
    "worker_threads",
    "sqlite",
    "cluster",
    "pgbouncer",
    "crate",
];

/// Reads `#[pool_testkit::test(...)]`'s arguments.
pub fn options(args: TokenStream, errors: &mut Errors) -> Options {
    let mut out = Options::default();
    let parser = syn::meta::parser(|meta| key(&meta, &mut out, errors));
    if let Err(e) = syn::parse::Parser::parse2(parser, args) {
        errors.push(e);
    }
    out
}

fn key(meta: &ParseNestedMeta, out: &mut Options, errors: &mut Errors) -> syn::Result<()> {
    let key = path_key(&meta.path);
    let span = meta.path.span();
    match key.as_str() {
        "migrations" => {
            let lit: syn::Lit = meta.value()?.parse()?;
            let value = match &lit {
                syn::Lit::Str(s) => Some(Migrations::Dir(s.value())),
                syn::Lit::Bool(b) if !b.value => Some(Migrations::Off),
                _ => {
                    errors.at(
                        lit.span(),
                        "`migrations` takes a directory (\"migrations\") or `false`",
                    );
                    None
                }
            };
            if let Some(value) = value {
                set_once(
                    &mut out.migrations,
                    Spanned {
                        value,
                        span: lit.span(),
                    },
                    span,
                    "migrations",
                    errors,
                );
            }
        }
        "fixtures" => {
            let content;
            syn::parenthesized!(content in meta.input);
            let names =
                content.parse_terminated(<LitStr as syn::parse::Parse>::parse, syn::Token![,])?;
            if names.is_empty() {
                errors.at(
                    span,
                    "`fixtures(...)` lists fixture names: fixtures(\"users\", \"orders\")",
                );
            }
            out.fixtures.extend(names.iter().map(|s| Spanned {
                value: s.value(),
                span: s.span(),
            }));
        }
        "fixtures_dir" => {
            let s = string(meta)?;
            set_once(&mut out.fixtures_dir, s, span, "fixtures_dir", errors);
        }
        "pool" => meta.parse_nested_meta(|inner| key_value(&inner, &mut out.pool))?,
        "cluster" | "pgbouncer" => {
            let mut pairs = Vec::new();
            if meta.input.peek(syn::token::Paren) {
                meta.parse_nested_meta(|inner| key_value(&inner, &mut pairs))?;
            }
            let slot = if key == "cluster" {
                &mut out.cluster
            } else {
                &mut out.pgbouncer
            };
            set_once(slot, (span, pairs), span, &key, errors);
        }
        "config" => {
            let path: Path = meta.value()?.parse()?;
            if out.config.replace(path).is_some() {
                errors.at(span, "duplicate `config`");
            }
        }
        "profile" => {
            let s = string(meta)?;
            set_once(&mut out.profile, s, span, "profile", errors);
        }
        "env" => {
            out.env_span = Some(span);
            meta.parse_nested_meta(|inner| {
                let name = Spanned {
                    value: path_key(&inner.path),
                    span: inner.path.span(),
                };
                let value = string(&inner)?;
                out.env.push((name, value));
                Ok(())
            })?;
        }
        "flavor" => {
            let s = string(meta)?;
            set_once(&mut out.flavor, s, span, "flavor", errors);
        }
        "worker_threads" => {
            let lit: syn::LitInt = meta.value()?.parse()?;
            let n = lit.base10_parse::<usize>()?;
            set_once(
                &mut out.worker_threads,
                Spanned {
                    value: n,
                    span: lit.span(),
                },
                span,
                "worker_threads",
                errors,
            );
        }
        "sqlite" => {
            if out.sqlite.replace(span).is_some() {
                errors.at(span, "duplicate `sqlite`");
            }
        }
        "crate" => {
            let s = string(meta)?;
            match syn::parse_str::<Path>(&s.value) {
                Ok(p) => out.krate = Some(p),
                Err(_) => errors.at(
                    s.span,
                    format!(
                        "`crate` must be a path such as \"::pool_testkit\", found \"{}\"",
                        s.value
                    ),
                ),
            }
        }
        _ => {
            errors.at(
                span,
                format!(
                    "unknown #[pool_testkit::test] argument `{key}`{}; arguments are: {}",
                    did_you_mean(&key, KEYS.iter().copied()),
                    KEYS.join(", ")
                ),
            );
            skip_value(meta)?;
        }
    }
    Ok(())
}

/// One `key = literal` inside `pool(...)`, `cluster(...)` or `pgbouncer(...)`.
fn key_value(meta: &ParseNestedMeta, out: &mut Vec<PoolArg>) -> syn::Result<()> {
    let key = path_key(&meta.path);
    let lit: syn::Lit = meta.value()?.parse()?;
    let value = match &lit {
        syn::Lit::Int(i) => PoolValue::Int(i.base10_parse()?),
        syn::Lit::Bool(b) => PoolValue::Bool(b.value),
        syn::Lit::Str(s) => PoolValue::Str(s.value()),
        other => {
            return Err(syn::Error::new(
                other.span(),
                "expected an integer, `true`/`false` or a string such as \"2s\"",
            ));
        }
    };
    out.push(PoolArg {
        key,
        key_span: meta.path.span(),
        value,
        value_span: lit.span(),
    });
    Ok(())
}

fn string(meta: &ParseNestedMeta) -> syn::Result<Spanned<String>> {
    let s: LitStr = meta.value()?.parse()?;
    Ok(Spanned {
        value: s.value(),
        span: s.span(),
    })
}

fn set_once<T>(slot: &mut Option<T>, value: T, span: Span, key: &str, errors: &mut Errors) {
    if slot.replace(value).is_some() {
        errors.at(span, format!("duplicate `{key}`"));
    }
}

pub fn path_key(path: &Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// Skips `= value` or `(...)` after an unknown key, so parsing goes on.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in meta.input);
        let _: TokenStream = _content.parse()?;
    }
    Ok(())
}
