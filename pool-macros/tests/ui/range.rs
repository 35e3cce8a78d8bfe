use pool_runtime::PoolConfig;
use std::time::Duration;

#[derive(PoolConfig)]
#[pool(prefix = "DB_")]
pub struct Database {
    #[pool(default = 600, production = 0, range = 1..=500)]
    pub pool_size: u32,
    #[pool(default = 10, range = 0..10)]
    pub max_overflow: u32,
    #[pool(default = "2h", range = "1s"..="1h")]
    pub pool_timeout: Duration,
    #[pool(default = 5, range = 10..=1)]
    pub retries: u32,
    #[pool(default = "x", range = 1..=5)]
    pub name: String,
    #[pool(default = 300)]
    pub small: u8,
}

fn main() {}
