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

/// The three files: the setting, the URL parameters sqlx reads for it
/// (libpq's name first), and the settings a problem with it names.
struct File {
    params: &'static [&'static str],
    involves: &'static [&'static str],
}

const ROOT_CERT: File = File {
    params: &["sslrootcert", "ssl-root-cert", "ssl-ca"],
    involves: &["sslrootcert"],
};
const CERT: File = File {
    params: &["sslcert", "ssl-cert"],
    involves: &["sslcert", "sslkey"],
};
const KEY: File = File {
    params: &["sslkey", "ssl-key"],
    involves: &["sslkey", "sslcert"],
};

/// Applies `sslrootcert`, `sslcert`, `sslkey` and libpq's `require` rule;
/// says which file is missing or unpaired before any connect. A setting
/// wins over the URL's parameter, each file on its own.
pub(crate) fn apply(
    mut options: PgConnectOptions,
    settings: &PoolSettings,
) -> Result<PgConnectOptions, Error> {
    // Multi-host URLs too (the `url` crate refuses their host list).
    let query = crate::hosts::url::query_pairs(settings.url.expose());
    let path_of = |file: &File, setting: &Option<String>| {
        setting.clone().or_else(|| {
            query
                .iter()
                .find(|(k, _)| file.params.contains(&k.as_str()))
                .map(|(_, v)| v.clone())
        })
    };
    let root = path_of(&ROOT_CERT, &settings.sslrootcert);
    let cert = path_of(&CERT, &settings.sslcert);
    let key = path_of(&KEY, &settings.sslkey);
    let mut problems = Vec::new();
    for (file, path) in [(&ROOT_CERT, &root), (&CERT, &cert), (&KEY, &key)] {
        if let Some(path) = path
            && !Path::new(path).is_file()
        {
            problems.push(problem(
                file,
                format!("file {path} does not exist or is not a file"),
                "the path of a readable PEM file",
            ));
        }
    }
    match (&cert, &key) {
        (Some(_), None) => problems.push(problem(
            &CERT,
            "is given without sslkey".into(),
            "a client certificate and its key together",
        )),
        (None, Some(_)) => problems.push(problem(
            &KEY,
            "is given without sslcert".into(),
            "a client certificate and its key together",
        )),
        _ => {}
    }
    if !problems.is_empty() {
        return Err(Error::InvalidSettings(SettingsProblems(problems)));
    }
    if let Some(path) = &settings.sslrootcert {
        options = options.ssl_root_cert(path);
    }
    if let Some(path) = &settings.sslcert {
        options = options.ssl_client_cert(path);
    }
    if let Some(path) = &settings.sslkey {
        options = options.ssl_client_key(path);
    }
    let root_given = root.is_some() || std::env::var_os("PGSSLROOTCERT").is_some();
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

fn problem(file: &File, message: String, expected: &'static str) -> pool_settings::Problem {
    pool_settings::Problem {
        settings: file.involves,
        message,
        expected,
    }
}
