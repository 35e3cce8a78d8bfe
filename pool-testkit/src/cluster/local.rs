//! Cluster nodes on the local-binaries backend: each node is a
//! [`LocalServer`] in its own temp dir (so the watchdog and the sweep treat
//! it like any other server); standbys come from `pg_basebackup`.

use std::sync::Mutex;

use crate::Result;
use crate::admin;
use crate::local::LocalServer;
use crate::server::{Kind, TestServer};
use crate::server_kind::ServerKind;

/// initdb + start, and the template database.
pub(super) fn start_primary(
    settings: &[(String, String)],
    template_sql: &[String],
) -> Result<TestServer> {
    let server = LocalServer::start(settings, admin::USER, admin::PASSWORD)?;
    let port = server.port();
    TestServer::adopt(
        Kind::Local(Mutex::new(server)),
        ServerKind::Local,
        port,
        Some(template_sql),
    )
}

/// A standby streaming from 127.0.0.1:`upstream_port` (a proxy in front of
/// the primary) through slot `slot`.
pub(super) fn start_standby(
    upstream_port: u16,
    slot: &str,
    settings: &[(String, String)],
) -> Result<TestServer> {
    let server = LocalServer::start_standby(upstream_port, admin::USER, slot, settings)?;
    let port = server.port();
    TestServer::adopt(
        Kind::Local(Mutex::new(server)),
        ServerKind::Local,
        port,
        None,
    )
}
