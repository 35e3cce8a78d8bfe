//! Named pools for services with several databases of one kind (one per
//! region or market, say): look a pool up by name, snapshot them all for a
//! health endpoint, close them together at shutdown.
//!
//! From the environment, one prefix per database (see
//! [`PoolRegistry::from_env`]): `EU_DB_URL`, `EU_DB_POOL_SIZE`, `US_DB_URL`…
//!
//! A [`ReplicaPool`](crate::ReplicaPool) joins with
//! [`PoolRegistry::insert_replicas`]: under its name, [`get`](PoolRegistry::get)
//! gives its write pool, and [`statuses`](PoolRegistry::statuses),
//! [`health`](PoolRegistry::health) and [`close`](PoolRegistry::close)
//! take its hosts in.
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

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

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
    /// Handles over several pools ([`ReplicaPool`](crate::ReplicaPool)),
    /// by the name of their write pool, which is in `pools`: their status
    /// and close stand for it.
    groups: BTreeMap<String, Arc<dyn Group<DB>>>,
}

/// A handle over several pools, registered under one name.
pub(crate) trait Group<DB: Backend>: Send + Sync {
    fn status(&self) -> Status;
    fn close(&self) -> BoxFuture<'_, ()>;
    fn as_any(&self) -> &dyn Any;
}

impl<DB: Backend> Clone for PoolRegistry<DB> {
    fn clone(&self) -> Self {
        Self {
            pools: self.pools.clone(),
            groups: self.groups.clone(),
        }
    }
}

impl<DB: Backend> Default for PoolRegistry<DB> {
    fn default() -> Self {
        Self {
            pools: BTreeMap::new(),
            groups: BTreeMap::new(),
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

    /// The pool named `name` (a [`ReplicaPool`](crate::ReplicaPool)'s
    /// write pool under its name).
    pub fn get(&self, name: &str) -> Option<&Pool<DB>> {
        self.pools.get(name)
    }

    /// The status of the pool (or replica handle) named `name`.
    pub fn status(&self, name: &str) -> Option<Status> {
        match self.groups.get(name) {
            Some(group) => Some(group.status()),
            None => self.pools.get(name).map(Pool::status),
        }
    }

    /// The pool named `name`, or an error that lists the names there are
    /// (for a name that came from configuration).
    pub fn pool(&self, name: &str) -> Result<&Pool<DB>, Error> {
        self.get(name).ok_or_else(|| Error::UnknownPool {
            name: name.to_owned(),
            registered: self.names().map(str::to_owned).collect(),
        })
    }

    /// Removes a pool (without closing it) and returns it (a replica
    /// handle's write pool: the handle leaves the registry).
    pub fn remove(&mut self, name: &str) -> Option<Pool<DB>> {
        self.groups.remove(name);
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

    /// A status per pool, in name order (a replica handle's with its hosts).
    pub fn statuses(&self) -> Vec<Status> {
        self.names().filter_map(|name| self.status(name)).collect()
    }

    /// The worst health among the pools; healthy when there are none.
    pub fn health(&self) -> Health {
        self.statuses()
            .iter()
            .map(|s| s.health)
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
        let each = self.pools.iter().map(|(name, pool)| -> BoxFuture<'_, ()> {
            match self.groups.get(name) {
                Some(group) => group.close(),
                None => Box::pin(pool.close()),
            }
        });
        futures_util::future::join_all(each).await;
    }
}

#[cfg(feature = "postgres")]
impl PoolRegistry<sqlx::Postgres> {
    /// Adds a [`ReplicaPool`](crate::ReplicaPool) under its name; a name
    /// already taken is an error, as for [`insert`](Self::insert).
    pub fn insert_replicas(&mut self, replicas: crate::ReplicaPool) -> Result<(), Error> {
        self.check_free(replicas.name())?;
        let name = replicas.name().to_owned();
        self.pools.insert(name.clone(), replicas.primary().clone());
        self.groups.insert(name, Arc::new(replicas));
        Ok(())
    }

    /// The [`ReplicaPool`](crate::ReplicaPool) named `name`.
    pub fn replicas(&self, name: &str) -> Option<&crate::ReplicaPool> {
        self.groups.get(name)?.as_any().downcast_ref()
    }
}

#[cfg(feature = "postgres")]
impl Group<sqlx::Postgres> for crate::ReplicaPool {
    fn status(&self) -> Status {
        crate::ReplicaPool::status(self)
    }
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(crate::ReplicaPool::close(self))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
