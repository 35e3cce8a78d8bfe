//! Cluster nodes on Docker: containers of the kit's image on a private
//! network created per cluster (`ptk-<random>`), named so they find each
//! other by DNS. A small shell wrapper around the image's entry point makes
//! a standby (`pg_basebackup` before the first start) and rewinds a former
//! primary (`pg_rewind` before a start, when a marker file asks for it), so
//! the image needs nothing new.

use std::collections::HashMap;
use std::time::Duration;

use testcontainers::bollard::Docker;
use testcontainers::bollard::models::{
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
};
use testcontainers::bollard::query_parameters::KillContainerOptionsBuilder;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::{GenericImage, ImageExt};

use crate::admin;
use crate::cleanup::{self, Resource};
use crate::docker::{DockerServer, OWNER_LABEL, setting_args, split_image};
use crate::server::{Kind, TestServer};
use crate::server_kind::ServerKind;
use crate::util::{self, Owner};
use crate::{Error, Result};

/// Where the rewind marker goes (outside PGDATA, inside the container).
const REWIND_MARKER: &str = "/var/lib/postgresql/ptk-rewind";

/// Runs as root before the image's entry point. `$PTK_UPSTREAM` set: make
/// this a standby of it. Rewind marker present: `pg_rewind` from the server
/// it names. Replication is trusted on the private network.
const WRAPPER: &str = r#"set -e
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p /docker-entrypoint-initdb.d
cat > /docker-entrypoint-initdb.d/ptk-replication.sh <<'HBA'
printf 'host replication all all trust\n' >> "$PGDATA/pg_hba.conf"
HBA
if [ -n "${PTK_UPSTREAM:-}" ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
  as_pg pg_basebackup -h "$PTK_UPSTREAM" -U postgres -D "$PGDATA" -R -X stream -C -S "$PTK_SLOT" -c fast
fi
if [ -f /var/lib/postgresql/ptk-rewind ]; then
  { read -r src; read -r slot; } < /var/lib/postgresql/ptk-rewind
  as_pg pg_rewind --target-pgdata="$PGDATA" --source-server="$src" --write-recovery-conf
  printf "primary_slot_name = '%s'\n" "$slot" >> "$PGDATA/postgresql.auto.conf"
  rm -f /var/lib/postgresql/ptk-rewind
fi
exec docker-entrypoint.sh postgres "$@"
"#;

/// The cluster's private network; removed after its containers.
pub(super) struct Network {
    name: String,
    image: String,
}

impl Network {
    /// Creates `ptk-<random>`, labelled with its owner (for the sweep) and
    /// registered with the watchdog.
    pub fn create(image: String) -> Result<Self> {
        crate::docker::check_available(&image).map_err(Error::Docker)?;
        util::block_on_fresh(crate::docker::sweep());
        let name = format!("ptk-{}", util::random_hex(10));
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([(
                OWNER_LABEL.to_owned(),
                Owner::current().encode(),
            )])),
            ..Default::default()
        };
        util::block_on_fresh(async {
            client()?
                .create_network(request)
                .await
                .map_err(docker_err("creating network"))
        })?;
        cleanup::register(Resource::Network(&name));
        Ok(Self { name, image })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn node_name(&self, i: usize) -> String {
        format!("{}-node{i}", self.name)
    }

    fn start_node(
        &self,
        i: usize,
        settings: &[(String, String)],
        upstream: Option<(&str, &str)>,
        template_sql: Option<&[String]>,
    ) -> Result<(TestServer, String)> {
        let (image_name, tag) = split_image(&self.image);
        let name = self.node_name(i);
        let mut cmd = vec!["-c".to_owned(), WRAPPER.to_owned(), "ptk-node".to_owned()];
        cmd.extend(setting_args(settings));
        let server = DockerServer::start_with(&self.image, |port| {
            let mut request = GenericImage::new(image_name.clone(), tag.clone())
                .with_exposed_port(5432.tcp())
                .with_entrypoint("/bin/sh")
                // Primary: "ready to accept connections"; standby: "ready to
                // accept read-only connections". The entry point's temporary
                // server logs to stdout.
                .with_wait_for(WaitFor::message_on_stderr("ready to accept"))
                .with_mapped_port(port, 5432.tcp())
                .with_network(self.name.clone())
                .with_container_name(name.clone())
                .with_env_var("POSTGRES_USER", admin::USER)
                .with_env_var("POSTGRES_PASSWORD", admin::PASSWORD)
                .with_env_var("POSTGRES_DB", "postgres")
                .with_label(OWNER_LABEL, Owner::current().encode())
                .with_cmd(cmd.clone())
                .with_shm_size(256 * 1024 * 1024)
                .with_startup_timeout(Duration::from_secs(120));
            if let Some((host, slot)) = upstream {
                request = request
                    .with_env_var("PTK_UPSTREAM", host)
                    .with_env_var("PTK_SLOT", slot);
            }
            request
        })?;
        // Also on Docker's default bridge, which has no DNS for names: the
        // published port keeps working while the node is disconnected from
        // the cluster network, and replication (by name) cannot go around
        // a partition through it.
        let id = server.id().to_owned();
        util::block_on_fresh(async {
            client()?
                .connect_network(
                    "bridge",
                    NetworkConnectRequest {
                        container: id,
                        endpoint_config: None,
                    },
                )
                .await
                .map_err(docker_err("connecting to the default bridge network"))
        })?;
        let port = server.port();
        let server = TestServer::adopt(
            Kind::Docker(Box::new(server)),
            ServerKind::Docker,
            port,
            template_sql,
        )?;
        Ok((server, name))
    }

    pub fn start_primary(
        &self,
        settings: &[(String, String)],
        template_sql: &[String],
    ) -> Result<(TestServer, String)> {
        self.start_node(0, settings, None, Some(template_sql))
    }

    pub fn start_standby(
        &self,
        i: usize,
        upstream: &str,
        slot: &str,
        settings: &[(String, String)],
    ) -> Result<(TestServer, String)> {
        self.start_node(i, settings, Some((upstream, slot)), None)
    }

    /// Stops the container cleanly, leaves the marker, starts it: the
    /// wrapper runs `pg_rewind` from `source` before the server starts.
    pub fn rewind(&self, node: &TestServer, source: &str, slot: &str) -> Result<()> {
        let container = container_of(node)?;
        container.stop()?;
        let marker = tempfile::NamedTempFile::new()
            .map_err(|e| Error::io("creating the rewind marker", e))?;
        std::fs::write(
            marker.path(),
            format!(
                "host={source} port=5432 user={} password={} dbname=postgres\n{slot}\n",
                admin::USER,
                admin::PASSWORD
            ),
        )
        .map_err(|e| Error::io("writing the rewind marker", e))?;
        let out = std::process::Command::new("docker")
            .arg("cp")
            .arg(marker.path())
            .arg(format!("{}:{REWIND_MARKER}", container.id()))
            .output()
            .map_err(|e| Error::io("running `docker cp` (is the docker CLI installed?)", e))?;
        if !out.status.success() {
            return Err(Error::Docker(format!(
                "docker cp of the rewind marker failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        container.start_again()?;
        Ok(())
    }

    /// `docker kill` (SIGKILL: no clean shutdown).
    pub fn kill(&self, node: &TestServer) -> Result<()> {
        let id = container_of(node)?.id().to_owned();
        util::block_on_fresh(async move {
            let opts = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
            client()?
                .kill_container(&id, Some(opts))
                .await
                .map_err(docker_err("killing container"))
        })
    }

    /// `docker network disconnect`.
    pub fn disconnect(&self, container: &str) -> Result<()> {
        let request = NetworkDisconnectRequest {
            container: container.to_owned(),
            force: Some(true),
        };
        util::block_on_fresh(async {
            client()?
                .disconnect_network(&self.name, request)
                .await
                .map_err(docker_err("disconnecting from the cluster network"))
        })
    }

    /// `docker network connect`.
    pub fn connect(&self, container: &str) -> Result<()> {
        let request = NetworkConnectRequest {
            container: container.to_owned(),
            endpoint_config: None,
        };
        util::block_on_fresh(async {
            client()?
                .connect_network(&self.name, request)
                .await
                .map_err(docker_err("connecting to the cluster network"))
        })
    }

    /// Removes the network (its containers must be gone).
    pub fn remove(&self) {
        if util::env_flag("POOL_TESTKIT_KEEP") {
            return;
        }
        let name = self.name.clone();
        util::block_on_fresh(async move {
            if let Ok(docker) = Docker::connect_with_defaults()
                && let Err(e) = docker.remove_network(&name).await
            {
                tracing::warn!("pool-testkit: removing network {name}: {e}");
            }
        });
    }
}

fn container_of(node: &TestServer) -> Result<&DockerServer> {
    node.docker_server()
        .ok_or_else(|| Error::Docker("not a container node".into()))
}

fn client() -> Result<Docker> {
    Docker::connect_with_defaults().map_err(|e| Error::Docker(format!("no Docker client: {e}")))
}

fn docker_err(what: &'static str) -> impl Fn(testcontainers::bollard::errors::Error) -> Error {
    move |e| Error::Docker(format!("{what}: {e}"))
}
