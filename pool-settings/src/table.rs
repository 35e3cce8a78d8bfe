//! Every pool setting, described once: the name a config field maps to
//! by, where it lives in `PoolSettings`, its type, default, range and doc.
//! `pool-runtime` has a test that fails when a `PoolSettings` field is
//! missing here (`every_field_is_in_the_table` in its settings.rs).

/// The type of a setting's value, as config text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A non-negative integer (`u32`, `usize`, …).
    Count,
    /// An optional integer (`Option<i64>`, `Option<u64>`); `off` is none.
    OptCount,
    /// A number (percent).
    Percent,
    /// A [`Duration`](std::time::Duration) in the [duration grammar](crate::duration).
    Duration,
    /// An optional duration; `off` is none.
    OptDuration,
    /// A boolean.
    Bool,
    /// One of an enum's spellings.
    Enum(&'static EnumSpec),
    /// An optional enum value; `off` is none.
    OptEnum(&'static EnumSpec),
    /// A database URL (secret).
    Url,
    /// Free text.
    Text,
    /// Optional free text.
    OptText,
}

/// One setting.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// The name a config field maps to (`pool_size`, `sqlite_wal`).
    pub name: &'static str,
    /// The path of the field inside `PoolSettings` (`["sqlite", "wal"]`).
    pub path: &'static [&'static str],
    /// Its type.
    pub kind: Kind,
    /// `PoolSettings::new`'s value, as config text (`""`: none).
    pub default: &'static str,
    /// What it does, one line.
    pub doc: &'static str,
    /// Allowed values beyond the type, as text (checked by [`crate::check()`]).
    pub range: Option<&'static str>,
}

/// An enum whose spellings config accepts: one list per variant, the
/// canonical spelling first, then aliases; matched case-insensitively.
#[derive(Debug, PartialEq, Eq)]
pub struct EnumSpec {
    /// The Rust type name (`PoolClass`).
    pub name: &'static str,
    /// Spellings by variant, in declaration order.
    pub variants: &'static [&'static [&'static str]],
}

impl EnumSpec {
    /// The index of the variant `text` spells, if any.
    pub fn parse(&self, text: &str) -> Option<usize> {
        let lower = text.trim().to_ascii_lowercase();
        self.variants
            .iter()
            .position(|v| v.contains(&lower.as_str()))
    }

    /// The canonical spelling of each variant.
    pub fn canonical(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.variants.iter().map(|v| v[0])
    }

    /// `queue, null`: the canonical spellings, for messages.
    pub fn listed(&self) -> String {
        self.canonical().collect::<Vec<_>>().join(", ")
    }
}

/// `PoolClass`: queue or null pool.
pub const POOL_CLASS: EnumSpec = EnumSpec {
    name: "PoolClass",
    variants: &[&["queue", "queuepool"], &["null", "nullpool"]],
};

/// `ResetOnReturn`: what happens to a returned connection.
pub const RESET_ON_RETURN: EnumSpec = EnumSpec {
    name: "ResetOnReturn",
    variants: &[
        &["rollback"],
        &["rollback_always", "always"],
        &["none", "off"],
    ],
};

/// `NestedCheckout`: what an acquire by a task that already holds a
/// connection of the same pool does.
pub const NESTED_CHECKOUT: EnumSpec = EnumSpec {
    name: "NestedCheckout",
    variants: &[&["warn", "warning"], &["error", "deny"], &["off", "allow"]],
};

/// `SslMode`: libpq's `sslmode`.
pub const SSL_MODE: EnumSpec = EnumSpec {
    name: "SslMode",
    variants: &[
        &["disable"],
        &["allow"],
        &["prefer"],
        &["require"],
        &["verify-ca", "verify_ca"],
        &["verify-full", "verify_full"],
    ],
};

/// `TargetSessionAttrs`: libpq's `target_session_attrs`, which host of a
/// multi-host URL a connection may stay on.
pub const TARGET_SESSION_ATTRS: EnumSpec = EnumSpec {
    name: "TargetSessionAttrs",
    variants: &[
        &["any"],
        &["read-write", "read_write"],
        &["read-only", "read_only"],
        &["primary"],
        &["standby"],
        &["prefer-standby", "prefer_standby"],
    ],
};

/// `LoadBalanceHosts`: libpq's `load_balance_hosts`, the order hosts are
/// tried in.
pub const LOAD_BALANCE_HOSTS: EnumSpec = EnumSpec {
    name: "LoadBalanceHosts",
    variants: &[&["disable"], &["random"]],
};

/// `PgBouncerMode`: what pools the pool's connections between it and
/// PostgreSQL.
pub const PGBOUNCER: EnumSpec = EnumSpec {
    name: "PgBouncerMode",
    variants: &[&["off", "direct"], &["session"], &["transaction"]],
};

/// `ReadBalance`: how pool-runtime's `ReplicaPool` spreads reads over the
/// standbys that qualify.
pub const READ_BALANCE: EnumSpec = EnumSpec {
    name: "ReadBalance",
    variants: &[
        &["round-robin", "round_robin", "roundrobin"],
        &["least-busy", "least_busy", "leastbusy"],
    ],
};

/// Whether `text` spells the null pool class.
pub fn is_null_pool(text: &str) -> bool {
    POOL_CLASS.parse(text) == Some(1)
}

/// The enums config knows by name.
pub const ENUMS: &[&EnumSpec] = &[
    &POOL_CLASS,
    &RESET_ON_RETURN,
    &NESTED_CHECKOUT,
    &SSL_MODE,
    &TARGET_SESSION_ATTRS,
    &LOAD_BALANCE_HOSTS,
    &PGBOUNCER,
    &READ_BALANCE,
];

const fn s(
    name: &'static str,
    path: &'static [&'static str],
    kind: Kind,
    default: &'static str,
    doc: &'static str,
) -> Setting {
    Setting {
        name,
        path,
        kind,
        default,
        doc,
        range: None,
    }
}

