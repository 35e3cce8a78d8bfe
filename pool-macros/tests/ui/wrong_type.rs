use pool_runtime::{PoolClass, PoolConfig};
use std::time::Duration;

#[derive(PoolConfig)]
#[pool(prefix = "DB_")]
pub struct Database {
    #[pool(default = "abc")]
    pub pool_size: u32,
    #[pool(default = 5)]
    pub pool_timeout: Duration,
    #[pool(default = "yes")]
    pub pool_pre_ping: bool,
    #[pool(default = "nul")]
    pub pool_class: PoolClass,
    #[pool(default = 1.5)]
    pub application_name: String,
    #[pool(default = DEFAULT_SIZE)]
    pub min_idle: u32,
}

const DEFAULT_SIZE: u32 = 1;

fn main() {}
