//! The client at the other end of a request, as the server found it.
//!
//! The kit's server puts a [`ClientAddr`] on every request (the TCP peer, or what
//! `CLIENT_IP_HEADER` says behind proxies, [`ClientIpHeader`]), grouped into the client's
//! network ([`ClientNetworks`]); a stream hands it to the registry, which caps the streams one
//! client may hold. The exact address rides along as [`ClientIp`], for logs.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

use axum::http::{HeaderMap, HeaderName, header::InvalidHeaderName};

/// The client, on every request, as every per-client limit counts it: the network of its
/// address (the TCP peer's, or what `CLIENT_IP_HEADER` says), grouped by [`ClientNetworks`].
///
/// A network, not an address: one IPv6 host is handed a whole /64 and can send from any of
/// its 2⁶⁴ addresses, so a limit keyed on the exact address would limit nothing. Anything
/// that counts per client (streams, connections, requests) keys on this value, so they all
/// group alike (the action rate limits keep a bucket per client, [`crate::rate_limit`]). The
/// exact address is [`ClientIp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

/// The client's exact address, on every request beside [`ClientAddr`]: for logs, never for
/// counting (see [`ClientAddr`] for why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// How addresses are grouped into the networks per-client limits count (`CLIENT_IPV4_PREFIX`,
/// `CLIENT_IPV6_PREFIX`): the address with every bit past the prefix cleared.
///
/// The defaults are what one subscriber is given: one IPv4 address, one IPv6 /64 (the
/// smallest prefix a network hands out, which SLAAC needs). An IPv4 address written as IPv6
/// (`::ffff:192.0.2.7`, how a dual-stack socket reports an IPv4 peer) is an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientNetworks {
    /// Bits of an IPv4 address that name the client (1 to 32). Default 32: every address is a
    /// client of its own.
    pub ipv4_prefix: u8,
    /// Bits of an IPv6 address that name the client (1 to 128). Default 64.
    pub ipv6_prefix: u8,
}

impl Default for ClientNetworks {
    fn default() -> Self {
        ClientNetworks {
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        }
    }
}

impl ClientNetworks {
    /// The network `ip` belongs to: its first `ipv4_prefix` or `ipv6_prefix` bits, the rest
    /// cleared. (A prefix beyond the address's length keeps it whole.)
    pub fn network(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.ipv4_prefix.min(32)));
                IpAddr::V4(Ipv4Addr::from_bits(v4.to_bits() & mask.unwrap_or(0)))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.ipv6_prefix.min(128)));
                IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask.unwrap_or(0)))
            }
        }
    }

    /// The [`ClientAddr`] of a client at `ip`.
    pub fn client(&self, ip: IpAddr) -> ClientAddr {
        ClientAddr(self.network(ip))
    }
}

/// Where the client's address is, behind proxies you trust (`CLIENT_IP_HEADER`,
/// `CLIENT_IP_HOPS`).
///
/// Each proxy adds the address it sees to the header (`X-Forwarded-For`): merged into the one
/// line it passes on (nginx's `$proxy_add_x_forwarded_for`, Caddy, most load balancers), or as
/// a line of its own after the lines it received (HAProxy's `option forwardfor`). Whatever came
/// before the first trusted proxy's address came from the client, which can send any lines and
/// addresses it likes. So the addresses are read across every line, in order, and the client's
/// is the one `hops` from the end: with one proxy the last, behind a load balancer and nginx
/// the one before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIpHeader {
    /// The header (lower case), e.g. `x-forwarded-for` or `x-real-ip`.
    pub name: HeaderName,
    /// How many proxies in front of the app each add an address (at least 1).
    pub hops: usize,
}

impl From<HeaderName> for ClientIpHeader {
    /// `name`, behind one proxy.
    fn from(name: HeaderName) -> Self {
        ClientIpHeader { name, hops: 1 }
    }
}

impl FromStr for ClientIpHeader {
    type Err = InvalidHeaderName;

    /// The header called `name` (any case), behind one proxy.
    fn from_str(name: &str) -> Result<Self, InvalidHeaderName> {
        Ok(HeaderName::from_str(&name.to_ascii_lowercase())?.into())
    }
}

impl ClientIpHeader {
    /// The client's address in `headers`: the address `hops` from the end, across every line
    /// of the header. `None` (use the TCP peer's) when the header has fewer addresses than
    /// that, or that one is not an address: the request did not come through every proxy.
    pub fn client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let hops = self.hops.max(1);
        headers
            .get_all(&self.name)
            .iter()
            .rev()
            .flat_map(|line| match line.to_str() {
                Ok(text) => text.rsplit(',').map(Some).collect(),
                // Not text at all: one entry, and not an address.
                Err(_) => vec![None],
            })
            .nth(hops - 1)
            .flatten()
            .and_then(address)
    }
}

