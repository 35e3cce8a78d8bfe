//! The background check of a [`ReplicaPool`](super::ReplicaPool)'s hosts:
//! every `read_check_interval`, each host is asked whether it is in
//! recovery and how far its replay lags, all hosts at once, over one
//! connection per host kept for the purpose (reopened after a failure),
//! each check bounded by `connect_timeout`. A host that does not answer in
//! time, or refuses, is down until a check reaches it again.
//!
//! Lag is time, not bytes: `read_max_lag` is a promise about staleness
//! ("a read sees writes older than 1 s"), which bytes of WAL do not
//! translate into, and time needs no connection to the primary (a byte
//! lag compares with its `pg_current_wal_lsn()`, and a check would then
//! depend on the primary being up). On a standby it is 0 when everything
//! received has been replayed (an idle primary does not make a standby
//! "lag"), else the age of the last replayed commit,
//! `now() - pg_last_xact_replay_timestamp()`. Caveats: a standby whose
//! WAL receiver is disconnected from its primary replays all it received
//! and reports 0; after a long idle period the first write's WAL makes the
//! age of the previous commit show until it is replayed (milliseconds,
//! unless replay is stuck, which is what the limit is for).

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Row};

use super::router::Observation;

/// Role and lag in one round trip, as one simple-protocol message: not
/// prepared (no statement cache to grow), and nothing a pooler in
/// transaction mode could split between two server connections.
const CHECK: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN NOT pg_is_in_recovery() \
            OR pg_last_wal_receive_lsn() IS NULL \
            OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0::float8 \
          ELSE COALESCE(GREATEST(0, EXTRACT(EPOCH FROM \
               now() - pg_last_xact_replay_timestamp()))::float8, 0) END";

/// One host's check: its options and the connection kept between checks.
pub(crate) struct Checker {
    options: PgConnectOptions,
    conn: Option<PgConnection>,
}

impl Checker {
    /// `options` of the host's read pool; the check's sessions are named
    /// `<application_name>/check` (`pool-runtime/check` without one) so
    /// that they are told apart from the pool's in `pg_stat_activity`.
    pub(crate) fn new(options: PgConnectOptions) -> Self {
        let name = format!(
            "{}/check",
            options.get_application_name().unwrap_or("pool-runtime")
        );
        Self {
            options: options.application_name(&name),
            conn: None,
        }
    }

    /// Asks the host, within `timeout` in all (connect included).
    pub(crate) async fn check(&mut self, timeout: Duration) -> Observation {
        let result = tokio::time::timeout(timeout, self.ask()).await;
        match result {
            Ok(Ok(seen)) => seen,
            Ok(Err(error)) => {
                self.conn = None;
                Observation::Down(crate::error::connect_text(&error))
            }
            Err(_) => {
                self.conn = None;
                Observation::Down(format!(
                    "no answer within connect_timeout {:.1} s",
                    timeout.as_secs_f64()
                ))
            }
        }
    }

    async fn ask(&mut self) -> Result<Observation, sqlx::Error> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            none => none.insert(crate::tls::connect(&self.options).await?),
        };
        let row = sqlx::raw_sql(CHECK).fetch_one(conn).await?;
        let (in_recovery, lag): (bool, f64) = (row.try_get(0)?, row.try_get(1)?);
        Ok(Observation::Up {
            in_recovery,
            lag: Duration::try_from_secs_f64(lag).unwrap_or(Duration::ZERO),
        })
    }

    /// Closes the kept connection (politely, within `timeout`).
    pub(crate) async fn close(&mut self, timeout: Duration) {
        if let Some(conn) = self.conn.take() {
            drop(tokio::time::timeout(timeout, conn.close()).await);
        }
    }
}
