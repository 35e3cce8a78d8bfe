//! Docker backend: a PostgreSQL container through testcontainers.
//!
//! The image is `POOL_TESTKIT_IMAGE` (default the locally built
//! `pool-testkit/postgres:15`; the official `postgres:15` works too). It is
//! inspected first so a missing image fails fast with the build command
//! instead of a pull that cannot succeed here. testcontainers' sync
//! `Container` owns its own runtime, so the server is tied to no test's
//! runtime; every call into it runs off the caller's runtime (its
//! `block_on` would panic inside one). The host port is fixed at creation
//! so a restarted container keeps its URL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use testcontainers::bollard::Docker;
use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, ContainerRequest, GenericImage, ImageExt};

use crate::cleanup::{self, Resource};
use crate::tls::{self, Auth, Security, TestCa};
use crate::util::{self, Owner};
use crate::{Error, Result};

/// Default image: built by `pool-testkit/docker/build-image.sh`.
pub const DEFAULT_IMAGE: &str = "pool-testkit/postgres:15";
/// Label carrying the owning process, for sweeping leftovers.
pub(crate) const OWNER_LABEL: &str = "pool-testkit.owner";
const READY: &str = "database system is ready to accept connections";

/// The image to use: `POOL_TESTKIT_IMAGE` or [`DEFAULT_IMAGE`].
pub(crate) fn image_from_env() -> String {
    std::env::var("POOL_TESTKIT_IMAGE")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE.into())
}

/// A running PostgreSQL container.
pub(crate) struct DockerServer {
    container: Mutex<Option<Container<GenericImage>>>,
    id: String,
    port: u16,
    /// A TLS server's CA and the host dir with its certificate for clients.
    tls: Option<DockerTls>,
}

/// The host side of a TLS container: its CA (for client certificates) and
/// a directory with the CA certificate, removed with the server.
struct DockerTls {
    ca: Box<TestCa>,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for DockerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerServer")
            .field("id", &self.id)
            .field("port", &self.port)
            .finish()
    }
}

impl DockerServer {
    /// Starts a container of `image` with `-c key=value` for each setting,
    /// and with `security`'s TLS and authentication rules: the
    /// certificates (from a CA made here) and an init script are copied
    /// into the container, which the entry point runs once after initdb.
    pub fn start_secured(
        image: &str,
        settings: &[(String, String)],
        user: &str,
        password: &str,
        security: Security,
    ) -> Result<Self> {
        const STAGED: &str = "/etc/pool-testkit-tls";
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut tls = None;
        if security != Security::default() {
            let ca = TestCa::new()?;
            let (cert, key) = ca.server_pair()?;
            let dir = tempfile::Builder::new()
                .prefix("pool-testkit-tls-")
                .tempdir_in(crate::local::temp_parent())
                .map_err(|e| Error::io("creating a TLS dir", e))?;
            tls::write(&dir.path().join(tls::CA_CERT), ca.cert_pem())?;
            if security.auth == Auth::ClientCert {
                ca.write_client_files(dir.path(), user)?;
            }
            files.push((format!("{STAGED}/{}", tls::CA_CERT), ca.cert_pem().into()));
            files.push((format!("{STAGED}/{}", tls::SERVER_CERT), cert.into_bytes()));
            files.push((format!("{STAGED}/{}", tls::SERVER_KEY), key.into_bytes()));
            files.push((
                "/docker-entrypoint-initdb.d/pool-testkit-tls.sh".into(),
                tls::docker_init_script(security, STAGED).into_bytes(),
            ));
            tls = Some(DockerTls {
                ca: Box::new(ca),
                dir,
            });
        }
        let mut server = Self::start_image(image, settings, user, password, &files)?;
        server.tls = tls;
        Ok(server)
    }

    /// The host dir with the CA certificate (and client certificates) of a
    /// TLS container.
    pub fn tls_dir(&self) -> Option<&std::path::Path> {
        self.tls.as_ref().map(|t| t.dir.path())
    }

