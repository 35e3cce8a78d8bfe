//! Turning one environment value into a typed value: [`EnvValue`], plus
//! range checks ([`Bounded`]) and the mapping of config fields onto
//! [`PoolSettings`](crate::PoolSettings) ([`ApplySetting`]).

use std::fmt::Display;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use pool_settings::table;

use crate::secret::redact_url;
use crate::{
    LoadBalanceHosts, NestedCheckout, PgBouncerMode, PoolClass, ReadBalance, ResetOnReturn, Secret,
    SslMode, TargetSessionAttrs,
};

/// A type that can be read from one environment variable.
///
/// Implemented for the integers, `f32`/`f64`, `bool`, [`String`],
/// [`PathBuf`], [`Duration`], [`url::Url`], [`PoolClass`],
/// [`ResetOnReturn`], [`SslMode`], `Option<T>` and `Secret<T>`. Implement it
/// for your own types, or mark a field `#[pool(from_str)]` to parse it with
/// its [`FromStr`] impl instead.
///
/// ```
/// use pool_runtime::config::EnvValue;
/// use std::time::Duration;
/// assert_eq!(<Duration as EnvValue>::parse_env("1500ms"), Ok(Duration::from_millis(1500)));
/// assert_eq!(<Option<Duration> as EnvValue>::parse_env("off"), Ok(None));
/// assert_eq!(<bool as EnvValue>::parse_env("yes"), Ok(true));
/// assert!(<u32 as EnvValue>::parse_env("-1").is_err());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be read from an environment variable",
    label = "no `EnvValue` impl for this field type",
    note = "implement `pool_runtime::config::EnvValue` for it, mark the field `#[pool(from_str)]` (needs `FromStr + Display`), or `#[pool(flatten)]` if it is a nested config struct"
)]
pub trait EnvValue: Sized {
    /// Whether values of this type are secret (never shown).
    const SECRET: bool = false;

    /// Whether [`EnvValue::when_unset`] gives a value (the variable is
    /// optional); keep the two in agreement.
    const OPTIONAL: bool = false;

    /// What a valid value looks like, for errors and docs.
    fn expected() -> String;

    /// Parses a (non-empty) value; the error says what is wrong without
    /// repeating the value.
    fn parse_env(raw: &str) -> Result<Self, String>;

    /// The value when the variable is unset and there is no default;
    /// `None` makes the variable required.
    fn when_unset() -> Option<Self> {
        None
    }

    /// How the value is printed by `explain()`.
    fn show(&self) -> String;

    /// How the value is printed when the field is secret.
    fn show_redacted(&self) -> String {
        "***".to_owned()
    }
}