const fn ranged(setting: Setting, range: &'static str) -> Setting {
    Setting {
        range: Some(range),
        ..setting
    }
}

/// Every setting, in `PoolSettings` order.
pub const SETTINGS: &[Setting] = &[
    ranged(
        s(
            "url",
            &["url"],
            Kind::Url,
            "",
            "Connection URL (`postgres://…`, `sqlite://…`); printed redacted.",
        ),
        "not empty",
    ),
    s(
        "name",
        &["name"],
        Kind::Text,
        "default",
        "Name of the pool in metrics, logs and the pool registry.",
    ),
    ranged(
        s(
            "pool_size",
            &["pool_size"],
            Kind::Count,
            "5",
            "Connections kept open when idle.",
        ),
        "at least 1 for a queue pool",
    ),
    s(
        "max_overflow",
        &["max_overflow"],
        Kind::Count,
        "10",
        "Extra connections opened when all are busy.",
    ),
    ranged(
        s(
            "pool_timeout",
            &["pool_timeout"],
            Kind::Duration,
            "30s",
            "How long `acquire` may take in all (waiting, connecting, pinging).",
        ),
        "more than zero",
    ),
    ranged(
        s(
            "pool_recycle",
            &["pool_recycle"],
            Kind::OptDuration,
            "off",
            "Maximum connection age, checked at checkout and at return.",
        ),
        "more than zero, or off",
    ),
    s(
        "pool_pre_ping",
        &["pool_pre_ping"],
        Kind::Bool,
        "true",
        "Ping an idle connection before handing it out.",
    ),
    s(
        "pre_ping_bypass",
        &["pre_ping_bypass"],
        Kind::Duration,
        "500ms",
        "No pre-ping for a connection the server verified this recently.",
    ),
    s(
        "reset_on_return",
        &["reset_on_return"],
        Kind::Enum(&RESET_ON_RETURN),
        "rollback",
        "What to do with a returned connection.",
    ),
    s(
        "reset_statement",
        &["reset_statement"],
        Kind::OptText,
        "",
        "A statement run on every returned connection that ran statements (`RESET ALL`, or your own); a failure closes it.",
    ),
    s(
        "pool_use_lifo",
        &["pool_use_lifo"],
        Kind::Bool,
        "false",
        "Hand out the most recently returned idle connection first.",
    ),
    s(
        "pool_class",
        &["pool_class"],
        Kind::Enum(&POOL_CLASS),
        "queue",
        "Queue or Null pool.",
    ),
    ranged(
        s(
            "min_idle",
            &["min_idle"],
            Kind::Count,
            "0",
            "Connections opened at start and kept open.",
        ),
        "at most pool_size",
    ),
    s(
        "idle_timeout",
        &["idle_timeout"],
        Kind::OptDuration,
        "off",
        "Close connections idle this long while more than min_idle are open; off keeps pool_size (QueuePool).",
    ),
    s(
        "overflow_linger",
        &["overflow_linger"],
        Kind::OptDuration,
        "off",
        "Keep a returned overflow connection idle this long instead of closing it at once.",
    ),
    ranged(
        s(
            "connect_timeout",
            &["connect_timeout"],
            Kind::Duration,
            "10s",
            "Bound on a single connect, separate from `pool_timeout`.",
        ),
        "more than zero",
    ),
    ranged(
        s(
            "network_timeout",
            &["network_timeout"],
            Kind::Duration,
            "5s",
            "Bound on ping, reset and close.",
        ),
        "more than zero",
    ),
    s(
        "echo_pool",
        &["echo_pool"],
        Kind::Bool,
        "false",
        "Emit checkout/checkin/connect/close events through `tracing`.",
    ),
    s(
        "leak_threshold",
        &["leak_threshold"],
        Kind::OptDuration,
        "off",
        "A held connection is reported as a leak after this long.",
    ),
    s(
        "nested_checkout",
        &["nested_checkout"],
        Kind::Enum(&NESTED_CHECKOUT),
        "warn",
        "A task acquiring while it holds a connection of the same pool: warn, error or off.",
    ),
    s(
        "application_name",
        &["application_name"],
        Kind::OptText,
        "",
        "`application_name` sent to PostgreSQL.",
    ),
    s(
        "statement_timeout",
        &["statement_timeout"],
        Kind::OptDuration,
        "off",
        "PostgreSQL `statement_timeout` for every connection.",
    ),
    s(
        "sslmode",
        &["sslmode"],
        Kind::OptEnum(&SSL_MODE),
        "off",
        "PostgreSQL `sslmode`; off keeps the URL's own.",
    ),
    s(
        "sslrootcert",
        &["sslrootcert"],
        Kind::OptText,
        "",
        "PEM file of the CA(s) to verify the server's certificate with (libpq's `sslrootcert`); unset keeps the URL's own.",
    ),
    s(
        "sslcert",
        &["sslcert"],
        Kind::OptText,
        "",
        "PEM file of the client certificate (libpq's `sslcert`), with `sslkey`; unset keeps the URL's own.",
    ),
    s(
        "sslkey",
        &["sslkey"],
        Kind::OptText,
        "",
        "PEM file of the client certificate's private key (libpq's `sslkey`); unset keeps the URL's own.",
    ),
    s(
        "hosts",
        &["hosts"],
        Kind::OptText,
        "",
        "PostgreSQL hosts as `host:port,host:port`, in place of the URL's own host list (libpq's multi-host form); unset keeps the URL's.",
    ),
    s(
        "target_session_attrs",
        &["target_session_attrs"],
        Kind::Enum(&TARGET_SESSION_ATTRS),
        "any",
        "Which host of a PostgreSQL URL a connection may stay on (libpq's): any, read-write, read-only, primary, standby or prefer-standby; the URL's own parameter wins.",
    ),
    s(
        "load_balance_hosts",
        &["load_balance_hosts"],
        Kind::Enum(&LOAD_BALANCE_HOSTS),
        "disable",
        "Hosts of a multi-host PostgreSQL URL are tried in order (disable) or shuffled for each connect (random); the URL's own parameter wins.",
    ),
    s(
        "pgbouncer",
        &["pgbouncer"],
        Kind::Enum(&PGBOUNCER),
        "off",
        "PgBouncer between the pool and PostgreSQL: off (a direct connection), session, or transaction (statements run unnamed inside a transaction, `acquire` is refused, the statement cache is off).",
    ),
    ranged(
        s(
            "pgbouncer_pool_size",
            &["pgbouncer_pool_size"],
            Kind::OptCount,
            "",
            "PgBouncer's pool_size for this database and user, for the connection budget in status advice; off when unknown.",
        ),
        "at least 1, or off",
    ),
    s(
        "read_balance",
        &["read_balance"],
        Kind::Enum(&READ_BALANCE),
        "round-robin",
        "ReplicaPool: how reads are spread over the standbys that qualify: round-robin, or least-busy (fewest connections checked out).",
    ),
    s(
        "read_fallback",
        &["read_fallback"],
        Kind::Bool,
        "true",
        "ReplicaPool: reads go to the primary when no standby qualifies (false: they fail with an error naming each node and why).",
    ),
    ranged(
        s(
            "read_max_lag",
            &["read_max_lag"],
            Kind::OptDuration,
            "off",
            "ReplicaPool: a standby whose replay lags further behind (seconds since the last replayed commit) serves no reads; off: no limit.",
        ),
        "more than zero, or off",
    ),
    ranged(
        s(
            "read_check_interval",
            &["read_check_interval"],
            Kind::Duration,
            "1s",
            "ReplicaPool: how often each host's role, reachability and lag are checked.",
        ),
        "more than zero",
    ),
    s(
        "statement_cache_capacity",
        &["statement_cache_capacity"],
        Kind::Count,
        "100",
        "Statements cached per connection (0 disables caching).",
    ),
    ranged(
        s(
            "health_warning_percent",
            &["health", "warning_percent"],
            Kind::Percent,
            "70",
            "Status health turns warning from this utilization on.",
        ),
        "0 <= warning <= critical <= 100",
    ),
    ranged(
        s(
            "health_critical_percent",
            &["health", "critical_percent"],
            Kind::Percent,
            "90",
            "Status health turns critical from this utilization on.",
        ),
        "0 <= warning <= critical <= 100",
    ),
    s(
        "replicas",
        &["replicas"],
        Kind::Count,
        "1",
        "How many replicas of this service share the database.",
    ),
    s(
        "sqlite_single_writer",
        &["sqlite", "single_writer"],
        Kind::Bool,
        "true",
        "A SQLite file database gets one writer connection (`acquire`, `begin`, `&Pool`) and `pool_size` read-only ones (`pool.reader()`).",
    ),
    s(
        "sqlite_wal",
        &["sqlite", "wal"],
        Kind::Bool,
        "true",
        "SQLite `PRAGMA journal_mode = WAL`.",
    ),
    s(
        "sqlite_busy_timeout",
        &["sqlite", "busy_timeout"],
        Kind::Duration,
        "5s",
        "How long a SQLite statement waits on a locked database.",
    ),
    s(
        "sqlite_cache_size",
        &["sqlite", "cache_size"],
        Kind::OptCount,
        "off",
        "SQLite `PRAGMA cache_size` (negative: KiB, positive: pages).",
    ),
    s(
        "sqlite_mmap_size",
        &["sqlite", "mmap_size"],
        Kind::OptCount,
        "off",
        "SQLite `PRAGMA mmap_size` in bytes.",
    ),
    s(
        "sqlite_create_if_missing",
        &["sqlite", "create_if_missing"],
        Kind::Bool,
        "true",
        "Create the SQLite database file when it does not exist.",
    ),
    s(
        "metrics",
        &["metrics"],
        Kind::Bool,
        "true",
        "Publish metrics through the `metrics` facade.",
    ),
];

