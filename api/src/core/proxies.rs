//! Which client a request comes from when it came through a proxy: the
//! `X-Forwarded-For` header is believed only from the networks named in
//! `SORI_TRUSTED_PROXIES` (the load balancer's), and read from the right,
//! skipping trusted hops, so a client cannot choose its own address by
//! sending the header itself.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The networks whose `X-Forwarded-For` is believed. Empty (the default):
/// none, every client is the TCP peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// An entry of `SORI_TRUSTED_PROXIES` that is neither an address nor a CIDR network.
#[derive(Debug, thiserror::Error)]
#[error("not an IP address or CIDR network (e.g. 10.0.0.0/8, fd00::/8): {0:?}")]
pub struct BadNetwork(String);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR networks.
    pub fn parse(list: &str) -> Result<Self, BadNetwork> {
        let nets = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| BadNetwork(s.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the TCP `peer` unless it is trusted; then the
    /// rightmost `X-Forwarded-For` entry that is not itself trusted (the
    /// leftmost when all are). An unreadable entry stops the walk at the
    /// last trusted hop, as anything left of it may be forged.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        canonical(client)
    }
}

/// An `X-Forwarded-For` entry: an address, maybe with a port (`[v6]:port`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_peers_are_believed() {
        let none = TrustedProxies::default();
        let lb = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        let h = headers(&["203.0.113.9"]);
        assert_eq!(none.client(ip("10.1.2.3"), &h), ip("10.1.2.3"));
        assert_eq!(lb.client(ip("10.1.2.3"), &h), ip("203.0.113.9"));
        assert_eq!(lb.client(ip("127.0.0.1"), &h), ip("203.0.113.9"));
        // A client outside the trusted networks cannot claim an address.
        assert_eq!(lb.client(ip("198.51.100.4"), &h), ip("198.51.100.4"));
        // No header: the proxy itself.
        assert_eq!(lb.client(ip("10.1.2.3"), &HeaderMap::new()), ip("10.1.2.3"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let lb = TrustedProxies::parse("10.0.0.0/8,fd00::/8").unwrap();
        // The client forged the first entry; the proxy appended the real one.
        let h = headers(&["1.2.3.4, 203.0.113.9, 10.0.0.5"]);
        assert_eq!(lb.client(ip("10.0.0.6"), &h), ip("203.0.113.9"));
        // Several header lines count as one list, in order.
        let h = headers(&["1.2.3.4", "203.0.113.9", "fd00::1"]);
        assert_eq!(lb.client(ip("fd00::2"), &h), ip("203.0.113.9"));
        // Ports and IPv4-mapped addresses.
        let h = headers(&["[2001:db8::7]:443"]);
        assert_eq!(lb.client(ip("10.0.0.6"), &h), ip("2001:db8::7"));
        let h = headers(&["::ffff:203.0.113.9"]);
        assert_eq!(lb.client(ip("::ffff:10.0.0.6"), &h), ip("203.0.113.9"));
        // Garbage stops the walk at the last trusted hop.
        let h = headers(&["203.0.113.9, garbage, 10.0.0.5"]);
        assert_eq!(lb.client(ip("10.0.0.6"), &h), ip("10.0.0.5"));
        // All trusted: the leftmost.
        let h = headers(&["10.0.0.1, 10.0.0.2"]);
        assert_eq!(lb.client(ip("10.0.0.3"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn bad_entries_are_named() {
        let e = TrustedProxies::parse("10.0.0.0/8, lb.internal").unwrap_err();
        assert!(e.to_string().contains("lb.internal"), "{e}");
        assert_eq!(
            TrustedProxies::parse(" , ").unwrap(),
            TrustedProxies::default()
        );
    }
}
