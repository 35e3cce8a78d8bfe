use pool_runtime::PoolConfig;

pub struct NotConfig;

#[derive(PoolConfig)]
#[pool(prefix = "DB_")]
pub struct Database {
    pub tags: Vec<u8>,
    #[pool(default = "5")]
    pub pool_size: String,
    #[pool(flatten)]
    pub nested: NotConfig,
}

fn main() {}
