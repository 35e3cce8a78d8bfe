//! The loading pass the generated code drives: resolves each variable
//! (env, profile default, default), parses it, records where it came from,
//! and collects every problem instead of stopping at the first.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::RangeBounds;
use std::str::FromStr;

use super::error::{ConfigError, OtherPrefix, Problem, ValueSource, Warning};
use super::explain::{Entry, Explanation};
use super::value::{Bounded, EnvValue, is_off, mask_credentials, parse_from_str};
use super::{ConfigMeta, EnvSource, FieldSpec, PoolConfig, Profile, profile::PROFILE_FORMAT};
use crate::PoolSettings;
use pool_settings::suggest;

/// Longest value quoted in an error.
const MAX_SHOWN: usize = 80;

/// State of one load. Created by [`PoolConfig::load_with_prefix`]; the
/// generated `__load` calls its methods field by field.
pub struct Loader<'a> {
    source: &'a EnvSource,
    meta: &'static ConfigMeta,
    profile: Option<Profile>,
    profile_shown: String,
    top_prefix: String,
    prefix: String,
    path: Vec<&'static str>,
    overridden: bool,
    problems: Vec<Problem>,
    entries: Vec<Entry>,
    read: BTreeMap<String, String>,
}

/// A loaded config with its provenance: what `explain()` prints and the
/// warnings about unknown variables. Derefs to the config.
#[derive(Clone, Debug)]
pub struct Loaded<T> {
    config: T,
    explanation: Explanation,
    warnings: Vec<Warning>,
    profile: Profile,
    prefix: String,
}

impl<T> Loaded<T> {
    /// The config.
    pub fn into_inner(self) -> T {
        self.config
    }

    /// Each effective value and where it came from, redacted.
    pub fn explain(&self) -> &Explanation {
        &self.explanation
    }

    /// Variables that share the prefix but that nothing reads.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The profile in effect.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The prefix the config was loaded under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl<T: PoolConfig> Loaded<T> {
    /// [`PoolConfig::settings`], with the pool named after the prefix
    /// (`EU_DB_` → `eu_db`) when no field sets `name`.
    pub fn settings(&self) -> PoolSettings {
        let mut s = self.config.settings();
        let named = T::__meta().maps_setting("name");
        let name = self.prefix.trim_end_matches('_').to_ascii_lowercase();
        if !named && !name.is_empty() {
            s.name = name;
        }
        s
    }

    /// Connects a pool with [`Loaded::settings`].
    pub async fn connect_as<DB: crate::Backend>(&self) -> Result<crate::Pool<DB>, crate::Error> {
        crate::Pool::<DB>::connect(self.settings()).await
    }

    /// Connects a PostgreSQL pool with [`Loaded::settings`].
    #[cfg(feature = "postgres")]
    pub async fn connect(&self) -> Result<crate::Pool<sqlx::Postgres>, crate::Error> {
        self.connect_as::<sqlx::Postgres>().await
    }

    /// A [`PoolBuilder`](crate::PoolBuilder) with [`Loaded::settings`], to
    /// add lifecycle hooks (code, so not in the config) before connecting.
    pub fn builder_as<DB: crate::Backend>(&self) -> crate::PoolBuilder<DB> {
        crate::Pool::<DB>::builder(self.settings())
    }

    /// [`builder_as`](Self::builder_as) for PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn builder(&self) -> crate::PoolBuilder<sqlx::Postgres> {
        self.builder_as::<sqlx::Postgres>()
    }
}

impl<T> std::ops::Deref for Loaded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.config
    }
}

fn shorten(s: String) -> String {
    if s.chars().count() <= MAX_SHOWN {
        return s;
    }
    let mut out: String = s.chars().take(MAX_SHOWN).collect();
    out.push('…');
    out
}

/// Replaces a secret value inside a message (a `FromStr` error may echo it).
fn scrub(message: &str, raw: &str) -> String {
    let t = raw.trim();
    let mut out = message.to_owned();
    for needle in [raw, t] {
        if needle.chars().count() >= 3 {
            out = out.replace(needle, "***");
        }
    }
    out
}

