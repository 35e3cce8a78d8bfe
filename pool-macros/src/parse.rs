//! `#[pool(...)]` attributes into a model. Every problem is collected with
//! its span; parsing goes on after an error so that all are reported at once.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned as _;
use syn::{Attribute, Data, DeriveInput, Expr, Fields, Ident, Path, RangeLimits, Type, UnOp};

use crate::types::{self, Kind, Lit};
use pool_settings::suggest::did_you_mean;

/// Errors collected while reading the input.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// An error spanning all of `tokens` (first to last token).
    pub fn over(&mut self, tokens: impl quote::ToTokens, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }

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

/// Profiles whose defaults an attribute can set; index 0 is the base
/// `default`.
pub const PROFILE_KEYS: [&str; 4] = ["default", "development", "test", "production"];

/// A string attribute value and where it was written.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

/// The whole struct.
pub struct Container {
    pub ident: Ident,
    pub doc: String,
    pub prefix: Option<Spanned<String>>,
    pub profile_env: Option<Spanned<String>>,
    pub krate: Option<Path>,
    pub fields: Vec<Field>,
}

/// One range bound.
#[derive(Clone, Debug)]
pub struct Bound {
    pub lit: Lit,
    pub span: Span,
}

/// `range = a..=b` and its halves.
#[derive(Clone, Debug)]
pub struct RangeAttr {
    pub start: Option<Bound>,
    pub end: Option<Bound>,
    pub inclusive: bool,
    /// The range as written, for errors spanning all of it.
    pub tokens: proc_macro2::TokenStream,
}

/// One named field.
pub struct Field {
    pub ident: Ident,
    pub ty: Type,
    pub kind: Kind,
    pub doc: String,
    pub env: Option<Spanned<String>>,
    /// By [`PROFILE_KEYS`] index.
    pub defaults: [Option<Spanned<Lit>>; 4],
    pub range: Option<RangeAttr>,
    pub secret: Option<Span>,
    pub flatten: Option<Span>,
    pub sub_prefix: Option<Spanned<String>>,
    pub setting: Option<Spanned<String>>,
    pub no_setting: Option<Span>,
    pub from_str: Option<Span>,
}

impl Field {
    /// The field name without `r#`.
    pub fn name(&self) -> String {
        let s = self.ident.to_string();
        s.strip_prefix("r#").map_or(s.clone(), str::to_owned)
    }
}

const CONTAINER_KEYS: &[&str] = &["prefix", "profile_env", "crate"];
const FIELD_KEYS: &[&str] = &[
    "env",
    "default",
    "development",
    "test",
    "production",
    "range",
    "secret",
    "flatten",
    "prefix",
    "setting",
    "no_setting",
    "from_str",
];
/// Profile spellings people try; they get pointed at the real names.
const PROFILE_ALIASES: &[(&str, &str)] = &[
    ("dev", "development"),
    ("develop", "development"),
    ("local", "development"),
    ("testing", "test"),
    ("prod", "production"),
    ("staging", "production"),
];

/// Reads the derive input into a model; problems go to `errors`, and the
/// model holds whatever could be read, so that validation can still report
/// its own findings next to them.
pub fn container(input: &DeriveInput, errors: &mut Errors) -> Container {
    let mut out = Container {
        ident: input.ident.clone(),
        doc: doc_of(&input.attrs),
        prefix: None,
        profile_env: None,
        krate: None,
        fields: Vec::new(),
    };
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("pool")) {
        let res = attr.parse_nested_meta(|meta| {
            container_key(&meta, &mut out, errors)?;
            Ok(())
        });
        if let Err(e) = res {
            errors.push(e);
        }
    }
    if !input.generics.params.is_empty() {
        errors.at(
            input.generics.span(),
            "#[derive(PoolConfig)] does not support generic structs",
        );
    }
    match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => {
                for f in &named.named {
                    if let Some(field) = field(f, errors) {
                        out.fields.push(field);
                    }
                }
            }
            _ => errors.at(
                input.ident.span(),
                "#[derive(PoolConfig)] needs a struct with named fields: each field is an environment variable",
            ),
        },
        Data::Enum(e) => errors.at(
            e.enum_token.span,
            "#[derive(PoolConfig)] works on structs with named fields, not enums; \
             for an enum value implement `pool_runtime::config::EnvValue` (or FromStr with #[pool(from_str)])",
        ),
        Data::Union(u) => errors.at(
            u.union_token.span,
            "#[derive(PoolConfig)] works on structs with named fields, not unions",
        ),
    }
    out
}

