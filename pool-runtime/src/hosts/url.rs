//! libpq's multi-host URLs (`postgres://u:pw@h1:5432,h2:5433/db?…`) taken
//! apart by hand: neither sqlx nor the `url` crate accepts a comma-separated
//! host list (the `url` crate reads `5432,h2:5433` as a bad port). Each host
//! becomes an ordinary single-host URL with the same user, database and
//! parameters, which sqlx parses as it always did.

/// A URL cut around its host list.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HostList<'a> {
    /// Everything before the hosts: `postgres://u:pw@`.
    head: &'a str,
    /// The hosts as written: `h1:5432`, `[::1]:5433`.
    pub hosts: Vec<&'a str>,
    /// Everything after: `/db?…#…`.
    tail: &'a str,
}

impl<'a> HostList<'a> {
    /// Cuts `url`; `None` when it has no `scheme://` (not for us to judge:
    /// the caller's parser says what is wrong with it).
    pub(crate) fn parse(url: &'a str) -> Result<Option<Self>, String> {
        let Some(scheme_end) = url.find("://") else {
            return Ok(None);
        };
        let start = scheme_end + 3;
        let rest = &url[start..];
        let end = rest.find(['/', '?', '#']).map_or(url.len(), |i| start + i);
        let authority = &url[start..end];
        let host_start = authority.rfind('@').map_or(start, |at| start + at + 1);
        let hosts: Vec<&str> = url[host_start..end].split(',').collect();
        if hosts.len() > 1 && hosts.iter().any(|h| h.trim().is_empty()) {
            return Err("has an empty entry in its host list (h1:5432,h2:5433)".to_owned());
        }
        Ok(Some(Self {
            head: &url[..host_start],
            hosts,
            tail: &url[end..],
        }))
    }

    /// More than one host.
    pub(crate) fn is_multi(&self) -> bool {
        self.hosts.len() > 1
    }

    /// The URL with `host` alone in place of the list, and the parameters
    /// named in `drop` left out.
    pub(crate) fn url_for(&self, host: &str, drop: &[&str]) -> String {
        let (path, query, fragment) = split_tail(self.tail);
        let mut url = format!("{}{host}{path}", self.head);
        if let Some(query) = query {
            let kept: Vec<(String, String)> = ::url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .filter(|(k, _)| !drop.contains(&k.as_str()))
                .collect();
            if kept.len() == ::url::form_urlencoded::parse(query.as_bytes()).count() {
                url.push('?');
                url.push_str(query);
            } else if !kept.is_empty() {
                url.push('?');
                url.push_str(
                    &::url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(kept)
                        .finish(),
                );
            }
        }
        if let Some(fragment) = fragment {
            url.push('#');
            url.push_str(fragment);
        }
        url
    }

    /// The URL with `hosts` (`h1:5432,h2:5433`) in place of its own list.
    pub(crate) fn with_hosts(&self, hosts: &str) -> String {
        format!("{}{}{}", self.head, hosts.trim(), self.tail)
    }

    /// The host list, for putting back into a URL rewritten whole.
    pub(crate) fn joined(&self) -> String {
        self.hosts.join(",")
    }
}

/// `/db?a=b#f` into its path, query and fragment.
fn split_tail(tail: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, fragment) = match tail.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (tail, None),
    };
    match rest.split_once('?') {
        Some((path, query)) => (path, Some(query), fragment),
        None => (rest, None, fragment),
    }
}

/// The parameters the pool reads itself; sqlx does not know them (it
/// warns about each unknown one), so they are left out of the URL each
/// host's options are parsed from.
pub(crate) const OWN_PARAMS: &[&str] = &["target_session_attrs", "load_balance_hosts"];

/// One single-host URL per host of `url`, in its order, without
/// [`OWN_PARAMS`]; `url` itself when it has no `scheme://`.
pub(crate) fn host_urls(url: &str) -> Result<Vec<String>, String> {
    Ok(match HostList::parse(url)? {
        Some(list) => list
            .hosts
            .iter()
            .map(|host| list.url_for(host, OWN_PARAMS))
            .collect(),
        None => vec![url.to_owned()],
    })
}

/// Whether `url` parses as a URL, each host of a multi-host URL on its own.
pub(crate) fn parse_check(url: &str) -> Result<(), ::url::ParseError> {
    match HostList::parse(url) {
        Ok(Some(list)) if list.is_multi() => list
            .hosts
            .iter()
            .try_for_each(|host| ::url::Url::parse(&list.url_for(host, &[])).map(drop)),
        _ => ::url::Url::parse(url).map(drop),
    }
}

/// The URL's query parameters, decoded, multi-host or not.
pub(crate) fn query_pairs(url: &str) -> Vec<(String, String)> {
    let tail = match HostList::parse(url) {
        Ok(Some(list)) => list.tail,
        _ => return Vec::new(),
    };
    match split_tail(tail).1 {
        Some(query) => ::url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_list_becomes_one_url_per_host() {
        let url = "postgres://u:p%40ss@h1:5432,h2:5433/db?target_session_attrs=read-write&sslmode=disable";
        let list = HostList::parse(url).unwrap().unwrap();
        assert_eq!(list.hosts, vec!["h1:5432", "h2:5433"]);
        assert!(list.is_multi());
        assert_eq!(
            list.url_for("h2:5433", &["target_session_attrs"]),
            "postgres://u:p%40ss@h2:5433/db?sslmode=disable"
        );
        assert_eq!(
            list.url_for("h1:5432", &[]),
            "postgres://u:p%40ss@h1:5432/db?target_session_attrs=read-write&sslmode=disable"
        );
    }

    #[test]
    fn odd_shapes() {
        let list = HostList::parse("postgres://[::1]:5432,db.example:6432")
            .unwrap()
            .unwrap();
        assert_eq!(list.hosts, vec!["[::1]:5432", "db.example:6432"]);
        assert_eq!(list.url_for("[::1]:5432", &[]), "postgres://[::1]:5432");
        let one = HostList::parse("postgresql://app@db/app?x=1#f")
            .unwrap()
            .unwrap();
        assert!(!one.is_multi());
        assert_eq!(one.url_for("db", &["x"]), "postgresql://app@db/app#f");
        assert!(HostList::parse("postgres://h1,,h2/db").is_err());
        assert_eq!(HostList::parse("not a url").unwrap(), None);
    }

    #[test]
    fn query_pairs_of_a_multi_host_url() {
        assert_eq!(
            query_pairs("postgres://u:pw@h1,h2/db?load_balance_hosts=random&a=%20b"),
            vec![
                ("load_balance_hosts".to_owned(), "random".to_owned()),
                ("a".to_owned(), " b".to_owned())
            ]
        );
        assert!(query_pairs("postgres://h/db").is_empty());
    }
}
