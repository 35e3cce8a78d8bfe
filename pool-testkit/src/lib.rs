//! Throwaway PostgreSQL servers for tests, per-test databases, fixtures,
//! and assertions about pool behaviour checked from the server's side.
//!
//! ```no_run
//! use std::time::Duration;
//! # async fn demo() -> pool_testkit::Result<()> {
//! let server = pool_testkit::shared_server(); // one per test binary
//! let db = server.create_database().await?;  // fresh copy of the template
//! // ... connect a pool to db.url() with application_name "my-test" ...
//! pool_testkit::assert::eventually_connections(server, "my-test", 0, Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
//!
//! Backends ([`Backend`]): Docker through testcontainers, local PostgreSQL
//! binaries, or an external server. Environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `POOL_TESTKIT_BACKEND` | `docker`, `local`, `external` or `auto` (default) |
//! | `POOL_TESTKIT_URL` | superuser URL of an external server (implies `external`) |
//! | `POOL_TESTKIT_IMAGE` | Docker image (default `pool-testkit/postgres:15`, built by `pool-testkit/docker/build-image.sh`; `postgres:15` elsewhere) |
//! | `POOL_TESTKIT_PG_BIN` | directory with initdb and pg_ctl (default: found) |
//! | `POOL_TESTKIT_ARGS` | extra settings of the shared server, `key=value ...` |
//! | `POOL_TESTKIT_TMPDIR` | parent of local data dirs (default the temp dir) |
//! | `POOL_TESTKIT_KEEP` | keep data dirs, containers and databases for debugging |
//! | `POOL_TESTKIT_NO_WATCHDOG` | no exit watchdog: leftovers of a dead run wait for the next run's sweep |
//!
//! The Docker image: no registry is needed. `pool-testkit/docker/build-image.sh`
//! builds `pool-testkit/postgres:15` from the host's PostgreSQL 15 binaries
//! (`--method debootstrap` for a Debian rootfs instead), `FROM scratch`,
//! with an entry point that follows the official `postgres` image's
//! contract; it does nothing when the image exists (`--force` rebuilds).
//! `pool-testkit/ci.sh` builds it and runs these tests as CI does.
//!
//! Nothing leaks: servers are removed on drop, the shared one (and any
//! whose process died) by a watchdog process when the test process exits,
//! and leftovers of killed runs are swept at the next start.

mod backend;
mod cleanup;
mod database;
mod docker;
mod error;
mod local;
mod probe;
mod proxy;
mod server;
mod util;

pub mod assert;
#[cfg(feature = "runtime")]
mod attr;
#[cfg(feature = "runtime")]
pub mod conformance;
#[cfg(feature = "runtime")]
pub mod fixtures;

/// What `#[pool_testkit::test]` expands to calls; not a public API.
#[cfg(feature = "runtime")]
#[doc(hidden)]
pub mod __private {
    pub use crate::attr::*;
    pub use pool_runtime::PoolSettings;
}

#[cfg(feature = "runtime")]
#[doc = include_str!("test_attr.md")]
pub use pool_testkit_macros::test;

pub use backend::Backend;
pub use database::TestDatabase;
pub use docker::DEFAULT_IMAGE;
pub use error::{Error, Result};
pub use probe::BackendInfo;
pub use proxy::{ProxyMode, TcpProxy};
pub use server::{PROBE_APP_NAME, TestServer, TestServerBuilder, shared_server, try_shared_server};
