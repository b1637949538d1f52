//! Who the client is (README: Configuration walk-through, `client_ip`). Only peers in
//! `client_ip.trusted_proxies` may tell us (through X-Forwarded-For or the client-IP
//! header); from anyone else those headers are ignored and the TCP peer is the client.
//!
//! Several `X-Forwarded-For` field lines are one list, combined in order (RFC 9110
//! §5.3): the client is found across all of them. Per-IP counting (connection caps,
//! rate-limit keys) groups IPv6 clients by `ipv6_prefix` (`ClientGrouping`).

use crate::config::{header_name, ConfigErrors};
use crate::http_util::tokens;
use crate::http_util::{Cidr, Scheme};
use crate::policy::headers::X_FORWARDED_FOR;
use http::HeaderName;
use pingora::proxy::Session;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The `client_ip` section as the operator wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ClientIpConfig {
    /// Set on every upstream request to the client IP as Parapet determined it.
    pub(crate) header: String,
    /// Peers (CIDR or single address) allowed to supply X-Forwarded-For and `header`.
    pub(crate) trusted_proxies: Vec<String>,
    /// IPv6 clients in one block of this prefix length count as one client.
    pub(crate) ipv6_prefix: u32,
}

impl Default for ClientIpConfig {
    fn default() -> Self {
        ClientIpConfig {
            header: "X-Real-IP".into(),
            trusted_proxies: Vec::new(),
            ipv6_prefix: ClientGrouping::DEFAULT_IPV6_PREFIX,
        }
    }
}

/// How the client is told apart from the proxies in front of Parapet.
#[derive(Debug, Clone)]
pub(crate) struct ClientIpPolicy {
    /// Carries the client IP upstream, and from a trusted peer, downstream to us.
    pub(crate) header: HeaderName,
    pub(crate) trusted: Vec<Cidr>,
    /// What per-IP caps and rate limits count as one client.
    pub(crate) grouping: ClientGrouping,
}

/// What per-IP counting takes for one client: an IPv4 address (IPv4-mapped IPv6
/// included) as it is, an IPv6 address as its block of `ipv6_prefix` bits, so that
/// one subscriber rotating through its allocation (a /64 is the usual one, RFC 6177)
/// is still one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientGrouping {
    /// The network bits kept of an IPv6 address (the rest are zeroed).
    ipv6_mask: u128,
}

impl ClientGrouping {
    pub(crate) const DEFAULT_IPV6_PREFIX: u32 = 64;

    /// `prefix` is 1..=128 (as `ClientIpPolicy::from_config` checks); 128 keeps
    /// every address apart.
    pub(crate) fn new(ipv6_prefix: u32) -> ClientGrouping {
        let host_bits = 128 - ipv6_prefix.clamp(1, 128);
        ClientGrouping {
            ipv6_mask: u128::MAX << host_bits,
        }
    }

    /// The address `ip` is counted under (an IPv4-mapped IPv6 one: its IPv4 address).
    pub(crate) fn group(self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & self.ipv6_mask)),
            v4 => v4,
        }
    }
}

impl Default for ClientGrouping {
    fn default() -> Self {
        ClientGrouping::new(ClientGrouping::DEFAULT_IPV6_PREFIX)
    }
}

/// What the request path learned about the client at the start of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client {
    /// The TCP peer.
    pub(crate) peer: IpAddr,
    /// The client as Parapet determined it (the peer, unless a trusted proxy said).
    pub(crate) ip: IpAddr,
    /// The peer is a trusted proxy: its forwarding headers are kept and extended.
    pub(crate) trusted_peer: bool,
    pub(crate) scheme: Scheme,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            peer: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            trusted_peer: false,
            scheme: Scheme::Http,
        }
    }
}

impl ClientIpPolicy {
    pub(crate) fn from_config(config: ClientIpConfig, errors: &mut ConfigErrors) -> Option<Self> {
        let trusted = config
            .trusted_proxies
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                Cidr::parse(text)
                    .map_err(|m| errors.push(format!("client_ip.trusted_proxies[{i}]"), m))
                    .ok()
            })
            .collect();
        if !(1..=128).contains(&config.ipv6_prefix) {
            let msg = format!(
                "must be from 1 to 128 (bits of an IPv6 address that name one client; default 64), not {}",
                config.ipv6_prefix
            );
            errors.push("client_ip.ipv6_prefix", msg);
        }
        Some(ClientIpPolicy {
            header: header_name(&config.header, "client_ip.header", errors)?,
            trusted,
            grouping: ClientGrouping::new(config.ipv6_prefix),
        })
    }

    /// The client of the request on `session`.
    pub(crate) fn resolve(&self, session: &Session) -> Client {
        let scheme = Scheme::of(session);
        let Some(peer) = session.client_addr().and_then(|a| a.as_inet()) else {
            return Client {
                scheme,
                ..Client::default()
            };
        };
        let peer = peer.ip();
        let headers = &session.req_header().headers;
        Client {
            peer,
            ip: client_ip(
                &self.trusted,
                peer,
                headers.get(&self.header).map(|v| v.as_bytes()),
                headers
                    .get_all(&X_FORWARDED_FOR)
                    .iter()
                    .map(|v| v.as_bytes()),
            ),
            trusted_peer: is_trusted(&self.trusted, peer),
            scheme,
        }
    }
}

