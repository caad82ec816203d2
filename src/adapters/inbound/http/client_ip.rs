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
        .and_then(|name| forwarded_client(req, name, hops))
        .or_else(|| {
            req.remote_addr()
                .as_socket_addr()
                .map(|a| ClientAddress::from_ip(a.ip()))
        })
        .unwrap_or_else(ClientAddress::unknown)
}

/// The client `hops` entries from the right of every `name` header, in order. `None` — so
/// the socket address counts instead — when there are fewer entries than hops (the request
/// did not come through all our proxies). An entry there that names no address (garbage, an
/// obfuscated RFC 7239 identifier) is the unattributable bucket: skipping to the next entry
/// would trust one the client wrote, and the socket address is our proxy's, shared by all.
///
/// The lines are read as bytes: the client's own entry may hold any byte, and only the entry
/// at the trusted position (written by our proxy, so ASCII) has to be text.
fn forwarded_client(req: &Request, name: &str, hops: usize) -> Option<ClientAddress> {
    let rfc7239 = name.eq_ignore_ascii_case("forwarded");
    let headers = req.headers().get_all(name);
    let entries: Vec<&[u8]> = headers
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .collect();
    let entry = entries.len().checked_sub(hops).map(|i| entries[i])?;
    let ip = std::str::from_utf8(entry).ok().and_then(|entry| {
        if rfc7239 {
            forwarded_for(entry)
        } else {
            parse_node(entry)
        }
    });
    Some(ip.map_or_else(ClientAddress::unattributable, ClientAddress::from_ip))
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
    use poem::http::HeaderValue;
    use poem::web::RemoteAddr;
    use poem::{Addr, Body, RequestParts};

    use super::*;

    fn ip(s: &str) -> Option<ClientAddress> {
        Some(ClientAddress::from_ip(s.parse().unwrap()))
    }

    fn none() -> Option<ClientAddress> {
        Some(ClientAddress::unattributable())
    }

    fn request<V: AsRef<[u8]>>(name: &str, values: &[V]) -> Request {
        let mut req = Request::builder();
        for v in values {
            req = req.header(name, HeaderValue::from_bytes(v.as_ref()).unwrap());
        }
        req.finish()
    }

    fn via<V: AsRef<[u8]>>(name: &str, values: &[V], hops: usize) -> Option<ClientAddress> {
        forwarded_client(&request(name, values), name, hops)
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
            none(),
            "never skips to the left"
        );
        assert_eq!(via::<&str>(xff, &[], 1), None);
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
        assert_eq!(
            via(f, &["for=1.1.1.1, for=_hidden"], 1),
            none(),
            "obfuscated"
        );
        assert_eq!(via(f, &["for=unknown"], 1), none());
        assert_eq!(via(f, &["by=192.0.2.1"], 1), none(), "no for=");
        assert_eq!(via(f, &["for=1.1.1.1, for=2.2.2.2"], 2), ip("1.1.1.1"));
    }

    #[test]
    fn a_non_ascii_byte_left_of_the_trusted_entry_changes_nothing() {
        let xff = "x-forwarded-for";
        assert_eq!(via(xff, &[&b"9.9.9.9\xff, 5.6.7.8"[..]], 1), ip("5.6.7.8"));
        assert_eq!(
            via(xff, &[&b"\xfe\xff"[..], b"1.1.1.1, 5.6.7.8"], 1),
            ip("5.6.7.8"),
            "in an earlier line"
        );
        assert_eq!(
            via(xff, &[&b"5.6.7.8\xff"[..]], 1),
            none(),
            "at the trusted position"
        );
    }

    #[test]
    fn an_entry_naming_no_address_is_unattributable_never_the_socket_address() {
        let (parts, ()) = poem::http::Request::builder()
            .header("x-forwarded-for", "garbage, _hidden")
            .body(())
            .unwrap()
            .into_parts();
        let socket: std::net::SocketAddr = "192.0.2.9:4711".parse().unwrap();
        let parts = RequestParts::from((
            parts,
            Default::default(),
            RemoteAddr(Addr::from(socket)),
            poem::http::uri::Scheme::HTTP,
        ));
        let req = Request::from_parts(parts, Body::empty());
        assert_eq!(
            client_address(&req, Some("X-Forwarded-For"), 1),
            ClientAddress::unattributable()
        );
        assert_eq!(
            client_address(&req, Some("X-Forwarded-For"), 3),
            ClientAddress::from_ip(socket.ip()),
            "fewer entries than hops: the socket address"
        );
        assert_eq!(
            client_address(&req, None, 1),
            ClientAddress::from_ip(socket.ip())
        );
    }
}