impl<'a> Loader<'a> {
    pub(crate) fn new(
        source: &'a EnvSource,
        meta: &'static ConfigMeta,
        prefix: Option<&str>,
    ) -> Self {
        let mut problems = Vec::new();
        let var = meta.profile_env;
        let (profile, profile_shown) = match source.get(var).map(str::trim) {
            None | Some("") if !source.is_not_unicode(var) => (
                Some(Profile::Development),
                format!("{var} unset, development assumed"),
            ),
            None | Some("") => {
                problems.push(Problem {
                    var: var.to_owned(),
                    field: String::new(),
                    source: Some(ValueSource::Env),
                    value: None,
                    message: "not valid UTF-8".to_owned(),
                    expected: PROFILE_FORMAT.to_owned(),
                    secret: false,
                });
                (None, format!("{var} invalid"))
            }
            Some(raw) => match raw.parse::<Profile>() {
                Ok(p) => (Some(p), format!("{var}={raw}")),
                Err(_) => {
                    problems.push(Problem {
                        var: var.to_owned(),
                        field: String::new(),
                        source: Some(ValueSource::Env),
                        value: Some(shorten(mask_credentials(raw))),
                        message: "unknown profile".to_owned(),
                        expected: PROFILE_FORMAT.to_owned(),
                        secret: false,
                    });
                    (None, format!("{var} invalid"))
                }
            },
        };
        let overridden = prefix.is_some_and(|p| p != meta.prefix);
        let prefix = prefix.unwrap_or(meta.prefix).to_owned();
        Self {
            source,
            meta,
            profile,
            profile_shown,
            top_prefix: prefix.clone(),
            prefix,
            path: Vec::new(),
            overridden,
            problems,
            entries: Vec::new(),
            read: BTreeMap::new(),
        }
    }

    fn field_path(&self, spec: &FieldSpec) -> String {
        let mut p: Vec<&str> = self.path.clone();
        p.push(spec.field);
        p.join(".")
    }

    /// The variable a field reads under the current prefix.
    fn var_name(&self, spec: &FieldSpec) -> String {
        match spec.env {
            Some(env) if !self.overridden => env.to_owned(),
            _ => format!("{}{}", self.prefix, spec.key),
        }
    }

    fn expected(spec: &FieldSpec) -> String {
        let base = spec.expected_text();
        match spec.range {
            Some(r) => format!("{base}, within {r}"),
            None => base,
        }
    }

