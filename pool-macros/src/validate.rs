//! Checks on the model: literal defaults against their types and ranges,
//! env names, setting names, and the cross-field rules of a pool.

use std::collections::BTreeMap;

use proc_macro2::Span;

use pool_settings::suggest::did_you_mean;
use pool_settings::table;

use crate::parse::{Container, Errors, Field, PROFILE_KEYS, Spanned};
use crate::types::{Checked, Kind, Lit};

/// What expansion needs beyond the parsed model.
pub struct Resolved {
    /// Derived key (SCREAMING_SNAKE of the field name), used under a prefix.
    pub key: String,
    /// Full name under the declared prefix (or the absolute `env`).
    pub full: String,
    /// The `PoolSettings` setting this field maps to.
    pub setting: Option<&'static str>,
    /// Defaults (by profile index) already reported as wrong: no cross-field
    /// error is piled on them.
    pub bad: [bool; 4],
    /// `#[pool(secret)]` on a type the macro cannot classify (an alias, the
    /// user's own type): checked by the compiler through
    /// `pool_runtime::secret::Redacted` instead.
    pub assert_redacted: bool,
}

/// SCREAMING_SNAKE_CASE of a field name (`poolSize` and `pool_size` both
/// give `POOL_SIZE`).
pub fn screaming(name: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        out.extend(c.to_uppercase());
    }
    out
}

fn check_env_chars(what: &str, s: &Spanned<String>, allow_empty: bool, errors: &mut Errors) {
    if s.value.is_empty() && !allow_empty {
        errors.at(s.span, format!("{what} must not be empty"));
    } else if let Some(bad) = s
        .value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        errors.at(
            s.span,
            format!(
                "{what} \"{}\" contains {bad:?}; environment variable names use A-Z, 0-9 and _",
                s.value
            ),
        );
    }
}

/// Runs every check, adding to `errors`; returns per-field results parallel
/// to `c.fields`.
pub fn validate(c: &Container, errors: &mut Errors) -> Vec<Resolved> {
    if let Some(p) = &c.prefix {
        check_env_chars("prefix", p, true, errors);
    }
    if let Some(p) = &c.profile_env {
        check_env_chars("profile_env", p, false, errors);
    }
    let prefix = c.prefix.as_ref().map_or("", |p| p.value.as_str());
    let mut resolved = Vec::new();
    let mut names: BTreeMap<String, (String, Span)> = BTreeMap::new();
    let mut settings: BTreeMap<&'static str, String> = BTreeMap::new();
    for f in &c.fields {
        let r = field(f, prefix, errors);
        if f.flatten.is_none() {
            let span = f.env.as_ref().map_or(f.ident.span(), |e| e.span);
            if let Some((other, _)) = names.get(&r.full) {
                errors.at(
                    span,
                    format!(
                        "environment variable `{}` is read by two fields, `{other}` and `{}`; give one of them another name with #[pool(env = \"…\")]",
                        r.full,
                        f.name()
                    ),
                );
            } else {
                names.insert(r.full.clone(), (f.name(), span));
            }
        }
        if let Some(s) = r.setting {
            if let Some(other) = settings.get(s) {
                let span = f.setting.as_ref().map_or(f.ident.span(), |s| s.span);
                errors.at(
                    span,
                    format!(
                        "fields `{other}` and `{}` both map to the `{s}` setting; mark one #[pool(no_setting)]",
                        f.name()
                    ),
                );
            } else {
                settings.insert(s, f.name());
            }
        }
        resolved.push(r);
    }
    cross_field(c, &resolved, errors);
    resolved
}

