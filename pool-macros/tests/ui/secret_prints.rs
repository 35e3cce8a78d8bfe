//! `#[pool(secret)]` on a type whose `Debug` prints the value: the struct's
//! `#[derive(Debug)]` would show the secret, so it does not compile.
use pool_runtime::PoolConfig;

#[derive(PoolConfig, Debug)]
#[pool(prefix = "API_")]
pub struct Api {
    #[pool(secret)]
    pub token: String,
    #[pool(secret)]
    pub pin: Option<u32>,
    #[pool(secret, env = "API_SEED", default = 7)]
    pub seed: i64,
}

fn main() {}
