use pool_runtime::{PoolClass, PoolConfig};
use std::time::Duration;

/// Every mistake at once: all are reported, each at its own span.
#[derive(PoolConfig)]
#[pool(prefix = "DB_", profile_env = "APP ENV")]
pub struct Database {
    #[pool(default = 0)]
    pub pool_size: u32,
    #[pool(default = "30x")]
    pub pool_timeout: Duration,
    #[pool(defualt = true)]
    pub pool_pre_ping: bool,
    #[pool(default = "queue", test = "null")]
    pub pool_class: PoolClass,
    #[pool(default = 10, test = 3)]
    pub max_overflow: u32,
    #[pool(setting = "pool_sise")]
    pub size: u32,
    #[pool(env = "DB_POOL_SIZE")]
    pub other: u32,
    #[pool(flatten, default = 1)]
    pub nested: Nested,
}

#[derive(PoolConfig)]
pub struct Nested {
    #[pool(default = 1)]
    pub value: u32,
}

fn main() {}
