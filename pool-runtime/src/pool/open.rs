//! Opening connections: one bounded connect ([`open_raw`]), and the two
//! ways a reserved slot is filled: for a caller ([`for_caller`]) or for
//! nobody, to sit idle ([`idle`]). A failed connect is booked by the
//! [`Reservation`]'s drop.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::oneshot;

use super::PooledConnection;
use super::hooks::{self, Hook};
use super::ledger::{ConnMeta, Site};
use super::reservation::Reservation;
use super::shared::Shared;
use crate::observe::leak::Task;
use crate::observe::signals::Trouble;
use crate::{Backend, Error, PoolClass};

/// Opens a connection for a caller (of task `task`, booked as the holder)
/// into `reservation`'s slot. Runs as its own task: if the caller has gone by the time the connection is ready,
/// returning it to the pool (by dropping it) serves the next waiter.
pub(crate) async fn for_caller<DB: Backend>(
    reservation: Reservation<Arc<Shared<DB>>>,
    site: Site,
    task: Task,
    reply: oneshot::Sender<Result<PooledConnection<DB>, Error>>,
) {
    let result = match open_raw(reservation.pool()).await {
        Ok((raw, meta)) => {
            let (shared, holder) = reservation.connected(site, task, meta.created);
            Ok(PooledConnection::new(shared, raw, meta, holder))
        }
        Err(error) => {
            drop(reservation);
            Err(error)
        }
    };
    // A send error hands the value back and drops it: a connection then
    // goes into the pool.
    let _ = reply.send(result);
}

/// Opens one connection into `reservation`'s slot and parks it idle.
/// Returns whether it connected.
pub(crate) async fn idle<DB: Backend>(reservation: Reservation<&Shared<DB>>) -> bool {
    let shared = *reservation.pool();
    let Ok((raw, meta)) = open_raw(shared).await else {
        return false;
    };
    // A NullPool keeps none: its probe connection closes at once.
    let keep = match shared.settings.pool_class {
        PoolClass::Null => 0,
        // Up to `pool_size` as it is now (the ledger's, after resizes).
        PoolClass::Queue => u32::MAX,
    };
    if let Some((raw, reason)) = reservation.park(raw, meta, keep) {
        shared.metrics.closed(reason);
        shared.close_in_background(raw);
    }
    true
}

/// One bounded connect, then the `after_connect` hook; books opened /
/// failed counts. The first connection also reads the server's limits for
/// status advice. The connection's epoch is the pool's when the connect
/// began, so one opened across `invalidate_all` is not reused.
pub(crate) async fn open_raw<DB: Backend>(
    shared: &Shared<DB>,
) -> Result<(DB::Connection, ConnMeta), Error> {
    let (raw, epoch) = connect(shared).await?;
    let meta = ConnMeta::new(&shared.settings, Instant::now(), epoch);
    let Some(hook) = &shared.hooks.after_connect else {
        return Ok((raw, meta));
    };
    let mut raw = raw;
    let info = hooks::info(meta.created, None);
    match hooks::run(shared, Hook::AfterConnect, hook(&mut raw, info)).await {
        Ok(()) => Ok((raw, meta)),
        Err(error) => {
            // Booked as a failed connect by the caller's reservation.
            shared.close_in_background(raw);
            Err(error)
        }
    }
}

async fn connect<DB: Backend>(shared: &Shared<DB>) -> Result<(DB::Connection, u64), Error> {
    let settings = &shared.settings;
    let target = shared.target();
    let (held, epoch) = {
        let mut st = shared.lock();
        let held = st
            .signals
            .may_connect(Instant::now(), settings.connect_timeout);
        (held, st.epoch)
    };
    if let Err(held) = held {
        return Err(Error::CredentialsRefused {
            url: target.url.clone(),
            answer: held.answer,
            streak: held.streak,
            retry_in: held.retry_in,
        });
    }
    let role_changes = DB::role_changes(&target.options);
    let connect = DB::connect(&target.options, settings.connect_timeout, &target.url).await;
    let error = match connect {
        Ok(mut raw) => {
            // The connect found a host the pool's connections are on in
            // another role: those are replaced, this one (on a host that
            // passed) is of the new epoch.
            let epoch = if DB::role_changes(&target.options) != role_changes {
                shared.invalidate(Some(epoch));
                shared.lock().epoch
            } else {
                epoch
            };
            // Once per pool: a server that refuses the probe is not asked
            // again on every connect.
            let probe = !shared.limits_probed.swap(true, Ordering::Relaxed);
            if probe {
                let limits =
                    tokio::time::timeout(settings.network_timeout, DB::server_limits(&mut raw))
                        .await;
                if let Ok(Some(limits)) = limits {
                    shared.lock().server = Some(limits);
                }
            }
            shared.lock().signals.connected(Instant::now());
            shared.metrics.opened.increment(1);
            if settings.echo_pool {
                tracing::info!(target: "pool_runtime::events", pool = %settings.name, event = "connect");
            }
            return Ok((raw, epoch));
        }
        Err(error) => error,
    };
    {
        let mut st = shared.lock();
        let now = Instant::now();
        st.signals
            .trouble(now, Trouble::ConnectFailed, error.to_string());
        let refusal = match &error {
            Error::Connect { source, .. } if credentials_refused(source) => {
                Some(crate::error::connect_text(source))
            }
            // Every host of a multi-host URL refused them: as for one.
            Error::NoSuitableHost { attempts, .. }
                if !attempts.is_empty()
                    && attempts.iter().all(|a| {
                        crate::hosts::select::Selection::refused_credentials(&a.failure)
                    }) =>
            {
                Some(format!(
                    "every host refused the credentials; {}",
                    attempts[0]
                ))
            }
            _ => None,
        };
        st.signals.connect_refused(now, refusal);
    }
    shared.metrics.connect_errors.increment(1);
    // `Pool::connect` returns its own first failure to its caller: logged
    // here too, a service printed it twice at start.
    if shared.started.load(Ordering::Relaxed) {
        tracing::warn!(target: "pool_runtime::events", pool = %settings.name, error = %error, "connect failed");
    }
    Err(error)
}

/// SQLSTATE class 28 (invalid authorization): the same credentials get the
/// same answer, so they are not sent again at once (tests/tls.rs,
/// `repeated_refusals_are_answered_without_asking_the_server`).
fn credentials_refused(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("28")))
}
