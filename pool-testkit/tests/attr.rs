//! `#[pool_testkit::test]` end to end: migrations and fixtures in a
//! template, a database per test, arguments by type, `pool(...)` and
//! `config = ...` settings seen from the server, keep-on-failure, SQLite.

use std::time::Duration;

use pool_runtime::{Pool, PoolClass, PoolConfig, PoolSettings, Secret};
use pool_testkit::{TestDatabase, TestServer};
use sqlx::{Postgres, Sqlite};

/// Rows in `users` of the database at `url`, on a connection of its own.
async fn users_in(url: &str) -> i64 {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.unwrap();
    n
}

#[pool_testkit::test(
    migrations = "tests/attr/migrations",
    fixtures_dir = "tests/attr/fixtures",
    fixtures("users", "orders")
)]
async fn migrations_and_fixtures_are_applied_in_order(pool: Pool<Postgres>) {
    let totals: Vec<(String, i64)> = sqlx::query_as(
        "SELECT u.name, sum(o.total)::bigint FROM users u JOIN orders o ON o.user_id = u.id
         GROUP BY u.name ORDER BY u.name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(totals, [("alice".into(), 325), ("bob".into(), 30)]);
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(applied, [20260101000000, 20260102000000]);
}

#[pool_testkit::test(
    migrations = "tests/attr/migrations",
    fixtures_dir = "tests/attr/fixtures",
    fixtures("users")
)]
async fn each_test_has_its_own_copy(pool: Pool<Postgres>, db: TestDatabase, server: &TestServer) {
    // Another test deletes from its copy of the same template meanwhile;
    // this one still sees both users, in a database of its own.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let current: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(current, db.name());
    let template: Option<bool> =
        sqlx::query_scalar("SELECT datistemplate FROM pg_database WHERE datname = $1")
            .bind(db.name())
            .fetch_optional(&pool)
            .await
            .unwrap();
    assert_eq!(template, Some(false));
    assert!(server.url_for(db.name()).ends_with(db.name()));
}

#[pool_testkit::test(
    migrations = "tests/attr/migrations",
    fixtures_dir = "tests/attr/fixtures",
    fixtures("users")
)]
async fn writes_stay_in_the_tests_database(pool: Pool<Postgres>) {
    sqlx::query("DELETE FROM users")
        .execute(&pool)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[pool_testkit::test(migrations = false)]
async fn without_migrations_the_database_is_empty(pool: Pool<Postgres>) {
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 0);
}

/// The pool(...) settings reach the pool: the server shows pool_size
/// connections held, size + overflow under load, pool_size after.
#[pool_testkit::test(
    migrations = false,
    pool(size = 2, overflow = 3, timeout = "2s", recycle = "off")
)]
async fn pool_options_shape_the_pool(pool: Pool<Postgres>, server: &TestServer) {
    let s = pool.settings();
    assert_eq!(
        (s.pool_size, s.max_overflow, s.pool_timeout, s.pool_recycle),
        (2, 3, Duration::from_secs(2), None)
    );
    pool_testkit::assert::overflow_closes_on_return(server, &pool).await;
}

/// Production-shaped configuration, loaded through the derive.
#[derive(PoolConfig, Debug)]
#[pool(prefix = "ATTR_DB_")]
struct AttrDatabase {
    #[pool(env = "ATTR_DATABASE_URL")]
    url: Secret<String>,
    #[pool(default = 10, test = 1)]
    pool_size: u32,
    #[pool(default = 5)]
    max_overflow: u32,
    #[pool(default = "queue", test = "null")]
    pool_class: PoolClass,
}

#[pool_testkit::test(migrations = false, config = AttrDatabase)]
async fn config_loads_in_the_test_profile_by_default(settings: PoolSettings, db: TestDatabase) {
    assert_eq!(settings.pool_class, PoolClass::Null);
    assert_eq!(settings.pool_size, 1);
    assert_eq!(
        settings.url.expose(),
        &db.url(),
        "the URL points at the test's database"
    );
}

