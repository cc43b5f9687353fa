//! Which addresses a registering host may give: clients are sent there, so an address
//! nobody outside can reach (or one that points into the control plane's own network)
//! would send users to the wrong machine.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether clients on the internet can reach `ip`: not loopback, private, shared
/// (carrier-grade NAT), link-local, unspecified, multicast, broadcast, documentation,
/// benchmarking or reserved space, in IPv4 or IPv6 (an IPv4-mapped IPv6 address is
/// judged as its IPv4 address).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(mapped) => is_public_v4(mapped),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10: shared address space (carrier-grade NAT).
        || (a == 100 && (b & 0xc0) == 64)
        // 192.0.0.0/24: IETF protocol assignments.
        || (a == 192 && b == 0 && c == 0)
        // 198.18.0.0/15: benchmarking.
        || (a == 198 && (b & 0xfe) == 18)
        // 240.0.0.0/4: reserved.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7: unique local.
        || (first & 0xfe00) == 0xfc00
        // fe80::/10: link-local.
        || (first & 0xffc0) == 0xfe80
        // 2001:db8::/32: documentation.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // 64:ff9b:1::/48 and ::/8 other than the cases above: translation and reserved.
        || (first == 0x0064 && ip.segments()[1] == 0xff9b && ip.segments()[2] == 1)
        || first == 0)
}

/// What [`crate::HostService::register`] accepts as a host's address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressRule {
    /// Private and loopback addresses too (local and development fleets, where hosts
    /// and clients share a network). Off by default: production hosts must be public.
    pub allow_private: bool,
}

impl AddressRule {
    /// Why `ip` may not be a host's address, if it may not.
    pub fn refusal(self, ip: IpAddr) -> Option<String> {
        if ip.is_unspecified() || ip.is_multicast() {
            return Some(format!("ip {ip} cannot be a host's address"));
        }
        if !self.allow_private && !is_public(ip) {
            return Some(format!(
                "ip {ip} is not a public address: clients could not reach it (behind a \
                 proxy or an ingress, send the host's public \"ip\" in the body)"
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn public_addresses_are_told_from_the_rest() {
        for public in [
            "3.80.1.2",
            "8.8.8.8",
            "100.128.0.1",
            "2600:1f18::1",
            "::ffff:3.80.1.2",
        ] {
            assert!(is_public(ip(public)), "{public}");
        }
        for other in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip(other)), "{other}");
        }
    }

    #[test]
    fn private_addresses_only_where_allowed() {
        let strict = AddressRule::default();
        let lax = AddressRule {
            allow_private: true,
        };
        assert!(strict.refusal(ip("3.80.1.2")).is_none());
        assert!(
            strict
                .refusal(ip("10.0.0.1"))
                .unwrap()
                .contains("not a public address")
        );
        assert!(lax.refusal(ip("10.0.0.1")).is_none());
        assert!(lax.refusal(ip("127.0.0.1")).is_none());
        assert!(lax.refusal(ip("0.0.0.0")).is_some());
        assert!(lax.refusal(ip("ff02::1")).is_some());
    }
}
