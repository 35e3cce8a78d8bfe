//! One-line checks of a pool's behaviour, seen from the server: each drives
//! the pool (checkouts, load, waiting past max age, killing backends) and
//! checks what pg_stat_activity shows for the pool's `application_name`.
//!
//! They assume the pool is otherwise unused while they run, and that its
//! `application_name` is unique (the fixtures make it so).

use std::collections::BTreeSet;
use std::time::Duration;

use pool_runtime::{PoolClass, PooledConnection};
use sqlx::Postgres;

use super::{Failure, describe, try_eventually_connections, try_pids_gone};
use crate::TestServer;

/// The pool type the checks take.
pub type PgPool = pool_runtime::Pool<Postgres>;

/// How long connection counts may take to settle.
const SETTLE: Duration = Duration::from_secs(5);

fn app_of(server: &TestServer, pool: &PgPool, what: &str) -> Result<String, Failure> {
    pool.settings().application_name.clone().ok_or_else(|| {
        Failure::new(
            server,
            None,
            what,
            "a pool with an application_name (the fixtures set a unique one)",
            "application_name is not set, so its connections can't be told apart",
        )
    })
}

async fn checkout(
    server: &TestServer,
    pool: &PgPool,
    app: &str,
    what: &str,
) -> Result<PooledConnection<Postgres>, Failure> {
    pool.acquire().await.map_err(|e| {
        Failure::new(
            server,
            Some(app),
            what,
            "a successful checkout",
            format!("acquire failed: {e}"),
        )
    })
}

async fn pid_of(
    server: &TestServer,
    conn: &mut PooledConnection<Postgres>,
    app: &str,
    what: &str,
) -> Result<i32, Failure> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut **conn)
        .await
        .map_err(|e| {
            Failure::new(
                server,
                Some(app),
                what,
                "a working connection",
                format!("query failed: {e}"),
            )
        })
}

/// Holds `n` checkouts at once; returns them and their backend pids.
async fn hold(
    server: &TestServer,
    pool: &PgPool,
    n: u32,
    app: &str,
    what: &str,
) -> Result<(Vec<PooledConnection<Postgres>>, BTreeSet<i32>), Failure> {
    let mut conns = Vec::new();
    let mut pids = BTreeSet::new();
    for _ in 0..n {
        let mut c = checkout(server, pool, app, what).await?;
        pids.insert(pid_of(server, &mut c, app, what).await?);
        conns.push(c);
    }
    Ok((conns, pids))
}

fn pid_set(conns: &[crate::BackendInfo]) -> BTreeSet<i32> {
    conns.iter().map(|c| c.pid).collect()
}

/// With `pool_size` checkouts held and then returned, the server shows
/// exactly `pool_size` connections, the same ones, kept open idle.
pub async fn try_pool_size_held(server: &TestServer, pool: &PgPool) -> Result<(), Failure> {
    let what = "pool keeps pool_size connections open";
    let app = app_of(server, pool, what)?;
    let size = pool.settings().pool_size;
    let (conns, held) = hold(server, pool, size, &app, what).await?;
    try_eventually_connections(server, &app, size as usize, SETTLE).await?;
    drop(conns);
    // Give a wrongly closing pool time to close, then look.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = try_eventually_connections(server, &app, size as usize, SETTLE).await?;
    if pid_set(&after) != held {
        return Err(Failure::new(
            server,
            Some(&app),
            what,
            format!("the {size} connections returned stay open: pids {held:?}"),
            describe(&after),
        ));
    }
    Ok(())
}