#[pool_testkit::test(
    migrations = false,
    config = AttrDatabase,
    profile = "production",
    env(ATTR_DB_POOL_SIZE = "3"),
    pool(overflow = 0)
)]
async fn config_profile_env_and_pool_overrides(pool: Pool<Postgres>, server: &TestServer) {
    let s = pool.settings();
    assert_eq!(
        (s.pool_class, s.pool_size, s.max_overflow),
        (PoolClass::Queue, 3, 0)
    );
    pool_testkit::assert::pool_size_held(server, &pool).await;
}

#[pool_testkit::test(migrations = false, flavor = "multi_thread", worker_threads = 2)]
async fn multi_thread_flavor(pool: Pool<Postgres>) {
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::MultiThread
    );
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
}

#[pool_testkit::test(migrations = false)]
async fn a_result_test_can_use_question_mark(pool: Pool<Postgres>) -> Result<(), sqlx::Error> {
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
    assert_eq!(one, 1);
    Ok(())
}

// The body of a failing test, run by `a_failing_test_keeps_its_database`.
#[pool_testkit::test(
    migrations = "tests/attr/migrations",
    fixtures_dir = "tests/attr/fixtures",
    fixtures("users")
)]
#[ignore = "fails on purpose; run by a_failing_test_keeps_its_database"]
async fn fails_on_purpose(db: TestDatabase) {
    println!("DATABASE={}", db.name());
    panic!("failing on purpose");
}

/// A failing test keeps its database and prints its name and a URL
/// without the password; the database still has the fixture rows.
#[pool_testkit::test(migrations = false)]
async fn a_failing_test_keeps_its_database(server: &TestServer) {
    let exe = std::env::current_exe().unwrap();
    let out = tokio::process::Command::new(exe)
        .args([
            "--exact",
            "fails_on_purpose",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        // The child must use this server, not start its own.
        .env("POOL_TESTKIT_URL", server.url())
        .env("POOL_TESTKIT_BACKEND", "external")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the child test should fail:\n{stdout}\n{stderr}"
    );
    let name = stdout
        .lines()
        .find_map(|l| l.split_once("DATABASE=").map(|(_, name)| name.trim()))
        .unwrap_or_else(|| panic!("no database name printed:\n{stdout}\n{stderr}"))
        .to_owned();
    let all = format!("{stdout}\n{stderr}");
    assert!(all.contains(&format!("database {name} is kept")), "{all}");
    assert!(
        !all.contains(":postgres@"),
        "the password is printed:\n{all}"
    );
    assert_eq!(users_in(&server.url_for(&name)).await, 2);
    let mut admin = server.connect_admin().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

#[pool_testkit::test(
    sqlite,
    migrations = "tests/attr/migrations",
    fixtures_dir = "tests/attr/fixtures",
    fixtures("users", "orders")
)]
async fn sqlite_gets_migrations_and_fixtures(pool: Pool<Sqlite>, settings: PoolSettings) {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 3);
    let url = settings.url.expose().clone();
    assert!(
        url.starts_with("sqlite://") && url.contains("pool-testkit-sqlite-"),
        "{url}"
    );
}

/// Two SQLite tests of one migration set: the second is a copy of the
/// template file, not a second migration run, and each has its own file.
#[pool_testkit::test(
    sqlite,
    migrations = "tests/attr/migrations",
    fixtures_dir = "tests/attr/fixtures",
    fixtures("users")
)]
async fn sqlite_tests_get_copies_of_one_template(pool: Pool<Sqlite>, settings: PoolSettings) {
    sqlx::query("DELETE FROM users")
        .execute(&pool)
        .await
        .unwrap();
    let template = std::env::temp_dir().join("pool-testkit-sqlite-templates");
    let templates: Vec<_> = std::fs::read_dir(&template)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
        .collect();
    assert!(
        !templates.is_empty(),
        "no template in {}",
        template.display()
    );
    // The template itself still has both users.
    for t in templates {
        let url = format!("sqlite://{}?mode=ro", t.path().display());
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let users: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&mut conn)
            .await;
        if let Ok(n) = users {
            assert!(n >= 2, "{} was changed by a test", t.path().display());
        }
    }
    assert!(
        !settings
            .url
            .expose()
            .contains("pool-testkit-sqlite-templates")
    );
}

