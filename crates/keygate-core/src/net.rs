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

/// The client address of a request: see `crate::forwarded`.
pub use crate::forwarded::{UNKNOWN_CLIENT, client_ip};

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
}
