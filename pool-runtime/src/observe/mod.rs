//! Seeing what a pool does: [`status`] (a consistent snapshot with health
//! and advice), [`metrics`] (names published through the `metrics` facade),
//! leak detection (`leak_threshold`, reported in [`Status`](status::Status)
//! and the logs), wait-time statistics, and what the pool has seen of the
//! database itself ([`DatabaseStatus`](status::DatabaseStatus)).
//! Checkout, checkin, connect and close are `tracing` events (target
//! `pool_runtime::events`) when `echo_pool` is on.

pub(crate) mod leak;
pub mod metrics;
pub(crate) mod signals;
pub mod status;
pub(crate) mod wait;
