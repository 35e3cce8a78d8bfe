use pool_runtime::Pool;
use sqlx::Postgres;

#[pool_testkit::test(migrations = false)]
fn not_async(pool: Pool<Postgres>) {
    drop(pool);
}

#[pool_testkit::test(migrations = false)]
#[tokio::test]
async fn two_test_attributes(pool: Pool<Postgres>) {
    drop(pool);
}

fn main() {}
