//! One error type for everything that can go wrong while setting up or
//! probing a test server. Messages say what is missing and how to fix it,
//! because they are read by someone whose test just failed.

use crate::ServerKind;

/// An error from the testkit (not an assertion failure: those panic, or
/// come back as [`crate::assert::Failure`] from the `try_` variants).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither Docker nor local PostgreSQL binaries (nor an external URL)
    /// could provide a server; the message lists what was tried.
    #[error("no PostgreSQL server available for tests:\n{0}")]
    NoBackend(String),
    /// The Docker backend could not be used or failed.
    #[error("docker backend: {0}")]
    Docker(String),
    /// The local-binaries backend failed (initdb, pg_ctl, ...).
    #[error("local PostgreSQL backend: {0}")]
    Local(String),
    /// A file-system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the testkit was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A query or connection to the test server failed.
    #[error("{what}: {source}")]
    Sql {
        /// What the testkit was doing.
        what: String,
        /// The underlying error.
        #[source]
        source: sqlx::Error,
    },
    /// The operation needs control over the server process, which this
    /// backend does not have (e.g. restarting an external server).
    #[error("{operation} is not supported by the {backend} backend")]
    Unsupported {
        /// The operation asked for.
        operation: &'static str,
        /// The backend in use.
        backend: ServerKind,
    },
    /// A bad environment variable or builder value.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A cluster operation the current topology does not allow (promote
    /// a primary, rewind the primary, a node index out of range, ...).
    #[error("cluster: {0}")]
    Topology(String),
    /// Something did not happen within its deadline.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn sql(what: impl Into<String>, source: sqlx::Error) -> Self {
        Self::Sql {
            what: what.into(),
            source,
        }
    }
}

/// Result alias for the testkit.
pub type Result<T, E = Error> = std::result::Result<T, E>;