    /// Env value, then profile default, then default.
    fn resolve(
        &self,
        spec: &FieldSpec,
        var: &str,
    ) -> Result<Option<(&'a str, ValueSource)>, &'static str> {
        if self.source.is_not_unicode(var) {
            return Err("not valid UTF-8");
        }
        if let Some(v) = self.source.get(var).filter(|v| !v.trim().is_empty()) {
            return Ok(Some((v, ValueSource::Env)));
        }
        if let Some(p) = self.profile
            && let Some(d) = spec.defaults[p.index()]
        {
            return Ok(Some((d, ValueSource::ProfileDefault(p))));
        }
        Ok(spec.defaults[0].map(|d| (d, ValueSource::Default)))
    }

    fn read<T>(
        &mut self,
        spec: &'static FieldSpec,
        parse: impl FnOnce(&str) -> Result<T, String>,
        unset: impl FnOnce() -> Option<T>,
        show: impl FnOnce(&T, bool) -> String,
        check: impl FnOnce(&T) -> Result<(), String>,
    ) -> Option<T> {
        let var = self.var_name(spec);
        let field = self.field_path(spec);
        let problem =
            |source: Option<ValueSource>, value: Option<String>, message: String| Problem {
                var: var.clone(),
                field: field.clone(),
                source,
                value: if spec.secret {
                    None
                } else {
                    value.map(|v| shorten(mask_credentials(&v)))
                },
                message,
                expected: Self::expected(spec),
                secret: spec.secret,
            };
        if let Some(other) = self.read.insert(var.clone(), field.clone()) {
            let p = problem(
                None,
                None,
                format!("read by two fields, `{other}` and `{field}`"),
            );
            self.problems.push(p);
            return None;
        }
        let resolved = match self.resolve(spec, &var) {
            Ok(r) => r,
            Err(msg) => {
                let p = problem(Some(ValueSource::Env), None, msg.to_owned());
                self.problems.push(p);
                return None;
            }
        };
        let (value, source) = match resolved {
            Some((raw, source)) => {
                let checked = parse(raw).and_then(|v| check(&v).map(|()| v));
                match checked {
                    Ok(v) => (v, source),
                    Err(msg) => {
                        let msg = if spec.secret { scrub(&msg, raw) } else { msg };
                        let p = problem(Some(source), Some(raw.to_owned()), msg);
                        self.problems.push(p);
                        return None;
                    }
                }
            }
            None => match unset() {
                Some(v) => (v, ValueSource::Unset),
                None => {
                    let p = problem(
                        None,
                        None,
                        "required, but not set and without a default".to_owned(),
                    );
                    self.problems.push(p);
                    return None;
                }
            },
        };
        self.entries.push(Entry {
            var,
            field,
            value: show(&value, spec.secret),
            source,
            secret: spec.secret,
            setting: spec.setting,
        });
        Some(value)
    }

    /// Reads one field through its [`EnvValue`] impl.
    pub fn field<T: EnvValue>(&mut self, spec: &'static FieldSpec) -> Option<T> {
        self.read(spec, T::parse_env, T::when_unset, show::<T>, |_| Ok(()))
    }

    /// Reads one field and checks it against `#[pool(range = …)]`.
    pub fn field_in<T, R>(&mut self, spec: &'static FieldSpec, range: R) -> Option<T>
    where
        T: EnvValue + Bounded,
        R: RangeBounds<T::Key>,
    {
        let check = |v: &T| match v.key() {
            Some(k) if !range.contains(&k) => Err(if spec.secret {
                format!("outside {}", spec.range.unwrap_or("its range"))
            } else {
                format!(
                    "{} is outside {}",
                    T::show_key(&k),
                    spec.range.unwrap_or("its range")
                )
            }),
            _ => Ok(()),
        };
        self.read(spec, T::parse_env, T::when_unset, show::<T>, check)
    }

    /// Reads a `#[pool(from_str)]` field.
    pub fn field_from_str<T>(&mut self, spec: &'static FieldSpec) -> Option<T>
    where
        T: FromStr + Display,
        T::Err: Display,
    {
        self.read(
            spec,
            parse_from_str::<T>,
            || None,
            show_display::<T>,
            |_| Ok(()),
        )
    }

    /// Reads a `#[pool(from_str)]` field of type `Option<T>`.
    pub fn field_from_str_opt<T>(&mut self, spec: &'static FieldSpec) -> Option<Option<T>>
    where
        T: FromStr + Display,
        T::Err: Display,
    {
        let parse = |raw: &str| {
            if is_off(raw) {
                Ok(None)
            } else {
                parse_from_str::<T>(raw).map(Some)
            }
        };
        let show = |v: &Option<T>, secret: bool| {
            v.as_ref()
                .map_or_else(|| "off".to_owned(), |v| show_display(v, secret))
        };
        self.read(spec, parse, || Some(None), show, |_| Ok(()))
    }

    /// Loads a `#[pool(flatten)]` field under the current prefix plus its own.
    pub fn flatten<T>(
        &mut self,
        spec: &'static FieldSpec,
        load: fn(&mut Loader<'a>) -> Option<T>,
    ) -> Option<T> {
        let sub = spec.flatten.map_or("", |f| f.prefix);
        let saved = self.prefix.clone();
        self.prefix.push_str(sub);
        self.path.push(spec.field);
        let out = load(self);
        self.path.pop();
        self.prefix = saved;
        out
    }

    /// Cross-field rules on the settings the fields map to
    /// ([`pool_settings::check()`]), each problem reported on the variable
    /// of the first involved setting that a field maps to; plus whether
    /// the URL parses, which only the run time can tell.
    pub(crate) fn check_settings(&mut self, s: &PoolSettings) {
        let find = |setting: &str| self.entries.iter().find(|e| e.setting == Some(setting));
        let mut out = Vec::new();
        let url_problem = crate::hosts::url::parse_check(s.url.expose().trim())
            .err()
            .filter(|_| !s.url.expose().trim().is_empty())
            .map(|err| pool_settings::Problem {
                settings: &["url"],
                message: format!("not a URL ({err})"),
                expected: "a URL such as postgres://user@host/db or sqlite://app.db",
            });
        for problem in url_problem
            .into_iter()
            .chain(pool_settings::check(&s.values()))
        {
            let Some(e) = problem.settings.iter().find_map(|name| find(name)) else {
                continue;
            };
            out.push(Problem {
                var: e.var.clone(),
                field: e.field.clone(),
                source: Some(e.source.clone()),
                value: if e.secret {
                    None
                } else {
                    Some(e.value.clone())
                },
                message: problem.message,
                expected: problem.expected.to_owned(),
                secret: e.secret,
            });
        }
        self.problems.extend(out);
    }

    fn warnings(&self) -> Vec<Warning> {
        let read: Vec<&str> = self.read.keys().map(String::as_str).collect();
        let mut out = Vec::new();
        for name in self.source.names() {
            if self.read.contains_key(name) || name == self.meta.profile_env {
                continue;
            }
            let shares_prefix = !self.top_prefix.is_empty() && name.starts_with(&self.top_prefix);
            if shares_prefix {
                let limit = (name.len() / 4).max(2);
                let suggestion =
                    suggest::closest_within(name, read.iter().copied(), limit).map(str::to_owned);
                out.push(Warning {
                    var: name.to_owned(),
                    suggestion,
                    other_prefix: None,
                });
            } else if let Some((var, field)) = self.under_other_prefix(name) {
                out.push(Warning {
                    var: name.to_owned(),
                    suggestion: Some(var.to_owned()),
                    other_prefix: Some(OtherPrefix {
                        field: field.to_owned(),
                        prefix: self.top_prefix.clone(),
                    }),
                });
            } else if name.len() >= 6 {
                // A near miss of an absolute name (DATABSE_URL).
                let near = read
                    .iter()
                    .filter(|r| self.top_prefix.is_empty() || !r.starts_with(&self.top_prefix))
                    .find(|r| (1..=2).contains(&suggest::distance(name, r)) && r.len() >= 6);
                if let Some(r) = near {
                    out.push(Warning {
                        var: name.to_owned(),
                        suggestion: Some((*r).to_owned()),
                        other_prefix: None,
                    });
                }
            }
        }
        out
    }

    /// The variable and field `name` was likely meant for when it is a
    /// field's key under another prefix (`DB_POOL_SIZE` for
    /// `APP_DB_POOL_SIZE`); the longest matching key wins. Issue 10: such a
    /// variable was silently ignored (`a_field_under_another_prefix_is_a_warning`
    /// in tests/config_load.rs).
    fn under_other_prefix(&self, name: &str) -> Option<(&str, &str)> {
        if self.top_prefix.is_empty() {
            return None;
        }
        self.read
            .iter()
            .filter_map(|(var, field)| {
                let key = var.strip_prefix(self.top_prefix.as_str())?;
                let other = name.strip_suffix(key)?;
                // `PATH` is no typo of `APP_PATH`: another prefix must be there.
                let fits = key.len() >= 3 && other.len() > 1 && other.ends_with('_');
                fits.then_some((var.as_str(), field.as_str(), key.len()))
            })
            .max_by_key(|(_, _, len)| *len)
            .map(|(var, field, _)| (var, field))
    }

    pub(crate) fn finish<T>(self, value: Option<T>) -> Result<Loaded<T>, ConfigError> {
        match value {
            Some(config) if self.problems.is_empty() => {
                let warnings = self.warnings();
                for w in &warnings {
                    tracing::warn!(config = self.meta.name, variable = %w.var, suggestion = ?w.suggestion, "{w}");
                }
                Ok(Loaded {
                    config,
                    explanation: Explanation {
                        config: self.meta.name,
                        profile: self.profile.unwrap_or_default(),
                        profile_source: self.profile_shown,
                        entries: self.entries,
                    },
                    warnings,
                    profile: self.profile.unwrap_or_default(),
                    prefix: self.top_prefix,
                })
            }
            _ => Err(ConfigError::new(
                self.meta.name,
                self.profile,
                self.problems,
            )),
        }
    }
}

fn show<T: EnvValue>(v: &T, secret: bool) -> String {
    if secret { v.show_redacted() } else { v.show() }
}

fn show_display<T: Display>(v: &T, secret: bool) -> String {
    if secret {
        "***".to_owned()
    } else {
        mask_credentials(&v.to_string())
    }
}
