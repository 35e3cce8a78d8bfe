//! What the macro knows about a field's type: enough to check literal
//! defaults and ranges at compile time. Types it does not know are checked
//! at run time (the default is parsed like an env value).

use syn::{GenericArgument, PathArguments, Type};

use pool_settings::suggest::did_you_mean;
use pool_settings::table::{self, EnumSpec};
use pool_settings::{is_off, parse_duration};

/// A literal written in an attribute.
#[derive(Clone, Debug)]
pub enum Lit {
    Str(String),
    /// Integer value and its digits as written (with `-` if negative).
    Int(i128, String),
    Float(f64, String),
    Bool(bool),
}

impl Lit {
    /// How the literal reads in a message.
    pub fn describe(&self) -> String {
        match self {
            Lit::Str(s) => format!("string \"{s}\""),
            Lit::Int(_, d) => format!("integer {d}"),
            Lit::Float(_, d) => format!("float {d}"),
            Lit::Bool(b) => format!("bool {b}"),
        }
    }

    /// The text handed to the run-time parser.
    pub fn as_env_text(&self) -> String {
        match self {
            Lit::Str(s) => s.clone(),
            Lit::Int(_, d) | Lit::Float(_, d) => d.clone(),
            Lit::Bool(b) => b.to_string(),
        }
    }
}

/// A checked value, comparable for range checks.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub enum Checked {
    Int(i128),
    Float(f64),
    Duration(u128),
    /// `"off"` for an `Option`: no value, outside every range check.
    Off,
    /// Not comparable (strings, enums, unknown types).
    Opaque,
}

/// The shape of a field type, as far as the macro can tell from its syntax.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Int {
        name: &'static str,
        min: i128,
        max: i128,
    },
    Float,
    Bool,
    Duration,
    Str,
    Url,
    /// An enum of pool-runtime whose spellings the settings table lists.
    Enum(&'static EnumSpec),
    Option(Box<Kind>),
    Secret(Box<Kind>),
    Other,
}

const INTS: &[(&str, i128, i128)] = &[
    ("u8", 0, u8::MAX as i128),
    ("u16", 0, u16::MAX as i128),
    ("u32", 0, u32::MAX as i128),
    ("u64", 0, u64::MAX as i128),
    ("usize", 0, u64::MAX as i128),
    ("i8", i8::MIN as i128, i8::MAX as i128),
    ("i16", i16::MIN as i128, i16::MAX as i128),
    ("i32", i32::MIN as i128, i32::MAX as i128),
    ("i64", i64::MIN as i128, i64::MAX as i128),
    ("isize", i64::MIN as i128, i64::MAX as i128),
    ("i128", i128::MIN, i128::MAX),
    ("u128", 0, i128::MAX),
];

/// The single type argument of `Name<T>`, if `ty`'s last segment is `Name`.
pub fn generic_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    if args.args.len() != 1 {
        return None;
    }
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

/// Classifies a field type by its last path segment.
pub fn classify(ty: &Type) -> Kind {
    if let Type::Group(g) = ty {
        return classify(&g.elem);
    }
    if let Some(inner) = generic_arg(ty, "Option") {
        return Kind::Option(Box::new(classify(inner)));
    }
    if let Some(inner) = generic_arg(ty, "Secret") {
        return Kind::Secret(Box::new(classify(inner)));
    }
    let Type::Path(p) = ty else {
        return Kind::Other;
    };
    if p.qself.is_some() {
        return Kind::Other;
    }
    let Some(last) = p.path.segments.last() else {
        return Kind::Other;
    };
    if !matches!(last.arguments, PathArguments::None) {
        return Kind::Other;
    }
    let name = last.ident.to_string();
    if let Some((n, min, max)) = INTS.iter().find(|(n, ..)| *n == name) {
        return Kind::Int {
            name: n,
            min: *min,
            max: *max,
        };
    }
    match name.as_str() {
        "f32" | "f64" => Kind::Float,
        "bool" => Kind::Bool,
        "Duration" => Kind::Duration,
        "String" => Kind::Str,
        "Url" => Kind::Url,
        _ => table::ENUMS
            .iter()
            .find(|e| e.name == name)
            .map_or(Kind::Other, |e| Kind::Enum(e)),
    }
}

impl Kind {
    /// Whether `range` makes sense for this type (an `Option` of one too).
    pub fn supports_range(&self) -> bool {
        match self {
            Kind::Int { .. } | Kind::Float | Kind::Duration => true,
            Kind::Option(inner) => inner.supports_range(),
            _ => false,
        }
    }

