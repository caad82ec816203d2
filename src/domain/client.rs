use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Where a request came from, as the edge determined it: the key of the per-client throttles.
/// It is a bucket, not an exact address: an IPv6 client is its /64 (one subscriber gets a
/// whole /64 and can rotate through it), an IPv4 client its address, an IPv4-mapped IPv6
/// address the IPv4 address it maps. Requests whose address cannot be known share one key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientAddress(String);

impl ClientAddress {
    pub fn from_ip(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => Self(v4.to_string()),
            IpAddr::V6(v6) => {
                let [a, b, c, d, ..] = v6.segments();
                Self(format!("{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0)))
            }
        }
    }

    /// No socket address (e.g. a Unix socket or an in-process test client).
    pub fn unknown() -> Self {
        Self("unknown".to_owned())
    }

    /// The trusted proxy entry names no address: one bucket of its own, so a client that
    /// spoils its entry neither picks its bucket nor shares the proxy's.
    pub fn unattributable() -> Self {
        Self("unattributable".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The /56 an IPv6 bucket lies in (a site is commonly given a /56, that is 256 /64s);
    /// `None` for any other bucket. For caps that a site's many /64s must share.
    pub fn site(&self) -> Option<Self> {
        let v6: Ipv6Addr = self.0.strip_suffix("/64")?.parse().ok()?;
        let [a, b, c, d, ..] = v6.segments();
        Some(Self(format!(
            "{}/56",
            Ipv6Addr::new(a, b, c, d & 0xff00, 0, 0, 0, 0)
        )))
    }
}

impl fmt::Debug for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientAddress({})", self.0)
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(ip: &str) -> String {
        ClientAddress::from_ip(ip.parse().unwrap())
            .as_str()
            .to_owned()
    }

    #[test]
    fn ipv6_clients_are_bucketed_by_their_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(bucket("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(bucket("2001:db8:1:2::1"), bucket("2001:db8:1:2:ffff::ffff"));
        assert_ne!(bucket("2001:db8:1:2::1"), bucket("2001:db8:1:3::1"));
        assert_eq!(bucket("198.51.100.7"), "198.51.100.7");
        assert_ne!(bucket("198.51.100.7"), bucket("198.51.100.8"));
        assert_eq!(bucket("::ffff:198.51.100.7"), "198.51.100.7");
        let site = |ip: &str| {
            ClientAddress::from_ip(ip.parse().unwrap())
                .site()
                .map(|s| s.as_str().to_owned())
        };
        assert_eq!(
            site("2001:db8:1:2ff::1").as_deref(),
            Some("2001:db8:1:200::/56")
        );
        assert_eq!(site("2001:db8:1:2ff::1"), site("2001:db8:1:200::9"));
        assert_ne!(site("2001:db8:1:2ff::1"), site("2001:db8:1:300::1"));
        assert_eq!(site("198.51.100.7"), None);
    }
}
