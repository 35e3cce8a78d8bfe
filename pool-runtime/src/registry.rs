//! Named pools for services with several databases of one kind (one per
//! region or market, say): look a pool up by name, snapshot them all for a
//! health endpoint, close them together at shutdown.
//!
//! From the environment, one prefix per database (see
//! [`PoolRegistry::from_env`]): `EU_DB_URL`, `EU_DB_POOL_SIZE`, `US_DB_URL`…
//!
//! ```no_run
//! use pool_runtime::{PoolRegistry, PoolSettings};
//! # async fn demo() -> Result<(), pool_runtime::Error> {
//! let mut pools = PoolRegistry::<sqlx::Postgres>::new();
//! for (name, url) in [("eu", "postgres://app@eu-db/app"), ("us", "postgres://app@us-db/app")] {
//!     let settings = PoolSettings::builder(url).name(name).build()?;
//!     pools.connect(settings).await?;
//! }
//! let eu = pools.get("eu").expect("registered above");
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use crate::config::{ConfigError, EnvSource, PoolConfig};
use crate::{Backend, Error, Health, Pool, PoolSettings, Status};

/// Why [`PoolRegistry::from_env`] built no registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// One or more prefixes had bad variables; every one is listed.
    #[error("{}", join_config(.0))]
    Config(Vec<ConfigError>),
    /// A pool could not be built or connect; none was kept.
    #[error("pool \"{name}\": {source}")]
    Pool {
        /// The registry name of the pool.
        name: String,
        /// Why it failed.
        #[source]
        source: Error,
    },
}

fn join_config(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pools by name ([`PoolSettings::name`], also their metrics label).
///
/// Cloning is cheap (every pool is an `Arc`) and yields the same pools, so
/// a clone can be handed to an HTTP route; pools added afterwards are not
/// seen by earlier clones.
pub struct PoolRegistry<DB: Backend> {
    pools: BTreeMap<String, Pool<DB>>,
}

impl<DB: Backend> Clone for PoolRegistry<DB> {
    fn clone(&self) -> Self {
        Self {
            pools: self.pools.clone(),
        }
    }
}

impl<DB: Backend> Default for PoolRegistry<DB> {
    fn default() -> Self {
        Self {
            pools: BTreeMap::new(),
        }
    }
}

impl<DB: Backend> std::fmt::Debug for PoolRegistry<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.pools.iter()).finish()
    }
}

impl<DB: Backend> PoolRegistry<DB> {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pool under its own name. Two pools with one name would share
    /// metrics series and hide each other, so a duplicate is an error.
    pub fn insert(&mut self, pool: Pool<DB>) -> Result<&Pool<DB>, Error> {
        use std::collections::btree_map::Entry;
        match self.pools.entry(pool.name().to_owned()) {
            Entry::Occupied(entry) => Err(Error::DuplicatePoolName(format!(
                "a pool named \"{}\" is already registered; give each pool its own name",
                entry.key()
            ))),
            Entry::Vacant(entry) => Ok(entry.insert(pool)),
        }
    }

    /// Connects a pool ([`Pool::connect`]) and adds it.
    pub async fn connect(&mut self, settings: PoolSettings) -> Result<&Pool<DB>, Error> {
        self.check_free(&settings.name)?;
        let pool = Pool::connect(settings).await?;
        self.insert(pool)
    }

    /// Builds a pool without connecting ([`Pool::connect_lazy`]) and adds it.
    pub fn connect_lazy(&mut self, settings: PoolSettings) -> Result<&Pool<DB>, Error> {
        self.check_free(&settings.name)?;
        let pool = Pool::connect_lazy(settings)?;
        self.insert(pool)
    }

    /// Fails before connecting when the name is taken, so no connection is
    /// opened for a pool that would be refused.
    fn check_free(&self, name: &str) -> Result<(), Error> {
        if self.pools.contains_key(name) {
            return Err(Error::DuplicatePoolName(format!(
                "a pool named \"{name}\" is already registered; give each pool its own name"
            )));
        }
        Ok(())
    }

