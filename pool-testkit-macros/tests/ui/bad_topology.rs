use pool_runtime::Pool;
use sqlx::{Postgres, Sqlite};

#[pool_testkit::test(
    migrations = false,
    cluster(standby = 2),
    pgbouncer(mode = "transactoin", pool_size = 0)
)]
async fn misspelt_keys_and_values(pool: Pool<Postgres>) {
    drop(pool);
}

#[pool_testkit::test(sqlite, migrations = false, cluster(standbys = 9))]
async fn a_cluster_needs_postgres(pool: Pool<Sqlite>) {
    drop(pool);
}

fn main() {}