/// Under `pool_size + max_overflow` concurrent checkouts the server shows
/// that many connections; once all are returned the overflow is closed and
/// `pool_size` remain. With `overflow_linger`, the overflow closes once it
/// has lingered that long (within a maintenance tick), not before.
pub async fn try_overflow_closes_on_return(
    server: &TestServer,
    pool: &PgPool,
) -> Result<(), Failure> {
    let linger = pool.settings().overflow_linger;
    let what = match linger {
        None => "overflow connections open under load and close on return".to_owned(),
        Some(d) => {
            format!("overflow connections open under load and close after lingering {d:?}")
        }
    };
    let what = what.as_str();
    let app = app_of(server, pool, what)?;
    let (size, overflow) = (pool.settings().pool_size, pool.settings().max_overflow);
    let (conns, held) = hold(server, pool, size + overflow, &app, what).await?;
    try_eventually_connections(server, &app, (size + overflow) as usize, SETTLE).await?;
    drop(conns);
    let returned = std::time::Instant::now();
    // The maintenance tick that closes them runs every quarter linger.
    let within = linger.map_or(SETTLE, |d| d + d / 4 + SETTLE);
    let after = try_eventually_connections(server, &app, size as usize, within).await?;
    if let Some(d) = linger
        && returned.elapsed() < d
    {
        return Err(Failure::new(
            server,
            Some(&app),
            what,
            format!("the overflow still open {d:?} after return"),
            format!(
                "closed after {:?}: {}",
                returned.elapsed(),
                describe(&after)
            ),
        ));
    }
    if !pid_set(&after).is_subset(&held) {
        return Err(Failure::new(
            server,
            Some(&app),
            what,
            format!("the remaining {size} connections are among those held ({held:?})"),
            describe(&after),
        ));
    }
    Ok(())
}

/// `tasks` tasks hammer the pool (each checkout holds its connection for a
/// 50 ms query, 5 rounds each); the server never shows more than
/// `pool_size + max_overflow`, and, when there are more tasks than
/// `pool_size` and overflow is allowed, overflow connections do open.
/// Returns the peak seen.
pub async fn try_never_above_capacity(
    server: &TestServer,
    pool: &PgPool,
    tasks: usize,
) -> Result<usize, Failure> {
    let what = "connections never exceed pool_size + max_overflow";
    let app = app_of(server, pool, what)?;
    let (size, overflow) = (
        pool.settings().pool_size as usize,
        pool.settings().max_overflow as usize,
    );
    let cap = if pool.settings().pool_class == PoolClass::Null {
        size.max(1) + overflow
    } else {
        size + overflow
    };
    let load = async {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
                        // 50 ms, not 20: with a NullPool each checkout
                        // is a fresh backend, and on a loaded machine 20 ms
                        // holds overlapped too little for the peak to pass
                        // pool_size (conformance::test_profile_uses_a_null_pool
                        // saw a peak of 2 for 2 + 1 once in CI).
                        sqlx::query("SELECT pg_sleep(0.05)")
                            .execute(&mut *conn)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        let mut errors = Vec::new();
        for h in handles {
            match h.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(format!("task failed: {e}")),
            }
        }
        errors
    };
    let (errors, peak) = super::try_never_above(server, &app, cap, load).await?;
    if let Some(first) = errors.first() {
        return Err(Failure::new(
            server,
            Some(&app),
            what,
            format!("{tasks} tasks each get their 5 checkouts"),
            format!(
                "{} checkout(s) or queries failed, first: {first}",
                errors.len()
            ),
        ));
    }
    if tasks > size && overflow > 0 && peak <= size {
        return Err(Failure::new(
            server,
            Some(&app),
            "overflow opens under load",
            format!("more than pool_size ({size}) connections with {tasks} concurrent tasks"),
            format!("at most {peak} at the peak"),
        ));
    }
    Ok(peak)
}

