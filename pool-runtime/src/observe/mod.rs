//! Seeing what a pool does: [`status`] (a consistent snapshot with health
//! and advice), [`metrics`] (names published through the `metrics` facade),
//! leak detection (`leak_threshold`, reported in [`Status`](status::Status)
//! and the logs) and wait-time statistics (in [`Status`](status::Status)).
//! Checkout, checkin, connect and close are `tracing` events (target
//! `pool_runtime::events`) when `echo_pool` is on.

pub(crate) mod leak;
pub mod metrics;
pub mod status;
pub(crate) mod wait;
