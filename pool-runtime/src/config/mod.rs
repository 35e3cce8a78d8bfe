//! Run-time support for `#[derive(PoolConfig)]`: typed, validated pool
//! configuration from environment variables.
//!
//! # Guide
//!
//! ```
//! use pool_runtime::{PoolClass, PoolConfig, Secret};
//! use std::time::Duration;
//!
//! /// Primary database.
//! #[derive(PoolConfig, Debug)]
//! #[pool(prefix = "DB_")]                    // names: prefix + SCREAMING_SNAKE(field)
//! pub struct Database {
//!     /// Connection URL; the password is never printed.
//!     #[pool(env = "DATABASE_URL")]          // absolute name
//!     pub url: Secret<String>,
//!     /// Connections kept open.
//!     #[pool(default = 20, production = 5, range = 1..=500)]
//!     pub pool_size: u32,                     // DB_POOL_SIZE
//!     #[pool(default = 10)]
//!     pub max_overflow: u32,                  // DB_MAX_OVERFLOW
//!     #[pool(default = "30s")]
//!     pub pool_timeout: Duration,             // DB_POOL_TIMEOUT
//!     #[pool(default = "1h")]
//!     pub pool_recycle: Option<Duration>,     // DB_POOL_RECYCLE, "off" = None
//!     #[pool(default = true)]
//!     pub pool_pre_ping: bool,                // DB_POOL_PRE_PING
//!     #[pool(default = "queue", test = "null")]
//!     pub pool_class: PoolClass,              // NullPool in the test profile
//!     /// Not a pool setting: plain typed config.
//!     #[pool(default = 3)]
//!     pub retries: u8,                        // DB_RETRIES
//! }
//!
//! let env = [
//!     ("DATABASE_URL", "postgres://app:hunter2@db/app"),
//!     ("APP_ENV", "production"),
//!     ("DB_POOL_TIMEOUT", "5s"),
//! ];
//! let loaded = Database::load(&pool_runtime::config::EnvSource::from_pairs(env)).unwrap();
//! assert_eq!(loaded.pool_size, 5);                    // production default
//! assert_eq!(loaded.pool_timeout, Duration::from_secs(5));
//! let explained = loaded.explain().to_string();
//! assert!(explained.contains("DB_POOL_SIZE"));
//! assert!(!explained.contains("hunter2"));
//!
//! let settings = loaded.settings();                   // url + mapped fields
//! assert_eq!(settings.pool_size, 5);
//! assert_eq!(settings.pool_recycle, Some(Duration::from_secs(3600)));
//!
//! let err = Database::from_map([("DB_POOL_SIZE", "0"), ("DB_POOL_TIMEOUT", "30x")]).unwrap_err();
//! assert_eq!(err.problems().len(), 3);                // pool size, timeout, missing URL
//! ```
//!
//! # Rules
//!
//! * **Names.** A field reads `prefix + SCREAMING_SNAKE(field)`, or its
//!   `#[pool(env = "…")]` name as is. Under another prefix at run time
//!   ([`PoolConfig::from_env_with_prefix`]) *every* variable, absolute ones
//!   included, is `new prefix + SCREAMING_SNAKE(field)` (`EU_DB_URL`), so
//!   that two databases never share a variable. A `#[pool(flatten)]` field's
//!   struct reads its own names under the same prefix (plus the field's
//!   optional `prefix = "SUB_"`).
//! * **Resolution.** A set, non-empty variable wins; then the active
//!   profile's default (`production = 5`), then `default = …`; an unset
//!   `Option` field with no default is `None`; anything else is reported as
//!   missing. An empty variable counts as unset.
//! * **Profiles** come from `APP_ENV` (or `#[pool(profile_env = "…")]`):
//!   `development` (also when unset), `test`, `production`. An unknown
//!   profile is an error.
//! * **Formats.** Integers (`_` separators allowed); `bool` as
//!   true/false, 1/0, yes/no, on/off; [`Duration`](std::time::Duration) as
//!   `30s`, `1500ms`, `1h 30m` or bare seconds (`30`, `2.5`); `Option<T>` as
//!   `off`/`none` or a `T`; [`PoolClass`](crate::PoolClass),
//!   [`ResetOnReturn`](crate::ResetOnReturn), [`NestedCheckout`](crate::NestedCheckout),
//!   [`SslMode`](crate::SslMode), [`TargetSessionAttrs`](crate::TargetSessionAttrs),
//!   [`LoadBalanceHosts`](crate::LoadBalanceHosts), [`ReadBalance`](crate::ReadBalance);
//!   [`url::Url`]; `String`, `PathBuf`; [`Secret<T>`](crate::Secret) as `T`.
//!   Any other type: implement [`EnvValue`], or mark the field
//!   `#[pool(from_str)]` to use its `FromStr` (plus `Display` for
//!   `explain()`).
//! * **Settings.** Fields named like a setting of
//!   [`pool_settings::SETTINGS`] (the
//!   [`PoolSettings`] fields, nested ones as `health_warning_percent`,
//!   `sqlite_busy_timeout`, …) set it in [`PoolConfig::settings`]; other
//!   names map with `#[pool(setting = "pool_size")]`; `#[pool(no_setting)]`
//!   opts out.
//! * **Secrets.** `Secret<T>` fields, fields marked `#[pool(secret)]` and
//!   the field mapped to `url` are never shown: errors omit the value,
//!   `explain()` and the docs print a URL with its password masked and
//!   anything else as `***`. The struct's own `#[derive(Debug)]` prints
//!   its fields, so `#[pool(secret)]` needs a type whose `Debug` redacts:
//!   `Secret<T>` (`Debug` for every `T`), `Option<Secret<T>>`, or a type
//!   implementing [`Redacted`](crate::secret::Redacted); `#[pool(secret)]
//!   token: String` is a compile error that points at `Secret<String>`.
//!   Declare the `url` field `Secret<String>` too: a plain `String` is
//!   masked here but printed by `Debug`.
//! * **Unknown variables** that share the prefix (`DB_POOL_SIZ`), and near
//!   misses of absolute names (`DATABSE_URL`), are warnings with a
//!   suggestion: logged with `tracing::warn!` and returned by
//!   [`Loaded::warnings`]. So is a variable naming a field under another
//!   prefix (`DB_POOL_SIZE` when the prefix is `APP_DB_`): it names the
//!   field and the variable that is read. With an empty prefix only near
//!   misses are reported. Two config types sharing one prefix will warn
//!   about each other's variables, and so will types whose prefixes end
//!   alike (`DB_` and `REPLICA_DB_`).

