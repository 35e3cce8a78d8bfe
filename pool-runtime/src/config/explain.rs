//! `explain()`: each effective value and where it came from.

use std::fmt;

use super::{Profile, ValueSource};

/// One variable as loaded.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Entry {
    /// Variable name.
    pub var: String,
    /// Field path.
    pub field: String,
    /// The value as printed: secrets masked, URL passwords masked.
    pub value: String,
    /// Where it came from.
    pub source: ValueSource,
    /// Whether the field is secret.
    pub secret: bool,
    /// The `PoolSettings` field it sets, if any.
    pub setting: Option<&'static str>,
}

/// Every effective value of a loaded config, redacted; `Display` prints a
/// table, [`Explanation::to_json`] the same as JSON.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Explanation {
    /// The config struct.
    pub config: &'static str,
    /// Profile in effect.
    pub profile: Profile,
    /// How the profile was chosen (`APP_ENV=production`).
    pub profile_source: String,
    /// One entry per variable, in field order.
    pub entries: Vec<Entry>,
}

impl Explanation {
    /// The entry of one variable.
    pub fn entry(&self, var: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.var == var)
    }

    /// As pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} (profile {}: {})",
            self.config, self.profile, self.profile_source
        )?;
        let w_var = self.entries.iter().map(|e| e.var.len()).max().unwrap_or(0);
        let w_val = self
            .entries
            .iter()
            .map(|e| e.value.chars().count())
            .max()
            .unwrap_or(0)
            .min(60);
        for e in &self.entries {
            let pad = w_val.saturating_sub(e.value.chars().count());
            write!(
                f,
                "  {:<w_var$} = {}{}  ({})",
                e.var,
                e.value,
                " ".repeat(pad),
                e.source
            )?;
            if e.field != e.var.to_ascii_lowercase() {
                write!(f, " [{}]", e.field)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