macro_rules! ints {
    ($($t:ty),*) => {$(
        impl EnvValue for $t {
            fn expected() -> String {
                format!("an integer from {} to {}", <$t>::MIN, <$t>::MAX)
            }
            fn parse_env(raw: &str) -> Result<Self, String> {
                let t = raw.trim().replace('_', "");
                t.parse::<$t>().map_err(|e| match e.kind() {
                    std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                        format!("out of range for {}", stringify!($t))
                    }
                    _ => "not an integer".to_owned(),
                })
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
ints!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);

macro_rules! floats {
    ($($t:ty),*) => {$(
        impl EnvValue for $t {
            fn expected() -> String {
                "a number such as 0.5".to_owned()
            }
            fn parse_env(raw: &str) -> Result<Self, String> {
                match raw.trim().parse::<$t>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    Ok(_) => Err("not a finite number".to_owned()),
                    Err(_) => Err("not a number".to_owned()),
                }
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
floats!(f32, f64);

/// The accepted spellings of a boolean, case-insensitive.
pub const BOOL_FORMAT: &str = "true/false (also 1/0, yes/no, on/off)";

impl EnvValue for bool {
    fn expected() -> String {
        BOOL_FORMAT.to_owned()
    }
    fn parse_env(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "y" | "t" => Ok(true),
            "false" | "0" | "no" | "off" | "n" | "f" => Ok(false),
            _ => Err("not a boolean".to_owned()),
        }
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

pub use pool_settings::{DURATION_FORMAT, format_duration, is_off, parse_duration};

impl EnvValue for Duration {
    fn expected() -> String {
        DURATION_FORMAT.to_owned()
    }
    fn parse_env(raw: &str) -> Result<Self, String> {
        parse_duration(raw)
    }
    fn show(&self) -> String {
        format_duration(self)
    }
}

impl EnvValue for String {
    fn expected() -> String {
        "any text".to_owned()
    }
    fn parse_env(raw: &str) -> Result<Self, String> {
        Ok(raw.to_owned())
    }
    fn show(&self) -> String {
        mask_credentials(self)
    }
    fn show_redacted(&self) -> String {
        redact_url(self)
    }
}

impl EnvValue for PathBuf {
    fn expected() -> String {
        "a file system path".to_owned()
    }
    fn parse_env(raw: &str) -> Result<Self, String> {
        Ok(PathBuf::from(raw))
    }
    fn show(&self) -> String {
        self.display().to_string()
    }
}

impl EnvValue for url::Url {
    fn expected() -> String {
        "a URL such as postgres://user:password@host:5432/db".to_owned()
    }
    fn parse_env(raw: &str) -> Result<Self, String> {
        // url's messages ("relative URL without a base", …) never echo input.
        url::Url::parse(raw.trim()).map_err(|e| e.to_string())
    }
    fn show(&self) -> String {
        redact_url(self.as_str())
    }
    fn show_redacted(&self) -> String {
        redact_url(self.as_str())
    }
}

macro_rules! enums {
    ($($t:ty: $spec:expr),*) => {$(
        impl EnvValue for $t {
            fn expected() -> String {
                format!("one of: {}", $spec.listed())
            }
            fn parse_env(raw: &str) -> Result<Self, String> {
                // The choices follow in `expected`; listing them here too
                // said them twice.
                raw.parse::<$t>().map_err(|_| {
                    format!(
                        "not a known value{}",
                        pool_settings::suggest::did_you_mean(raw.trim(), $spec.canonical())
                    )
                })
            }
            fn show(&self) -> String {
                self.to_string()
            }
            fn show_redacted(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
enums!(
    PoolClass: table::POOL_CLASS,
    ResetOnReturn: table::RESET_ON_RETURN,
    NestedCheckout: table::NESTED_CHECKOUT,
    SslMode: table::SSL_MODE,
    TargetSessionAttrs: table::TARGET_SESSION_ATTRS,
    LoadBalanceHosts: table::LOAD_BALANCE_HOSTS,
    PgBouncerMode: table::PGBOUNCER,
    ReadBalance: table::READ_BALANCE
);

/// `off`/`none` (any case) is `None`; unset without a default is `None`.
impl<T: EnvValue> EnvValue for Option<T> {
    const SECRET: bool = T::SECRET;
    const OPTIONAL: bool = true;
    fn expected() -> String {
        format!("{}, or off", T::expected())
    }
    fn parse_env(raw: &str) -> Result<Self, String> {
        if is_off(raw) {
            Ok(None)
        } else {
            T::parse_env(raw).map(Some)
        }
    }
    fn when_unset() -> Option<Self> {
        Some(None)
    }
    fn show(&self) -> String {
        self.as_ref().map_or_else(|| "off".to_owned(), T::show)
    }
    fn show_redacted(&self) -> String {
        self.as_ref()
            .map_or_else(|| "off".to_owned(), T::show_redacted)
    }
}

/// Parsed as `T`, never shown: `explain()` prints a URL with its password
/// masked and anything else as `***`; errors never carry the value.
impl<T: EnvValue> EnvValue for Secret<T> {
    const SECRET: bool = true;
    const OPTIONAL: bool = T::OPTIONAL;
    fn expected() -> String {
        T::expected()
    }
    fn parse_env(raw: &str) -> Result<Self, String> {
        T::parse_env(raw).map(Secret::new)
    }
    fn when_unset() -> Option<Self> {
        T::when_unset().map(Secret::new)
    }
    fn show(&self) -> String {
        self.expose().show_redacted()
    }
    fn show_redacted(&self) -> String {
        self.expose().show_redacted()
    }
}

/// Masks the password of a URL-looking value; other text is kept.
pub(crate) fn mask_credentials(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(u) if !u.cannot_be_a_base() && (u.password().is_some() || u.query().is_some()) => {
            redact_url(s)
        }
        // Not a URL as a whole, but one may be inside ("5postgres://u:pw@h"):
        // mask every `user:password@` and `password=…` found anywhere.
        _ => mask_embedded(s),
    }
}

/// Masks the password of every `scheme://user:password@` and the value of
/// every `…password=`, `…secret=`, `…token=` in free text.
fn mask_embedded(s: &str) -> String {
    const MASK: &str = "***";
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    mask_key_values(&out, MASK)
}

fn mask_key_values(s: &str, mask: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    // Every `=` is looked at, values included, so a `password=` nested in
    // another value (`0=postgres://h/db?password=…`) is found too.
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq]
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let is_secret = crate::secret::is_secret_key(&rest[key_start..eq]);
        out.push_str(&rest[..=eq]);
        rest = &rest[eq + 1..];
        if is_secret {
            let end = rest
                .find(|c: char| matches!(c, '&' | ';' | ',') || c.is_whitespace())
                .unwrap_or(rest.len());
            out.push_str(mask);
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod mask_tests {
    use super::mask_credentials;

    #[test]
    fn credentials_inside_free_text_are_masked() {
        assert_eq!(
            mask_credentials("5postgres://app:pw@h/app"),
            "5postgres://app:***@h/app"
        );
        assert_eq!(
            mask_credentials("x postgres://u:p@q@h:1/d y"),
            "x postgres://u:***@h:1/d y"
        );
        assert_eq!(mask_credentials("a;password=hunter2;b"), "a;password=***;b");
        assert_eq!(mask_credentials("DB_TOKEN=abc&x=1"), "DB_TOKEN=***&x=1");
        assert_eq!(mask_credentials("30x"), "30x");
        assert_eq!(
            mask_credentials("sqlite://data/app.db"),
            "sqlite://data/app.db"
        );
        assert_eq!(
            mask_credentials("🕴=x Ⱥpassword=p🕴 q"),
            "🕴=x Ⱥpassword=*** q"
        );
        assert_eq!(
            mask_credentials(" 0=postgres://h/app?password=pw&x=1"),
            " 0=postgres://h/app?password=***&x=1"
        );
    }
}

/// Parsing through [`FromStr`], for `#[pool(from_str)]` fields.
pub(crate) fn parse_from_str<T: FromStr>(raw: &str) -> Result<T, String>
where
    T::Err: Display,
{
    raw.trim().parse::<T>().map_err(|e| e.to_string())
}

/// Values whose range can be checked (`#[pool(range = …)]`).
pub trait Bounded {
    /// What is compared with the bounds.
    type Key: PartialOrd;
    /// The value to compare, or `None` (an `Option` that is off).
    fn key(&self) -> Option<Self::Key>;
    /// The key printed in an error.
    fn show_key(key: &Self::Key) -> String;
}

macro_rules! bounded {
    ($($t:ty),*) => {$(
        impl Bounded for $t {
            type Key = $t;
            fn key(&self) -> Option<$t> {
                Some(*self)
            }
            fn show_key(key: &$t) -> String {
                key.to_string()
            }
        }
    )*};
}
bounded!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

impl Bounded for Duration {
    type Key = Duration;
    fn key(&self) -> Option<Duration> {
        Some(*self)
    }
    fn show_key(key: &Duration) -> String {
        format_duration(key)
    }
}

impl<T: Bounded> Bounded for Option<T> {
    type Key = T::Key;
    fn key(&self) -> Option<T::Key> {
        self.as_ref().and_then(T::key)
    }
    fn show_key(key: &T::Key) -> String {
        T::show_key(key)
    }
}

/// Copies a config field onto the [`PoolSettings`](crate::PoolSettings)
/// field it maps to, converting where the types differ in an obvious way
/// (`String` → `Secret<String>`, `T` → `Option<T>`; an `Option<T>` field
/// that is off leaves a non-optional setting at its default).
#[diagnostic::on_unimplemented(
    message = "a `{Self}` field cannot set a `{Target}` pool setting",
    label = "this field maps to a PoolSettings field of type `{Target}`",
    note = "fields named like a PoolSettings field map to it by themselves; rename the field, change its type, or mark it `#[pool(no_setting)]`"
)]
pub trait ApplySetting<Target> {
    /// Writes the value into the setting.
    fn apply_setting(&self, target: &mut Target);
}

impl<T: Clone> ApplySetting<T> for T {
    fn apply_setting(&self, target: &mut T) {
        target.clone_from(self);
    }
}

macro_rules! apply_some {
    ($($from:ty => $to:ty),*) => {$(
        impl ApplySetting<$to> for $from {
            fn apply_setting(&self, target: &mut $to) {
                *target = Some(self.clone().into());
            }
        }
    )*};
}
apply_some!(Duration => Option<Duration>, String => Option<String>, SslMode => Option<SslMode>,
    i64 => Option<i64>, u64 => Option<u64>);

macro_rules! apply_if_some {
    ($($t:ty),*) => {$(
        impl ApplySetting<$t> for Option<$t> {
            fn apply_setting(&self, target: &mut $t) {
                if let Some(v) = self {
                    target.clone_from(v);
                }
            }
        }
    )*};
}
apply_if_some!(
    u32,
    usize,
    bool,
    f64,
    Duration,
    String,
    PoolClass,
    ResetOnReturn,
    NestedCheckout,
    TargetSessionAttrs,
    LoadBalanceHosts,
    PgBouncerMode,
    ReadBalance
);

macro_rules! apply_widen {
    ($($from:ty => $to:ty),*) => {$(
        impl ApplySetting<$to> for $from {
            fn apply_setting(&self, target: &mut $to) {
                *target = <$to>::from(*self);
            }
        }
    )*};
}
apply_widen!(u8 => u32, u16 => u32, u8 => usize, u16 => usize, u32 => u64, f32 => f64);

impl ApplySetting<usize> for u32 {
    fn apply_setting(&self, target: &mut usize) {
        *target = usize::try_from(*self).unwrap_or(usize::MAX);
    }
}

/// What the generated code calls: a generic function, so that a field type
/// that cannot set its setting gets the `ApplySetting` diagnostic.
pub fn apply_setting<T: ApplySetting<S>, S>(value: &T, target: &mut S) {
    value.apply_setting(target);
}

impl ApplySetting<Secret<String>> for Option<String> {
    fn apply_setting(&self, target: &mut Secret<String>) {
        if let Some(v) = self {
            *target = Secret::new(v.clone());
        }
    }
}

impl ApplySetting<Secret<String>> for Option<Secret<String>> {
    fn apply_setting(&self, target: &mut Secret<String>) {
        if let Some(v) = self {
            target.clone_from(v);
        }
    }
}

impl ApplySetting<Secret<String>> for Option<url::Url> {
    fn apply_setting(&self, target: &mut Secret<String>) {
        if let Some(v) = self {
            *target = Secret::new(v.to_string());
        }
    }
}

impl ApplySetting<Secret<String>> for String {
    fn apply_setting(&self, target: &mut Secret<String>) {
        *target = Secret::new(self.clone());
    }
}

impl ApplySetting<Secret<String>> for url::Url {
    fn apply_setting(&self, target: &mut Secret<String>) {
        *target = Secret::new(self.to_string());
    }
}

impl ApplySetting<Secret<String>> for Secret<url::Url> {
    fn apply_setting(&self, target: &mut Secret<String>) {
        *target = Secret::new(self.expose().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(u32::parse_env(" 20 "), Ok(20));
        assert_eq!(u32::parse_env("1_000"), Ok(1000));
        assert_eq!(u32::parse_env("-1"), Err("not an integer".to_owned()));
        assert_eq!(u8::parse_env("256"), Err("out of range for u8".to_owned()));
        assert_eq!(i32::parse_env("-5"), Ok(-5));
        assert!(u32::parse_env("abc").is_err());
        assert!(u32::expected().contains("4294967295"));
    }

    #[test]
    fn booleans() {
        for t in ["true", "TRUE", "1", "yes", "On"] {
            assert_eq!(bool::parse_env(t), Ok(true), "{t}");
        }
        for f in ["false", "0", "no", "OFF"] {
            assert_eq!(bool::parse_env(f), Ok(false), "{f}");
        }
        assert!(bool::parse_env("maybe").is_err());
    }

    #[test]
    fn options_and_secrets() {
        assert_eq!(<Option<u32>>::parse_env("OFF"), Ok(None));
        assert_eq!(<Option<u32>>::parse_env("7"), Ok(Some(7)));
        assert_eq!(<Option<u32>>::when_unset(), Some(None));
        assert_eq!(<u32>::when_unset(), None);
        let s = <Secret<String>>::parse_env("postgres://u:hunter2@h/db").unwrap();
        assert_eq!(s.show(), "postgres://u:***@h/db");
        let s = <Secret<String>>::parse_env("hunter2").unwrap();
        assert_eq!(s.show(), "***");
        const { assert!(<Secret<u32> as EnvValue>::SECRET) };
        assert_eq!("plain".to_owned().show(), "plain");
        assert_eq!(
            "postgres://u:pw@h/db".to_owned().show(),
            "postgres://u:***@h/db"
        );
    }

    #[test]
    fn enums_and_urls() {
        assert_eq!(PoolClass::parse_env("NULL"), Ok(PoolClass::Null));
        assert_eq!(
            PoolClass::parse_env("nul"),
            Err("not a known value (did you mean `null`?)".to_owned())
        );
        assert_eq!(SslMode::parse_env("verify-full"), Ok(SslMode::VerifyFull));
        assert!(url::Url::parse_env("not a url").is_err());
        let u = url::Url::parse_env("postgres://a:b@h/db").unwrap();
        assert_eq!(u.show(), "postgres://a:***@h/db");
    }

    #[test]
    fn apply_settings() {
        let mut d = Some(Duration::from_secs(1));
        Duration::from_secs(5).apply_setting(&mut d);
        assert_eq!(d, Some(Duration::from_secs(5)));
        let mut n = 5u32;
        None::<u32>.apply_setting(&mut n);
        assert_eq!(n, 5);
        Some(7u32).apply_setting(&mut n);
        assert_eq!(n, 7);
        let mut s = Secret::new(String::new());
        "postgres://h/db".to_owned().apply_setting(&mut s);
        assert_eq!(s.expose(), "postgres://h/db");
    }
}
