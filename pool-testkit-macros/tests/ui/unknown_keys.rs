use pool_runtime::Pool;
use sqlx::Postgres;

#[pool_testkit::test(migrations = false, fixturs("users"), pool(sise = 2, overflow = 1))]
async fn typos(pool: Pool<Postgres>) {
    drop(pool);
}

fn main() {}
