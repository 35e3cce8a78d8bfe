//! Local backend: a PostgreSQL server from the machine's own binaries
//! (initdb + pg_ctl) in a temp dir, on a free loopback port.
//!
//! Everything is blocking `std::process` so the server is tied to no async
//! runtime. As root, initdb and postgres refuse to run, so they are started
//! as the `postgres` user and the temp dir is handed to it. The server logs
//! to a file in the temp dir: a pipe nobody reads would stall it.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::cleanup::{self, Resource};
use crate::tls::{self, Auth, SSL_CONF, Security, TestCa, Tls};
use crate::util::{self, Owner};
use crate::{Error, Result};

/// Name prefix of every temp dir this backend makes (and sweeps).
pub(crate) const DIR_PREFIX: &str = "pool-testkit-";
pub(crate) const OWNER_FILE: &str = "owner";

/// A running (or stopped) local server.
#[derive(Debug)]
pub(crate) struct LocalServer {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
    running: bool,
    keep: bool,
    /// The CA of a TLS server, for client certificates.
    ca: Option<Box<TestCa>>,
}

impl LocalServer {
    /// initdb + start. `settings` are written to postgresql.conf (so they
    /// survive restarts); `user`/`password` become the superuser.
    pub fn start(settings: &[(String, String)], user: &str, password: &str) -> Result<Self> {
        Self::start_secured(settings, user, password, Security::default())
    }

    /// [`start`](Self::start) with TLS and authentication rules.
    pub fn start_secured(
        settings: &[(String, String)],
        user: &str,
        password: &str,
        security: Security,
    ) -> Result<Self> {
        let mut server = Self::create_root()?;
        // From here on, Drop removes the dir if anything fails.
        server.init(settings, user, password)?;
        if security != Security::default() {
            server.secure(security, user)?;
        }
        server.start_on_free_port()?;
        Ok(server)
    }

    /// Certificates (from a CA made for this server) and `pg_hba.conf`
    /// rules for `security`. The kit's own connections use the same TCP
    /// rules: as `user` with its password (and, for `cert`, a client
    /// certificate); only the Unix socket stays `trust` (for pg_ctl).
    fn secure(&mut self, security: Security, user: &str) -> Result<()> {
        let data = self.data();
        let public = self.tls_dir();
        std::fs::create_dir_all(&public).map_err(|e| Error::io("creating the TLS dir", e))?;
        let mut conf = Vec::new();
        if security.tls != Tls::Off {
            let ca = TestCa::new()?;
            ca.write_server_files(&data)?;
            std::fs::copy(data.join(tls::CA_CERT), public.join(tls::CA_CERT))
                .map_err(|e| Error::io("copying the CA certificate", e))?;
            if security.auth == Auth::ClientCert {
                ca.write_client_files(&public, user)?;
            }
            if let Some((uid, gid)) = self.run_as {
                for f in [tls::CA_CERT, tls::SERVER_CERT, tls::SERVER_KEY] {
                    chown(&data.join(f), uid, gid)?;
                }
            }
            self.ca = Some(Box::new(ca));
            conf.extend(SSL_CONF.map(|(k, v)| (k.to_owned(), v.to_owned())));
        }
        let hba = tls::hba(security, "127.0.0.1/32");
        std::fs::write(data.join("pg_hba.conf"), hba)
            .map_err(|e| Error::io("writing pg_hba.conf", e))?;
        self.append_conf(&conf)
    }