/// The setting called `name`.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Every setting name, for "did you mean" and lists.
pub fn names() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().map(|s| s.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_defaults_parse() {
        for (i, a) in SETTINGS.iter().enumerate() {
            assert!(
                SETTINGS[i + 1..].iter().all(|b| b.name != a.name),
                "{}",
                a.name
            );
            let ok = match a.kind {
                Kind::Duration => crate::parse_duration(a.default).is_ok(),
                Kind::OptDuration => {
                    crate::is_off(a.default) || crate::parse_duration(a.default).is_ok()
                }
                Kind::Enum(e) => e.parse(a.default).is_some(),
                Kind::OptEnum(e) => crate::is_off(a.default) || e.parse(a.default).is_some(),
                Kind::Count | Kind::Percent => a.default.parse::<f64>().is_ok(),
                _ => true,
            };
            assert!(ok, "default of {} does not parse", a.name);
        }
    }

    #[test]
    fn enum_spellings() {
        assert_eq!(POOL_CLASS.parse(" NullPool "), Some(1));
        assert_eq!(RESET_ON_RETURN.parse("off"), Some(2));
        assert_eq!(SSL_MODE.parse("verify_ca"), Some(4));
        assert_eq!(NESTED_CHECKOUT.parse("Deny"), Some(1));
        assert_eq!(SSL_MODE.parse("bogus"), None);
        assert_eq!(TARGET_SESSION_ATTRS.parse("Prefer_Standby"), Some(5));
        assert_eq!(LOAD_BALANCE_HOSTS.parse("random"), Some(1));
        assert_eq!(READ_BALANCE.parse("Least_Busy"), Some(1));
        assert_eq!(POOL_CLASS.listed(), "queue, null");
    }
}
