use pool_runtime::Pool;
use sqlx::Postgres;

#[pool_testkit::test(
    migrations = false,
    pool(timeout = "2x", class = "nul", size = true),
    flavor = "multi",
    profile = "prod"
)]
async fn bad_values(pool: Pool<Postgres>) {
    drop(pool);
}

#[pool_testkit::test(migrations = false, worker_threads = 2)]
async fn threads_without_multi_thread(pool: Pool<Postgres>) {
    drop(pool);
}

fn main() {}
