//! Who a request comes from, for the rate limit (SPEC §5 step 2).

use std::net::IpAddr;

/// A client's address, as the rate limit counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    /// The client of a request from `peer`. Behind `trusted_hops` proxies that append to
    /// `X-Forwarded-For` (`forwarded_for`, the header's values in order), it is the
    /// `trusted_hops`-th address from the right: the one the outermost trusted proxy saw,
    /// never one the client wrote itself. With fewer addresses than hops it is the
    /// leftmost; without the header, or with an address that does not parse there, the
    /// peer.
    pub fn of(peer: IpAddr, forwarded_for: &[&str], trusted_hops: u32) -> Self {
        if trusted_hops == 0 {
            return Self(peer);
        }
        let addresses: Vec<&str> = forwarded_for
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|address| !address.is_empty())
            .collect();
        let hops = usize::try_from(trusted_hops).unwrap_or(usize::MAX);
        let index = addresses.len().saturating_sub(hops);
        let chosen = addresses.get(index).and_then(|address| parse(address));
        Self(chosen.unwrap_or(peer))
    }

    pub fn ip(&self) -> IpAddr {
        self.0
    }

    /// The key the rate limit counts under: the address, or for IPv6 its /64 (one
    /// subscriber's network), so rotating addresses within it escapes nothing.
    pub fn rate_key(&self) -> String {
        match self.0 {
            IpAddr::V4(ip) => format!("assign:{ip}"),
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => format!("assign:{v4}"),
                None => {
                    let s = ip.segments();
                    format!("assign:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }
}

/// An address as proxies write it: bare, `[v6]`, or either with a port.
fn parse(address: &str) -> Option<IpAddr> {
    if let Ok(ip) = address.parse() {
        return Some(ip);
    }
    if let Ok(socket) = address.parse::<std::net::SocketAddr>() {
        return Some(socket.ip());
    }
    address
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse().ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const PEER: &str = "10.0.0.9";

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let client = ClientAddress::of(ip(PEER), &["6.6.6.6"], 0);
        assert_eq!(client.ip(), ip(PEER));
    }

    #[test]
    fn the_nth_address_from_the_right_is_the_client() {
        // The client wrote "6.6.6.6"; proxy 1 appended what it saw, proxy 2 likewise.
        let header = ["6.6.6.6, 203.0.113.7", "198.51.100.2"];
        assert_eq!(
            ClientAddress::of(ip(PEER), &header, 1).ip(),
            ip("198.51.100.2")
        );
        assert_eq!(
            ClientAddress::of(ip(PEER), &header, 2).ip(),
            ip("203.0.113.7")
        );
        // Whatever a client writes to the left changes nothing.
        for forged in ["1.1.1.1", "2.2.2.2, 3.3.3.3"] {
            let header = [forged, "203.0.113.7", "198.51.100.2"];
            assert_eq!(
                ClientAddress::of(ip(PEER), &header, 2).ip(),
                ip("203.0.113.7")
            );
        }
    }

    #[test]
    fn short_or_broken_headers_fall_back() {
        assert_eq!(ClientAddress::of(ip(PEER), &[], 1).ip(), ip(PEER));
        assert_eq!(
            ClientAddress::of(ip(PEER), &["203.0.113.7"], 3).ip(),
            ip("203.0.113.7")
        );
        assert_eq!(ClientAddress::of(ip(PEER), &["garbage"], 1).ip(), ip(PEER));
        assert_eq!(
            ClientAddress::of(ip(PEER), &["[2001:db8::1]:443"], 1).ip(),
            ip("2001:db8::1")
        );
        assert_eq!(
            ClientAddress::of(ip(PEER), &["203.0.113.7:5555"], 1).ip(),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn ipv6_clients_count_per_slash_64() {
        let a = ClientAddress::of(ip("2001:db8:1:2:aaaa::1"), &[], 0);
        let b = ClientAddress::of(ip("2001:db8:1:2:ffff:1:2:3"), &[], 0);
        let other = ClientAddress::of(ip("2001:db8:1:3::1"), &[], 0);
        assert_eq!(a.rate_key(), b.rate_key());
        assert_ne!(a.rate_key(), other.rate_key());
        assert_eq!(
            ClientAddress::of(ip("::ffff:198.51.100.2"), &[], 0).rate_key(),
            "assign:198.51.100.2"
        );
    }
}
