//! One-line assertions about clusters: where a pool's connections are, and
//! whether a write reached every standby.

use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection};

use super::{Failure, fail};
use crate::cluster::Cluster;

/// Waits until node `node` shows exactly `expected` connections of
/// `app_name` and every other running node none: "the pool is on this
/// node". Counted on each server.
pub async fn try_connections_on_node(
    cluster: &Cluster,
    app_name: &str,
    node: usize,
    expected: usize,
    within: Duration,
) -> Result<Vec<Option<usize>>, Failure> {
    let start = Instant::now();
    let want = |i: usize| if i == node { expected } else { 0 };
    loop {
        let seen = cluster.connections_by_node(app_name).await;
        if let Ok(counts) = &seen
            && counts
                .iter()
                .enumerate()
                .all(|(i, c)| c.is_none_or(|c| c == want(i)))
            && counts.get(node).copied().flatten() == Some(expected)
        {
            return Ok(counts.clone());
        }
        if start.elapsed() >= within {
            let seen = match seen {
                Ok(counts) => format!("per node {counts:?} (None = stopped) after {within:?}"),
                Err(e) => format!("probe failed: {e}"),
            };
            return Err(Failure::new(
                cluster.node(node.min(cluster.len().saturating_sub(1))),
                Some(app_name),
                format!("nodes holding connections of application_name {app_name:?}"),
                format!("{expected} on node {node}, none on the others"),
                seen,
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Panicking [`try_connections_on_node`].
pub async fn connections_on_node(
    cluster: &Cluster,
    app_name: &str,
    node: usize,
    expected: usize,
    within: Duration,
) -> Vec<Option<usize>> {
    fail(try_connections_on_node(cluster, app_name, node, expected, within).await)
}

/// Writes a fresh token on the primary in database `db` (table
/// `pool_testkit_marker`, created if missing), waits for catch-up and
/// checks every streaming standby reads it.
pub async fn try_write_visible_on_standbys(
    cluster: &Cluster,
    db: &str,
    within: Duration,
) -> Result<(), Failure> {
    let primary = cluster.primary();
    let token = crate::util::random_hex(16);
    let failure = |node: usize, seen: String| {
        Failure::new(
            cluster.node(node),
            None,
            format!("a write on primary {primary} visible on the standbys (database {db})"),
            format!("token {token} readable on every streaming standby within {within:?}"),
            seen,
        )
    };
    let write = async {
        let mut conn = crate::admin::connect(&cluster.node(primary).url_for(db)).await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS pool_testkit_marker (token text);
             INSERT INTO pool_testkit_marker VALUES ('{token}')"
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| crate::Error::sql("writing the marker", e))?;
        let _ = conn.close().await;
        cluster.wait_caught_up(within).await
    };
    write
        .await
        .map_err(|e| failure(primary, format!("write or catch-up failed: {e}")))?;
    for node in cluster.topology().streaming() {
        let read = async {
            let mut conn = crate::admin::connect(&cluster.node(node).url_for(db)).await?;
            let n: Result<i64, _> =
                sqlx::query_scalar("SELECT count(*) FROM pool_testkit_marker WHERE token = $1")
                    .bind(&token)
                    .fetch_one(&mut conn)
                    .await;
            let _ = conn.close().await;
            n.map_err(|e| crate::Error::sql("reading the marker", e))
        };
        match read.await {
            Ok(1) => {}
            Ok(n) => return Err(failure(node, format!("node {node} has {n} rows with it"))),
            Err(e) => return Err(failure(node, format!("node {node}: {e}"))),
        }
    }
    Ok(())
}

/// Panicking [`try_write_visible_on_standbys`].
pub async fn write_visible_on_standbys(cluster: &Cluster, db: &str, within: Duration) {
    fail(try_write_visible_on_standbys(cluster, db, within).await)
}