fn container_key(
    meta: &ParseNestedMeta,
    out: &mut Container,
    errors: &mut Errors,
) -> syn::Result<()> {
    let key = path_key(&meta.path);
    match key.as_str() {
        "prefix" => set_once(&mut out.prefix, string_value(meta, errors)?, meta, errors),
        "profile_env" => set_once(
            &mut out.profile_env,
            string_value(meta, errors)?,
            meta,
            errors,
        ),
        "crate" => {
            if let Some(s) = string_value(meta, errors)? {
                match s
                    .value
                    .parse::<proc_macro2::TokenStream>()
                    .ok()
                    .and_then(|t| syn::parse2::<Path>(t).ok())
                {
                    Some(mut p) => {
                        respan_path(&mut p, s.span);
                        if out.krate.replace(p).is_some() {
                            errors.at(meta.path.span(), "duplicate `crate`");
                        }
                    }
                    None => errors.at(
                        s.span,
                        format!(
                            "`crate` must be a path such as \"::pool_runtime\", found \"{}\"",
                            s.value
                        ),
                    ),
                }
            }
        }
        _ => {
            errors.at(
                meta.path.span(),
                format!(
                    "unknown #[pool] struct key `{key}`{}; struct keys are: {}{}",
                    did_you_mean(&key, CONTAINER_KEYS.iter().copied()),
                    CONTAINER_KEYS.join(", "),
                    if FIELD_KEYS.contains(&key.as_str()) {
                        " (this key goes on a field)"
                    } else {
                        ""
                    },
                ),
            );
            skip_value(meta)?;
        }
    }
    Ok(())
}

fn respan_path(p: &mut Path, span: Span) {
    for seg in &mut p.segments {
        seg.ident.set_span(span);
    }
}

fn field(f: &syn::Field, errors: &mut Errors) -> Option<Field> {
    let ident = f.ident.clone()?;
    let mut out = Field {
        ident,
        ty: f.ty.clone(),
        kind: types::classify(&f.ty),
        doc: doc_of(&f.attrs),
        env: None,
        defaults: Default::default(),
        range: None,
        secret: None,
        flatten: None,
        sub_prefix: None,
        setting: None,
        no_setting: None,
        from_str: None,
    };
    for attr in f.attrs.iter().filter(|a| a.path().is_ident("pool")) {
        let res = attr.parse_nested_meta(|meta| field_key(&meta, &mut out, errors));
        if let Err(e) = res {
            errors.push(e);
        }
    }
    Some(out)
}

fn field_key(meta: &ParseNestedMeta, out: &mut Field, errors: &mut Errors) -> syn::Result<()> {
    let key = path_key(&meta.path);
    let span = meta.path.span();
    if let Some(i) = PROFILE_KEYS.iter().position(|k| *k == key) {
        let value = literal_value(meta, errors)?;
        if value.is_some() && out.defaults[i].is_some() {
            errors.at(span, format!("duplicate `{key}`"));
        } else if value.is_some() {
            out.defaults[i] = value;
        }
        return Ok(());
    }
    match key.as_str() {
        "env" => set_once(&mut out.env, string_value(meta, errors)?, meta, errors),
        "prefix" => set_once(
            &mut out.sub_prefix,
            string_value(meta, errors)?,
            meta,
            errors,
        ),
        "setting" => set_once(&mut out.setting, string_value(meta, errors)?, meta, errors),
        "range" => {
            let expr: Expr = meta.value()?.parse()?;
            if let Some(r) = range_value(&expr, errors)
                && out.range.replace(r).is_some()
            {
                errors.at(span, "duplicate `range`");
            }
        }
        "secret" => flag(&mut out.secret, meta, errors)?,
        "flatten" => flag(&mut out.flatten, meta, errors)?,
        "no_setting" => flag(&mut out.no_setting, meta, errors)?,
        "from_str" => flag(&mut out.from_str, meta, errors)?,
        _ => {
            let hint = if let Some((_, real)) = PROFILE_ALIASES.iter().find(|(a, _)| *a == key) {
                format!(
                    "; `{key}` is not a profile: profiles are development, test and production (did you mean `{real}`?)"
                )
            } else if CONTAINER_KEYS.contains(&key.as_str()) {
                format!(
                    "{}; `{key}` goes on the struct",
                    did_you_mean(&key, FIELD_KEYS.iter().copied())
                )
            } else {
                did_you_mean(&key, FIELD_KEYS.iter().copied())
            };
            errors.at(
                span,
                format!(
                    "unknown #[pool] field key `{key}`{hint}; field keys are: {}",
                    FIELD_KEYS.join(", ")
                ),
            );
            skip_value(meta)?;
        }
    }
    Ok(())
}

fn path_key(path: &Path) -> String {
    path.get_ident().map_or_else(
        || {
            path.segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect::<Vec<_>>()
                .join("::")
        },
        |i| {
            let s = i.to_string();
            s.strip_prefix("r#").map_or(s.clone(), str::to_owned)
        },
    )
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: Option<T>,
    meta: &ParseNestedMeta,
    errors: &mut Errors,
) {
    if let Some(v) = value
        && slot.replace(v).is_some()
    {
        errors.at(
            meta.path.span(),
            format!("duplicate `{}`", path_key(&meta.path)),
        );
    }
}

