use pool_runtime::PoolConfig;

#[derive(PoolConfig)]
#[pool(prefix = "DB_")]
pub struct Database {
    #[pool(default = 5)]
    pub pool_size: u32,
    #[pool(env = "DB_POOL_SIZE", default = 5, no_setting)]
    pub size: u32,
    #[pool(env = "DATABASE_URL")]
    pub url: String,
    #[pool(env = "DATABASE_URL", no_setting)]
    pub url_again: String,
    #[pool(setting = "max_overflow", default = 1)]
    pub overflow: u32,
    #[pool(default = 2)]
    pub max_overflow: u32,
}

fn main() {}
