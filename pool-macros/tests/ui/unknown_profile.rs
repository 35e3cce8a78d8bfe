use pool_runtime::PoolConfig;

#[derive(PoolConfig)]
#[pool(prefix = "DB_")]
pub struct Database {
    #[pool(default = 5, staging = 3)]
    pub pool_size: u32,
    #[pool(default = 10, prod = 20)]
    pub max_overflow: u32,
    #[pool(default = 1, developement = 2)]
    pub min_idle: u32,
}

fn main() {}
