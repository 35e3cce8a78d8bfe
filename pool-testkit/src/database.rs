//! [`TestDatabase`]: a per-test copy of the template, dropped afterwards.
//!
//! Names carry the owning process (`ptk_<boot>_<pid>_<start>_<n>`), so a
//! later run can drop databases that a killed run left on a long-lived
//! (external) server.

use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection};

use crate::admin::{connect, sql_state};
use crate::util::{self, Owner};
use crate::{Error, Result};

const PREFIX: &str = "ptk_";

/// A database created for one test from the server's template.
///
/// Dropping it drops the database (`WITH (FORCE)`, so connections still
/// open to it are closed), best effort: it never panics. Dropped while the
/// thread panics (a failing test), it is kept instead, and its name and
/// password-free URL are printed. Keep it alive as
/// long as the test uses it: bind it to a named variable (`_db`), not `_`.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    dropped: bool,
}

impl TestDatabase {
    /// Creates database `name` from `template` through the server's
    /// superuser URL; `url` is the new database's own URL.
    pub(crate) async fn create(
        admin_url: &str,
        template: &str,
        name: &str,
        url: String,
    ) -> Result<Self> {
        let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut conn = connect(admin_url).await?;
            let result = sqlx::raw_sql(AssertSqlSafe(sql.clone()))
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
            match result {
                Ok(_) => break,
                // "source database is being accessed by other users": someone
                // (another run on an external server) is still in the template.
                Err(e)
                    if sql_state(&e).as_deref() == Some("55006") && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(Error::sql(format!("creating test database {name}"), e)),
            }
        }
        Ok(Self::new(name.to_owned(), url, admin_url.to_owned()))
    }

    pub(crate) fn new(name: String, url: String, admin_url: String) -> Self {
        Self {
            name,
            url,
            admin_url,
            dropped: false,
        }
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Superuser URL of this database.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// This database's URL without the password, safe to print.
    pub fn url_without_password(&self) -> String {
        match url::Url::parse(&self.url) {
            Ok(mut u) => {
                let _ = u.set_password(None);
                u.to_string()
            }
            Err(_) => format!("(database {})", self.name),
        }
    }

    /// Keeps the database (it is not dropped) and prints its name and
    /// password-free URL on stderr, where the test harness shows it with
    /// the failing test's output.
    pub fn keep(&mut self, why: &str) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        let kept_server = if util::env_flag("POOL_TESTKIT_KEEP") {
            "the server is kept too (POOL_TESTKIT_KEEP)"
        } else {
            "the server itself is removed when the test process exits unless POOL_TESTKIT_KEEP=1 (or use POOL_TESTKIT_URL)"
        };
        eprintln!(
            "pool-testkit: {why}: database {} is kept for a post-mortem: {}\n  ({kept_server})",
            self.name,
            self.url_without_password()
        );
    }

    /// Drops the database now, reporting failure (Drop only logs it).
    pub async fn drop_database(mut self) -> Result<()> {
        self.dropped = true;
        drop_db(&self.admin_url, &self.name).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped || util::env_flag("POOL_TESTKIT_KEEP") {
            return;
        }
        // Dropped while a test panics: its data is the evidence.
        if std::thread::panicking() {
            self.keep("the test panicked");
            return;
        }
        // Drop can't await and may run inside a runtime or after it is gone,
        // so the statement runs on a thread and runtime of its own. It is
        // waited for only briefly: DROP DATABASE waits for every backend to
        // absorb a signal barrier, which a backend in the middle of
        // authenticating a client of *this* runtime can't do while we block
        // it. If the wait times out the drop finishes in the background.
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("pool-testkit-dropdb".into())
            .spawn(move || {
                let result = util::block_on_fresh(async move {
                    tokio::time::timeout(Duration::from_secs(30), drop_db(&admin, &name)).await
                });
                let _ = tx.send(result);
            });
        if spawned.is_err() {
            return;
        }
        let wait = || rx.recv_timeout(Duration::from_secs(2));
        let result = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            // Other tasks keep running on the other workers meanwhile.
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        };
        match result {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::debug!("pool-testkit: dropping {}: {e}", self.name),
            Ok(Err(_)) => tracing::debug!("pool-testkit: dropping {} timed out", self.name),
            Err(_) => tracing::debug!(
                "pool-testkit: dropping {} goes on in the background",
                self.name
            ),
        }
    }
}

async fn drop_db(admin_url: &str, name: &str) -> Result<()> {
    let mut conn = connect(admin_url).await?;
    let result = sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await;
    let _ = conn.close().await;
    result
        .map(|_| ())
        .map_err(|e| Error::sql(format!("dropping test database {name}"), e))
}

/// The name of database number `n` of `owner`.
pub(crate) fn name_for(owner: &Owner, n: u64) -> String {
    format!("{PREFIX}{}_{n}", owner.encode().replace(':', "_"))
}

/// The owner encoded in a test database name.
fn owner_of(name: &str) -> Option<Owner> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.split('_');
    let (boot, pid, start) = (parts.next()?, parts.next()?, parts.next()?);
    Owner::decode(&format!("{boot}:{pid}:{start}"))
}

/// Drops test databases whose owning process is gone (matters for
/// external servers; servers the testkit starts are fresh anyway).
pub(crate) async fn sweep(admin_url: &str) {
    let Ok(mut conn) = connect(admin_url).await else {
        return;
    };
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE 'ptk\\_%'")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    let _ = conn.close().await;
    for name in names {
        if owner_of(&name).is_some_and(|o| !o.is_alive()) {
            let _ = drop_db(admin_url, &name).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_their_owner() {
        let owner = Owner {
            boot: "1a2b3c4d".into(),
            pid: 4242,
            start: 987654,
        };
        let name = name_for(&owner, 7);
        assert_eq!(name, "ptk_1a2b3c4d_4242_987654_7");
        assert!(name.len() < 64);
        assert_eq!(owner_of(&name), Some(owner));
        assert_eq!(owner_of("postgres"), None);
    }
}
