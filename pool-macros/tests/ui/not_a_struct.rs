use pool_runtime::PoolConfig;

#[derive(PoolConfig)]
pub enum Database {
    Primary,
    Replica,
}

#[derive(PoolConfig)]
pub struct Tuple(u32, String);

#[derive(PoolConfig)]
pub struct Generic<T> {
    pub value: T,
}

fn main() {}
