use pool_runtime::PoolConfig;
use std::time::Duration;

#[derive(PoolConfig)]
#[pool(prefix = "DB_")]
pub struct Database {
    #[pool(default = "30x")]
    pub pool_timeout: Duration,
    #[pool(default = "1h", test = "soon")]
    pub pool_recycle: Option<Duration>,
}

fn main() {}