/// One entry of a forwarding header: `192.0.2.7`, `2001:db8::1`, with a port
/// (`192.0.2.7:4711`, `[2001:db8::1]:4711`), or the standard `Forwarded` header's
/// `for=192.0.2.7;proto=https` (quoted or not).
fn address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let entry = match entry
        .split(';')
        .find_map(|part| part.trim().strip_prefix("for="))
    {
        Some(value) => value.trim_matches('"'),
        None => entry,
    };
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    fn behind(hops: usize) -> ClientIpHeader {
        ClientIpHeader {
            name: HeaderName::from_static("x-forwarded-for"),
            hops,
        }
    }

    const SEEN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7));

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_are_their_64_and_ipv4_clients_their_address() {
        let networks = ClientNetworks::default();
        for (address, network) in [
            ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"),
            ("2001:db8:1:2::1", "2001:db8:1:2::"),
            ("2001:db8:1:3::1", "2001:db8:1:3::"),
            ("::1", "::"),
            ("192.0.2.7", "192.0.2.7"),
            // An IPv4 peer of a dual-stack socket counts as that IPv4 address.
            ("::ffff:192.0.2.7", "192.0.2.7"),
        ] {
            assert_eq!(networks.network(ip(address)), ip(network), "{address}");
        }
        assert_eq!(
            networks.client(ip("2001:db8:1:2::1")),
            networks.client(ip("2001:db8:1:2:ffff::9")),
            "one /64, one client"
        );
        assert_ne!(
            networks.client(ip("2001:db8:1:2::1")),
            networks.client(ip("2001:db8:1:3::1"))
        );
        assert_ne!(
            networks.client(ip("192.0.2.7")),
            networks.client(ip("192.0.2.8"))
        );
    }

    #[test]
    fn the_prefixes_are_settings_from_one_bit_to_the_whole_address() {
        let wide = ClientNetworks {
            ipv4_prefix: 24,
            ipv6_prefix: 48,
        };
        assert_eq!(wide.network(ip("192.0.2.7")), ip("192.0.2.0"));
        assert_eq!(wide.network(ip("::ffff:192.0.2.7")), ip("192.0.2.0"));
        assert_eq!(wide.network(ip("2001:db8:1:2::1")), ip("2001:db8:1::"));
        let exact = ClientNetworks {
            ipv4_prefix: 32,
            ipv6_prefix: 128,
        };
        assert_eq!(exact.network(ip("2001:db8::7")), ip("2001:db8::7"));
        let one = ClientNetworks {
            ipv4_prefix: 1,
            ipv6_prefix: 1,
        };
        assert_eq!(one.network(ip("192.0.2.7")), ip("128.0.0.0"));
        assert_eq!(one.network(ip("ffff::1")), ip("8000::"));
    }

    #[test]
    fn the_client_is_the_last_address_the_proxy_added_whatever_the_lines() {
        for lines in [
            &["6.6.6.6, 10.0.0.7"][..],
            &["6.6.6.6", "10.0.0.7"],
            &["6.6.6.6, 5.5.5.5", "4.4.4.4", "10.0.0.7"],
            &["garbage", "10.0.0.7"],
            &["10.0.0.7"],
        ] {
            assert_eq!(behind(1).client(&headers(lines)), Some(SEEN), "{lines:?}");
        }
        assert_eq!(behind(1).client(&headers(&[])), None, "no header");
        assert_eq!(behind(1).client(&headers(&["10.0.0.7", "garbage"])), None);
        assert_eq!(behind(1).client(&headers(&["10.0.0.7, "])), None);
    }

    #[test]
    fn behind_two_proxies_the_client_is_the_address_before_the_last() {
        for lines in [
            &["6.6.6.6, 10.0.0.7, 192.168.1.2"][..],
            &["6.6.6.6", "10.0.0.7, 192.168.1.2"],
            &["6.6.6.6, 10.0.0.7", "192.168.1.2"],
            &["10.0.0.7", "192.168.1.2"],
        ] {
            assert_eq!(behind(2).client(&headers(lines)), Some(SEEN), "{lines:?}");
        }
        // Not through both proxies: there is no telling who the client is.
        assert_eq!(behind(2).client(&headers(&["192.168.1.2"])), None);
    }

    #[test]
    fn addresses_come_with_ports_brackets_or_as_forwarded_parameters() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        for (entry, expected) in [
            ("10.0.0.7", Some(SEEN)),
            (" 10.0.0.7 ", Some(SEEN)),
            ("10.0.0.7:4711", Some(SEEN)),
            ("2001:db8::1", Some(v6)),
            ("[2001:db8::1]", Some(v6)),
            ("[2001:db8::1]:4711", Some(v6)),
            ("for=10.0.0.7;proto=https", Some(SEEN)),
            ("proto=https;for=\"[2001:db8::1]:4711\"", Some(v6)),
            ("unknown", None),
            ("", None),
            ("10.0.0.256", None),
        ] {
            assert_eq!(address(entry), expected, "{entry:?}");
        }
    }
}
