//! Client addresses and IP allowlists (IPv4 and IPv6 CIDR).

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (a single-host network).
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from)).map(|n| n.trunc())
}

pub fn allowed(allowlist: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    allowlist.iter().any(|net| net.contains(&ip))
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are treated as the IPv4 address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The client address of a request. `X-Forwarded-For` is believed only when the socket peer is
/// a trusted proxy; then the right-most hop that is not itself a trusted proxy is the client.
/// A malformed header from a trusted proxy falls back to the peer (never to a forged value).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted_proxies: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if trusted_proxies.is_empty() || !allowed(trusted_proxies, peer) {
        return peer;
    }
    let Some(header) = forwarded_for else { return peer };
    let mut hops = Vec::new();
    for part in header.split(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) => hops.push(canonical(ip)),
            Err(_) => return peer,
        }
    }
    hops.into_iter().rev().find(|ip| !allowed(trusted_proxies, *ip)).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn cidrs_of_both_families() {
        let list: Vec<IpNet> =
            ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"].iter().filter_map(|s| parse_cidr(s)).collect();
        assert_eq!(list.len(), 3);
        assert!(allowed(&list, ip("10.1.2.3")));
        assert!(allowed(&list, ip("2001:db8::1")));
        assert!(allowed(&list, ip("192.0.2.7")));
        assert!(allowed(&list, ip("::ffff:10.9.9.9")));
        assert!(!allowed(&list, ip("192.0.2.8")));
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("nonsense").is_none());
    }

    #[test]
    fn forwarded_for_is_ignored_without_trusted_proxies() {
        assert_eq!(client_ip(ip("203.0.113.5"), Some("1.2.3.4"), &[]), ip("203.0.113.5"));
    }

    #[test]
    fn forwarded_for_from_an_untrusted_peer_is_ignored() {
        let trusted = vec![parse_cidr("10.0.0.0/8").expect("cidr")];
        assert_eq!(client_ip(ip("203.0.113.5"), Some("1.2.3.4"), &trusted), ip("203.0.113.5"));
    }

    #[test]
    fn first_untrusted_hop_from_the_right_is_the_client() {
        let trusted = vec![parse_cidr("10.0.0.0/8").expect("cidr")];
        let got = client_ip(ip("10.0.0.1"), Some("6.6.6.6, 198.51.100.9, 10.0.0.2"), &trusted);
        assert_eq!(got, ip("198.51.100.9"));
        assert_eq!(client_ip(ip("10.0.0.1"), Some("garbage"), &trusted), ip("10.0.0.1"));
    }
}