fn field(f: &Field, prefix: &str, errors: &mut Errors) -> Resolved {
    let key = screaming(&f.name());
    let full = f
        .env
        .as_ref()
        .map_or_else(|| format!("{prefix}{key}"), |e| e.value.clone());
    if let Some(e) = &f.env {
        check_env_chars("env", e, false, errors);
    }
    if let Some(p) = &f.sub_prefix {
        check_env_chars("prefix", p, true, errors);
        if f.flatten.is_none() {
            errors.at(p.span, "a field `prefix` only applies to #[pool(flatten)] fields; use `env` to name a variable");
        }
    }
    if f.flatten.is_some() {
        flatten_conflicts(f, errors);
        return Resolved {
            key,
            full,
            setting: None,
            bad: [false; 4],
            assert_redacted: false,
        };
    }
    let assert_redacted = f.secret.is_some() && secret_type(f, errors);
    let setting = setting_of(f, errors);
    if f.from_str.is_some()
        && let Some(r) = &f.range
    {
        errors.over(&r.tokens, "`range` is not supported with `from_str`");
    }
    let kind = if f.from_str.is_some() {
        Kind::Other
    } else {
        f.kind.clone()
    };
    let mut checked: [Option<(Checked, Span)>; 4] = Default::default();
    let mut bad = [false; 4];
    for (i, d) in f.defaults.iter().enumerate() {
        let Some(d) = d else { continue };
        match kind.check(&d.value) {
            Ok(v) => checked[i] = Some((v, d.span)),
            Err(msg) => {
                bad[i] = true;
                errors.at(
                    d.span,
                    format!("`{}` of `{}`: {msg}", PROFILE_KEYS[i], f.name()),
                );
            }
        }
    }
    if let Some(r) = &f.range {
        range(f, &kind, r, &checked, &mut bad, errors);
    }
    Resolved {
        key,
        full,
        setting,
        bad,
        assert_redacted,
    }
}

/// `#[pool(secret)]` only hides a value from `explain()` and errors; the
/// struct's own `#[derive(Debug)]` would still print it (issue 10, found by
/// `secret_field_is_redacted_by_debug` in pool-runtime/tests/config_load.rs).
/// So a secret field must have a type whose `Debug` redacts: a known
/// printing type is an error here; an unknown one (alias, own type) is left
/// to the compiler (returns true).
fn secret_type(f: &Field, errors: &mut Errors) -> bool {
    let inner = match &f.kind {
        Kind::Option(k) => k.as_ref(),
        k => k,
    };
    match inner {
        Kind::Secret(_) => false,
        Kind::Other => true,
        _ => {
            let ty = crate::expand::type_text(&f.ty);
            let wrapped = match crate::types::generic_arg(&f.ty, "Option") {
                Some(t) => format!("Option<Secret<{}>>", crate::expand::type_text(t)),
                None => format!("Secret<{ty}>"),
            };
            errors.over(
                &f.ty,
                format!(
                    "`{}` is marked #[pool(secret)] but its type `{ty}` prints its value: \
                     `#[derive(Debug)]` on the struct would show the secret in clear\n\
                     help: declare it `{wrapped}` (`pool_runtime::Secret`, redacted by Debug and \
                     Display, read with `.expose()`); a `Secret` field needs no #[pool(secret)]",
                    f.name()
                ),
            );
            false
        }
    }
}

fn flatten_conflicts(f: &Field, errors: &mut Errors) {
    let mut conflicts: Vec<(&str, Span)> = Vec::new();
    if let Some(e) = &f.env {
        conflicts.push(("env", e.span));
    }
    for (i, d) in f.defaults.iter().enumerate() {
        if let Some(d) = d {
            conflicts.push((PROFILE_KEYS[i], d.span));
        }
    }
    if let Some(r) = &f.range {
        conflicts.push(("range", syn::spanned::Spanned::span(&r.tokens)));
    }
    for (k, s) in [
        ("secret", f.secret),
        ("no_setting", f.no_setting),
        ("from_str", f.from_str),
    ] {
        if let Some(s) = s {
            conflicts.push((k, s));
        }
    }
    if let Some(s) = &f.setting {
        conflicts.push(("setting", s.span));
    }
    for (k, s) in conflicts {
        errors.at(s, format!("`{k}` cannot be combined with `flatten`: a flattened struct configures its own fields"));
    }
}

