//! One error for every bad variable, and warnings for unknown ones.

use std::fmt;

use super::Profile;

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "profile")]
pub enum ValueSource {
    /// Set in the environment (or the map given to `from_map`).
    Env,
    /// The default of the active profile (`production = 5`).
    ProfileDefault(Profile),
    /// The base `default = …`.
    Default,
    /// Not set, no default: an `Option` field that is off.
    Unset,
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueSource::Env => f.write_str("env"),
            ValueSource::ProfileDefault(p) => write!(f, "{p} profile default"),
            ValueSource::Default => f.write_str("default"),
            ValueSource::Unset => f.write_str("unset"),
        }
    }
}

/// One bad variable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The variable's name (`DB_POOL_SIZE`).
    pub var: String,
    /// The field it fills (`pool_size`, `replica.pool_size` when nested).
    pub field: String,
    /// Where the bad value came from; `None` when the variable is missing.
    pub source: Option<ValueSource>,
    /// The value as given, credentials masked; `None` for secrets (and for
    /// missing values).
    pub value: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What a valid value looks like.
    pub expected: String,
    /// Whether the field is secret.
    pub secret: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.var)?;
        match (&self.value, &self.source) {
            (Some(v), Some(s)) => write!(f, " = {v:?} (from {s})")?,
            (None, Some(s)) if self.secret => write!(f, " (secret, from {s})")?,
            (None, Some(s)) => write!(f, " (from {s})")?,
            _ => {}
        }
        write!(f, ": {}", self.message)?;
        if !self.expected.is_empty() {
            write!(f, "; expected {}", self.expected)?;
        }
        Ok(())
    }
}

/// Everything wrong with a configuration, found in one pass.
///
/// Its `Display` lists each problem on its own line; secret values never
/// appear in it, and URLs show with their password masked. `Debug` prints
/// the same text, because `fn main() -> Result<(), Box<dyn Error>>` (and
/// anyhow, eyre) show an error returned with `?` through `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigError {
    config: &'static str,
    profile: Option<Profile>,
    problems: Vec<Problem>,
}

impl ConfigError {
    pub(crate) fn new(
        config: &'static str,
        profile: Option<Profile>,
        problems: Vec<Problem>,
    ) -> Self {
        Self {
            config,
            profile,
            problems,
        }
    }

    /// Every problem, in field order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// The problem of one variable, if it has one.
    pub fn problem(&self, var: &str) -> Option<&Problem> {
        self.problems.iter().find(|p| p.var == var)
    }

    /// The profile in effect (`None` when the profile variable was bad).
    pub fn profile(&self) -> Option<Profile> {
        self.profile
    }

    /// The name of the config struct.
    pub fn config_name(&self) -> &'static str {
        self.config
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "invalid configuration for {}", self.config)?;
        if let Some(p) = self.profile {
            write!(f, " (profile {p})")?;
        }
        write!(f, ": {n} problem{}", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// The `Display` text: what `main` returning this error with `?` prints
/// (issue 10: it printed `ConfigError { config: "Database", ... }`; pinned
/// by `config_error_debug_reads_like_display` in tests/config_load.rs).
impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ConfigError {}

/// A variable that no field reads but that looks meant for one: it shares
/// the prefix (a typo), nearly matches an absolute name, or names a field
/// under another prefix (`DB_POOL_SIZE` when the prefix is `APP_DB_`).
/// Logged through `tracing::warn!` and returned by
/// [`Loaded::warnings`](super::Loaded::warnings).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Warning {
    /// The unknown variable.
    pub var: String,
    /// The closest variable that is read, if one is close.
    pub suggestion: Option<String>,
    /// When the variable names a field under another prefix: that field
    /// (its path) and the prefix in effect.
    pub other_prefix: Option<OtherPrefix>,
}

/// The field a variable set under the wrong prefix was meant for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtherPrefix {
    /// The field path (`pool_size`).
    pub field: String,
    /// The prefix the config is loaded under (`APP_DB_`).
    pub prefix: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is set but no configuration field reads it", self.var)?;
        match (&self.suggestion, &self.other_prefix) {
            (Some(s), Some(o)) => write!(
                f,
                "; field `{}` reads {s} (the prefix is {}): did you mean {s}?",
                o.field, o.prefix
            )?,
            (Some(s), None) => write!(f, "; did you mean {s}?")?,
            _ => {}
        }
        Ok(())
    }
}
