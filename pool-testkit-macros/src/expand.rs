//! The generated test: a plain `#[test]` fn that builds a runtime, sets up
//! the database (template clone, migrations, fixtures), hands out the
//! arguments by type and keeps the database when the test fails.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;

use crate::parse::Options;
use crate::validate::Plan;

pub fn expand(opts: &Options, plan: &Plan, env: &[(String, String)], item: &ItemFn) -> TokenStream {
    let krate = opts
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::pool_testkit));
    let p = quote!(__pool_testkit_private);
    let attrs = &item.attrs;
    let vis = &item.vis;
    let sig = &item.sig;
    let name = &sig.ident;
    let output = &sig.output;
    let block = &item.block;
    let inputs = &sig.inputs;

    let opt = |s: &Option<String>| match s {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    };
    let migrations = opt(&plan.migrations);
    let profile = opt(&plan.profile);
    let fixtures = plan.fixtures.iter().map(
        |(fixture, path)| quote!(#p::Fixture { name: #fixture, sql: ::core::include_str!(#path) }),
    );
    let pool = &plan.pool;
    let config = match &opts.config {
        Some(path) => quote!(::core::option::Option::Some(#p::load_config::<#path>)),
        None => quote!(::core::option::Option::None),
    };
    let env = env.iter().map(|(k, v)| quote!((#k, #v)));
    let sqlite = opts.sqlite.is_some();
    let multi = plan.multi_thread;
    let workers = match plan.worker_threads {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let args = plan
        .args
        .iter()
        .map(|ty| quote!(<#ty as #p::TestArg<'_>>::provide(&__ctx).await));

    let arg_types = &plan.args;
    let cluster = &plan.topology.cluster;
    let pgbouncer = &plan.topology.pgbouncer;
    quote! {
        // Outside the `#[test]` fn, so that an unsupported argument type is
        // an error in every build, not only under `cargo test`.
        #[allow(dead_code)]
        const _: () = {
            fn __pool_testkit_arg<'a, T: #krate::__private::TestArg<'a>>() {}
            fn __pool_testkit_args() {
                #(__pool_testkit_arg::<#arg_types>();)*
            }
        };

        #(#attrs)*
        #[::core::prelude::v1::test]
        #vis fn #name() #output {
            #[allow(unused_imports)]
            use #krate::__private as #p;

            async fn #name(#inputs) #output #block

            #[allow(unused_variables)]
            fn __configure(settings: &mut #p::PoolSettings) {
                #(#pool)*
            }

            static __SPEC: #p::TestSpec = #p::TestSpec {
                name: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
                migrations: #migrations,
                fixtures: &[#(#fixtures),*],
                sqlite: #sqlite,
                configure: __configure,
                config: #config,
                env: &[#(#env),*],
                profile: #profile,
                cluster: #cluster,
                pgbouncer: #pgbouncer,
            };

            #p::runtime(#multi, #workers).block_on(async {
                let __ctx = #p::TestContext::setup(&__SPEC).await;
                let __out = #name(#(#args),*).await;
                __ctx.finish(__out)
            })
        }
    }
}
