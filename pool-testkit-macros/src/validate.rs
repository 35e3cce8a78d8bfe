//! Checks the model against the test function and the file system: paths
//! resolve against `CARGO_MANIFEST_DIR` at compile time, so a missing
//! migrations directory or fixture file is a compile error at its literal.

use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned as _;
use syn::{FnArg, ItemFn, Type};

use crate::parse::{Errors, Migrations, Options, PoolArg, PoolValue};
use pool_settings::suggest::did_you_mean;
use pool_settings::table::Kind;

/// What the expansion needs, resolved.
pub struct Plan {
    /// Absolute migrations directory.
    pub migrations: Option<String>,
    /// Fixture names and absolute paths, in the order given.
    pub fixtures: Vec<(String, String)>,
    /// `settings.field = value;` statements for `pool(...)`.
    pub pool: Vec<TokenStream>,
    /// Canonical profile name for `config`.
    pub profile: Option<String>,
    pub multi_thread: bool,
    pub worker_threads: Option<usize>,
    /// The argument types, in order.
    pub args: Vec<Type>,
    /// `cluster(...)` and `pgbouncer(...)`, explicit or implied by arguments.
    pub topology: crate::topology::Topology,
}

/// `pool(...)` keys: the short names the attribute accepts, then the
/// setting's own name; its type, spellings and duration grammar come from
/// the one settings table (`pool_settings::table`).
const POOL_KEYS: &[(&str, &str)] = &[
    ("size", "pool_size"),
    ("overflow", "max_overflow"),
    ("timeout", "pool_timeout"),
    ("recycle", "pool_recycle"),
    ("pre_ping", "pool_pre_ping"),
    ("pre_ping_bypass", "pre_ping_bypass"),
    ("class", "pool_class"),
    ("reset", "reset_on_return"),
    ("lifo", "pool_use_lifo"),
    ("min_idle", "min_idle"),
    ("connect_timeout", "connect_timeout"),
    ("network_timeout", "network_timeout"),
    ("leak_threshold", "leak_threshold"),
    ("statement_timeout", "statement_timeout"),
    ("echo", "echo_pool"),
];

const PROFILES: &[(&str, &str)] = &[
    ("development", "development"),
    ("dev", "development"),
    ("local", "development"),
    ("test", "test"),
    ("testing", "test"),
    ("production", "production"),
    ("prod", "production"),
];

pub fn validate(opts: &Options, item: &ItemFn, errors: &mut Errors) -> Plan {
    check_fn(item, errors);
    let root = manifest_dir();
    let migrations = migrations(opts, &root, errors);
    let fixtures = fixtures(opts, &root, errors);
    let pool = opts
        .pool
        .iter()
        .filter_map(|a| pool_setting(a, errors))
        .collect();
    let profile = profile(opts, errors);
    let (multi_thread, worker_threads) = runtime(opts, errors);
    let args = item
        .sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some((*t.ty).clone()),
            FnArg::Receiver(_) => None,
        })
        .collect::<Vec<_>>();
    let topology = crate::topology::topology(opts, &args, errors);
    Plan {
        topology,
        migrations,
        fixtures,
        pool,
        profile,
        multi_thread,
        worker_threads,
        args,
    }
}

fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

fn check_fn(item: &ItemFn, errors: &mut Errors) {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            "#[pool_testkit::test] goes on an `async fn`",
        );
    }
    if !sig.generics.params.is_empty() {
        errors.at(
            sig.generics.span(),
            "a #[pool_testkit::test] function can't be generic: its arguments are chosen by type",
        );
    }
    for arg in &sig.inputs {
        if let FnArg::Receiver(r) = arg {
            errors.at(
                r.span(),
                "a #[pool_testkit::test] function can't take `self`",
            );
        }
    }
    for attr in &item.attrs {
        let path = crate::parse::path_key(attr.path());
        if path == "test" || path.ends_with("::test") {
            errors.at(
                attr.span(),
                format!(
                    "remove #[{path}]: #[pool_testkit::test] already makes this function a test"
                ),
            );
        }
    }
}

