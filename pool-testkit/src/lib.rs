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
//! Backends (a [`ServerKind`]): Docker through testcontainers, local PostgreSQL
//! binaries, or an external server. Environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `POOL_TESTKIT_BACKEND` | `docker`, `local`, `external` or `auto` (default) |
//! | `POOL_TESTKIT_URL` | superuser URL of an external server (implies `external`) |
//! | `POOL_TESTKIT_IMAGE` | Docker image (default `pool-testkit/postgres:15`, built by `pool-testkit/docker/build-image.sh`; `postgres:15` elsewhere) |
//! | `POOL_TESTKIT_PG_BIN` | directory with initdb and pg_ctl (default: found) |
//! | `POOL_TESTKIT_ARGS` | extra settings of the shared server, `key=value ...` |
//! | `POOL_TESTKIT_TMPDIR` | parent of local data dirs (default `/dev/shm` when writable: throwaway data, and disk-backed `CREATE DATABASE` was 20x slower on CI; else the temp dir) |
//! | `POOL_TESTKIT_KEEP` | keep data dirs, containers and databases for debugging |
//! | `POOL_TESTKIT_NO_WATCHDOG` | no exit watchdog: leftovers of a dead run wait for the next run's sweep |
//!
//! The Docker image: no registry is needed. `pool-testkit/docker/build-image.sh`
//! builds `pool-testkit/postgres:15` from the host's PostgreSQL 15 binaries
//! (`--method debootstrap` for a Debian rootfs instead), `FROM scratch`,
//! with an entry point that follows the official `postgres` image's
//! contract; it does nothing when the image exists (`--force` rebuilds).
//! `scripts/setup.sh` builds it; `scripts/test.sh` runs these tests as CI does.
//!
//! # Production topologies
//!
//! [`Cluster`]: a primary plus N streaming standbys (`pg_basebackup -R`,
//! one replication slot each) on either backend, with promote, stop / kill
//! / start / restart, catch-up and lag, partition / heal, `pg_rewind` of a
//! former primary, per-node URLs (through kit proxies) and a libpq
//! multi-host URL; see [`cluster`]. [`PgBouncer`]: Debian's PgBouncer 1.18
//! in front of any server or node, as a process or a container
//! (`pool-testkit/pgbouncer:1.18`, built by
//! `pool-testkit/docker/build-pgbouncer-image.sh`), with `SHOW POOLS /
//! SERVERS / CLIENTS` as typed probes and the server backends behind it;
//! see [`pgbouncer`] (and what 1.18 lacks: named prepared statements in
//! transaction mode, which came in 1.21). Per-node assertions:
//! [`assert::connections_on_node`], [`assert::write_visible_on_standbys`].
//!
//! Start-up times seen on the 2-core CI machine (while other builds ran,
//! so upper figures are load; `TIMING` lines of `tests/cluster.rs`):
//!
//! | topology | local binaries | Docker |
//! |---|---|---|
//! | primary + 1 standby, ready | 4.1–4.5 s (7.7 s under load) | 17.7–21.3 s |
//! | `rewind` of the old primary after a promotion | 0.4–3.1 s | 11.6 s |
//! | PgBouncer in front of a server | < 0.2 s | ~1–2 s |
//!
//! The goal of <= 5 s for primary + 1 standby on the local backend holds on
//! an idle machine; most of it is initdb, the template database and the
//! base backup's checkpoint. Docker is slower because each node's entry
//! point runs (initdb or pg_basebackup) inside a fresh container.
//!
//! # TLS and passwords
//!
//! [`TestServerBuilder::tls`] and [`TestServerBuilder::auth`] start a
//! server (either backend) as managed databases run: a certificate for
//! `localhost` and `127.0.0.1` from a CA made for that server with rcgen
//! (nothing committed, nothing shared between servers), `hostssl`-only
//! rules with [`Tls::Required`], SCRAM-SHA-256 passwords
//! ([`Auth::Scram`]) or client certificates ([`Auth::ClientCert`], CN =
//! user). Its URLs carry `sslmode=verify-full&sslrootcert=…`
//! ([`TestServer::ca_path`]); [`TestServer::client_cert`] issues client
//! certificates and [`TestServer::create_user`] makes login roles for
//! authentication tests. The kit's own connections follow the same rules.
//!
//! More variables: `POOL_TESTKIT_PGBOUNCER` (path of the pgbouncer binary,
//! default /usr/sbin or PATH), `POOL_TESTKIT_PGBOUNCER_IMAGE` (default
//! `pool-testkit/pgbouncer:1.18`).
//!
//! Nothing leaks: servers are removed on drop, the shared one (and any
//! whose process died) by a watchdog process when the test process exits,
//! and leftovers of killed runs are swept at the next start. The same holds
//! for cluster nodes, cluster networks and PgBouncer processes and
//! containers (`tests/cluster.rs` SIGKILLs a process holding both).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admin;
mod cleanup;
pub mod cluster;
mod database;
mod docker;
mod error;
mod local;
pub mod pgbouncer;
mod probe;
mod proxy;
mod server;
mod server_kind;
mod tls;
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

pub use cluster::{Cluster, ClusterBuilder};
pub use pgbouncer::{PgBouncer, PgBouncerBuilder, PoolMode};
pub use server_kind::ServerKind;
pub use tls::{Auth, Tls};

pub use admin::PROBE_APP_NAME;
pub use database::TestDatabase;
pub use docker::DEFAULT_IMAGE;
pub use error::{Error, Result};
pub use probe::BackendInfo;
pub use proxy::{ProxyMode, TcpProxy};
pub use server::{TestServer, TestServerBuilder, shared_server, try_shared_server};