/// After `pool_recycle`, a checkout gets a new server connection (new pid)
/// and the expired one is closed on the server.
pub async fn try_recycled_after_max_age(server: &TestServer, pool: &PgPool) -> Result<(), Failure> {
    let what = "connections are recycled after pool_recycle";
    let app = app_of(server, pool, what)?;
    let Some(recycle) = pool.settings().pool_recycle else {
        return Err(Failure::new(
            server,
            Some(&app),
            what,
            "a pool with pool_recycle set",
            "pool_recycle is off",
        ));
    };
    let mut conn = checkout(server, pool, &app, what).await?;
    pid_of(server, &mut conn, &app, what).await?;
    drop(conn);
    let old = pid_set(
        &server
            .connections(&app)
            .await
            .map_err(|e| probe_failed(server, &app, what, e))?,
    );
    // Past the max age, with room for the pool's jitter.
    tokio::time::sleep(recycle + recycle / 4 + Duration::from_millis(50)).await;
    let mut conn = checkout(server, pool, &app, what).await?;
    let pid = pid_of(server, &mut conn, &app, what).await?;
    drop(conn);
    if old.contains(&pid) {
        return Err(Failure::new(
            server,
            Some(&app),
            what,
            format!("a new connection after {recycle:?} (not one of {old:?})"),
            format!("pid {pid}, opened before the max age passed"),
        ));
    }
    // At least the replaced connection is gone from the server.
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let now = pid_set(
            &server
                .connections(&app)
                .await
                .map_err(|e| probe_failed(server, &app, what, e))?,
        );
        if old.iter().any(|p| !now.contains(p)) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(Failure::new(
                server,
                Some(&app),
                what,
                format!("an expired connection among {old:?} closed on the server"),
                format!("all still open: {now:?}"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// With `pool_pre_ping`, after every server connection of the pool is
/// killed, a checkout still works: the dead connection is replaced by a
/// new one (new pid).
pub async fn try_pre_ping_replaces_killed(
    server: &TestServer,
    pool: &PgPool,
) -> Result<(), Failure> {
    let what = "pre-ping replaces a killed connection";
    let app = app_of(server, pool, what)?;
    if !pool.settings().pool_pre_ping {
        return Err(Failure::new(
            server,
            Some(&app),
            what,
            "a pool with pool_pre_ping on",
            "pool_pre_ping is off",
        ));
    }
    let mut conn = checkout(server, pool, &app, what).await?;
    let killed_pid = pid_of(server, &mut conn, &app, what).await?;
    drop(conn);
    let killed = pid_set(
        &server
            .connections(&app)
            .await
            .map_err(|e| probe_failed(server, &app, what, e))?,
    );
    server
        .terminate_app(&app)
        .await
        .map_err(|e| probe_failed(server, &app, what, e))?;
    try_pids_gone(server, &killed.iter().copied().collect::<Vec<_>>(), SETTLE).await?;
    // Outside the pre-ping bypass window, so the pool must ping.
    tokio::time::sleep(pool.settings().pre_ping_bypass + Duration::from_millis(50)).await;
    let mut conn = checkout(server, pool, &app, what).await?;
    let pid = pid_of(server, &mut conn, &app, what)
        .await
        .map_err(|mut f| {
            f.expected = format!(
                "the killed connection (pid {killed_pid}) replaced before it is handed out"
            );
            f
        })?;
    drop(conn);
    if killed.contains(&pid) {
        return Err(Failure::new(
            server,
            Some(&app),
            what,
            "a new connection",
            format!("pid {pid} (terminated before the checkout)"),
        ));
    }
    Ok(())
}

/// A NullPool opens one server connection per checkout (a new pid each
/// time) and closes it on return: 1 connection while held, 0 after.
pub async fn try_null_pool_one_per_checkout(
    server: &TestServer,
    pool: &PgPool,
) -> Result<(), Failure> {
    let what = "NullPool opens and closes one connection per checkout";
    let app = app_of(server, pool, what)?;
    try_eventually_connections(server, &app, 0, SETTLE).await?;
    let mut seen = BTreeSet::new();
    for round in 0..3 {
        let mut conn = checkout(server, pool, &app, what).await?;
        let pid = pid_of(server, &mut conn, &app, what).await?;
        let open = try_eventually_connections(server, &app, 1, SETTLE).await?;
        if !seen.insert(pid) {
            return Err(Failure::new(
                server,
                Some(&app),
                what,
                format!("checkout {} on a new connection", round + 1),
                format!(
                    "pid {pid} was used by an earlier checkout; {}",
                    describe(&open)
                ),
            ));
        }
        drop(conn);
        try_eventually_connections(server, &app, 0, SETTLE).await?;
    }
    Ok(())
}

/// With every connection of the pool checked out (`pool_size +
/// max_overflow`), one more checkout fails with the pool's `Timeout` error
/// after about `pool_timeout`, and the server never shows more connections
/// than that. Returns how long the failing checkout waited.
pub async fn try_timeout_when_exhausted(
    server: &TestServer,
    pool: &PgPool,
) -> Result<Duration, Failure> {
    let what = "a checkout times out after pool_timeout when the pool is exhausted";
    let app = app_of(server, pool, what)?;
    let settings = pool.settings();
    let cap = settings.pool_size + settings.max_overflow;
    let (conns, _) = hold(server, pool, cap, &app, what).await?;
    let start = std::time::Instant::now();
    let extra = pool.acquire().await;
    let waited = start.elapsed();
    let after = server
        .connections(&app)
        .await
        .map_err(|e| probe_failed(server, &app, what, e))?;
    drop(conns);
    match extra {
        Ok(_) => Err(Failure::new(
            server,
            Some(&app),
            what,
            format!(
                "checkout {} of a pool of capacity {cap} to time out",
                cap + 1
            ),
            format!("it succeeded; {}", describe(&after)),
        )),
        Err(pool_runtime::Error::Timeout(_)) if after.len() <= cap as usize => Ok(waited),
        Err(pool_runtime::Error::Timeout(_)) => Err(Failure::new(
            server,
            Some(&app),
            what,
            format!("at most {cap} connections while exhausted"),
            describe(&after),
        )),
        Err(e) => Err(Failure::new(
            server,
            Some(&app),
            what,
            format!("a Timeout error after {:?}", settings.pool_timeout),
            format!("another error after {waited:?}: {e}"),
        )),
    }
}

/// A connection returned with a transaction still open (one sqlx knows
/// of, left open as a forgotten `Transaction` would) is rolled back by the
/// pool: the server shows it `idle`, not `idle in transaction`.
pub async fn try_reset_on_return(server: &TestServer, pool: &PgPool) -> Result<(), Failure> {
    let what = "a transaction left open is rolled back on return";
    let app = app_of(server, pool, what)?;
    let mut conn = checkout(server, pool, &app, what).await?;
    let pid = pid_of(server, &mut conn, &app, what).await?;
    match sqlx::Connection::begin(&mut *conn).await {
        // Neither committed nor rolled back: the pool has to clean up.
        Ok(tx) => std::mem::forget(tx),
        Err(e) => {
            return Err(Failure::new(
                server,
                Some(&app),
                what,
                "BEGIN to work",
                format!("BEGIN failed: {e}"),
            ));
        }
    }
    drop(conn);
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let conns = server
            .connections(&app)
            .await
            .map_err(|e| probe_failed(server, &app, what, e))?;
        let state = conns
            .iter()
            .find(|c| c.pid == pid)
            .and_then(|c| c.state.clone());
        if state.as_deref() == Some("idle") {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(Failure::new(
                server,
                Some(&app),
                what,
                format!("backend {pid} idle (rolled back) after its return"),
                format!("its state: {state:?}; {}", describe(&conns)),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn probe_failed(server: &TestServer, app: &str, what: &str, e: crate::Error) -> Failure {
    Failure::new(
        server,
        Some(app),
        what,
        "the server probe to work",
        format!("probe failed: {e}"),
    )
}

macro_rules! panicking {
    ($($(#[$doc:meta])* $name:ident => $try:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {$(
        $(#[$doc])*
        pub async fn $name(server: &TestServer, pool: &PgPool $(, $arg: $ty)*) -> $out {
            $try(server, pool $(, $arg)*).await.unwrap_or_else(|f| panic!("{f}"))
        }
    )*};
}

panicking! {
    /// Panicking [`try_pool_size_held`].
    pool_size_held => try_pool_size_held() -> ();
    /// Panicking [`try_overflow_closes_on_return`].
    overflow_closes_on_return => try_overflow_closes_on_return() -> ();
    /// Panicking [`try_never_above_capacity`]; returns the peak.
    never_above_capacity => try_never_above_capacity(tasks: usize) -> usize;
    /// Panicking [`try_recycled_after_max_age`].
    recycled_after_max_age => try_recycled_after_max_age() -> ();
    /// Panicking [`try_pre_ping_replaces_killed`].
    pre_ping_replaces_killed => try_pre_ping_replaces_killed() -> ();
    /// Panicking [`try_null_pool_one_per_checkout`].
    null_pool_one_per_checkout => try_null_pool_one_per_checkout() -> ();
    /// Panicking [`try_timeout_when_exhausted`]; returns the wait.
    timeout_when_exhausted => try_timeout_when_exhausted() -> Duration;
    /// Panicking [`try_reset_on_return`].
    reset_on_return => try_reset_on_return() -> ();
}