    /// World-readable copies for clients: the CA certificate and client
    /// certificates.
    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }

    /// A client certificate and key for `user`, from this server's CA.
    pub fn client_cert(&self, user: &str) -> Result<(PathBuf, PathBuf)> {
        match &self.ca {
            Some(ca) => ca.write_client_files(&self.tls_dir(), user),
            None => Err(Error::Config(
                "this server has no TLS: start it with .tls(Tls::Offered) or .tls(Tls::Required)"
                    .into(),
            )),
        }
    }

    /// A streaming standby of the server at 127.0.0.1:`source_port`:
    /// `pg_basebackup -R -X stream` with replication slot `slot` (created
    /// on the source), plus `settings`, started on a free port.
    pub fn start_standby(
        source_port: u16,
        user: &str,
        slot: &str,
        settings: &[(String, String)],
    ) -> Result<Self> {
        let mut server = Self::create_root()?;
        let data = server.data();
        let port = source_port.to_string();
        let out = server.run(
            "pg_basebackup",
            &[
                "-h".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                user.as_ref(),
                "-D".as_ref(),
                data.as_os_str(),
                "-R".as_ref(),
                "-X".as_ref(),
                "stream".as_ref(),
                "-C".as_ref(),
                "-S".as_ref(),
                slot.as_ref(),
                "--no-sync".as_ref(),
                "-c".as_ref(),
                "fast".as_ref(),
            ],
        )?;
        if !out.status.success() {
            return Err(Error::Local(format!(
                "pg_basebackup from 127.0.0.1:{source_port} failed ({}):\n{}",
                out.status,
                output_text(&out)
            )));
        }
        // The copy carries the source's postgresql.conf (its socket dir):
        // later lines win.
        server.append_conf(settings)?;
        server.start_on_free_port()?;
        Ok(server)
    }

    /// Re-attaches this (former primary) server as a standby of the server
    /// at 127.0.0.1:`source_port`: clean stop, `pg_rewind -R` (which runs
    /// crash recovery first when the server was killed), replication slot
    /// `slot` (must exist on the source), start.
    pub fn rewind(
        &mut self,
        source_port: u16,
        user: &str,
        slot: &str,
        settings: &[(String, String)],
    ) -> Result<()> {
        self.stop("fast")?;
        let data = self.data();
        let source = format!("host=127.0.0.1 port={source_port} user={user} dbname=postgres");
        let out = self.run(
            "pg_rewind",
            &[
                "--target-pgdata".as_ref(),
                data.as_os_str(),
                "--source-server".as_ref(),
                source.as_ref(),
                "--write-recovery-conf".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        if !out.status.success() {
            return Err(Error::Local(format!(
                "pg_rewind from 127.0.0.1:{source_port} failed ({}):\n{}",
                out.status,
                output_text(&out)
            )));
        }
        // pg_rewind copied the source's configuration (its socket dir, and
        // its own primary_slot_name if it was a standby once).
        self.append_conf(settings)?;
        let auto = data.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&auto)
            .map_err(|e| Error::io("reading postgresql.auto.conf", e))?;
        let _ = writeln!(text, "primary_slot_name = '{slot}'");
        std::fs::write(&auto, text).map_err(|e| Error::io("writing postgresql.auto.conf", e))?;
        self.start_again()
    }

    /// A fresh owned temp dir, registered with the watchdog.
    fn create_root() -> Result<Self> {
        let bin = find_bin_dir().map_err(Error::Local)?;
        let parent = temp_parent();
        sweep(&parent);
        let root = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(&parent)
            .map_err(|e| Error::io(format!("creating a temp dir in {}", parent.display()), e))?
            .keep();
        std::fs::write(root.join(OWNER_FILE), Owner::current().encode())
            .map_err(|e| Error::io("writing the owner marker", e))?;
        cleanup::register(Resource::Dir(&root));
        let server = Self {
            root,
            bin,
            port: 0,
            run_as: postgres_ids()?,
            running: false,
            keep: util::env_flag("POOL_TESTKIT_KEEP"),
            ca: None,
        };
        if let Some((uid, gid)) = server.run_as {
            chown(&server.root, uid, gid)?;
        }
        Ok(server)
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn init(&mut self, settings: &[(String, String)], user: &str, password: &str) -> Result<()> {
        let pwfile = self.root.join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n"))
            .map_err(|e| Error::io("writing pwfile", e))?;
        if let Some((uid, gid)) = self.run_as {
            chown(&pwfile, uid, gid)?;
        }
        let data = self.data();
        let out = self.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                user.as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
                // Trust on loopback: the URL still carries the password, so
                // URLs look the same as with the Docker backend, and
                // connects don't pay for SCRAM.
                "--auth=trust".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        if !out.status.success() {
            return Err(Error::Local(format!(
                "initdb failed ({}):\n{}",
                out.status,
                output_text(&out)
            )));
        }
        self.append_conf(settings)
    }

    /// Appends the testkit's base settings and `settings` to postgresql.conf.
    fn append_conf(&self, settings: &[(String, String)]) -> Result<()> {
        let data = self.data();
        let mut conf = String::from("\n# pool-testkit\n");
        let socket_dir = self.root.display().to_string();
        let base = [
            ("listen_addresses", "127.0.0.1"),
            ("unix_socket_directories", socket_dir.as_str()),
        ];
        for (k, v) in base
            .iter()
            .map(|(k, v)| (*k, *v))
            .chain(settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            let _ = writeln!(conf, "{k} = '{}'", v.replace('\'', "''"));
        }
        let conf_path = data.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path)
            .map_err(|e| Error::io("reading postgresql.conf", e))?;
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing)
            .map_err(|e| Error::io("writing postgresql.conf", e))?;
        Ok(())
    }

    fn start_on_free_port(&mut self) -> Result<()> {
        let mut last = String::new();
        for _ in 0..10 {
            self.port = free_port()?;
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                Err(msg) if is_bind_error(&msg) => last = msg,
                Err(msg) => return Err(Error::Local(msg)),
            }
        }
        Err(Error::Local(format!(
            "could not bind a free port after 10 tries:\n{last}"
        )))
    }

    /// Starts the stopped server again on the same port.
    pub fn start_again(&mut self) -> Result<()> {
        if self.running {
            return Ok(());
        }
        self.pg_ctl_start().map_err(Error::Local)
    }

    fn pg_ctl_start(&mut self) -> Result<(), String> {
        let data = self.data();
        let log = self.log_path();
        let opts = format!("-p {}", self.port);
        let out = self
            .run(
                "pg_ctl",
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-l".as_ref(),
                    log.as_os_str(),
                    "-o".as_ref(),
                    opts.as_ref(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "60".as_ref(),
                    "start".as_ref(),
                ],
            )
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            self.running = true;
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start failed ({}):\n{}\nserver log ({}):\n{}",
                out.status,
                output_text(&out),
                log.display(),
                util::file_tail(&log, 30)
            ))
        }
    }

    /// Stops the server (`fast`: disconnect clients, clean shutdown;
    /// `immediate`: like a crash).
    pub fn stop(&mut self, mode: &str) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        let data = self.data();
        let out = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                mode.as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )?;
        if !out.status.success() {
            return Err(Error::Local(format!(
                "pg_ctl stop failed ({}):\n{}",
                out.status,
                output_text(&out)
            )));
        }
        self.running = false;
        Ok(())
    }

    /// Runs a PostgreSQL program as the server's user, with a cwd it can read.
    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<Output> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(self.bin.join(program));
        cmd.args(args)
            .current_dir(&self.root)
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.output()
            .map_err(|e| Error::io(format!("running {}", self.bin.join(program).display()), e))
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop("immediate") {
            tracing::warn!("pool-testkit: {e}");
        }
        if self.keep {
            eprintln!(
                "pool-testkit: keeping {} (POOL_TESTKIT_KEEP is set)",
                self.root.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn is_bind_error(msg: &str) -> bool {
    msg.contains("could not bind") || msg.contains("Address already in use")
}

/// A port that was free a moment ago (the caller retries on a bind race).
pub(crate) fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("finding a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("finding a free port", e))
}

/// Parent of the temp dirs: `POOL_TESTKIT_TMPDIR`, else the system temp dir.
///
/// By default `/dev/shm` where it is a writable directory: the data is
/// thrown away anyway, and on this project's CI disk `CREATE DATABASE …
/// TEMPLATE` took 225 ms there against 10 ms in memory (measured for the
/// attribute's per-test setup goal, `tests/attr_setup_time.rs`). Else the
/// temp dir.
pub(crate) fn temp_parent() -> PathBuf {
    if let Some(dir) = std::env::var_os("POOL_TESTKIT_TMPDIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    let writable = std::fs::metadata(shm).is_ok_and(|m| m.is_dir() && !m.permissions().readonly());
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// When running as root: uid and gid of the `postgres` user, which initdb
/// and postgres need. Otherwise `None` (run as ourselves).
pub(crate) fn postgres_ids() -> Result<Option<(u32, u32)>> {
    if !is_root() {
        return Ok(None);
    }
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(|e| Error::io("reading /etc/passwd", e))?;
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() > 3 && f[0] == "postgres")
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
        .map(Some)
        .ok_or_else(|| {
            Error::Local(
                "running as root, but there is no `postgres` user to run the server as \
                 (PostgreSQL refuses root). Create one (`useradd --system postgres`) or run \
                 the tests as a normal user."
                    .into(),
            )
        })
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // Our own /proc entry is owned by our effective uid.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

pub(crate) fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| Error::io(format!("chown {} to the postgres user", path.display()), e))
}

/// Finds the directory holding initdb and pg_ctl: `POOL_TESTKIT_PG_BIN`,
/// Debian's /usr/lib/postgresql/<newest>/bin, `pg_config --bindir`, PATH.
pub(crate) fn find_bin_dir() -> Result<PathBuf, String> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("POOL_TESTKIT_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_tools(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "POOL_TESTKIT_PG_BIN={} has no initdb and pg_ctl",
                dir.display()
            ))
        };
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    candidates.sort();
    if let Some((_, dir)) = candidates.into_iter().rev().find(|(_, d)| has_tools(d)) {
        return Ok(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_tools(&dir) {
            return Ok(dir);
        }
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if has_tools(&dir) {
            return Ok(dir);
        }
    }
    Err(
        "no PostgreSQL server binaries (initdb, pg_ctl) found in POOL_TESTKIT_PG_BIN, \
         /usr/lib/postgresql/*/bin, `pg_config --bindir` or PATH. Install them \
         (Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql@15`) \
         or set POOL_TESTKIT_PG_BIN"
            .into(),
    )
}