fn flag(slot: &mut Option<Span>, meta: &ParseNestedMeta, errors: &mut Errors) -> syn::Result<()> {
    let key = path_key(&meta.path);
    if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
        errors.at(
            meta.path.span(),
            format!("`{key}` is a flag and takes no value: write `#[pool({key})]`"),
        );
        skip_value(meta)?;
        return Ok(());
    }
    if slot.replace(meta.path.span()).is_some() {
        errors.at(meta.path.span(), format!("duplicate `{key}`"));
    }
    Ok(())
}

/// Consumes `= expr` or `(...)` after an unknown key so parsing can go on.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in meta.input);
    }
    Ok(())
}

fn string_value(
    meta: &ParseNestedMeta,
    errors: &mut Errors,
) -> syn::Result<Option<Spanned<String>>> {
    let key = path_key(&meta.path);
    if !meta.input.peek(syn::Token![=]) {
        errors.at(
            meta.path.span(),
            format!("`{key}` needs a value: `{key} = \"…\"`"),
        );
        skip_value(meta)?;
        return Ok(None);
    }
    let expr: Expr = meta.value()?.parse()?;
    match &expr {
        Expr::Lit(l) => match &l.lit {
            syn::Lit::Str(s) => {
                return Ok(Some(Spanned {
                    value: s.value(),
                    span: s.span(),
                }));
            }
            other => errors.at(other.span(), format!("`{key}` must be a string literal")),
        },
        other => errors.at(other.span(), format!("`{key}` must be a string literal")),
    }
    Ok(None)
}

fn literal_value(meta: &ParseNestedMeta, errors: &mut Errors) -> syn::Result<Option<Spanned<Lit>>> {
    let key = path_key(&meta.path);
    if !meta.input.peek(syn::Token![=]) {
        errors.at(
            meta.path.span(),
            format!("`{key}` needs a value: `{key} = …`"),
        );
        skip_value(meta)?;
        return Ok(None);
    }
    let expr: Expr = meta.value()?.parse()?;
    Ok(literal(&expr, errors).map(|value| Spanned {
        value,
        span: expr.span(),
    }))
}

/// A literal, possibly negated, possibly in invisible groups.
fn literal(expr: &Expr, errors: &mut Errors) -> Option<Lit> {
    match expr {
        Expr::Group(g) => literal(&g.expr, errors),
        Expr::Lit(l) => match &l.lit {
            syn::Lit::Str(s) => Some(Lit::Str(s.value())),
            syn::Lit::Bool(b) => Some(Lit::Bool(b.value)),
            syn::Lit::Int(i) => match i.base10_parse::<i128>() {
                Ok(v) => Some(Lit::Int(v, i.base10_digits().to_owned())),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            syn::Lit::Float(f) => match f.base10_parse::<f64>() {
                Ok(v) => Some(Lit::Float(v, f.base10_digits().to_owned())),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            other => {
                errors.at(
                    other.span(),
                    "expected a string, integer, float or bool literal",
                );
                None
            }
        },
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => match literal(&u.expr, errors)? {
            Lit::Int(v, d) => Some(Lit::Int(-v, format!("-{d}"))),
            Lit::Float(v, d) => Some(Lit::Float(-v, format!("-{d}"))),
            _ => {
                errors.at(expr.span(), "only numbers can be negated");
                None
            }
        },
        other => {
            errors.at(
                other.span(),
                "expected a literal (such as 20, \"30s\", true or \"queue\"); expressions and constants are not evaluated",
            );
            None
        }
    }
}

fn range_value(expr: &Expr, errors: &mut Errors) -> Option<RangeAttr> {
    match expr {
        Expr::Group(g) => range_value(&g.expr, errors),
        Expr::Range(r) => {
            let bound = |e: &Option<Box<Expr>>, errors: &mut Errors| -> Result<Option<Bound>, ()> {
                match e {
                    None => Ok(None),
                    Some(e) => literal(e, errors)
                        .map(|lit| {
                            Some(Bound {
                                lit,
                                span: e.span(),
                            })
                        })
                        .ok_or(()),
                }
            };
            let start = bound(&r.start, errors);
            let end = bound(&r.end, errors);
            let (Ok(start), Ok(end)) = (start, end) else {
                return None;
            };
            Some(RangeAttr {
                start,
                end,
                inclusive: matches!(r.limits, RangeLimits::Closed(_)),
                tokens: quote::ToTokens::to_token_stream(expr),
            })
        }
        other => {
            errors.push(syn::Error::new_spanned(other, "`range` must be a range of literals such as 1..=500, 1.., ..=100 or \"1s\"..=\"1h\""));
            None
        }
    }
}

/// The `///` comment: lines trimmed of one leading space, joined.
pub fn doc_of(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("doc")) {
        if let syn::Meta::NameValue(nv) = &attr.meta
            && let Expr::Lit(l) = &nv.value
            && let syn::Lit::Str(s) = &l.lit
        {
            let v = s.value();
            lines.push(v.strip_prefix(' ').map_or(v.clone(), str::to_owned));
        }
    }
    lines.join("\n").trim().to_owned()
}