fn setting_of(f: &Field, errors: &mut Errors) -> Option<&'static str> {
    if let Some(s) = &f.setting {
        if let Some(ns) = f.no_setting {
            errors.at(ns, "`no_setting` contradicts `setting`");
        }
        return match pool_settings::find(&s.value) {
            Some(setting) => Some(setting.name),
            None => {
                errors.at(
                    s.span,
                    format!(
                        "unknown setting \"{}\"{}; settings are the fields of PoolSettings: {}",
                        s.value,
                        did_you_mean(&s.value, table::names()),
                        table::names().collect::<Vec<_>>().join(", ")
                    ),
                );
                None
            }
        };
    }
    if f.no_setting.is_some() {
        return None;
    }
    pool_settings::find(&f.name()).map(|setting| setting.name)
}

fn range(
    f: &Field,
    kind: &Kind,
    r: &crate::parse::RangeAttr,
    checked: &[Option<(Checked, Span)>; 4],
    bad: &mut [bool; 4],
    errors: &mut Errors,
) {
    if !kind.supports_range() {
        errors.over(
            &r.tokens,
            format!("`range` applies to integer, float and duration fields (or an Option of one); `{}` is none of these", f.name()),
        );
        return;
    }
    let inner = match kind {
        Kind::Option(k) => k.as_ref(),
        k => k,
    };
    let mut bound = |b: &Option<crate::parse::Bound>| -> Option<Option<Checked>> {
        let b = b.as_ref()?;
        match inner.check(&b.lit) {
            Ok(v) => Some(Some(v)),
            Err(msg) => {
                errors.at(b.span, format!("range bound: {msg}"));
                Some(None)
            }
        }
    };
    let start = bound(&r.start);
    let end = bound(&r.end);
    if matches!(start, Some(None)) || matches!(end, Some(None)) {
        return;
    }
    let (start, end) = (start.flatten(), end.flatten());
    if r.end.is_none() && r.inclusive {
        errors.over(&r.tokens, "an inclusive range needs an end");
        return;
    }
    if let (Some(s), Some(e)) = (start, end)
        && (s > e || (s == e && !r.inclusive))
    {
        errors.over(&r.tokens, "empty range: no value is allowed");
        return;
    }
    for (i, c) in checked.iter().enumerate() {
        let Some((v, span)) = c else { continue };
        if matches!(v, Checked::Off | Checked::Opaque) {
            continue;
        }
        let low_ok = start.is_none_or(|s| *v >= s);
        let high_ok = end.is_none_or(|e| if r.inclusive { *v <= e } else { *v < e });
        if !(low_ok && high_ok) {
            bad[i] = true;
            let lit = f.defaults[i]
                .as_ref()
                .map(|d| d.value.as_env_text())
                .unwrap_or_default();
            errors.at(
                *span,
                format!(
                    "`{}` = {lit} of `{}` is outside its range {}",
                    PROFILE_KEYS[i],
                    f.name(),
                    range_text(r)
                ),
            );
        }
    }
}

/// The range as written, for messages and docs.
pub fn range_text(r: &crate::parse::RangeAttr) -> String {
    let b = |b: &Option<crate::parse::Bound>| {
        b.as_ref().map_or(String::new(), |b| match &b.lit {
            Lit::Str(s) => s.clone(),
            other => other.as_env_text(),
        })
    };
    format!(
        "{}{}{}",
        b(&r.start),
        if r.inclusive { "..=" } else { ".." },
        b(&r.end)
    )
}

/// The literal a profile ends up with, and whether it was written for that
/// profile (rather than inherited from `default`).
fn effective(f: &Field, profile: usize) -> Option<(&Spanned<Lit>, bool)> {
    match &f.defaults[profile] {
        Some(d) => Some((d, true)),
        None => f.defaults[0].as_ref().map(|d| (d, false)),
    }
}

fn int_of(lit: &Lit) -> Option<i128> {
    match lit {
        Lit::Int(v, _) => Some(*v),
        _ => None,
    }
}

