//! The one duration grammar (config values, attribute literals, docs) and
//! the one spelling of "no value" for an `Option`.

use std::time::Duration;

/// Accepted duration formats, as shown in errors and docs.
pub const DURATION_FORMAT: &str =
    "a duration such as 30s, 1500ms, 5m, 1h or 1h 30m (a bare number is seconds)";

/// Parses a duration: humantime units (`30s`, `1500ms`, `1h 30m`) or a bare
/// number of seconds (`30`, `1.5`). Errors never repeat the whole input.
///
/// ```
/// use pool_settings::parse_duration;
/// use std::time::Duration;
/// assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
/// assert!(parse_duration("30x").is_err());
/// ```
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("empty".to_owned());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| "too large".to_owned());
    }
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return match t.parse::<f64>() {
            Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|_| "too large".to_owned()),
            Err(_) => Err("not a number of seconds".to_owned()),
        };
    }
    // humantime's messages quote at most a unit name, never the whole input.
    humantime::parse_duration(t).map_err(|e| e.to_string())
}

/// Formats a duration the way it is written in config (`30s`, `1h`).
pub fn format_duration(d: &Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    humantime::format_duration(*d).to_string()
}

/// Whether a value switches an `Option` off (`off`, `none`, any case).
pub fn is_off(raw: &str) -> bool {
    matches!(raw.trim().to_ascii_lowercase().as_str(), "off" | "none")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("30x").is_err());
        assert_eq!(parse_duration(" 0 "), Ok(Duration::ZERO));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1e400").is_err());
        assert!(parse_duration("99999999999999999999999").is_err());
        assert!(parse_duration("-5").is_err());
        assert!(parse_duration("1.2.3").is_err());
        assert_eq!(format_duration(&Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(&Duration::ZERO), "0s");
        assert!(is_off(" OFF ") && is_off("none") && !is_off("0"));
    }
}
