//! Which client a request comes from: the socket peer, or, behind our own proxies, the address
//! the trusted proxy header names a configured number of hops from the right.
//!
//! Each proxy appends the address it saw, so the entries to the right are written by our
//! proxies and anything further left was written by the client (and may be a lie). With
//! `hops` proxies of ours, the entry `hops` from the right is the one the outermost of them
//! wrote: the client's real address. Nothing to its left is ever used.

use std::net::{IpAddr, SocketAddr};

use poem::Request;

use crate::domain::ClientAddress;

/// The client of `req`. `header` is the trusted proxy header, if one is configured (the
/// standard `Forwarded` is parsed as RFC 7239, any other as a comma-separated list such as
/// `X-Forwarded-For`); `hops` counts our proxies (at least 1).
pub fn client_address(req: &Request, header: Option<&str>, hops: usize) -> ClientAddress {
    header
        .and_then(|name| forwarded_ip(req, name, hops))
        .or_else(|| req.remote_addr().as_socket_addr().map(SocketAddr::ip))
        .map_or_else(ClientAddress::unknown, ClientAddress::from_ip)
}

/// The address `hops` entries from the right of every `name` header, in order. `None` — so
/// the socket address counts instead — when there are fewer entries than hops (the request
/// did not come through all our proxies) or the entry there names no address (garbage, or an
/// obfuscated RFC 7239 identifier): skipping to the next entry would trust one the client
/// wrote.
fn forwarded_ip(req: &Request, name: &str, hops: usize) -> Option<IpAddr> {
    let rfc7239 = name.eq_ignore_ascii_case("forwarded");
    let values: Vec<&str> = req
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    let entries: Vec<&str> = values.iter().flat_map(|v| v.split(',')).collect();
    let entry = entries.len().checked_sub(hops).map(|i| entries[i])?;
    if rfc7239 {
        forwarded_for(entry)
    } else {
        parse_node(entry)
    }
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.1;proto=https`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(value))?
    })
}

/// An address as proxies write it: bare, with a port, IPv6 in brackets with or without a
/// port, optionally quoted. Obfuscated (`_hidden`) and `unknown` identifiers name none.
fn parse_node(raw: &str) -> Option<IpAddr> {
    let node = raw.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = node.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    // `[2001:db8::1]` without a port, or with an obfuscated port (`[…]:_p`).
    let inner = node.strip_prefix('[')?.split_once(']')?.0;
    inner.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn via(name: &str, values: &[&str], hops: usize) -> Option<IpAddr> {
        let mut req = Request::builder();
        for v in values {
            req = req.header(name, *v);
        }
        forwarded_ip(&req.finish(), name, hops)
    }

    #[test]
    fn the_entry_hops_from_the_right_counts_and_nothing_left_of_it() {
        let xff = "x-forwarded-for";
        assert_eq!(via(xff, &["1.1.1.1, 2.2.2.2"], 1), ip("2.2.2.2"));
        assert_eq!(via(xff, &["1.1.1.1, 2.2.2.2, 3.3.3.3"], 2), ip("2.2.2.2"));
        assert_eq!(
            via(xff, &["1.1.1.1", "2.2.2.2"], 1),
            ip("2.2.2.2"),
            "lines in order"
        );
        assert_eq!(via(xff, &["2.2.2.2"], 2), None, "fewer entries than hops");
        assert_eq!(
            via(xff, &["1.1.1.1, junk"], 1),
            None,
            "never skips to the left"
        );
        assert_eq!(via(xff, &[], 1), None);
        assert_eq!(via(xff, &["1.1.1.1, 2.2.2.2:4711"], 1), ip("2.2.2.2"));
        assert_eq!(via(xff, &["[2001:db8::1]:4711"], 1), ip("2001:db8::1"));
    }

    #[test]
    fn forwarded_is_parsed_as_rfc_7239() {
        let f = "forwarded";
        assert_eq!(
            via(f, &["for=\"[2001:db8::1]:4711\""], 1),
            ip("2001:db8::1")
        );
        assert_eq!(
            via(
                f,
                &["for=1.1.1.1, for=192.0.2.60;proto=http;by=203.0.113.43"],
                1
            ),
            ip("192.0.2.60")
        );
        assert_eq!(
            via(f, &["proto=https;For=\"192.0.2.1:80\""], 1),
            ip("192.0.2.1")
        );
        assert_eq!(via(f, &["for=\"[2001:db8::1]\""], 1), ip("2001:db8::1"));
        assert_eq!(via(f, &["for=1.1.1.1, for=_hidden"], 1), None, "obfuscated");
        assert_eq!(via(f, &["for=unknown"], 1), None);
        assert_eq!(via(f, &["by=192.0.2.1"], 1), None, "no for=");
        assert_eq!(via(f, &["for=1.1.1.1, for=2.2.2.2"], 2), ip("1.1.1.1"));
    }
}
