use pool_runtime::Pool;
use sqlx::Postgres;

#[pool_testkit::test(migrations = false, fixtures("users"))]
async fn needs_users(pool: Pool<Postgres>) {
    drop(pool);
}

#[pool_testkit::test(migrations = "no/such/dir")]
async fn needs_migrations(pool: Pool<Postgres>) {
    drop(pool);
}

fn main() {}