/// `&TestDatabase` and `&TestServer` together: borrowed, so the kit still
/// owns (and drops) the database.
#[pool_testkit::test(migrations = false)]
async fn the_database_can_be_borrowed(
    pool: Pool<Postgres>,
    db: &TestDatabase,
    server: &TestServer,
) {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(name, db.name());
    assert!(server.url_for(db.name()).ends_with(db.name()));
}

/// A `&Cluster` argument gives the test its own primary and standby; the
/// pool is on the primary (through its proxy), and a write reaches the
/// standby.
#[pool_testkit::test(
    migrations = "tests/attr/migrations",
    fixtures_dir = "tests/attr/fixtures",
    fixtures("users")
)]
async fn a_cluster_argument_gets_a_primary_and_a_standby(
    pool: Pool<Postgres>,
    cluster: &pool_testkit::Cluster,
    db: &TestDatabase,
) {
    assert_eq!(cluster.standbys().len(), 1);
    sqlx::query("INSERT INTO users (id, name) VALUES (3, 'carol')")
        .execute(&pool)
        .await
        .unwrap();
    let app = pool.settings().application_name.clone().unwrap();
    let on = cluster.connections_by_node(&app).await.unwrap();
    assert!(
        on[cluster.primary()].unwrap_or(0) >= 1,
        "the pool's connections by node: {on:?}"
    );
    cluster
        .wait_caught_up(Duration::from_secs(20))
        .await
        .unwrap();
    let standby = cluster.standbys()[0];
    assert_eq!(
        users_in(&cluster.url_for(standby, db.name())).await,
        3,
        "the fixture's two users and the new one, on the standby"
    );
}

/// `pgbouncer(mode = "transaction", pool_size = 1)`: the pool connects
/// through PgBouncer, and eight client connections share one server
/// connection, counted on the server.
#[pool_testkit::test(
    migrations = false,
    pgbouncer(mode = "transaction", pool_size = 1),
    pool(size = 8)
)]
async fn a_pgbouncer_option_puts_the_pool_behind_pgbouncer(
    pool: Pool<Postgres>,
    bouncer: &pool_testkit::PgBouncer,
    server: &TestServer,
) {
    assert_eq!(bouncer.pool_mode(), pool_testkit::PoolMode::Transaction);
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut conn = pool.acquire().await.unwrap();
        sqlx::raw_sql("SELECT 1").execute(&mut *conn).await.unwrap();
        held.push(conn);
    }
    let clients = bouncer.show_clients().await.unwrap();
    assert!(clients.len() >= 8, "{clients:?}");
    let backends = bouncer.server_backends(server).await.unwrap();
    assert_eq!(backends.len(), 1, "{backends:?}");
}

/// `pool(class = "null")`: spelled as the settings table spells it, and a
/// NullPool seen from the server: a returned connection closes.
#[pool_testkit::test(migrations = false, pool(class = "null", reset = "rollback_always"))]
async fn enum_pool_options_reach_the_pool(pool: Pool<Postgres>, server: &TestServer) {
    let app = pool.settings().application_name.clone().unwrap();
    let conn = pool.acquire().await.unwrap();
    pool_testkit::assert::eventually_connections(server, &app, 1, Duration::from_secs(10)).await;
    drop(conn);
    pool_testkit::assert::eventually_connections(server, &app, 0, Duration::from_secs(10)).await;
}
