//! Which `Host` the service answers. A DNS-rebinding page on another name reaches a local
//! instance with its own name in both `Host` and `Origin`; refusing names that are not ours
//! keeps such a page from reading any answer.

use poem::http::header;
use poem::Request;

/// One accepted name: any port, or exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostName {
    name: String,
    port: Option<u16>,
}

/// The names built once at start-up; a check is a few case-insensitive compares.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    /// `localhost`, `127.0.0.1` and `[::1]` on any port.
    loopback: bool,
    names: Vec<HostName>,
}

const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// `host[:port]` split, with an IPv6 literal kept in its brackets; `None` when malformed.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (name, rest) = authority.split_at(end + 1);
        match rest {
            "" => (name, None),
            _ => (name, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (authority, None),
        }
    };
    if name.is_empty() {
        return None;
    }
    match port {
        None => Some((name, None)),
        Some(p) => Some((name, Some(p.parse().ok()?))),
    }
}

/// The authority of `scheme://authority/path`.
fn authority_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

impl AllowedHosts {
    /// The `PUBLIC_URL`'s host, the `ALLOWED_HOSTS` entries, the bound address when it is one
    /// specific IP, and the loopback names when `loopback` (bound to loopback, or no name is
    /// configured in `dev`).
    pub fn new(
        loopback: bool,
        bind_host: &str,
        public_url: Option<&str>,
        listed: &[String],
    ) -> Self {
        let mut names = Vec::new();
        let mut add = |authority: &str| {
            if let Some((name, port)) = split_authority(authority.trim()) {
                names.push(HostName {
                    name: name.to_ascii_lowercase(),
                    port,
                });
            }
        };
        if let Some(authority) = public_url.and_then(authority_of) {
            add(authority);
        }
        for entry in listed {
            add(entry);
        }
        // A page cannot make a browser send an IP literal as Host for its own name, so the
        // one bound address is safe to answer.
        if let Ok(ip) = bind_host.parse::<std::net::IpAddr>() {
            if !ip.is_unspecified() {
                match ip {
                    std::net::IpAddr::V4(v4) => add(&v4.to_string()),
                    std::net::IpAddr::V6(v6) => add(&format!("[{v6}]")),
                }
            }
        }
        Self { loopback, names }
    }

    /// Whether any name besides loopback is configured.
    pub fn has_names(&self) -> bool {
        !self.names.is_empty()
    }

    /// Whether `authority` (a `Host` value) names this service.
    pub fn permits(&self, authority: &str) -> bool {
        let Some((name, port)) = split_authority(authority) else {
            return false;
        };
        (self.loopback && LOOPBACK_NAMES.iter().any(|l| l.eq_ignore_ascii_case(name)))
            || self
                .names
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case(name) && (h.port.is_none() || h.port == port))
    }

    /// The request's `Host` (and the URI's authority, as HTTP/2 and absolute-form requests
    /// carry it) are ours. No `Host` at all is accepted: browsers always send one.
    pub fn permits_request(&self, req: &Request) -> bool {
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let host_ok = match (hosts.next(), hosts.next()) {
            (None, _) => true,
            (Some(h), None) => h.to_str().is_ok_and(|h| self.permits(h)),
            (Some(_), Some(_)) => false,
        };
        host_ok
            && req
                .uri()
                .authority()
                .is_none_or(|a| self.permits(a.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_split_into_name_and_port() {
        assert_eq!(split_authority("a.example"), Some(("a.example", None)));
        assert_eq!(
            split_authority("a.example:80"),
            Some(("a.example", Some(80)))
        );
        assert_eq!(split_authority("[::1]:8000"), Some(("[::1]", Some(8000))));
        assert_eq!(split_authority("[::1]"), Some(("[::1]", None)));
        for bad in ["", ":80", "a:b", "a:99999", "[::1", "[::1]x", "a:1:2"] {
            assert_eq!(split_authority(bad), None, "{bad}");
        }
        assert_eq!(
            authority_of("https://a.example:8443/x"),
            Some("a.example:8443")
        );
        assert_eq!(authority_of("https://a.example"), Some("a.example"));
    }

    #[test]
    fn only_our_names_are_permitted() {
        let listed = [
            "auth.example.com".to_owned(),
            "auth.internal:8000".to_owned(),
        ];
        let hosts = AllowedHosts::new(false, "0.0.0.0", Some("https://pub.example/"), &listed);
        for ok in [
            "pub.example",
            "PUB.example:443",
            "auth.example.com:1",
            "auth.internal:8000",
        ] {
            assert!(hosts.permits(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "auth.internal:9000",
            "auth.internal",
            "localhost",
        ] {
            assert!(!hosts.permits(refused), "{refused}");
        }
        let local = AllowedHosts::new(true, "127.0.0.1", None, &[]);
        for ok in ["localhost:1234", "127.0.0.1", "[::1]:9", "LOCALHOST"] {
            assert!(local.permits(ok), "{ok}");
        }
        assert!(!local.permits("evil.example:8000"));
        assert!(!local.permits("localhost.evil.example"));
        let bound = AllowedHosts::new(false, "10.0.0.5", None, &[]);
        assert!(bound.permits("10.0.0.5:8000") && !bound.permits("10.0.0.6"));
    }
}
