//! Where values come from: the process environment, or any map.

use std::collections::{BTreeMap, BTreeSet};

/// A snapshot of variables to load a config from.
///
/// ```
/// use pool_runtime::config::EnvSource;
/// let src = EnvSource::from_pairs([("DB_POOL_SIZE", "7")]).with("APP_ENV", "test");
/// assert_eq!(src.get("DB_POOL_SIZE"), Some("7"));
/// assert_eq!(src.get("APP_ENV"), Some("test"));
/// ```
#[derive(Clone, Default)]
pub struct EnvSource {
    vars: BTreeMap<String, String>,
    not_unicode: BTreeSet<String>,
    kind: &'static str,
}

/// One `(name, value)` pair: tuples of string-likes, or references to them,
/// so that arrays, slices, `Vec`s and `HashMap`s all work.
pub trait EnvPair {
    /// The variable's name and value.
    fn pair(&self) -> (&str, &str);
}

impl<K: AsRef<str>, V: AsRef<str>> EnvPair for (K, V) {
    fn pair(&self) -> (&str, &str) {
        (self.0.as_ref(), self.1.as_ref())
    }
}

impl<K: AsRef<str>, V: AsRef<str>> EnvPair for &(K, V) {
    fn pair(&self) -> (&str, &str) {
        (self.0.as_ref(), self.1.as_ref())
    }
}

impl EnvSource {
    /// The process environment, read now. A variable whose value is not
    /// UTF-8 is reported as a problem if a field reads it.
    pub fn process() -> Self {
        let mut out = Self {
            kind: "env",
            ..Self::default()
        };
        for (k, v) in std::env::vars_os() {
            let Ok(k) = k.into_string() else { continue };
            match v.into_string() {
                Ok(v) => {
                    out.vars.insert(k, v);
                }
                Err(_) => {
                    out.not_unicode.insert(k);
                }
            }
        }
        out
    }

    /// Variables from any list of pairs or map; the process environment is
    /// not read.
    pub fn from_pairs<I>(pairs: I) -> Self
    where
        I: IntoIterator,
        I::Item: EnvPair,
    {
        let mut out = Self {
            kind: "map",
            ..Self::default()
        };
        for p in pairs {
            let (k, v) = p.pair();
            out.vars.insert(k.to_owned(), v.to_owned());
        }
        out
    }

    /// Adds or replaces a variable.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    /// Adds or replaces a variable.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let name = name.into();
        self.not_unicode.remove(&name);
        self.vars.insert(name, value.into());
        self
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// Whether the variable is set to something that is not UTF-8.
    pub fn is_not_unicode(&self, name: &str) -> bool {
        self.not_unicode.contains(name)
    }

    /// All variable names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars
            .keys()
            .map(String::as_str)
            .chain(self.not_unicode.iter().map(String::as_str))
    }

    /// `"env"` for the process environment, `"map"` otherwise (its `Debug`).
    fn kind(&self) -> &'static str {
        if self.kind.is_empty() {
            "map"
        } else {
            self.kind
        }
    }
}

/// Only names are shown: values may be secrets.
impl std::fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvSource")
            .field("kind", &self.kind())
            .field("names", &self.vars.keys())
            .finish()
    }
}
