//! The client address behind trusted proxies, from `X-Forwarded-For` and `Forwarded`
//! (RFC 7239), read across every field line of each. The rule and its reasons are in
//! docs/api.md ("Client address").
//!
//! Each header is one list of hops, oldest first: its field lines in order, each line's
//! elements in order (a proxy that appends a line of its own, as HAProxy does, adds to the
//! right like one that extends the last line). Read from the right, every hop up to and
//! including the first one not in `trusted_proxies` was written by a trusted proxy; that first
//! untrusted hop is the client. Anything further left was written by the client and is never
//! believed. The walk runs left to right with a constant-size state (no allocation), giving
//! the same answer as the right-to-left reading.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::net::{allowed, canonical};

/// The client address when the two headers name different clients: which header the trusted
/// proxies write cannot be told, and the client may write the other. In no allowlist that
/// restricts anything (only `0.0.0.0/0` holds it), not loopback (so throttled like any
/// address), and recognisable in `last_used_ip` and the audit log.
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The client address of a request that came from `peer`. `X-Forwarded-For` and `Forwarded`
/// (their field lines, in order) are read only when `peer` is one of `trusted`; with an empty
/// `trusted` neither iterator is touched.
pub fn client_ip<'a>(
    peer: IpAddr,
    trusted: &[IpNet],
    x_forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    forwarded: impl IntoIterator<Item = &'a [u8]>,
) -> IpAddr {
    let peer = canonical(peer);
    if trusted.is_empty() || !allowed(trusted, peer) {
        return peer;
    }
    let mut xff = Walk::new(trusted);
    for line in x_forwarded_for {
        match std::str::from_utf8(line) {
            Ok(line) => line.split(',').map(str::trim).filter(|e| !e.is_empty()).for_each(|e| xff.push(parse_node(e))),
            Err(_) => xff.push(None),
        }
    }
    let mut fwd = Walk::new(trusted);
    for line in forwarded {
        match std::str::from_utf8(line) {
            Ok(line) => Unquoted::new(line, b',').filter(|e| !e.trim().is_empty()).for_each(|e| fwd.push(for_node(e))),
            Err(_) => fwd.push(None),
        }
    }
    combine(xff.finish(peer), fwd.finish(peer), peer)
}

/// What one header says, read from the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Not sent (or only empty elements).
    Absent,
    /// The first hop not in `trusted_proxies`.
    Client(IpAddr),
    /// Every hop is a trusted proxy: the leftmost of them (a client inside the trusted
    /// network, or a chain the other header continues).
    AllTrusted(IpAddr),
    /// A hop written by a trusted proxy is not an address (`unknown`, an obfuscated name,
    /// garbage): the last address a trusted party vouched for, i.e. the hop right of it
    /// (the peer when it is the rightmost).
    Stopped(IpAddr),
}

fn combine(xff: Outcome, fwd: Outcome, peer: IpAddr) -> IpAddr {
    use Outcome::*;
    match (xff, fwd) {
        (Absent, Absent) => peer,
        (Absent, one) | (one, Absent) => one.address(),
        (Client(a), Client(b)) if a == b => a,
        // One header ends among trusted proxies, the other goes on: a chain whose proxies
        // wrote different headers, or a client that listed only trusted addresses (it gains
        // nothing: the other header decides).
        (Client(a), AllTrusted(_)) | (AllTrusted(_), Client(a)) => a,
        // Two clients, or a client against a header a trusted proxy left unreadable: one of
        // them may be the client's own invention.
        (Client(_), _) | (_, Client(_)) => UNKNOWN_CLIENT,
        // Neither names a client: both are trusted addresses.
        (a, b) if a.address() == b.address() => a.address(),
        _ => peer,
    }
}

impl Outcome {
    fn address(self) -> IpAddr {
        match self {
            Outcome::Client(a) | Outcome::AllTrusted(a) | Outcome::Stopped(a) => a,
            Outcome::Absent => UNKNOWN_CLIENT,
        }
    }
}

/// The right-to-left reading of one header, computed left to right.
struct Walk<'t> {
    trusted: &'t [IpNet],
    state: State,
}

#[derive(Clone, Copy)]
enum State {
    Empty,
    Client(IpAddr),
    AllTrusted {
        leftmost: IpAddr,
    },
    /// The rightmost unreadable hop so far, and the trusted hop right of it once one comes.
    Stopped {
        right_of_it: Option<IpAddr>,
    },
}

impl<'t> Walk<'t> {
    fn new(trusted: &'t [IpNet]) -> Self {
        Walk { trusted, state: State::Empty }
    }

    /// The next hop to the right (`None`: not an address).
    fn push(&mut self, hop: Option<IpAddr>) {
        self.state = match (hop, self.state) {
            (None, _) => State::Stopped { right_of_it: None },
            (Some(ip), _) if !allowed(self.trusted, ip) => State::Client(ip),
            (Some(ip), State::Empty) => State::AllTrusted { leftmost: ip },
            (Some(ip), State::Stopped { right_of_it: None }) => State::Stopped { right_of_it: Some(ip) },
            // A trusted hop right of a decided prefix changes nothing.
            (Some(_), kept) => kept,
        };
    }