    /// Checks a literal default; `Err` says what is wrong, in words.
    pub fn check(&self, lit: &Lit) -> Result<Checked, String> {
        match (self, lit) {
            (Kind::Option(_), Lit::Str(s)) if is_off(s) => Ok(Checked::Off),
            (Kind::Option(inner) | Kind::Secret(inner), _) => inner.check(lit),
            (Kind::Int { name, min, max }, Lit::Int(v, d)) => {
                if v < min || v > max {
                    Err(format!("{d} does not fit in `{name}` ({min}..={max})"))
                } else {
                    Ok(Checked::Int(*v))
                }
            }
            (Kind::Int { name, .. }, other) => Err(format!(
                "expected an integer literal for `{name}`, found {}",
                other.describe()
            )),
            (Kind::Float, Lit::Float(v, _)) => Ok(Checked::Float(*v)),
            (Kind::Float, Lit::Int(v, _)) => Ok(Checked::Float(*v as f64)),
            (Kind::Float, other) => Err(format!(
                "expected a number literal for a float, found {}",
                other.describe()
            )),
            (Kind::Bool, Lit::Bool(b)) => Ok(Checked::Int(i128::from(*b))),
            (Kind::Bool, other) => Err(format!(
                "expected `true` or `false` for `bool`, found {}",
                other.describe()
            )),
            (Kind::Duration, Lit::Str(s)) => match parse_duration(s) {
                Ok(d) => Ok(Checked::Duration(d.as_nanos())),
                Err(e) => Err(format!(
                    "invalid duration \"{s}\": {e}; expected a duration such as \"30s\", \"1500ms\" or \"1h\""
                )),
            },
            (Kind::Duration, other) => Err(format!(
                "expected a duration string such as \"30s\", \"1500ms\" or \"1h\", found {}",
                other.describe()
            )),
            (Kind::Str, Lit::Str(_)) => Ok(Checked::Opaque),
            (Kind::Str, other) => Err(format!(
                "expected a string literal for `String`, found {}",
                other.describe()
            )),
            (Kind::Url, Lit::Str(s)) => {
                if s.contains(':') {
                    Ok(Checked::Opaque)
                } else {
                    Err(format!("\"{s}\" is not a URL (expected scheme://…)"))
                }
            }
            (Kind::Url, other) => Err(format!(
                "expected a URL string for `Url`, found {}",
                other.describe()
            )),
            (Kind::Enum(e), Lit::Str(s)) => {
                if e.parse(s).is_some() {
                    Ok(Checked::Opaque)
                } else {
                    Err(format!(
                        "unknown {} \"{s}\", expected one of: {}{}",
                        e.name,
                        e.listed(),
                        did_you_mean(&s.trim().to_ascii_lowercase(), e.canonical())
                    ))
                }
            }
            (Kind::Enum(e), other) => Err(format!(
                "expected a string (one of: {}) for `{}`, found {}",
                e.listed(),
                e.name,
                other.describe()
            )),
            (Kind::Other, _) => Ok(Checked::Opaque),
        }
    }

    /// Whether the value is a "null" pool class.
    pub fn is_null_pool(&self, lit: &Lit) -> bool {
        matches!((self, lit), (Kind::Enum(e), Lit::Str(s))
            if e.name == table::POOL_CLASS.name && table::is_null_pool(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn classifies() {
        assert!(matches!(
            classify(&parse_quote!(u32)),
            Kind::Int { name: "u32", .. }
        ));
        assert_eq!(classify(&parse_quote!(std::time::Duration)), Kind::Duration);
        assert_eq!(
            classify(&parse_quote!(Option<Duration>)),
            Kind::Option(Box::new(Kind::Duration))
        );
        assert_eq!(
            classify(&parse_quote!(Secret<String>)),
            Kind::Secret(Box::new(Kind::Str))
        );
        assert!(matches!(
            classify(&parse_quote!(pool_runtime::PoolClass)),
            Kind::Enum(_)
        ));
        assert_eq!(classify(&parse_quote!(MyType)), Kind::Other);
        assert_eq!(classify(&parse_quote!(Vec<u8>)), Kind::Other);
    }

    #[test]
    fn checks_literals() {
        let u32_ = classify(&parse_quote!(u32));
        assert_eq!(u32_.check(&Lit::Int(20, "20".into())), Ok(Checked::Int(20)));
        assert!(
            u32_.check(&Lit::Str("abc".into()))
                .unwrap_err()
                .contains("expected an integer")
        );
        assert!(
            u32_.check(&Lit::Int(-1, "-1".into()))
                .unwrap_err()
                .contains("does not fit")
        );
        let d = Kind::Duration;
        assert_eq!(
            d.check(&Lit::Str("30s".into())),
            Ok(Checked::Duration(30_000_000_000))
        );
        assert_eq!(
            d.check(&Lit::Str("30".into())),
            Ok(Checked::Duration(30_000_000_000))
        );
        assert!(
            d.check(&Lit::Str("30x".into()))
                .unwrap_err()
                .contains("invalid duration \"30x\"")
        );
        assert!(
            d.check(&Lit::Int(5, "5".into()))
                .unwrap_err()
                .contains("duration string")
        );
        let od = Kind::Option(Box::new(Kind::Duration));
        assert_eq!(od.check(&Lit::Str("off".into())), Ok(Checked::Off));
        let pc = classify(&parse_quote!(PoolClass));
        assert!(pc.check(&Lit::Str("QUEUE".into())).is_ok());
        assert!(
            pc.check(&Lit::Str("nul".into()))
                .unwrap_err()
                .contains("did you mean `null`")
        );
        assert!(pc.is_null_pool(&Lit::Str("null".into())));
    }
}
