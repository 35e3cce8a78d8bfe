//! Probe connections: the testkit's own short connections to a server
//! (admin work, counting, polling), named so that pool assertions can tell
//! them apart from the pool's connections.

use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::{Error, Result};

/// Superuser name and password of servers the testkit starts.
pub(crate) const USER: &str = "postgres";
pub(crate) const PASSWORD: &str = "postgres";
/// `application_name` of the testkit's own probe connections.
pub const PROBE_APP_NAME: &str = "pool-testkit-probe";

/// Connects to `url` as the testkit's probe, bounded by 10 s.
pub(crate) async fn connect(url: &str) -> Result<PgConnection> {
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| Error::sql("parsing the server URL", e))?
        .application_name(PROBE_APP_NAME)
        .disable_statement_logging();
    match tokio::time::timeout(Duration::from_secs(10), opts.connect()).await {
        Ok(r) => r.map_err(|e| Error::sql("connecting to the test server", e)),
        Err(_) => Err(Error::Timeout(
            "connecting to the test server took over 10 s".into(),
        )),
    }
}

/// The SQLSTATE of a database error.
pub(crate) fn sql_state(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}