    /// A client certificate and key for `user`, from this container's CA.
    pub fn client_cert(&self, user: &str) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
        match &self.tls {
            Some(t) => t.ca.write_client_files(t.dir.path(), user),
            None => Err(Error::Config(
                "this server has no TLS: start it with .tls(Tls::Offered) or .tls(Tls::Required)"
                    .into(),
            )),
        }
    }

    fn start_image(
        image: &str,
        settings: &[(String, String)],
        user: &str,
        password: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<Self> {
        let (name, tag) = split_image(image);
        let args = setting_args(settings);
        Self::start_with(image, |port| {
            let request = GenericImage::new(name.clone(), tag.clone())
                .with_exposed_port(5432.tcp())
                // The entry point's temporary server prints its ready line on
                // stdout, the real one on stderr (official image behaviour).
                .with_wait_for(WaitFor::message_on_stderr(READY))
                .with_mapped_port(port, 5432.tcp())
                .with_env_var("POSTGRES_USER", user)
                .with_env_var("POSTGRES_PASSWORD", password)
                .with_env_var("POSTGRES_DB", "postgres")
                .with_label(OWNER_LABEL, Owner::current().encode())
                .with_cmd(args.clone())
                .with_shm_size(256 * 1024 * 1024)
                .with_startup_timeout(Duration::from_secs(120));
            files.iter().fold(request, |request, (target, bytes)| {
                request.with_copy_to(target.as_str(), bytes.clone())
            })
        })
    }

    /// Starts the container `request(host_port)` describes (the port is
    /// mapped to its 5432), retrying on a host-port race, and registers it
    /// with the watchdog.
    pub(crate) fn start_with(
        image: &str,
        request: impl Fn(u16) -> ContainerRequest<GenericImage>,
    ) -> Result<Self> {
        check_available(image).map_err(Error::Docker)?;
        util::block_on_fresh(sweep());
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let request = request(port);
            match util::off_runtime(move || request.start()) {
                Ok(container) => {
                    let id = container.id().to_owned();
                    cleanup::register(Resource::Container(&id));
                    return Ok(Self {
                        container: Mutex::new(Some(container)),
                        id,
                        port,
                        tls: None,
                    });
                }
                Err(e) => {
                    let msg = e.to_string();
                    if msg.contains("port is already allocated")
                        || msg.contains("address already in use")
                    {
                        last = msg;
                        continue;
                    }
                    return Err(Error::Docker(format!(
                        "starting a container of {image}: {msg}"
                    )));
                }
            }
        }
        Err(Error::Docker(format!(
            "could not bind a free host port after 5 tries: {last}"
        )))
    }

    /// Host port mapped to the container's 5432 (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn with_container<T: Send>(
        &self,
        f: impl FnOnce(&Container<GenericImage>) -> T + Send,
    ) -> Result<T> {
        let guard = self.container.lock().unwrap_or_else(|e| e.into_inner());
        let container = guard
            .as_ref()
            .ok_or_else(|| Error::Docker("container already removed".into()))?;
        Ok(util::off_runtime(|| f(container)))
    }

    /// Stops the container (SIGINT: PostgreSQL's fast shutdown).
    pub fn stop(&self) -> Result<()> {
        self.with_container(|c| c.stop_with_timeout(Some(10)))?
            .map_err(|e| Error::Docker(format!("stopping container {}: {e}", self.id)))
    }

    /// Starts the stopped container again (same port).
    pub fn start_again(&self) -> Result<()> {
        self.with_container(|c| c.start())?
            .map_err(|e| Error::Docker(format!("starting container {}: {e}", self.id)))
    }

    /// The last `n` lines of the container's output (stdout and stderr in
    /// order).
    pub fn log_tail(&self, n: usize) -> String {
        container_log_tail(&self.id, n)
    }
}

/// The last `n` lines of a container's output (stdout and stderr in order).
pub(crate) fn container_log_tail(id: &str, n: usize) -> String {
    {
        let id = id.to_owned();
        util::block_on_fresh(async move {
            let docker = match Docker::connect_with_defaults() {
                Ok(d) => d,
                Err(e) => return format!("(cannot read container logs: {e})"),
            };
            let opts = LogsOptionsBuilder::new()
                .stdout(true)
                .stderr(true)
                .tail(&n.to_string())
                .build();
            let mut stream = docker.logs(&id, Some(opts));
            let mut text = String::new();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(out) => text.push_str(&out.to_string()),
                    Err(e) => {
                        text.push_str(&format!("(log read failed: {e})"));
                        break;
                    }
                }
            }
            util::text_tail(&text, n)
        })
    }
}

