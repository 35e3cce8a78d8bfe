//! libpq-compatible multi-host connections: a URL with several hosts
//! (`postgres://u:pw@h1:5432,h2:5433/db`), `target_session_attrs` and
//! `load_balance_hosts`, so that one URL reaches whichever server is the
//! primary (or a standby) now, as libpq clients do.
//!
//! Three parts: [`url`] cuts the URL into one per host (sqlx takes one
//! host only), [`select`] decides which host is next and what a session
//! check means (no I/O, unit-tested), and [`connect`] here does the I/O.

pub(crate) mod select;
pub(crate) mod url;

pub use select::HostFailure;

/// One failed attempt of a multi-host connect, for
/// [`Error::NoSuitableHost`](crate::Error::NoSuitableHost).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostAttempt {
    /// `host:port` as the URL names it.
    pub host: String,
    /// Why it gave no usable connection.
    pub failure: HostFailure,
    /// Tried in `prefer-standby`'s second pass (any server would do).
    pub second_pass: bool,
}

impl std::fmt::Display for HostAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pass = if self.second_pass {
            " (second pass, any server)"
        } else {
            ""
        };
        write!(f, "{}{pass}: {}", self.host, self.failure)
    }
}

#[cfg(feature = "postgres")]
pub use pg::PgTargets;
#[cfg(feature = "postgres")]
pub(crate) use pg::connect;

#[cfg(feature = "postgres")]
mod pg {
    use std::sync::Arc;
    use std::time::Duration;

    use rand::seq::SliceRandom;
    use sqlx::Connection;
    use sqlx::postgres::{PgConnectOptions, PgConnection};

    use super::HostAttempt;
    use super::select::{Check, HostBook, HostFailure, Selection, Verdict};
    use super::url::{host_urls, query_pairs};
    use crate::{Error, LoadBalanceHosts, PoolSettings, TargetSessionAttrs};

    /// Where a PostgreSQL pool connects: one set of sqlx connect options
    /// per host of the URL, and how to choose among them. Its `Debug`
    /// shows the hosts, not the options (they hold the password).
    #[derive(Clone)]
    pub struct PgTargets {
        hosts: Vec<(PgConnectOptions, String)>,
        target_session_attrs: TargetSessionAttrs,
        load_balance_hosts: LoadBalanceHosts,
        book: Arc<HostBook>,
    }

    impl PgTargets {
        /// Builds the options of every host of `settings.url`; `one` turns
        /// one single-host URL into options (the backend's own rules).
        pub(crate) fn new(
            settings: &PoolSettings,
            one: impl Fn(&str) -> Result<PgConnectOptions, Error>,
        ) -> Result<Self, Error> {
            let raw = settings.url.expose();
            let bad = |reason: String| Error::InvalidUrl {
                url: settings.url.redacted(),
                reason,
            };
            let hosts = host_urls(raw)
                .map_err(bad)?
                .iter()
                .map(|url| one(url))
                .collect::<Result<Vec<_>, _>>()?;
            let host_count = hosts.len();
            let hosts = hosts
                .into_iter()
                .map(|o| {
                    let label = label(&o);
                    (o, label)
                })
                .collect();
            let query = query_pairs(raw);
            Ok(Self {
                hosts,
                target_session_attrs: param(&query, settings.target_session_attrs, &bad)?,
                load_balance_hosts: param(&query, settings.load_balance_hosts, &bad)?,
                book: Arc::new(HostBook::new(host_count)),
            })
        }

        /// Each host's connect options, in the URL's order.
        pub fn hosts(&self) -> impl Iterator<Item = &PgConnectOptions> {
            self.hosts.iter().map(|(o, _)| o)
        }

        /// Each host's `host:port`, in the URL's order.
        pub(crate) fn labels(&self) -> impl Iterator<Item = &str> {
            self.hosts.iter().map(|(_, l)| l.as_str())
        }

        /// The `target_session_attrs` in effect (the URL's, else the setting).
        pub fn target_session_attrs(&self) -> TargetSessionAttrs {
            self.target_session_attrs
        }

        /// The `load_balance_hosts` in effect (the URL's, else the setting).
        pub fn load_balance_hosts(&self) -> LoadBalanceHosts {
            self.load_balance_hosts
        }

        /// Role changes seen by connects: a host the pool's connections
        /// were kept on failed its check (see [`HostBook`]).
        pub(crate) fn role_changes(&self) -> u64 {
            self.book.role_changes()
        }

        /// The most attempts one connect can make.
        pub(crate) fn max_attempts(&self) -> usize {
            Selection::max_attempts(self.target_session_attrs, self.hosts.len())
        }

        /// Applies `f` to every host's options.
        pub(crate) fn map(
            mut self,
            mut f: impl FnMut(PgConnectOptions) -> Result<PgConnectOptions, Error>,
        ) -> Result<Self, Error> {
            for (options, _) in &mut self.hosts {
                *options = f(options.clone())?;
            }
            Ok(self)
        }
    }