pub(crate) fn is_trusted(trusted: &[Cidr], peer: IpAddr) -> bool {
    trusted.iter().any(|c| c.contains(peer))
}

/// The client IP for a request from `peer`. From a trusted peer, the client-IP
/// header wins, then the right-most X-Forwarded-For entry that is not itself a
/// trusted proxy (as nginx's `real_ip_recursive`); otherwise the peer.
/// `forwarded_for` are the X-Forwarded-For field lines in order: one list (RFC 9110
/// §5.3), walked from its last entry.
pub(crate) fn client_ip<'a>(
    trusted: &[Cidr],
    peer: IpAddr,
    real_ip_header: Option<&[u8]>,
    forwarded_for: impl DoubleEndedIterator<Item = &'a [u8]>,
) -> IpAddr {
    if !is_trusted(trusted, peer) {
        return peer;
    }
    if let Some(ip) = real_ip_header.and_then(parse_ip) {
        return ip;
    }
    let mut client = peer;
    // RFC 9110 §5.6.1: empty list elements do not count.
    let hops = forwarded_for.rev().flat_map(|line| tokens(line).rev());
    for hop in hops {
        match parse_ip(hop) {
            Some(ip) => {
                client = ip;
                if !is_trusted(trusted, ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

fn parse_ip(raw: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(raw).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let xff = [&b"8.8.8.8"[..]];
        let got = client_ip(&trusted, ip("1.2.3.4"), Some(b"9.9.9.9"), xff.into_iter());
        assert_eq!(got, ip("1.2.3.4"));
    }

    #[test]
    fn trusted_peer_forwards_the_client() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let peer = ip("10.0.0.1");
        assert_eq!(
            client_ip(&trusted, peer, Some(b"9.9.9.9"), lines(&[])),
            ip("9.9.9.9")
        );
        let xff = ["6.6.6.6, 7.7.7.7, 10.0.0.2"];
        assert_eq!(client_ip(&trusted, peer, None, lines(&xff)), ip("7.7.7.7"));
        let garbage = ["garbage"];
        assert_eq!(client_ip(&trusted, peer, None, lines(&garbage)), peer);
        assert_eq!(client_ip(&trusted, peer, None, lines(&[])), peer);
    }

    fn lines<'a>(values: &'a [&'a str]) -> impl DoubleEndedIterator<Item = &'a [u8]> {
        values.iter().map(|v| v.as_bytes())
    }

    #[test]
    fn several_forwarded_for_lines_are_one_list() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let peer = ip("10.0.0.1");
        let xff = ["1.1.1.1", "2.2.2.2"];
        assert_eq!(client_ip(&trusted, peer, None, lines(&xff)), ip("2.2.2.2"));
        let xff = ["1.1.1.1, 3.3.3.3", "10.0.0.9, 10.0.0.8"];
        assert_eq!(client_ip(&trusted, peer, None, lines(&xff)), ip("3.3.3.3"));
        // Empty elements and lines do not end the walk (RFC 9110 §5.6.1).
        let xff = ["4.4.4.4, ,", "", " 10.0.0.9 ,"];
        assert_eq!(client_ip(&trusted, peer, None, lines(&xff)), ip("4.4.4.4"));
    }

    #[test]
    fn ipv6_clients_are_grouped_by_prefix() {
        let by_64 = ClientGrouping::default();
        assert_eq!(by_64.group(ip("2001:db8::1")), ip("2001:db8::"));
        assert_eq!(by_64.group(ip("2001:db8::ffff:1:2:3")), ip("2001:db8::"));
        assert_eq!(by_64.group(ip("2001:db8:0:1::1")), ip("2001:db8:0:1::"));
        // IPv4 stays whole; IPv4-mapped IPv6 is its IPv4 address.
        assert_eq!(by_64.group(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(by_64.group(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        let whole = ClientGrouping::new(128);
        assert_eq!(whole.group(ip("2001:db8::1")), ip("2001:db8::1"));
        assert_eq!(ClientGrouping::new(1).group(ip("ffff::1")), ip("8000::"));
        assert_eq!(
            ClientGrouping::new(48).group(ip("2001:db8:1:2::")),
            ip("2001:db8:1::")
        );
    }

    #[test]
    fn the_section_is_validated_with_field_paths() {
        let mut errors = ConfigErrors::default();
        let config = ClientIpConfig {
            header: "X Real".into(),
            trusted_proxies: vec!["10.0.0.0/8".into(), "ten".into()],
            ipv6_prefix: 129,
        };
        assert!(ClientIpPolicy::from_config(config, &mut errors).is_none());
        let paths = errors.paths();
        assert_eq!(
            paths,
            [
                "client_ip.trusted_proxies[1]",
                "client_ip.ipv6_prefix",
                "client_ip.header"
            ]
        );

        let mut errors = ConfigErrors::default();
        let policy = ClientIpPolicy::from_config(ClientIpConfig::default(), &mut errors).unwrap();
        assert_eq!(policy.header, "x-real-ip");
        assert!(policy.trusted.is_empty() && errors.errors.is_empty());
        assert_eq!(policy.grouping, ClientGrouping::new(64));
    }
}