    fn finish(self, peer: IpAddr) -> Outcome {
        match self.state {
            State::Empty => Outcome::Absent,
            State::Client(ip) => Outcome::Client(ip),
            State::AllTrusted { leftmost } => Outcome::AllTrusted(leftmost),
            State::Stopped { right_of_it } => Outcome::Stopped(right_of_it.unwrap_or(peer)),
        }
    }
}

/// A hop: `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`, `192.0.2.1:4711`, `[2001:db8::1]:4711`
/// (RFC 7239 nodes; some proxies write ports into `X-Forwarded-For` too). `None` for
/// `unknown`, obfuscated identifiers (`_hidden`) and anything else.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let ip = inner.parse::<Ipv6Addr>().ok()?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(valid_port);
        return port_ok.then(|| canonical(IpAddr::V6(ip)));
    }
    let (host, port) = s.rsplit_once(':')?;
    let ip = host.parse::<Ipv4Addr>().ok()?;
    valid_port(port).then_some(IpAddr::V4(ip))
}

/// RFC 7239 `node-port`: 1–5 digits, or an obfuscated `_name`.
fn valid_port(p: &str) -> bool {
    let digits = (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    let obfuscated = p.len() > 1
        && p.starts_with('_')
        && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    digits || obfuscated
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.60;proto=http;by=203.0.113.43`).
/// `None` when the element has no `for`, has it twice, or is malformed.
fn for_node(element: &str) -> Option<IpAddr> {
    let mut node = None;
    for pair in Unquoted::new(element, b';') {
        let (name, value) = pair.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            if node.is_some() {
                return None;
            }
            node = Some(value.trim());
        }
    }
    let value = node?;
    let value = match value.strip_prefix('"') {
        // An address never needs a quoted-pair (`\`).
        Some(quoted) => quoted.strip_suffix('"').filter(|v| !v.contains(['"', '\\']))?,
        None => value,
    };
    parse_node(value)
}

/// Splits at `sep` outside RFC 9110 quoted strings (which may contain it, and `\"`).
struct Unquoted<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Unquoted<'a> {
    fn new(s: &'a str, sep: u8) -> Self {
        Unquoted { rest: Some(s), sep }
    }
}

impl<'a> Iterator for Unquoted<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, b) in s.bytes().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                _ if b == self.sep && !quoted => {
                    // `sep` is ASCII, so `i` and `i + 1` are character boundaries.
                    self.rest = Some(&s[i + 1..]);
                    return Some(&s[..i]);
                }
                _ => {}
            }
        }
        self.rest = None;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::parse_cidr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn trusted() -> Vec<IpNet> {
        ["10.0.0.0/8", "2001:db8:ffff::/48"].iter().filter_map(|s| parse_cidr(s)).collect()
    }

    const LB: &str = "10.0.0.1";

    /// The client behind the trusted peer `LB`, given its headers' field lines.
    fn client(xff: &[&str], fwd: &[&str]) -> IpAddr {
        client_ip(ip(LB), &trusted(), xff.iter().map(|l| l.as_bytes()), fwd.iter().map(|l| l.as_bytes()))
    }

    #[test]
    fn nothing_is_read_without_trusted_proxies_or_from_an_untrusted_peer() {
        let forged: [&[u8]; 1] = [b"1.2.3.4"];
        assert_eq!(client_ip(ip("203.0.113.5"), &[], forged, forged), ip("203.0.113.5"));
        assert_eq!(client_ip(ip("203.0.113.5"), &trusted(), forged, forged), ip("203.0.113.5"));
        assert_eq!(client(&[], &[]), ip(LB), "a trusted peer that says nothing is the client");
    }

    #[test]
    fn the_rightmost_untrusted_hop_across_every_line_is_the_client() {
        assert_eq!(client(&["6.6.6.6, 198.51.100.9, 10.0.0.2"], &[]), ip("198.51.100.9"));
        // HAProxy's `option forwardfor` appends a line: the client's own first line is forged.
        assert_eq!(client(&["6.6.6.6", "198.51.100.9"], &[]), ip("198.51.100.9"));
        assert_eq!(client(&["6.6.6.6, 10.0.0.9", "198.51.100.9, 10.0.0.3"], &[]), ip("198.51.100.9"));
        assert_eq!(client(&["198.51.100.9", "10.0.0.3", ""], &[]), ip("198.51.100.9"), "empty lines are nothing");
        assert_eq!(client(&["10.0.0.7, 10.0.0.3"], &[]), ip("10.0.0.7"), "all trusted: the leftmost");
    }

    #[test]
    fn ipv6_and_ports_in_either_header() {
        assert_eq!(client(&["2001:db8::17"], &[]), ip("2001:db8::17"));
        assert_eq!(client(&["[2001:db8::17]:4711, 2001:db8:ffff::1"], &[]), ip("2001:db8::17"));
        assert_eq!(client(&["192.0.2.43:47011"], &[]), ip("192.0.2.43"));
        assert_eq!(client(&["::ffff:192.0.2.43"], &[]), ip("192.0.2.43"), "v4-mapped is IPv4");
        assert_eq!(client(&[], &[r#"for="[2001:db8:cafe::17]:4711""#]), ip("2001:db8:cafe::17"));
        assert_eq!(client(&[], &[r#"For="[2001:db8:cafe::17]""#]), ip("2001:db8:cafe::17"));
        assert_eq!(client(&[], &[r#"for="192.0.2.43:_hidden";proto=https"#]), ip("192.0.2.43"));
    }

    #[test]
    fn forwarded_elements_params_and_lines() {
        let got = client(&[], &["for=6.6.6.6", "for=192.0.2.60;proto=http;by=203.0.113.43, for=10.0.0.2"]);
        assert_eq!(got, ip("192.0.2.60"));
        let quoted_comma = r#"for=6.6.6.6, proto=https;ext="a, b;c";for=192.0.2.60"#;
        assert_eq!(client(&[], &[quoted_comma]), ip("192.0.2.60"), "a comma inside quotes splits nothing");
    }

    #[test]
    fn garbage_written_by_a_trusted_proxy_stops_at_the_last_trusted_address() {
        assert_eq!(client(&["198.51.100.9, garbage"], &[]), ip(LB), "the peer wrote it");
        assert_eq!(client(&["198.51.100.9, unknown, 10.0.0.2"], &[]), ip("10.0.0.2"));
        assert_eq!(client(&[], &["for=unknown"]), ip(LB));
        assert_eq!(client(&[], &["for=_hidden, for=10.0.0.2"]), ip("10.0.0.2"));
        assert_eq!(client(&[], &["proto=https"]), ip(LB), "an element without `for` names nobody");
        assert_eq!(client(&[], &["for=1.2.3.4;for=5.6.7.8"]), ip(LB), "`for` twice");
        assert_eq!(client(&[], &["for=\"192.0.2.1"]), ip(LB), "unterminated quote");
        assert_eq!(client(&[], &["for=2001:db8::1:80:x"]), ip(LB));
        assert_eq!(client(&["[2001:db8::1]:123456"], &[]), ip(LB), "a port is at most 5 digits");
        assert_eq!(client_ip(ip(LB), &trusted(), [&b"\xff\xfe"[..]], []), ip(LB), "not UTF-8");
        // Garbage left of the client is the client's own: it changes nothing.
        assert_eq!(client(&["garbage", "198.51.100.9"], &[]), ip("198.51.100.9"));
        assert_eq!(client(&[], &["for=unknown, for=192.0.2.60"]), ip("192.0.2.60"));
    }

    #[test]
    fn both_headers_agree_or_one_continues_the_other() {
        assert_eq!(client(&["198.51.100.9"], &["for=198.51.100.9"]), ip("198.51.100.9"));
        // A proxy writing X-Forwarded-For, the client adding a `Forwarded` of trusted hops.
        assert_eq!(client(&["198.51.100.9"], &["for=10.0.0.5"]), ip("198.51.100.9"));
        // A proxy writing `Forwarded`, an `X-Forwarded-For` from a trusted hop before it.
        assert_eq!(client(&["10.0.0.5"], &["for=198.51.100.9"]), ip("198.51.100.9"));
        assert_eq!(client(&["10.0.0.5"], &["for=10.0.0.5"]), ip("10.0.0.5"));
        assert_eq!(client(&["10.0.0.5"], &["for=10.0.0.6"]), ip(LB), "two trusted answers: the peer");
    }

    #[test]
    fn a_forged_header_of_the_other_kind_never_wins() {
        // The proxy writes X-Forwarded-For; the client forges `Forwarded`, or the reverse.
        assert_eq!(client(&["198.51.100.9"], &["for=6.6.6.6"]), UNKNOWN_CLIENT);
        assert_eq!(client(&["6.6.6.6"], &["for=198.51.100.9"]), UNKNOWN_CLIENT);
        // Garbage in the forged header does not make the client a trusted proxy either.
        assert_eq!(client(&["198.51.100.9"], &["for=unknown"]), UNKNOWN_CLIENT);
        assert_eq!(client(&["garbage"], &["for=198.51.100.9"]), UNKNOWN_CLIENT);
        assert!(!UNKNOWN_CLIENT.is_loopback());
        assert!(!allowed(&[parse_cidr("10.0.0.0/8").expect("cidr")], UNKNOWN_CLIENT));
    }

    #[test]
    fn unquoted_splitting() {
        let parts: Vec<_> = Unquoted::new(r#"a="x,\"y,",b,,c"#, b',').collect();
        assert_eq!(parts, [r#"a="x,\"y,""#, "b", "", "c"]);
    }
}
