use pool_runtime::PoolConfig;

#[derive(PoolConfig)]
#[pool(prefx = "DB_")]
pub struct Database {
    #[pool(defualt = 5)]
    pub pool_size: u32,
    #[pool(rnage = 1..=5, default = 2)]
    pub max_overflow: u32,
    #[pool(secret = true)]
    pub password: String,
}

fn main() {}