/// Index of the attribute a profile's value comes from (its own, or 0).
fn source_index(f: &Field, profile: usize) -> usize {
    if f.defaults[profile].is_some() {
        profile
    } else {
        0
    }
}

/// Field name, attribute index, the problem's setting.
type ProblemKey = (String, usize, &'static str);

/// A field, with what validation resolved for it.
type Mapped<'c> = (&'c Field, &'c Resolved);

/// The field mapping to `setting`.
fn mapped<'c>(c: &'c Container, resolved: &'c [Resolved], setting: &str) -> Option<Mapped<'c>> {
    c.fields
        .iter()
        .zip(resolved)
        .find(|(_, r)| r.setting == Some(setting))
}

/// The attribute text a setting has in a profile: the field's literal
/// (`None` when it has none, or a wrong one already reported); for a
/// setting no field maps, the table's default when the struct has no
/// flattened part that might map it (never for `url`: a URL is required).
fn setting_text(c: &Container, resolved: &[Resolved], name: &str, p: usize) -> Option<String> {
    let setting = pool_settings::find(name)?;
    let Some((f, r)) = mapped(c, resolved, name) else {
        let visible = c.fields.iter().all(|f| f.flatten.is_none());
        return (visible && name != "url").then(|| setting.default.to_owned());
    };
    let (d, _) = effective(f, p)?;
    if r.bad[source_index(f, p)] {
        return None;
    }
    let text = d.value.as_env_text();
    let optional = matches!(
        setting.kind,
        table::Kind::OptDuration
            | table::Kind::OptCount
            | table::Kind::OptEnum(_)
            | table::Kind::OptText
    );
    // An `Option` field that is off leaves a non-optional setting at its default.
    if pool_settings::is_off(&text) && !optional {
        return Some(setting.default.to_owned());
    }
    Some(text)
}

/// The values `pool_settings::check` sees for one profile.
fn profile_values<'t>(texts: &'t BTreeMap<&'static str, String>) -> pool_settings::Values<'t> {
    let text = |n: &str| texts.get(n).map(String::as_str);
    let count = |n: &str| text(n).and_then(|t| t.replace('_', "").parse::<u64>().ok());
    let duration = |n: &str| text(n).and_then(|t| pool_settings::parse_duration(t).ok());
    let percent = |n: &str| text(n).and_then(|t| t.parse::<f64>().ok());
    pool_settings::Values {
        url: text("url"),
        null_pool: text("pool_class").map(table::is_null_pool),
        pool_size: count("pool_size"),
        min_idle: count("min_idle"),
        pool_timeout: duration("pool_timeout"),
        connect_timeout: duration("connect_timeout"),
        network_timeout: duration("network_timeout"),
        pool_recycle: text("pool_recycle").and_then(|t| {
            if pool_settings::is_off(t) {
                Some(None)
            } else {
                pool_settings::parse_duration(t).ok().map(Some)
            }
        }),
        read_max_lag: text("read_max_lag").and_then(|t| {
            if pool_settings::is_off(t) {
                Some(None)
            } else {
                pool_settings::parse_duration(t).ok().map(Some)
            }
        }),
        read_check_interval: duration("read_check_interval"),
        health_warning_percent: percent("health_warning_percent"),
        health_critical_percent: percent("health_critical_percent"),
        hosts: text("hosts").map(|t| (!pool_settings::is_off(t) && !t.is_empty()).then_some(t)),
        pgbouncer: text("pgbouncer"),
        pgbouncer_pool_size: text("pgbouncer_pool_size").map(|t| {
            (!pool_settings::is_off(t))
                .then(|| t.replace('_', "").parse::<u64>().ok())
                .flatten()
        }),
    }
}

/// The settings `pool_settings::check` reads.
const CHECKED: &[&str] = &[
    "url",
    "pool_class",
    "pool_size",
    "min_idle",
    "pool_timeout",
    "connect_timeout",
    "network_timeout",
    "pool_recycle",
    "health_warning_percent",
    "health_critical_percent",
    "hosts",
    "pgbouncer",
    "pgbouncer_pool_size",
];

/// The cross-field rules of `pool_settings::check` on each profile's
/// literals, one error per attribute listing the profiles it fails in;
/// plus a lint of our own: a `max_overflow` written for a null pool,
/// which is ignored rather than invalid.
fn cross_field(c: &Container, resolved: &[Resolved], errors: &mut Errors) {
    let by_setting = |s: &str| mapped(c, resolved, s);
    let class = by_setting("pool_class").map(|(f, _)| f);
    let overflow = by_setting("max_overflow").map(|(f, _)| f);
    let base_null = class
        .and_then(|f| f.defaults[0].as_ref())
        .is_some_and(|d| f_kind_null(class, &d.value));
    // (field, attribute index, problem) -> profiles; one error each.
    let mut found: BTreeMap<ProblemKey, (Span, String, Vec<&str>)> = BTreeMap::new();
    let mut note = |f: &Field, p: usize, what: &'static str, msg: String, profile: &'static str| {
        let i = source_index(f, p);
        let span = f.defaults[i].as_ref().map_or(f.ident.span(), |d| d.span);
        found
            .entry((f.name(), i, what))
            .or_insert_with(|| (span, msg, Vec::new()))
            .2
            .push(profile);
    };
    for (p, profile) in PROFILE_KEYS.iter().enumerate().skip(1) {
        let texts: BTreeMap<&'static str, String> = CHECKED
            .iter()
            .filter_map(|&n| Some((n, setting_text(c, resolved, n, p)?)))
            .collect();
        for problem in pool_settings::check(&profile_values(&texts)) {
            // Point at the first involved setting whose field has a literal
            // here; a problem made only of defaults is the run time's.
            let Some(f) = problem.settings.iter().find_map(|s| {
                by_setting(s)
                    .map(|(f, _)| f)
                    .filter(|f| effective(f, p).is_some())
            }) else {
                continue;
            };
            let lit = effective(f, p)
                .map(|(d, _)| d.value.as_env_text())
                .unwrap_or_default();
            note(
                f,
                p,
                problem.setting(),
                if problem.message.contains(problem.setting()) {
                    format!("{}; expected {}", problem.message, problem.expected)
                } else {
                    format!(
                        "`{}` = {lit}: {}; expected {}",
                        f.name(),
                        problem.message,
                        problem.expected
                    )
                },
                profile,
            );
        }
        let null = class
            .and_then(|f| effective(f, p))
            .is_some_and(|(d, _)| f_kind_null(class, &d.value));
        if let Some(f) = overflow
            && let Some((d, explicit)) = effective(f, p)
            && null
            && (explicit || base_null)
            && int_of(&d.value).is_some_and(|v| v != 0)
        {
            note(
                f,
                p,
                "max_overflow",
                format!(
                    "max_overflow = {} has no effect where pool_class is null (every checkout opens a fresh connection); remove it or use 0",
                    d.value.as_env_text()
                ),
                profile,
            );
        }
    }
    for (span, msg, profiles) in found.into_values() {
        let which = if profiles.len() == 3 {
            "every profile".to_owned()
        } else {
            format!("profile `{}`", profiles.join("`, `"))
        };
        errors.at(span, format!("{msg} (in {which})"));
    }
}

fn f_kind_null(class: Option<&Field>, lit: &Lit) -> bool {
    class.is_some_and(|f| {
        let kind = match &f.kind {
            Kind::Option(k) => k.as_ref(),
            k => k,
        };
        kind.is_null_pool(lit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screaming_names() {
        assert_eq!(screaming("pool_size"), "POOL_SIZE");
        assert_eq!(screaming("poolSize"), "POOL_SIZE");
        assert_eq!(screaming("url"), "URL");
        assert_eq!(screaming("pool_v2_size"), "POOL_V2_SIZE");
    }
}
