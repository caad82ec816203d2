use std::fmt;
use std::net::IpAddr;

/// The address a request came from, as the edge determined it: the key of the per-address
/// login throttle. Requests whose address cannot be known share one key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientAddress(String);

impl ClientAddress {
    pub fn from_ip(ip: IpAddr) -> Self {
        Self(ip.to_string())
    }

    /// No socket address (e.g. a Unix socket or an in-process test client).
    pub fn unknown() -> Self {
        Self("unknown".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
