//! Values that must never be printed: passwords, DSNs with credentials.

use std::any::Any;
use std::fmt;
use std::str::FromStr;

/// A value that is never shown by `Debug` or `Display`.
///
/// Read it on purpose with [`Secret::expose`]. URLs show with the password
/// masked through [`Secret::redacted`] when the value is a URL.
///
/// `Debug` works for every value type, so a struct holding a `Secret<u32>`
/// can still `#[derive(Debug)]`: a `String` or [`url::Url`] shows as a URL
/// with its credentials masked (anything that is not a URL as `***`), any
/// other type as `***`.
///
/// ```
/// use pool_runtime::Secret;
/// let url = Secret::new(String::from("postgres://app:hunter2@db/app"));
/// assert_eq!(format!("{url:?}"), "Secret(\"postgres://app:***@db/app\")");
/// assert!(!format!("{url}").contains("hunter2"));
/// assert_eq!(url.expose(), "postgres://app:hunter2@db/app");
/// assert_eq!(format!("{:?}", Secret::new(1234_u32)), "Secret(***)");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value so it is redacted wherever it is printed.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value itself. Call sites of this are the places to audit.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: AsRef<str>> Secret<T> {
    /// A printable form: a URL with its password (and any `password=` query
    /// parameter) masked, anything else as `***`.
    pub fn redacted(&self) -> String {
        redact_url(self.0.as_ref())
    }
}

impl<T: 'static> fmt::Debug for Secret<T> {
    /// Never the value: a URL string with its credentials masked, anything
    /// else `***` (a `Secret<u32>` PIN has no URL form to show).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value: &dyn Any = &self.0;
        let text = if let Some(s) = value.downcast_ref::<String>() {
            Some(redact_url(s))
        } else if let Some(s) = value.downcast_ref::<&'static str>() {
            Some(redact_url(s))
        } else {
            value
                .downcast_ref::<url::Url>()
                .map(|u| redact_url(u.as_str()))
        };
        match text {
            Some(text) => f.debug_tuple("Secret").field(&text).finish(),
            None => f.debug_tuple("Secret").field(&format_args!("***")).finish(),
        }
    }
}

impl<T: AsRef<str>> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl<T: FromStr> FromStr for Secret<T> {
    type Err = T::Err;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Secret)
    }
}

/// Masks the credentials of a connection URL.
///
/// A string that does not parse as a URL with a scheme and host is masked
/// whole, because it may be a bare password.
///
/// ```
/// use pool_runtime::secret::redact_url;
/// assert_eq!(redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
/// assert_eq!(redact_url("postgres://h/db?password=pw&sslmode=require"),
///            "postgres://h/db?password=***&sslmode=require");
/// assert_eq!(redact_url("sqlite://data/app.db"), "sqlite://data/app.db");
/// assert_eq!(redact_url("hunter2"), "***");
/// assert_eq!(redact_url("postgres://u:pw@h1:5432,h2:5433/db?password=pw"),
///            "postgres://u:***@h1:5432,h2:5433/db?password=***");
/// ```
pub fn redact_url(raw: &str) -> String {
    const MASK: &str = "***";
    // A libpq host list does not parse as a URL: mask the URL with its
    // first host in the list's place, then put the list back (host names
    // and ports are not secret).
    if let Ok(Some(list)) = crate::hosts::url::HostList::parse(raw)
        && list.is_multi()
    {
        let one = redact_url(&list.url_for(list.hosts[0], &[]));
        let Some(list_of_one) = crate::hosts::url::HostList::parse(&one).ok().flatten() else {
            return MASK.to_owned();
        };
        return list_of_one.url_for(&list.joined(), &[]);
    }
    let Ok(mut url) = url::Url::parse(raw) else {
        return MASK.to_owned();
    };
    if url.cannot_be_a_base() {
        return MASK.to_owned();
    }
    if url.password().is_some() && url.set_password(Some(MASK)).is_err() {
        return MASK.to_owned();
    }
    let has_secret_param = url.query_pairs().any(|(k, _)| is_secret_key(&k));
    if has_secret_param {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_key(&k) {
                    MASK.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // `url` percent-encodes the mask; show it plainly.
    url.to_string().replace("%2A%2A%2A", MASK)
}

/// Whether a parameter of this name holds a credential (`password`,
/// `sslpassword`, `client_secret`, `auth_token`, …), in any case.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password") || key.contains("secret") || key.contains("token")
}

/// A type whose `Debug` (and `Display`, if any) never shows its value.
///
/// `#[pool(secret)]` requires it of the field type, so that a config struct
/// with `#[derive(PoolConfig, Debug)]` cannot print a secret with `{:?}`.
/// [`Secret<T>`] implements it (and so `Option<Secret<T>>`); implement it
/// for your own type only when its `Debug` is redacted.
#[diagnostic::on_unimplemented(
    message = "`{Self}` prints its value, so `#[pool(secret)]` cannot keep it out of `{{:?}}` output",
    label = "`#[pool(secret)]` needs a type whose `Debug` is redacted",
    note = "declare the field as `pool_runtime::Secret<{Self}>` (redacted by `Debug` and `Display`, read with `.expose()`), or implement `pool_runtime::secret::Redacted` for a type whose `Debug` never shows the value"
)]
pub trait Redacted {}

impl<T> Redacted for Secret<T> {}

impl<T: Redacted> Redacted for Option<T> {}
