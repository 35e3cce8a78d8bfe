//! TLS to PostgreSQL as libpq defines it, over sqlx's rustls connector.
//!
//! sqlx differs from libpq in two of the six `sslmode`s, and the pool
//! owns connection setup, so it closes the gaps here:
//!
//! * `allow`: libpq tries plaintext and, when the server refuses it, TLS;
//!   sqlx only tries plaintext (its `FIXME: Implement ALLOW`), so a
//!   TLS-only server could never be reached. [`connect`] retries with TLS.
//! * `require` with a root certificate given: libpq then verifies the
//!   chain, as `verify-ca` does; sqlx accepts any certificate.
//!   [`apply`] upgrades the mode.
//!
//! Left as sqlx has it: with `verify-ca`/`verify-full`, sqlx trusts the
//! built-in roots (feature `tls`: Mozilla's; `tls-native-roots`: the
//! system's) *and* `sslrootcert`, where libpq trusts only the file. Under
//! `verify-full` a public CA still has to vouch for the host name; under
//! `verify-ca` prefer `verify-full`.

use std::path::Path;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Error as SqlxError};

use crate::error::SettingsProblems;
use crate::{Error, PoolSettings};

/// URL parameters sqlx reads for the three files (libpq's names first).
const ROOT_CERT_PARAMS: &[&str] = &["sslrootcert", "ssl-root-cert", "ssl-ca"];
const CERT_PARAMS: &[&str] = &["sslcert", "ssl-cert"];
const KEY_PARAMS: &[&str] = &["sslkey", "ssl-key"];

/// Applies `sslrootcert`, `sslcert`, `sslkey` and libpq's `require` rule;
/// says which file is missing or unpaired before any connect.
pub(crate) fn apply(
    mut options: PgConnectOptions,
    settings: &PoolSettings,
) -> Result<PgConnectOptions, Error> {
    let url = settings.url.expose();
    let files = [
        ("sslrootcert", &settings.sslrootcert, ROOT_CERT_PARAMS),
        ("sslcert", &settings.sslcert, CERT_PARAMS),
        ("sslkey", &settings.sslkey, KEY_PARAMS),
    ];
    let mut problems = Vec::new();
    let mut given = [false; 3];
    for (i, (name, setting, params)) in files.iter().enumerate() {
        let path = Option::clone(setting).or_else(|| url_param(url, params));
        given[i] = path.is_some();
        if let Some(path) = path
            && !Path::new(&path).is_file()
        {
            problems.push(problem(
                name,
                format!("file {path} does not exist or is not a file"),
                "the path of a readable PEM file",
            ));
        }
    }
    if given[1] != given[2] {
        let (name, missing) = if given[1] {
            ("sslcert", "sslkey")
        } else {
            ("sslkey", "sslcert")
        };
        problems.push(problem(
            name,
            format!("is given without {missing}"),
            "a client certificate and its key together",
        ));
    }
    if !problems.is_empty() {
        return Err(Error::InvalidSettings(SettingsProblems(problems)));
    }
    if let Some(path) = &settings.sslrootcert {
        options = options.ssl_root_cert(path);
    }
    if let (Some(cert), Some(key)) = (&settings.sslcert, &settings.sslkey) {
        options = options.ssl_client_cert(cert).ssl_client_key(key);
    }
    let root_given = given[0] || std::env::var_os("PGSSLROOTCERT").is_some();
    if matches!(options.get_ssl_mode(), PgSslMode::Require) && root_given {
        options = options.ssl_mode(PgSslMode::VerifyCa);
    }
    Ok(options)
}

/// Connects; under `sslmode=allow`, a plaintext attempt the server refuses
/// is followed by one over TLS, as libpq does.
pub(crate) async fn connect(options: &PgConnectOptions) -> Result<PgConnection, SqlxError> {
    match options.connect().await {
        Err(SqlxError::Database(refused)) if matches!(options.get_ssl_mode(), PgSslMode::Allow) => {
            tracing::debug!(
                target: "pool_runtime::events",
                "sslmode=allow: plaintext refused ({}), trying TLS",
                refused.message()
            );
            options.clone().ssl_mode(PgSslMode::Require).connect().await
        }
        other => other,
    }
}

fn url_param(url: &str, names: &[&str]) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed
        .query_pairs()
        .find(|(k, _)| names.contains(&k.as_ref()))
        .map(|(_, v)| v.into_owned())
}

fn problem(
    setting: &'static str,
    message: String,
    expected: &'static str,
) -> pool_settings::Problem {
    let settings: &'static [&'static str] = match setting {
        "sslrootcert" => &["sslrootcert"],
        "sslcert" => &["sslcert", "sslkey"],
        _ => &["sslkey", "sslcert"],
    };
    pool_settings::Problem {
        settings,
        message,
        expected,
    }
}
