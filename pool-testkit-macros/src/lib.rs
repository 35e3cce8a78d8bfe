//! `#[pool_testkit::test]`: an `async fn` database test with migrations,
//! fixtures and its arguments (a pool, settings, the database, the server)
//! chosen by type. Use it through `pool_testkit`, which re-exports it and
//! holds the run time (`pool_testkit::__private`); its documentation is on
//! `pool_testkit::test`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod expand;
mod parse;
mod topology;
mod validate;

use proc_macro::TokenStream;
use syn::{ItemFn, parse_macro_input};

/// Turns an `async fn` into a database test; see `pool_testkit::test`.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = parse_macro_input!(item as ItemFn);
    test_attr(args.into(), &item)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn test_attr(
    args: proc_macro2::TokenStream,
    item: &ItemFn,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut errors = parse::Errors::default();
    let opts = parse::options(args, &mut errors);
    let plan = validate::validate(&opts, item, &mut errors);
    let env = validate::env_pairs(&opts, &mut errors);
    errors.finish()?;
    Ok(expand::expand(&opts, &plan, &env, item))
}

#[cfg(test)]
mod tests {
    use quote::quote;
    use syn::parse_quote;

    use super::{ItemFn, test_attr};

    fn errors(args: proc_macro2::TokenStream, item: ItemFn) -> Vec<String> {
        match test_attr(args, &item) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn all_errors_are_reported_together() {
        let errs = errors(
            quote!(
                fixturs("a"),
                pool(sise = 2, timeout = "2x"),
                flavor = "multi"
            ),
            parse_quote!(
                fn t() {}
            ),
        );
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(
            errs.iter().any(|e| e.contains("goes on an `async fn`")),
            "{errs:#?}"
        );
        assert!(
            errs.iter().any(|e| e.contains(
                "unknown #[pool_testkit::test] argument `fixturs` (did you mean `fixtures`?)"
            )),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("unknown pool setting `sise` (did you mean `size`?)")),
            "{errs:#?}"
        );
        assert!(errs.iter().any(|e| e.contains("not \"2x\"")), "{errs:#?}");
        assert!(
            errs.iter().any(|e| e.contains("unknown flavor \"multi\"")),
            "{errs:#?}"
        );
    }

    #[test]
    fn expansion_names_the_runtime_by_absolute_path_or_override() {
        let item: ItemFn = parse_quote!(
            async fn t(pool: Pool<Postgres>) {}
        );
        let out = test_attr(
            quote!(migrations = false, pool(size = 2, recycle = "off")),
            &item,
        )
        .unwrap()
        .to_string();
        assert!(
            out.contains("use :: pool_testkit :: __private as __pool_testkit_private"),
            "{out}"
        );
        assert!(out.contains("settings . pool_size = 2u32"), "{out}");
        assert!(
            out.contains("settings . pool_recycle = :: core :: option :: Option :: None"),
            "{out}"
        );
        assert!(
            out.contains("# [:: core :: prelude :: v1 :: test]"),
            "{out}"
        );
        let out = test_attr(quote!(migrations = false, crate = "crate"), &item)
            .unwrap()
            .to_string();
        assert!(out.contains("use crate :: __private"), "{out}");
        assert!(!out.contains(":: pool_testkit"), "{out}");
    }

    #[test]
    fn a_second_test_attribute_is_refused() {
        let errs = errors(
            quote!(migrations = false),
            parse_quote!(
                #[tokio::test]
                async fn t() {}
            ),
        );
        assert!(errs[0].contains("remove #[tokio::test]"), "{errs:#?}");
    }
}
