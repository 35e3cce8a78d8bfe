//! Certificates for TLS test servers: a certificate authority made in
//! memory for each server (rcgen, ECDSA P-256; nothing is committed or
//! reused across servers), a server certificate for `localhost` and
//! `127.0.0.1`, and client certificates on demand. The files live in the
//! server's own directory and go with it.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::{Error, Result};

/// File names in a server's TLS directory.
pub(crate) const CA_CERT: &str = "ca.crt";
pub(crate) const SERVER_CERT: &str = "server.crt";
pub(crate) const SERVER_KEY: &str = "server.key";

/// Whether a test server offers TLS, and whether it insists on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tls {
    /// Plaintext only (the default): `ssl = off`.
    #[default]
    Off,
    /// TLS offered with a certificate from the server's own CA; plaintext
    /// connections still accepted (`host` rules).
    Offered,
    /// TLS only: plaintext connections are refused by a `hostnossl … reject`
    /// rule, as managed databases with `rds.force_ssl` or `require_secure_transport` do.
    Required,
}

/// How TCP clients authenticate to a test server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    /// No password checked (the default; fastest connects).
    #[default]
    Trust,
    /// SCRAM-SHA-256 passwords (`scram-sha-256` rules), as every managed
    /// PostgreSQL uses.
    Scram,
    /// Client certificates (`cert` rules: the certificate's CN is the user
    /// name); needs TLS. See [`TestServer::client_cert`](crate::TestServer::client_cert).
    ClientCert,
}

impl Auth {
    /// The `pg_hba.conf` method.
    pub(crate) fn method(self) -> &'static str {
        match self {
            Self::Trust => "trust",
            Self::Scram => "scram-sha-256",
            Self::ClientCert => "cert",
        }
    }
}

/// `postgresql.conf` settings of a TLS server (files in the data dir).
pub(crate) const SSL_CONF: [(&str, &str); 4] = [
    ("ssl", "on"),
    ("ssl_cert_file", SERVER_CERT),
    ("ssl_key_file", SERVER_KEY),
    ("ssl_ca_file", CA_CERT),
];

/// `pg_hba.conf` for `security`, TCP clients from `address` (`127.0.0.1/32`
/// for local servers, `all` in a container); the Unix socket stays `trust`
/// for pg_ctl and the entry point.
pub(crate) fn hba(security: Security, address: &str) -> String {
    use std::fmt::Write as _;
    let method = security.auth.method();
    let mut hba = String::from("# pool-testkit\nlocal all all trust\n");
    let _ = writeln!(hba, "hostssl all all {address} {method}");
    match security.tls {
        Tls::Required => {
            let _ = writeln!(hba, "hostnossl all all {address} reject");
        }
        Tls::Offered | Tls::Off if security.auth != Auth::ClientCert => {
            let _ = writeln!(hba, "host all all {address} {method}");
        }
        _ => {}
    }
    hba
}

/// An init script for the image's entry point (run once, as postgres,
/// after initdb): copies the certificates staged in `staged` into the data
/// dir with an owner-only key, turns TLS on and writes the rules. Only
/// `sh`, `cat` and `chmod`: the image has no `cp`.
pub(crate) fn docker_init_script(security: Security, staged: &str) -> String {
    let conf: String = SSL_CONF
        .iter()
        .map(|(k, v)| format!("{k} = '{v}'\n"))
        .collect();
    format!(
        "# pool-testkit: TLS and authentication rules\n\
         for f in {CA_CERT} {SERVER_CERT} {SERVER_KEY}; do cat \"{staged}/$f\" > \"$PGDATA/$f\"; done\n\
         chmod 600 \"$PGDATA/{SERVER_KEY}\"\n\
         cat >> \"$PGDATA/postgresql.conf\" <<'PTK_CONF'\n{conf}PTK_CONF\n\
         cat > \"$PGDATA/pg_hba.conf\" <<'PTK_HBA'\n{}PTK_HBA\n",
        hba(security, "all")
    )
}

/// A server's TLS mode and authentication method together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Security {
    pub tls: Tls,
    pub auth: Auth,
}

/// A certificate authority that exists for one server.
pub(crate) struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestCa { .. }")
    }
}

impl TestCa {
    pub(crate) fn new() -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: two servers' CAs must not look alike to a
        // verifier (same name, other key reads as a bad signature).
        let name = format!("pool-testkit test CA {:016x}", rand::random::<u64>());
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(tls_error)?;
        let cert = params.self_signed(&key).map_err(tls_error)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A certificate and key (PEM) for `names` (host names or IP
    /// addresses), with `cn` as its common name, for a server or a client.
    pub(crate) fn issue(&self, cn: &str, names: &[&str], server: bool) -> Result<(String, String)> {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names).map_err(tls_error)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate().map_err(tls_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(tls_error)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// The CA certificate (PEM).
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate and key (PEM) for `localhost` and `127.0.0.1`.
    pub(crate) fn server_pair(&self) -> Result<(String, String)> {
        self.issue("localhost", &["localhost", "127.0.0.1"], true)
    }

    /// Writes the CA certificate and a server certificate for `localhost`
    /// and `127.0.0.1` into `dir`.
    pub(crate) fn write_server_files(&self, dir: &Path) -> Result<()> {
        let (cert, key) = self.server_pair()?;
        write(&dir.join(CA_CERT), &self.cert_pem)?;
        write(&dir.join(SERVER_CERT), &cert)?;
        write_private(&dir.join(SERVER_KEY), &key)
    }

    /// Writes a client certificate and key for `user` into `dir` and
    /// returns their paths.
    pub(crate) fn write_client_files(&self, dir: &Path, user: &str) -> Result<(PathBuf, PathBuf)> {
        let (cert, key) = self.issue(user, &[], false)?;
        let (cert_path, key_path) = client_files(dir, user);
        write(&cert_path, &cert)?;
        write_private(&key_path, &key)?;
        Ok((cert_path, key_path))
    }
}

/// Where `user`'s client certificate and key are in a server's TLS dir.
pub(crate) fn client_files(dir: &Path, user: &str) -> (PathBuf, PathBuf) {
    let safe: String = user
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    (
        dir.join(format!("client-{safe}.crt")),
        dir.join(format!("client-{safe}.key")),
    )
}

pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Private keys: owner-only, or PostgreSQL refuses the file.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("restricting {}", path.display()), e))
}

fn tls_error(e: rcgen::Error) -> Error {
    Error::Config(format!("making a test certificate: {e}"))
}
