//! Which kind of server backs the tests, and how it is chosen.
//!
//! `POOL_TESTKIT_BACKEND` (docker | local | external | auto) overrides; a set
//! `POOL_TESTKIT_URL` means external; otherwise Docker when a daemon answers
//! and the image exists, else local binaries, else an error naming what is
//! missing for each and how to install it.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result, docker, local};

/// Where a test server comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// A container through testcontainers (`POOL_TESTKIT_IMAGE`).
    Docker,
    /// The machine's PostgreSQL binaries (initdb + pg_ctl in a temp dir).
    Local,
    /// An existing server given by `POOL_TESTKIT_URL` (superuser URL).
    /// Server settings are not applied and stop/restart are unsupported.
    External,
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Docker => "docker",
            Self::Local => "local",
            Self::External => "external",
        })
    }
}

impl FromStr for ServerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "docker" | "testcontainers" | "container" => Ok(Self::Docker),
            "local" | "binaries" | "native" => Ok(Self::Local),
            "external" | "url" => Ok(Self::External),
            other => Err(Error::Config(format!(
                "POOL_TESTKIT_BACKEND={other:?}: expected docker, local, external or auto"
            ))),
        }
    }
}

impl ServerKind {
    /// The backend asked for by the environment, if any
    /// (`POOL_TESTKIT_BACKEND`, or external when `POOL_TESTKIT_URL` is set).
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var("POOL_TESTKIT_BACKEND") {
            Ok(v) if !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("auto") => {
                Ok(Some(v.parse()?))
            }
            _ if external_url().is_some() => Ok(Some(Self::External)),
            _ => Ok(None),
        }
    }

    /// The environment's choice, else the first available of Docker and
    /// local binaries. The error lists why each was not usable.
    pub fn select() -> Result<Self> {
        if let Some(b) = Self::from_env()? {
            return Ok(b);
        }
        let docker_problem = match docker::check_available(&docker::image_from_env()) {
            Ok(()) => {
                tracing::info!("pool-testkit: using the docker backend");
                return Ok(Self::Docker);
            }
            Err(e) => e,
        };
        let local_problem = match local::find_bin_dir() {
            Ok(dir) => {
                tracing::info!(
                    "pool-testkit: using local binaries in {} (docker: {docker_problem})",
                    dir.display()
                );
                return Ok(Self::Local);
            }
            Err(e) => e,
        };
        Err(Error::NoBackend(format!(
            "  docker: {docker_problem}\n  local:  {local_problem}\n  \
             or set POOL_TESTKIT_URL=postgres://user:password@host:port/postgres (a superuser \
             URL of a server you run)"
        )))
    }

    /// Whether this backend can be used here, with the reason when not
    /// (for tests that skip a backend).
    pub fn availability(self) -> Result<(), String> {
        match self {
            Self::Docker => docker::check_available(&docker::image_from_env()),
            Self::Local => local::find_bin_dir().map(|_| ()),
            Self::External => external_url()
                .map(|_| ())
                .ok_or_else(|| "POOL_TESTKIT_URL is not set".into()),
        }
    }
}

/// `POOL_TESTKIT_URL`, when set and non-empty.
pub(crate) fn external_url() -> Option<String> {
    std::env::var("POOL_TESTKIT_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}
