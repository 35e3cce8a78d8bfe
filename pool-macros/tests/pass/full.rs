//! The shape from the design document, plus every attribute once.
use pool_runtime::config::{EnvSource, StandardPoolConfig};
use pool_runtime::{PoolClass, PoolConfig, Secret};
use std::time::Duration;

/// Primary database.
#[derive(PoolConfig, Debug)]
#[pool(prefix = "DB_", profile_env = "APP_ENV", crate = "::pool_runtime")]
pub struct Database {
    /// Connection URL; the password is never printed.
    #[pool(env = "DATABASE_URL")]
    pub url: Secret<String>,
    /// Connections kept open.
    #[pool(default = 20, production = 5, range = 1..=500)]
    pub pool_size: u32,
    #[pool(default = 10, test = 0)]
    pub max_overflow: u32,
    #[pool(default = "30s", range = "1ms"..)]
    pub pool_timeout: Duration,
    #[pool(default = "1h", development = "off")]
    pub pool_recycle: Option<Duration>,
    #[pool(default = true)]
    pub pool_pre_ping: bool,
    #[pool(default = "queue", test = "null")]
    pub pool_class: PoolClass,
    #[pool(setting = "min_idle", default = 0, range = 0..=500)]
    pub warm_connections: u32,
    #[pool(default = -1, range = -1..)]
    pub signed: i64,
    #[pool(default = 0.5, range = 0..=1)]
    pub ratio: f64,
    #[pool(secret)]
    pub token: Option<Secret<String>>,
    /// An own type whose Debug redacts: allowed with `secret`.
    #[pool(secret, from_str)]
    pub pin: Option<Pin>,
    #[pool(from_str, default = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    #[pool(flatten, prefix = "STD_")]
    pub standard: StandardPoolConfig,
}

/// A PIN whose `Debug` and `Display` never show it.
pub struct Pin(u32);

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(***)")
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Pin {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Pin)
    }
}

impl pool_runtime::secret::Redacted for Pin {}

fn main() {
    let _ = Database::load(&EnvSource::from_pairs([("DATABASE_URL", "postgres://h/db")]));
    let _ = Database::env_docs().to_markdown();
}
