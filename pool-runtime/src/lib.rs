//! Typed, observable connection pools over sqlx connections.
//!
//! [`Pool`] gives SQLAlchemy's QueuePool semantics (size, overflow, timeout,
//! recycle, pre-ping, reset on return) and a NullPool, with a consistent
//! [`Status`], health, metrics and leak detection. Configuration comes from
//! [`PoolSettings`], by hand or from `#[derive(PoolConfig)]`.
//! [`ReplicaPool`] puts a PostgreSQL primary and its read replicas behind
//! one handle.
//!
//! ```no_run
//! use pool_runtime::{Pool, PoolSettings};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = PoolSettings::builder("postgres://app@localhost/app")
//!     .pool_size(10)
//!     .max_overflow(20)
//!     .build()?;
//! let pool: Pool<sqlx::Postgres> = Pool::connect(settings).await?;
//! let (one,): (i32,) = sqlx::query_as("SELECT 1").fetch_one(&pool).await?;
//! assert_eq!(one, 1);
//! println!("{}", pool.status());
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
// No unsafe code anywhere in the crate; every public item is documented
// (missing_docs flags undocumented public items, and the fields of what the
// derive generates code against, reached through `__private`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod config;
mod error;
mod hosts;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod http;
pub mod observe;
mod pool;
pub mod registry;
mod replicas;
pub mod secret;
mod settings;
#[cfg(feature = "postgres")]
mod tls;

pub use backend::Backend;
pub use error::{Error, SettingsProblems, TimeoutError};
pub use hosts::{HostAttempt, HostFailure};
pub use observe::status::{CloseReason, Health, NodeRole, NodeStatus, ReplicaStatus, Status};
pub use pool::{
    ConnectionInfo, Hook, HookError, HookFuture, Pool, PoolBuilder, PooledConnection, Transaction,
};
pub use registry::PoolRegistry;
#[cfg(feature = "postgres")]
pub use replicas::ReplicaPool;
pub use replicas::{NotServing, SkippedNode};
pub use secret::Secret;
pub use settings::{
    HealthThresholds, LoadBalanceHosts, NestedCheckout, PgBouncerMode, PoolClass, PoolSettings,
    PoolSettingsBuilder, ReadBalance, ResetOnReturn, SqliteSettings, SslMode, TargetSessionAttrs,
};

/// The trait the derive implements; `use pool_runtime::PoolConfig` imports both.
pub use config::PoolConfig;
pub use pool_macros::PoolConfig;

/// Re-exported so generated code and users name one sqlx.
pub use sqlx;

/// The one description of every setting (names, defaults, spellings,
/// duration grammar) and the validator behind [`PoolSettings::validate`].
pub use pool_settings;

/// What `#[derive(PoolConfig)]` generates code against. Not an API: no
/// item here is covered by semver.
#[doc(hidden)]
pub mod __private {
    pub use crate::config::generated::*;

    /// Compiles only for a type whose `Debug` redacts: the check behind
    /// `#[pool(secret)]` on a type the macro cannot see through.
    pub const fn assert_redacted<T: crate::secret::Redacted + ?Sized>() {}
}
