//! `#[derive(PoolConfig)]`: typed, validated, documented pool configuration
//! loaded from environment variables. Use it through `pool_runtime`, which
//! re-exports it together with the run-time support (`pool_runtime::config`).
//!
//! Setting names, enum spellings, the duration grammar and the cross-field
//! rules come from `pool-settings`, the same crate the run time reads.

// No unsafe code; missing_docs flags the one public item, the derive.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod expand;
mod parse;
mod types;
mod validate;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `pool_runtime::config::PoolConfig`: loading from environment
/// variables (or any map) with per-profile defaults, one error listing every
/// bad variable, `explain()`, `PoolSettings` and generated env docs.
///
/// See the `pool_runtime::config` module for the full guide. In short:
///
/// ```
/// use pool_runtime::{PoolClass, PoolConfig, Secret};
/// use std::time::Duration;
///
/// /// Primary database.
/// #[derive(PoolConfig, Debug)]
/// #[pool(prefix = "DB_")]
/// pub struct Database {
///     /// Connection URL; the password is never printed.
///     #[pool(env = "DATABASE_URL")]
///     pub url: Secret<String>,
///     /// Connections kept open.
///     #[pool(default = 20, production = 5, range = 1..=500)]
///     pub pool_size: u32,
///     #[pool(default = "30s")]
///     pub pool_timeout: Duration,
///     #[pool(default = "queue", test = "null")]
///     pub pool_class: PoolClass,
/// }
///
/// let db = Database::from_map([("DATABASE_URL", "postgres://app:pw@db/app"), ("APP_ENV", "production")])
///     .unwrap();
/// assert_eq!(db.pool_size, 5);
/// assert_eq!(db.settings().pool_size, 5);
/// ```
///
/// Struct keys: `prefix = "DB_"`, `profile_env = "APP_ENV"` (the default),
/// `crate = "::pool_runtime"`.
///
/// Field keys: `env = "NAME"` (absolute name), `default = …`,
/// `development = …`, `test = …`, `production = …` (per-profile defaults),
/// `range = 1..=500` (also `1..`, `..=9`, `"1s"..="1h"`), `secret`,
/// `flatten` (with an optional `prefix = "SUB_"`), `setting = "pool_size"`,
/// `no_setting`, `from_str`.
#[proc_macro_derive(PoolConfig, attributes(pool))]
pub fn derive_pool_config(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn derive(input: &DeriveInput) -> syn::Result<proc_macro2::TokenStream> {
    let mut errors = parse::Errors::default();
    let container = parse::container(input, &mut errors);
    let resolved = validate::validate(&container, &mut errors);
    errors.finish()?;
    Ok(expand::expand(&container, &resolved))
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    fn errors(input: DeriveInput) -> Vec<String> {
        match derive(&input) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    /// The derive applies `pool_settings::check`, the run time's rules:
    /// a zero timeout, bad health thresholds, and a `min_idle` above the
    /// default `pool_size` (no field maps it) fail at compile time; a
    /// required `pool_class` (no literal) leaves `pool_size = 0` to the
    /// run time.
    #[test]
    fn the_run_time_rules_apply_to_literals() {
        let errs = errors(parse_quote! {
            struct Database {
                #[pool(default = "0s")]
                pool_timeout: std::time::Duration,
                #[pool(default = 95.0)]
                health_warning_percent: f64,
                #[pool(default = 90.0)]
                health_critical_percent: f64,
                #[pool(default = 8)]
                min_idle: u32,
            }
        });
        assert_eq!(errs.len(), 3, "{errs:#?}");
        for expected in [
            "`pool_timeout` = 0s: must be greater than zero",
            "health thresholds warning 95 / critical 90 are inconsistent",
            "min_idle (8) exceeds pool_size (5)",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "{expected}: {errs:#?}"
            );
        }
        let errs = errors(parse_quote! {
            struct Database {
                #[pool(default = 0)]
                pool_size: u32,
                pool_class: PoolClass,
            }
        });
        assert!(errs.is_empty(), "{errs:#?}");
    }

    #[test]
    fn names_are_prefix_plus_screaming_snake() {
        let input: DeriveInput = parse_quote! {
            #[pool(prefix = "DB_")]
            struct Database {
                #[pool(env = "DATABASE_URL")]
                url: String,
                pool_size: u32,
                poolPrePing: bool,
                #[pool(setting = "min_idle")]
                warm: u32,
                #[pool(no_setting)]
                max_overflow: u32,
                retries: u8,
            }
        };
        let mut errs = parse::Errors::default();
        let c = parse::container(&input, &mut errs);
        let r = validate::validate(&c, &mut errs);
        errs.finish().unwrap();
        let names: Vec<&str> = r.iter().map(|r| r.full.as_str()).collect();
        assert_eq!(
            names,
            [
                "DATABASE_URL",
                "DB_POOL_SIZE",
                "DB_POOL_PRE_PING",
                "DB_WARM",
                "DB_MAX_OVERFLOW",
                "DB_RETRIES"
            ]
        );
        let settings: Vec<Option<&str>> = r.iter().map(|r| r.setting).collect();
        assert_eq!(
            settings,
            [
                Some("url"),
                Some("pool_size"),
                None,
                Some("min_idle"),
                None,
                None
            ]
        );
        assert_eq!(r[0].key, "URL");
    }

    #[test]
    fn all_errors_are_collected() {
        let errs = errors(parse_quote! {
            #[pool(prefix = "DB_")]
            struct Database {
                #[pool(defualt = 5)]
                pool_size: u32,
                #[pool(default = "30x")]
                pool_timeout: std::time::Duration,
                #[pool(default = 0)]
                min_idle: u32,
                #[pool(env = "DB_MIN_IDLE")]
                other: u32,
            }
        });
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(errs[0].contains("unknown #[pool] field key `defualt` (did you mean `default`?)"));
        assert!(errs[1].contains("invalid duration \"30x\""));
        assert!(errs[2].contains("`DB_MIN_IDLE` is read by two fields, `min_idle` and `other`"));
    }

    #[test]
    fn defaults_and_ranges_are_checked_per_profile() {
        let errs = errors(parse_quote! {
            struct C {
                #[pool(default = 5, production = 900, range = 1..=500)]
                pool_size: u32,
                #[pool(default = "queue", production = "null")]
                pool_class: PoolClass,
                #[pool(default = 10, production = 2)]
                max_overflow: u32,
            }
        });
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(errs[0].contains("`production` = 900 of `pool_size` is outside its range 1..=500"));
        assert!(errs[1].contains("max_overflow = 2 has no effect where pool_class is null"));
        assert!(errs[1].contains("(in profile `production`)"));
    }

    #[test]
    fn non_structs_are_rejected() {
        let errs = errors(parse_quote! { enum E { A } });
        assert!(errs[0].contains("not enums"), "{errs:?}");
        let errs = errors(parse_quote! { struct T(u32); });
        assert!(errs[0].contains("named fields"), "{errs:?}");
    }

    #[test]
    fn expansion_names_the_runtime_by_absolute_path_or_override() {
        let out = derive(&parse_quote! { struct S { #[pool(default = 1)] n: u32 } })
            .unwrap()
            .to_string();
        assert!(
            out.contains(":: pool_runtime :: config :: PoolConfig for S"),
            "{out}"
        );
        assert!(out.contains("const _ : ()"), "{out}");
        let out = derive(&parse_quote! { #[pool(crate = "crate")] struct S { n: Option<u32> } })
            .unwrap()
            .to_string();
        assert!(out.contains("crate :: config :: PoolConfig for S"), "{out}");
        assert!(!out.contains(":: pool_runtime"), "{out}");
    }
}