impl Drop for DockerServer {
    fn drop(&mut self) {
        let container = self
            .container
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if util::env_flag("POOL_TESTKIT_KEEP") {
            eprintln!(
                "pool-testkit: keeping container {} (POOL_TESTKIT_KEEP is set)",
                self.id
            );
            std::mem::forget(container);
            return;
        }
        // Container's Drop blocks on its own runtime: never on ours.
        util::off_runtime(move || drop(container));
    }
}

/// `-c key=value` arguments for the server.
pub(crate) fn setting_args(settings: &[(String, String)]) -> Vec<String> {
    settings
        .iter()
        .flat_map(|(k, v)| ["-c".to_owned(), format!("{k}={v}")])
        .collect()
}

/// `name:tag` split at the last ':' after the last '/' (registry ports).
pub(crate) fn split_image(image: &str) -> (String, String) {
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (
            image[..slash + i].to_owned(),
            image[slash + i + 1..].to_owned(),
        ),
        None => (image.to_owned(), "latest".to_owned()),
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("finding a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("finding a free port", e))
}

/// Ok when a Docker daemon answers and `image` exists locally; otherwise a
/// message saying what is missing and how to get it.
pub(crate) fn check_available(image: &str) -> Result<(), String> {
    let image = image.to_owned();
    util::block_on_fresh(async move {
        let docker = Docker::connect_with_defaults()
            .map_err(|e| format!("no Docker client configuration: {e}"))?;
        match tokio::time::timeout(Duration::from_secs(5), docker.ping()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("no Docker daemon answers ({e})")),
            Err(_) => return Err("the Docker daemon did not answer within 5 s".into()),
        }
        match docker.inspect_image(&image).await {
            Ok(_) => Ok(()),
            Err(e) => Err(format!(
                "image {image} not found locally ({e}). Build it with \
                 `pool-testkit/docker/build-image.sh` (no registry needed), or \
                 `docker pull postgres:15` and set POOL_TESTKIT_IMAGE=postgres:15"
            )),
        }
    })
}

/// Removes containers whose owning test process is gone.
pub(crate) async fn sweep() {
    let Ok(docker) = Docker::connect_with_defaults() else {
        return;
    };
    let filters: HashMap<&str, Vec<&str>> = HashMap::from([("label", vec![OWNER_LABEL])]);
    let opts = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let Ok(Ok(list)) =
        tokio::time::timeout(Duration::from_secs(10), docker.list_containers(Some(opts))).await
    else {
        return;
    };
    for summary in list {
        let owner = summary
            .labels
            .as_ref()
            .and_then(|l| l.get(OWNER_LABEL))
            .and_then(|s| Owner::decode(s));
        if owner.is_some_and(|o| !o.is_alive())
            && let Some(id) = summary.id
        {
            let opts = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            if docker.remove_container(&id, Some(opts)).await.is_ok() {
                tracing::info!("pool-testkit: removed leftover container {id}");
            }
        }
    }
    // Cluster networks, once their containers are gone.
    let opts = ListNetworksOptionsBuilder::new().filters(&filters).build();
    let Ok(Ok(networks)) =
        tokio::time::timeout(Duration::from_secs(10), docker.list_networks(Some(opts))).await
    else {
        return;
    };
    for network in networks {
        let owner = network
            .labels
            .as_ref()
            .and_then(|l| l.get(OWNER_LABEL))
            .and_then(|s| Owner::decode(s));
        if owner.is_some_and(|o| !o.is_alive())
            && let Some(name) = network.name
            && docker.remove_network(&name).await.is_ok()
        {
            tracing::info!("pool-testkit: removed leftover network {name}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn splits_image_names() {
        assert_eq!(split_image("postgres:15"), ("postgres".into(), "15".into()));
        assert_eq!(
            split_image("pool-testkit/postgres:15"),
            ("pool-testkit/postgres".into(), "15".into())
        );
        assert_eq!(
            split_image("localhost:5000/pg"),
            ("localhost:5000/pg".into(), "latest".into())
        );
        assert_eq!(
            split_image("localhost:5000/pg:16"),
            ("localhost:5000/pg".into(), "16".into())
        );
    }
}
