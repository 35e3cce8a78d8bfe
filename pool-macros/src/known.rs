//! The `PoolSettings` fields a config field can map to, by name.

/// `(setting name, path inside PoolSettings)`. A field whose name is in
/// this list maps to the setting by itself; `#[pool(setting = "…")]` maps
/// any other field.
pub const SETTINGS: &[(&str, &[&str])] = &[
    ("url", &["url"]),
    ("name", &["name"]),
    ("pool_size", &["pool_size"]),
    ("max_overflow", &["max_overflow"]),
    ("pool_timeout", &["pool_timeout"]),
    ("pool_recycle", &["pool_recycle"]),
    ("pool_pre_ping", &["pool_pre_ping"]),
    ("pre_ping_bypass", &["pre_ping_bypass"]),
    ("reset_on_return", &["reset_on_return"]),
    ("pool_use_lifo", &["pool_use_lifo"]),
    ("pool_class", &["pool_class"]),
    ("min_idle", &["min_idle"]),
    ("connect_timeout", &["connect_timeout"]),
    ("network_timeout", &["network_timeout"]),
    ("echo_pool", &["echo_pool"]),
    ("leak_threshold", &["leak_threshold"]),
    ("application_name", &["application_name"]),
    ("statement_timeout", &["statement_timeout"]),
    ("sslmode", &["sslmode"]),
    ("statement_cache_capacity", &["statement_cache_capacity"]),
    ("replicas", &["replicas"]),
    ("metrics", &["metrics"]),
    ("health_warning_percent", &["health", "warning_percent"]),
    ("health_critical_percent", &["health", "critical_percent"]),
    ("sqlite_wal", &["sqlite", "wal"]),
    ("sqlite_busy_timeout", &["sqlite", "busy_timeout"]),
    ("sqlite_cache_size", &["sqlite", "cache_size"]),
    ("sqlite_mmap_size", &["sqlite", "mmap_size"]),
    ("sqlite_create_if_missing", &["sqlite", "create_if_missing"]),
];

/// The path of a setting, if `name` is one.
pub fn setting_path(name: &str) -> Option<&'static [&'static str]> {
    SETTINGS.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

/// All setting names, for "did you mean".
pub fn setting_names() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().map(|(n, _)| *n)
}