    impl std::fmt::Debug for PgTargets {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("PgTargets")
                .field(
                    "hosts",
                    &self.hosts.iter().map(|(_, l)| l).collect::<Vec<_>>(),
                )
                .field("target_session_attrs", &self.target_session_attrs)
                .field("load_balance_hosts", &self.load_balance_hosts)
                .finish()
        }
    }

    /// `host:port`, as an error names a host.
    fn label(options: &PgConnectOptions) -> String {
        let host = options.get_host();
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{}", options.get_port())
        } else {
            format!("{host}:{}", options.get_port())
        }
    }

    /// The URL's value of a parameter this module owns, or the setting's.
    /// The URL wins (it is where libpq users put it, and what a managed
    /// database's console hands out); a setting changed from its default
    /// that the URL contradicts is an error, so neither is ignored silently.
    fn param<T>(
        query: &[(String, String)],
        setting: T,
        bad: &impl Fn(String) -> Error,
    ) -> Result<T, Error>
    where
        T: Copy + Default + PartialEq + std::fmt::Display + std::str::FromStr<Err = String> + Named,
    {
        let Some((_, text)) = query.iter().rev().find(|(k, _)| k == T::NAME) else {
            return Ok(setting);
        };
        let value: T = text.parse().map_err(|expected: String| {
            bad(format!(
                "sets {}={text:?}, which is not {expected}",
                T::NAME
            ))
        })?;
        if setting != T::default() && setting != value {
            return Err(bad(format!(
                "sets {name}={value}, but the {name} setting is {setting}: keep one of them \
                 (the URL's wins over the default, {default})",
                name = T::NAME,
                default = T::default(),
            )));
        }
        Ok(value)
    }

    /// The URL parameter (and setting) name of a type.
    trait Named {
        const NAME: &'static str;
    }
    impl Named for TargetSessionAttrs {
        const NAME: &'static str = "target_session_attrs";
    }
    impl Named for LoadBalanceHosts {
        const NAME: &'static str = "load_balance_hosts";
    }

    /// Opens a connection to the first host (in the URL's order, or
    /// shuffled) that accepts it and passes `target_session_attrs`; every
    /// attempt (connect and check) is bounded by `timeout`. A single host
    /// that cannot be reached fails with the errors a single connect
    /// always had ([`Error::Connect`], [`Error::ConnectTimeout`]).
    pub(crate) async fn connect(
        targets: &PgTargets,
        timeout: Duration,
        url: &str,
    ) -> Result<PgConnection, Error> {
        let attrs = targets.target_session_attrs;
        let mut order: Vec<usize> = (0..targets.hosts.len()).collect();
        if targets.load_balance_hosts == LoadBalanceHosts::Random {
            order.shuffle(&mut rand::rng());
        }
        let order = targets.book.order(order, std::time::Instant::now());
        let mut selection = Selection::new(attrs, order);
        // The driver's own error, for a single host: a refusal of
        // credentials keeps its SQLSTATE (the back-off reads it).
        let mut last_error = None;
        while let Some(i) = selection.next() {
            let options = &targets.hosts[i].0;
            let check = selection.check();
            match tokio::time::timeout(timeout, open_checked(options, check)).await {
                Err(_) => {
                    targets.book.unreachable(i, std::time::Instant::now());
                    selection.failed(HostFailure::TimedOut(timeout));
                }
                Ok(Err(error)) => {
                    // No answer from a server (refused, reset, TLS): tried
                    // last for a while. A server's own refusal (a
                    // SQLSTATE) is an answer.
                    if error.as_database_error().is_none() {
                        targets.book.unreachable(i, std::time::Instant::now());
                    }
                    selection.failed(HostFailure::Failed {
                        reason: crate::error::connect_text(&error),
                        sqlstate: error
                            .as_database_error()
                            .and_then(|e| e.code())
                            .map(|c| c.into_owned()),
                    });
                    last_error = Some(error);
                }
                Ok(Ok((conn, answer))) => match selection.checked(answer) {
                    Verdict::Keep => {
                        if check.sql().is_some() {
                            targets.book.kept(i);
                        } else {
                            targets.book.reached(i);
                        }
                        return Ok(conn);
                    }
                    Verdict::Reject => {
                        if targets.book.rejected(i) {
                            tracing::warn!(
                                target: "pool_runtime::events",
                                host = %targets.hosts[i].1,
                                %attrs,
                                "a host the pool's connections are on now fails the \
                                 target_session_attrs check: replacing them"
                            );
                        } else {
                            tracing::debug!(
                                target: "pool_runtime::events",
                                host = %targets.hosts[i].1,
                                %attrs,
                                "host skipped: it failed the target_session_attrs check"
                            );
                        }
                        // Closed before the next host is tried, so a server
                        // never keeps a session of ours it should not have.
                        drop(tokio::time::timeout(timeout, conn.close()).await);
                    }
                },
            }
        }
        let attempts = selection.into_attempts();
        if let ([only], 1) = (&attempts[..], targets.hosts.len()) {
            match (&only.failure, last_error) {
                (HostFailure::Failed { .. }, Some(source)) => {
                    return Err(Error::Connect {
                        url: url.to_owned(),
                        source,
                    });
                }
                (HostFailure::TimedOut(timeout), _) => {
                    return Err(Error::ConnectTimeout {
                        url: url.to_owned(),
                        timeout: *timeout,
                    });
                }
                _ => {}
            }
        }
        Err(Error::NoSuitableHost {
            url: url.to_owned(),
            target_session_attrs: attrs,
            attempts: attempts
                .into_iter()
                .map(|a| HostAttempt {
                    host: targets.hosts[a.host].1.clone(),
                    failure: a.failure,
                    second_pass: a.second_pass,
                })
                .collect(),
        })
    }

    /// Connects and asks what `check` asks: `Some(true)` for a read-only
    /// session or a server in recovery. The check goes as one
    /// simple-protocol message: nothing prepared (the cache is the
    /// user's), and nothing a pooler in transaction mode could split
    /// between two server connections (as it can a Parse, Sync, Bind).
    async fn open_checked(
        options: &PgConnectOptions,
        check: Check,
    ) -> Result<(PgConnection, Option<bool>), sqlx::Error> {
        use sqlx::Row;
        let mut conn = crate::tls::connect(options).await?;
        let Some(sql) = check.sql() else {
            return Ok((conn, None));
        };
        let row = sqlx::raw_sql(sql).fetch_one(&mut conn).await?;
        let answer = if check == Check::ReadOnly {
            row.try_get::<String, _>(0)? == "on"
        } else {
            row.try_get::<bool, _>(0)?
        };
        Ok((conn, Some(answer)))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn targets(settings: &PoolSettings) -> Result<PgTargets, Error> {
            PgTargets::new(settings, |url| {
                url.parse::<PgConnectOptions>()
                    .map_err(|e| Error::InvalidUrl {
                        url: url.to_owned(),
                        reason: e.to_string(),
                    })
            })
        }

        #[test]
        fn one_options_per_host_and_the_urls_parameters() {
            let s = PoolSettings::new(
                "postgres://u:pw@h1:5432,h2:5433/db?target_session_attrs=read-write&load_balance_hosts=random&application_name=x",
            );
            let t = targets(&s).unwrap();
            let hosts: Vec<_> = t.hosts.iter().map(|(_, l)| l.as_str()).collect();
            assert_eq!(hosts, vec!["h1:5432", "h2:5433"]);
            let o = t.hosts().nth(1).unwrap();
            assert_eq!(o.get_database(), Some("db"));
            assert_eq!(o.get_username(), "u");
            assert_eq!(o.get_application_name(), Some("x"));
            assert_eq!(t.target_session_attrs(), TargetSessionAttrs::ReadWrite);
            assert_eq!(t.load_balance_hosts(), LoadBalanceHosts::Random);
            assert_eq!(t.max_attempts(), 2);
            let shown = format!("{t:?}");
            assert!(
                shown.contains("h2:5433") && !shown.contains("pw"),
                "{shown}"
            );
        }

        #[test]
        fn the_setting_applies_when_the_url_has_none_and_a_contradiction_is_an_error() {
            let mut s = PoolSettings::new("postgres://u:pw@h1,h2/db");
            s.target_session_attrs = TargetSessionAttrs::PreferStandby;
            let t = targets(&s).unwrap();
            assert_eq!(t.target_session_attrs(), TargetSessionAttrs::PreferStandby);
            assert_eq!(t.max_attempts(), 4);
            s.url = "postgres://u:pw@h1,h2/db?target_session_attrs=primary".into();
            let err = targets(&s).unwrap_err().to_string();
            assert_eq!(
                err,
                "invalid pool settings: url postgres://u:***@h1,h2/db?target_session_attrs=primary \
                 sets target_session_attrs=primary, but the target_session_attrs setting is \
                 prefer-standby: keep one of them (the URL's wins over the default, any)"
            );
        }

        #[test]
        fn a_bad_value_names_the_parameter_and_the_allowed_values() {
            let s = PoolSettings::new("postgres://u:hunter2@h1,h2/db?target_session_attrs=master");
            let err = targets(&s).unwrap_err().to_string();
            assert_eq!(
                err,
                "invalid pool settings: url postgres://u:***@h1,h2/db?target_session_attrs=master \
                 sets target_session_attrs=\"master\", which is not one of: any, read-write, \
                 read-only, primary, standby, prefer-standby"
            );
        }
    }
}
