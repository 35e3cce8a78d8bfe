//! Profiles: development, test and production pick different defaults.

use std::fmt;
use std::str::FromStr;

/// Which set of defaults applies, chosen by an environment variable
/// (`APP_ENV` unless the struct says `#[pool(profile_env = "…")]`).
///
/// Unset means [`Profile::Development`]. Accepted spellings (any case):
/// `development`/`dev`/`local`, `test`/`testing`, `production`/`prod`.
///
/// ```
/// use pool_runtime::config::Profile;
/// assert_eq!("prod".parse::<Profile>(), Ok(Profile::Production));
/// assert!("staging".parse::<Profile>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A developer's machine; the default when the variable is unset.
    #[default]
    Development,
    /// Test runs.
    Test,
    /// Production.
    Production,
}

impl Profile {
    /// All profiles, in the order docs list them.
    pub const ALL: [Profile; 3] = [Profile::Development, Profile::Test, Profile::Production];

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Development => "development",
            Profile::Test => "test",
            Profile::Production => "production",
        }
    }

    /// Index into `FieldSpec::defaults` (0 is the base `default`).
    pub(crate) fn index(self) -> usize {
        match self {
            Profile::Development => 1,
            Profile::Test => 2,
            Profile::Production => 3,
        }
    }
}

/// What a profile variable may be set to.
pub const PROFILE_FORMAT: &str =
    "one of: development (dev, local), test (testing), production (prod)";

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "development" | "dev" | "local" | "develop" => Ok(Profile::Development),
            "test" | "testing" => Ok(Profile::Test),
            "production" | "prod" => Ok(Profile::Production),
            _ => Err(format!("unknown profile; expected {PROFILE_FORMAT}")),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
