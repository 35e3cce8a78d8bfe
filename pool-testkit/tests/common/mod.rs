//! Shared helpers for the testkit's own tests: run a test body against
//! each backend, skipping Docker with a clear line when it can't run here
//! (unless POOL_TESTKIT_REQUIRE_DOCKER is set, as in CI with a daemon).
#![allow(dead_code)]

use std::str::FromStr;
use std::sync::OnceLock;

use pool_testkit::{ServerKind, TestServer};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// Whether `backend` can run here; prints a SKIP line when it can't.
pub fn available(backend: ServerKind) -> bool {
    match backend.availability() {
        Ok(()) => true,
        Err(why) => {
            let required = std::env::var("POOL_TESTKIT_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
            if backend == ServerKind::Docker && required {
                panic!(
                    "POOL_TESTKIT_REQUIRE_DOCKER=1 but the docker backend is unavailable: {why}"
                );
            }
            eprintln!("SKIP ({backend} backend unavailable): {why}");
            false
        }
    }
}

/// A server of `backend` shared by the tests of this process that don't
/// stop or restart it.
pub fn shared(backend: ServerKind) -> Option<&'static TestServer> {
    static LOCAL: OnceLock<TestServer> = OnceLock::new();
    static DOCKER: OnceLock<TestServer> = OnceLock::new();
    if !available(backend) {
        return None;
    }
    let cell = match backend {
        ServerKind::Docker => &DOCKER,
        _ => &LOCAL,
    };
    Some(cell.get_or_init(|| {
        TestServer::builder()
            .backend(backend)
            .start()
            .unwrap_or_else(|e| panic!("{backend} server: {e}"))
    }))
}

/// A connection to `url` with `application_name` = `app`.
pub async fn connect_as(url: &str, app: &str) -> PgConnection {
    PgConnectOptions::from_str(url)
        .unwrap()
        .application_name(app)
        .connect()
        .await
        .unwrap()
}

/// A unique application name for one test.
pub fn app_name(test: &str) -> String {
    format!("tk-{test}-{}", std::process::id())
}

/// For each async `fn $name(&'static TestServer)`, generates
/// `mod $name { fn local(); fn docker(); }` running it on each backend's
/// shared server.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident;)*) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                if let Some(server) = $crate::common::shared(pool_testkit::ServerKind::Local) {
                    super::$name(server).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn docker() {
                if let Some(server) = $crate::common::shared(pool_testkit::ServerKind::Docker) {
                    super::$name(server).await;
                }
            }
        }
    )*};
}
