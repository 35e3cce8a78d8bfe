use pool_runtime::{PoolClass, PoolConfig};

#[derive(PoolConfig)]
#[pool(prefix = "DB_")]
pub struct Database {
    #[pool(default = "queue", test = "null")]
    pub pool_class: PoolClass,
    #[pool(default = 10, test = 5)]
    pub max_overflow: u32,
}

#[derive(PoolConfig)]
#[pool(prefix = "SERVERLESS_")]
pub struct Serverless {
    #[pool(default = "null")]
    pub pool_class: PoolClass,
    #[pool(default = 10)]
    pub max_overflow: u32,
}

#[derive(PoolConfig)]
#[pool(prefix = "IDLE_")]
pub struct Idle {
    #[pool(default = 5)]
    pub pool_size: u32,
    #[pool(default = 2, production = 8)]
    pub min_idle: u32,
}

fn main() {}