/// Removes temp dirs of dead runs (stopping their servers first).
pub(crate) fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let owner = std::fs::read_to_string(dir.join(OWNER_FILE))
            .ok()
            .and_then(|s| Owner::decode(&s));
        let dead = match owner {
            Some(owner) => !owner.is_alive(),
            // No marker: a dir being created right now, or a broken one;
            // only old ones are removed.
            None => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600),
        };
        if dead {
            stop_leftover(&dir);
            if std::fs::remove_dir_all(&dir).is_ok() {
                tracing::info!("pool-testkit: removed leftover {}", dir.display());
            }
        }
    }
}

/// Immediate shutdown of a leftover postmaster (SIGQUIT) or PgBouncer
/// (SIGTERM), if it still runs.
fn stop_leftover(dir: &Path) {
    if let Some(pid) = std::fs::read_to_string(dir.join("pgbouncer.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        && util::process_runs(pid, "pgbouncer")
    {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    let Ok(pidfile) = std::fs::read_to_string(dir.join("data").join("postmaster.pid")) else {
        return;
    };
    let Some(pid) = pidfile
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<u32>().ok())
    else {
        return;
    };
    if !util::process_runs(pid, "postgres") {
        return;
    }
    let _ = Command::new("kill")
        .arg("-QUIT")
        .arg(pid.to_string())
        .status();
    for _ in 0..100 {
        if util::process_start(pid).is_none() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
