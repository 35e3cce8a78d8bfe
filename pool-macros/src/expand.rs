//! The generated impl of `PoolConfig`.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::parse::{Bound, Container, Field, RangeAttr};
use crate::types::{self, Kind, Lit};
use crate::validate::{Resolved, range_text};

fn opt_str(s: Option<&str>) -> TokenStream {
    match s {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    }
}

/// The type as text, for docs (`Option<Duration>`).
pub fn type_text(ty: &syn::Type) -> String {
    let raw = quote!(#ty).to_string();
    raw.replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" <", "<")
        .replace("< ", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
}

pub fn expand(c: &Container, resolved: &[Resolved]) -> TokenStream {
    let krate = c
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::pool_runtime));
    let cfg = quote!(#krate::config);
    let private = quote!(#krate::__private);
    let ident = &c.ident;
    let name = ident.to_string();
    let doc = &c.doc;
    let prefix = c.prefix.as_ref().map_or("", |p| p.value.as_str());
    let profile_env = c
        .profile_env
        .as_ref()
        .map_or("APP_ENV", |p| p.value.as_str());

    let specs = c
        .fields
        .iter()
        .zip(resolved)
        .map(|(f, r)| spec(&cfg, &private, f, r));
    let loads = c.fields.iter().enumerate().map(|(i, f)| load(&cfg, i, f));
    let idents: Vec<_> = c.fields.iter().map(|f| &f.ident).collect();
    let locals: Vec<_> = c
        .fields
        .iter()
        .map(|f| format_ident!("__field_{}", f.name()))
        .collect();
    let applies = c
        .fields
        .iter()
        .zip(resolved)
        .filter_map(|(f, r)| apply(&cfg, &private, f, r));
    let redacted_checks = c
        .fields
        .iter()
        .zip(resolved)
        .filter(|(_, r)| r.assert_redacted)
        .map(|(f, _)| {
            let ty = &f.ty;
            quote_spanned! {ty.span()=> #krate::__private::assert_redacted::<#ty>(); }
        });

    quote! {
        #[allow(non_upper_case_globals, clippy::all)]
        const _: () = {
            #(#redacted_checks)*

            #[automatically_derived]
            impl #cfg::PoolConfig for #ident {
                fn __meta() -> &'static #private::ConfigMeta {
                    static META: #private::ConfigMeta = #private::ConfigMeta {
                        name: #name,
                        doc: #doc,
                        prefix: #prefix,
                        profile_env: #profile_env,
                        fields: &[#(#specs),*],
                    };
                    &META
                }

                fn __load(__loader: &mut #private::Loader<'_>) -> ::core::option::Option<Self> {
                    let __fields = <Self as #cfg::PoolConfig>::__meta().fields;
                    #(let #locals = #loads;)*
                    ::core::option::Option::Some(Self { #(#idents: #locals?),* })
                }

                fn __apply(&self, __settings: &mut #krate::PoolSettings) {
                    #(#applies)*
                }
            }
        };
    }
}

fn spec(cfg: &TokenStream, private: &TokenStream, f: &Field, r: &Resolved) -> TokenStream {
    let field = f.name();
    let key = &r.key;
    let env = opt_str(f.env.as_ref().map(|e| e.value.as_str()));
    let doc = &f.doc;
    let ty = &f.ty;
    let ty_text = type_text(ty);
    let setting = opt_str(r.setting);
    let defaults = f.defaults.iter().map(|d| {
        let text = d.as_ref().map(|d| d.value.as_env_text());
        opt_str(text.as_deref())
    });
    let range = opt_str(f.range.as_ref().map(range_text).as_deref());
    let explicit_secret = f.secret.is_some() || r.setting == Some("url");
    let span = f.ty.span();
    let optional_syntax = types::generic_arg(ty, "Option").is_some();
    let (expected, secret, flatten, optional) = if f.flatten.is_some() {
        let sub = f.sub_prefix.as_ref().map_or("", |p| p.value.as_str());
        (
            quote!(::core::option::Option::None),
            quote!(false),
            quote_spanned!(span=> ::core::option::Option::Some(#private::Flatten {
                prefix: #sub,
                meta: <#ty as #cfg::PoolConfig>::__meta,
            })),
            quote!(false),
        )
    } else if f.from_str.is_some() {
        (
            quote!(::core::option::Option::None),
            quote!(#explicit_secret),
            quote!(::core::option::Option::None),
            quote!(#optional_syntax),
        )
    } else {
        (
            quote_spanned!(span=> ::core::option::Option::Some(<#ty as #cfg::EnvValue>::expected)),
            quote_spanned!(span=> #explicit_secret || <#ty as #cfg::EnvValue>::SECRET),
            quote!(::core::option::Option::None),
            quote_spanned!(span=> <#ty as #cfg::EnvValue>::OPTIONAL),
        )
    };
    quote! {
        #private::FieldSpec {
            field: #field,
            key: #key,
            env: #env,
            doc: #doc,
            ty: #ty_text,
            secret: #secret,
            optional: #optional,
            setting: #setting,
            defaults: [#(#defaults),*],
            range: #range,
            expected: #expected,
            flatten: #flatten,
        }
    }
}

fn load(cfg: &TokenStream, i: usize, f: &Field) -> TokenStream {
    let ty = &f.ty;
    let span = ty.span();
    if f.flatten.is_some() {
        return quote_spanned! {span=>
            __loader.flatten(&__fields[#i], <#ty as #cfg::PoolConfig>::__load)
        };
    }
    if f.from_str.is_some() {
        if let Some(inner) = types::generic_arg(ty, "Option") {
            return quote_spanned! {span=> __loader.field_from_str_opt::<#inner>(&__fields[#i]) };
        }
        return quote_spanned! {span=> __loader.field_from_str::<#ty>(&__fields[#i]) };
    }
    match &f.range {
        Some(r) => {
            let range = range_tokens(&f.kind, r);
            quote_spanned! {span=> __loader.field_in::<#ty, _>(&__fields[#i], #range) }
        }
        None => quote_spanned! {span=> __loader.field::<#ty>(&__fields[#i]) },
    }
}

fn bound_tokens(kind: &Kind, b: &Bound) -> TokenStream {
    let inner = match kind {
        Kind::Option(k) => k.as_ref(),
        k => k,
    };
    match (inner, &b.lit) {
        (Kind::Float, Lit::Int(v, _)) => {
            let l = Literal::f64_unsuffixed(*v as f64);
            quote!((#l))
        }
        (Kind::Float, Lit::Float(v, _)) => {
            let l = Literal::f64_unsuffixed(*v);
            quote!((#l))
        }
        (Kind::Duration, Lit::Str(s)) => {
            let d = pool_settings::parse_duration(s).unwrap_or_default();
            let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
            quote!(::core::time::Duration::new(#secs, #nanos))
        }
        (_, Lit::Int(v, _)) => {
            let l = Literal::i128_unsuffixed(*v);
            quote!((#l))
        }
        _ => quote!(::core::compile_error!("unsupported range bound")),
    }
}

fn range_tokens(kind: &Kind, r: &RangeAttr) -> TokenStream {
    let start = r.start.as_ref().map(|b| bound_tokens(kind, b));
    let end = r.end.as_ref().map(|b| bound_tokens(kind, b));
    if r.inclusive {
        quote!(#start..=#end)
    } else {
        quote!(#start..#end)
    }
}

fn apply(cfg: &TokenStream, private: &TokenStream, f: &Field, r: &Resolved) -> Option<TokenStream> {
    let ident = &f.ident;
    let ty = &f.ty;
    let span = ty.span();
    if f.flatten.is_some() {
        return Some(quote_spanned! {span=>
            <#ty as #cfg::PoolConfig>::__apply(&self.#ident, __settings);
        });
    }
    let path = pool_settings::find(r.setting?)?.path;
    let path = path.iter().map(|p| format_ident!("{}", p));
    Some(quote_spanned! {span=>
        #private::apply_setting(&self.#ident, &mut __settings #(.#path)*);
    })
}