mod docs;
mod error;
mod explain;
mod loader;
mod meta;
mod profile;
mod source;
mod standard;
mod value;

use std::future::Future;

pub use docs::{BLESS_ENV, DocsDrift, EnvDocs, EnvVarDoc, assert_docs_current, check_file_current};
pub use error::{ConfigError, OtherPrefix, Problem, ValueSource, Warning};
pub use explain::{Entry, Explanation};
pub use loader::Loaded;
pub use profile::Profile;
pub use source::{EnvPair, EnvSource};
pub use standard::StandardPoolConfig;
pub use value::{EnvValue, parse_duration};

/// What `#[derive(PoolConfig)]` generates code against; reached through
/// `pool_runtime::__private`, not part of the API.
pub(crate) mod generated {
    pub use super::loader::Loader;
    pub use super::meta::{ConfigMeta, FieldSpec, Flatten};
    pub use super::value::{ApplySetting, Bounded, apply_setting};
}

pub(crate) use loader::Loader;
pub(crate) use meta::{ConfigMeta, FieldSpec};

use crate::{Backend, Pool, PoolSettings};

/// A config struct loaded from environment variables: implemented by
/// `#[derive(PoolConfig)]` (see the [module docs](self)), used through the
/// provided methods. Import it (`use pool_runtime::PoolConfig;` brings in
/// the derive and this trait) to call them.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a pool config",
    label = "`#[pool(flatten)]` needs a type with `#[derive(PoolConfig)]`",
    note = "derive `PoolConfig` for it, or drop `flatten` and give the field an `EnvValue` type"
)]
pub trait PoolConfig: Sized {
    #[doc(hidden)]
    fn __meta() -> &'static ConfigMeta;
    #[doc(hidden)]
    fn __load(loader: &mut Loader<'_>) -> Option<Self>;
    #[doc(hidden)]
    fn __apply(&self, settings: &mut PoolSettings);

    /// Loads from the process environment, reporting every bad variable
    /// at once. Warnings about unknown variables are logged.
    fn from_env() -> Result<Self, ConfigError> {
        Self::load(&EnvSource::process()).map(Loaded::into_inner)
    }

    /// Loads from the process environment under another prefix (several
    /// databases of one type); see the naming rule in the [module docs](self).
    fn from_env_with_prefix(prefix: &str) -> Result<Self, ConfigError> {
        Self::load_with_prefix(&EnvSource::process(), prefix).map(Loaded::into_inner)
    }

    /// Loads from pairs or a map, without reading the process environment:
    /// `from_map([("DATABASE_URL", "…")])`, `from_map(&hash_map)`.
    fn from_map<I>(pairs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: EnvPair,
    {
        Self::load(&EnvSource::from_pairs(pairs)).map(Loaded::into_inner)
    }

    /// Loads from a source, keeping where each value came from
    /// ([`Loaded::explain`]) and the warnings.
    fn load(source: &EnvSource) -> Result<Loaded<Self>, ConfigError> {
        load_impl::<Self>(source, None)
    }

    /// [`PoolConfig::load`] under another prefix.
    fn load_with_prefix(source: &EnvSource, prefix: &str) -> Result<Loaded<Self>, ConfigError> {
        load_impl::<Self>(source, Some(prefix))
    }

    /// `PoolSettings::new` defaults with the url and every mapped field
    /// applied. The pool is named after the struct (`Database` →
    /// `database`) unless a field maps to `name`; [`Loaded::settings`]
    /// names it after the prefix instead.
    fn settings(&self) -> PoolSettings {
        let mut s = PoolSettings::new(String::new());
        s.name = snake(Self::__meta().name);
        self.__apply(&mut s);
        s
    }

    /// Connects a pool of any backend with [`PoolConfig::settings`].
    fn connect_as<DB: Backend>(
        &self,
    ) -> impl Future<Output = Result<Pool<DB>, crate::Error>> + Send {
        let settings = self.settings();
        Pool::<DB>::connect(settings)
    }

    /// Connects a PostgreSQL pool with [`PoolConfig::settings`].
    #[cfg(feature = "postgres")]
    fn connect(&self) -> impl Future<Output = Result<Pool<sqlx::Postgres>, crate::Error>> + Send {
        self.connect_as::<sqlx::Postgres>()
    }

    /// Documentation of every variable, under the declared prefix.
    fn env_docs() -> EnvDocs {
        EnvDocs::build(Self::__meta(), None)
    }

    /// Documentation of every variable under another prefix.
    fn env_docs_with_prefix(prefix: &str) -> EnvDocs {
        EnvDocs::build(Self::__meta(), Some(prefix))
    }
}

fn load_impl<T: PoolConfig>(
    source: &EnvSource,
    prefix: Option<&str>,
) -> Result<Loaded<T>, ConfigError> {
    let mut loader = Loader::new(source, T::__meta(), prefix);
    let value = T::__load(&mut loader);
    if let Some(v) = &value {
        let mut settings = PoolSettings::new(String::new());
        v.__apply(&mut settings);
        loader.check_settings(&settings);
    }
    loader.finish(value)
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}
