use pool_runtime::PoolConfig;

#[derive(PoolConfig)]
#[pool(prefix = "DB_")]
pub struct Database {
    #[pool(default = 0)]
    pub pool_size: u32,
}

#[derive(PoolConfig)]
#[pool(prefix = "DB2_")]
pub struct OnlyInProduction {
    #[pool(default = 5, production = 0)]
    pub pool_size: u32,
}

fn main() {}