/// Path shown in errors: relative to the manifest dir, as written.
fn shown(rel: &str) -> String {
    format!("{rel} (relative to CARGO_MANIFEST_DIR)")
}

fn migrations(opts: &Options, root: &Path, errors: &mut Errors) -> Option<String> {
    match &opts.migrations {
        Some(m) => match &m.value {
            Migrations::Off => None,
            Migrations::Dir(rel) => {
                let dir = root.join(rel);
                if dir.is_dir() {
                    Some(dir.to_string_lossy().into_owned())
                } else {
                    errors.at(
                        m.span,
                        format!(
                            "migrations directory {} not found; expected a directory of sqlx migrations (`<version>_<name>.sql`), or `migrations = false`",
                            shown(rel)
                        ),
                    );
                    None
                }
            }
        },
        // sqlx's convention: `./migrations` when it exists.
        None => {
            let dir = root.join("migrations");
            dir.is_dir().then(|| dir.to_string_lossy().into_owned())
        }
    }
}

fn fixtures(opts: &Options, root: &Path, errors: &mut Errors) -> Vec<(String, String)> {
    let rel_dir = opts
        .fixtures_dir
        .as_ref()
        .map_or("fixtures", |d| d.value.as_str());
    let dir = root.join(rel_dir);
    if let Some(d) = &opts.fixtures_dir
        && !dir.is_dir()
    {
        errors.at(
            d.span,
            format!("fixtures directory {} not found", shown(rel_dir)),
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for f in &opts.fixtures {
        let name = f.value.strip_suffix(".sql").unwrap_or(&f.value);
        let path = dir.join(format!("{name}.sql"));
        if out.iter().any(|(n, _)| n == name) {
            errors.at(f.span, format!("fixture `{name}` is listed twice"));
        } else if path.is_file() {
            out.push((name.to_owned(), path.to_string_lossy().into_owned()));
        } else {
            let existing = sql_files(&dir);
            let hint = did_you_mean(name, existing.iter().map(String::as_str));
            let list = if existing.is_empty() {
                "none there".to_owned()
            } else {
                format!("there: {}", existing.join(", "))
            };
            errors.at(
                f.span,
                format!(
                    "fixture `{name}` not found: expected {}{hint}; fixtures {list}",
                    shown(&format!("{rel_dir}/{name}.sql"))
                ),
            );
        }
    }
    out
}

/// Fixture names (`*.sql` without the extension) in `dir`, sorted.
fn sql_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".sql").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

fn pool_setting(arg: &PoolArg, errors: &mut Errors) -> Option<TokenStream> {
    let found = POOL_KEYS
        .iter()
        .find(|(short, name)| arg.key == *short || arg.key == *name)
        .and_then(|(_, name)| pool_settings::table::find(name));
    let Some(setting) = found else {
        let names = POOL_KEYS.iter().flat_map(|(s, n)| [*s, *n]);
        let short: Vec<&str> = POOL_KEYS.iter().map(|(s, _)| *s).collect();
        errors.at(
            arg.key_span,
            format!(
                "unknown pool setting `{}`{}; pool settings are: {}",
                arg.key,
                did_you_mean(&arg.key, names),
                short.join(", ")
            ),
        );
        return None;
    };
    let field = syn::Ident::new(setting.name, Span::call_site());
    let value = pool_value(arg, setting.kind, errors)?;
    Some(quote!(settings.#field = #value;))
}

fn pool_value(arg: &PoolArg, kind: Kind, errors: &mut Errors) -> Option<TokenStream> {
    let bad = |errors: &mut Errors, expected: &str| {
        errors.at(
            arg.value_span,
            format!("pool setting `{}` takes {expected}", arg.key),
        );
        None
    };
    let p = quote!(::core::option::Option);
    match (kind, &arg.value) {
        (Kind::Count, PoolValue::Int(n)) => match u32::try_from(*n) {
            Ok(n) => Some(quote!(#n)),
            Err(_) => bad(errors, "a count up to 4294967295"),
        },
        (Kind::Count, _) => bad(errors, "a count such as 5"),
        (Kind::Bool, PoolValue::Bool(b)) => Some(quote!(#b)),
        (Kind::Bool, _) => bad(errors, "`true` or `false`"),
        (Kind::Duration, PoolValue::Str(s)) => match duration(s) {
            Some(d) => Some(d),
            None => bad(
                errors,
                &format!("a duration such as \"2s\" or \"500ms\", not \"{s}\""),
            ),
        },
        (Kind::OptDuration, PoolValue::Str(s)) if pool_settings::duration::is_off(s) => {
            Some(quote!(#p::None))
        }
        (Kind::OptDuration, PoolValue::Str(s)) => match duration(s) {
            Some(d) => Some(quote!(#p::Some(#d))),
            None => bad(
                errors,
                &format!("a duration such as \"2s\", or \"off\", not \"{s}\""),
            ),
        },
        (Kind::Duration | Kind::OptDuration, _) => {
            bad(errors, "a duration in a string, such as \"2s\"")
        }
        (Kind::Enum(spec), PoolValue::Str(s)) => match spec.parse(s) {
            // Checked here; the run time's `FromStr` reads the same table.
            Some(i) => {
                let canonical = spec.variants[i][0];
                Some(quote!(::core::str::FromStr::from_str(#canonical)
                    .expect("a spelling from the settings table")))
            }
            None => {
                let quoted: Vec<String> = spec.canonical().map(|c| format!("\"{c}\"")).collect();
                let listed = match quoted.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} or {last}", rest.join(", "))
                    }
                    _ => quoted.join(""),
                };
                bad(
                    errors,
                    &format!("{listed}, not \"{s}\"{}", did_you_mean(s, spec.canonical())),
                )
            }
        },
        (Kind::Enum(_), _) => bad(errors, "a string"),
        (other, _) => bad(errors, &format!("a value of kind {other:?}")),
    }
}

fn duration(text: &str) -> Option<TokenStream> {
    let d = pool_settings::duration::parse_duration(text).ok()?;
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    Some(quote!(::core::time::Duration::new(#secs, #nanos)))
}

fn profile(opts: &Options, errors: &mut Errors) -> Option<String> {
    let p = opts.profile.as_ref()?;
    if opts.config.is_none() {
        errors.at(
            p.span,
            "`profile` selects the profile of `config = YourConfig`; add `config`",
        );
    }
    let found = PROFILES
        .iter()
        .find(|(alias, _)| *alias == p.value.to_ascii_lowercase());
    match found {
        Some((_, canonical)) => Some((*canonical).to_owned()),
        None => {
            errors.at(
                p.span,
                format!(
                    "unknown profile \"{}\"{}; profiles are development, test and production",
                    p.value,
                    did_you_mean(&p.value, ["development", "test", "production"])
                ),
            );
            None
        }
    }
}

fn runtime(opts: &Options, errors: &mut Errors) -> (bool, Option<usize>) {
    let multi = match &opts.flavor {
        None => false,
        Some(f) => match f.value.as_str() {
            "current_thread" => false,
            "multi_thread" => true,
            other => {
                errors.at(
                    f.span,
                    format!(
                        "unknown flavor \"{other}\"{}; flavors are \"current_thread\" (the default) and \"multi_thread\"",
                        did_you_mean(other, ["current_thread", "multi_thread"])
                    ),
                );
                false
            }
        },
    };
    if let Some(w) = &opts.worker_threads {
        if !multi {
            errors.at(w.span, "`worker_threads` needs `flavor = \"multi_thread\"`");
        } else if w.value == 0 {
            errors.at(w.span, "`worker_threads` must be at least 1");
        }
    }
    (multi, opts.worker_threads.as_ref().map(|w| w.value))
}

/// The env pairs, checked for duplicates.
pub fn env_pairs(opts: &Options, errors: &mut Errors) -> Vec<(String, String)> {
    if !opts.env.is_empty()
        && opts.config.is_none()
        && let Some(span) = opts.env_span
    {
        errors.at(
            span,
            "`env(...)` sets variables for `config = YourConfig`; add `config`",
        );
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in &opts.env {
        if out.iter().any(|(n, _)| *n == name.value) {
            errors.at(name.span, format!("`{}` is set twice", name.value));
        } else {
            out.push((name.value.clone(), value.value.clone()));
        }
    }
    out
}