    /// The pool named `name`.
    pub fn get(&self, name: &str) -> Option<&Pool<DB>> {
        self.pools.get(name)
    }

    /// The pool named `name`, or an error that lists the names there are
    /// (for a name that came from configuration).
    pub fn pool(&self, name: &str) -> Result<&Pool<DB>, Error> {
        self.get(name).ok_or_else(|| Error::UnknownPool {
            name: name.to_owned(),
            registered: self.names().map(str::to_owned).collect(),
        })
    }

    /// Removes a pool (without closing it) and returns it.
    pub fn remove(&mut self, name: &str) -> Option<Pool<DB>> {
        self.pools.remove(name)
    }

    /// Pool names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pools.keys().map(String::as_str)
    }

    /// Pools in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Pool<DB>> {
        self.pools.values()
    }

    /// How many pools are registered.
    pub fn len(&self) -> usize {
        self.pools.len()
    }

    /// Whether no pool is registered.
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    /// A status per pool, in name order.
    pub fn statuses(&self) -> Vec<Status> {
        self.pools.values().map(Pool::status).collect()
    }

    /// The worst health among the pools; healthy when there are none.
    pub fn health(&self) -> Health {
        self.pools
            .values()
            .map(|p| p.status().health)
            .max()
            .unwrap_or(Health::Healthy)
    }

    /// Loads config `C` once per `(name, prefix)` from the process
    /// environment and connects a pool for each, named `name` (whatever
    /// the config's own name field says, so names never collide).
    ///
    /// Every bad variable of every prefix is reported before anything
    /// connects; if one pool fails to connect, the others are closed.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), pool_runtime::registry::RegistryError> {
    /// use pool_runtime::PoolRegistry;
    /// use pool_runtime::config::StandardPoolConfig;
    /// // EU_DB_URL, EU_DB_POOL_SIZE, …, US_DB_URL, US_DB_POOL_SIZE, …
    /// let pools = PoolRegistry::<sqlx::Postgres>::from_env::<StandardPoolConfig>(&[
    ///     ("eu", "EU_DB_"),
    ///     ("us", "US_DB_"),
    /// ])
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn from_env<C: PoolConfig>(pools: &[(&str, &str)]) -> Result<Self, RegistryError> {
        Self::from_source::<C>(&EnvSource::process(), pools).await
    }

    /// [`PoolRegistry::from_env`] from any source (a map in tests).
    pub async fn from_source<C: PoolConfig>(
        source: &EnvSource,
        pools: &[(&str, &str)],
    ) -> Result<Self, RegistryError> {
        let mut settings = Vec::with_capacity(pools.len());
        let mut problems = Vec::new();
        for &(name, prefix) in pools {
            match C::load_with_prefix(source, prefix) {
                Ok(loaded) => {
                    let mut s = loaded.settings();
                    s.name = name.to_owned();
                    settings.push(s);
                }
                Err(err) => problems.push(err),
            }
        }
        if !problems.is_empty() {
            return Err(RegistryError::Config(problems));
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = settings.iter().find(|s| !seen.insert(s.name.as_str())) {
            return Err(RegistryError::Pool {
                name: dup.name.clone(),
                source: Error::DuplicatePoolName(format!(
                    "the name \"{}\" is given to two pools; give each pool its own name",
                    dup.name
                )),
            });
        }
        let mut registry = Self::new();
        let connected = futures_util::future::join_all(settings.into_iter().map(|s| async move {
            let name = s.name.clone();
            (name, Pool::<DB>::connect(s).await)
        }))
        .await;
        let mut failure = None;
        for (name, result) in connected {
            match result {
                Ok(pool) => {
                    registry.pools.insert(name, pool);
                }
                Err(source) => {
                    failure.get_or_insert(RegistryError::Pool { name, source });
                }
            }
        }
        if let Some(err) = failure {
            registry.close().await;
            return Err(err);
        }
        Ok(registry)
    }

    /// Closes every pool, concurrently (each waits up to its `pool_timeout`
    /// for checked-out connections).
    pub async fn close(&self) {
        futures_util::future::join_all(self.pools.values().map(Pool::close)).await;
    }
}
