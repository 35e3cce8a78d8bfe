//! `#[pool(secret)]` on a type the macro cannot see through (an alias, an
//! own type): the compiler checks it redacts itself (`Redacted`).
use pool_runtime::PoolConfig;

type Token = String;

#[derive(PoolConfig, Debug)]
#[pool(prefix = "API_")]
pub struct Api {
    #[pool(secret, default = "t")]
    pub token: Token,
}

fn main() {}
