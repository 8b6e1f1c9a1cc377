//! Which address a login attempt comes from, for the per-address login limit.
//!
//! The TCP peer is the client unless the console sits behind a proxy: then every peer is
//! the proxy, and one shared per-address limit would let 20 failures lock everybody out.
//! With `--trusted-proxy` naming the proxies, a request whose peer is one of them is
//! attributed to the right-most `X-Forwarded-For` hop that is not a trusted proxy. Only
//! hops appended by trusted proxies count: anything to their left was written by the client
//! and could name any address, so the walk from the right stops at the first untrusted hop.
//! Without `--trusted-proxy`, `X-Forwarded-For` is ignored (anyone could send it).

use std::net::IpAddr;
use std::str::FromStr;

/// A `--trusted-proxy`: one address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix: u8,
}

/// Why a `--trusted-proxy` value was refused.
#[derive(Debug, thiserror::Error)]
#[error("--trusted-proxy {value:?}: {why} (expected an IP address or a CIDR block such as 10.0.0.0/8 or fd00::/8)")]
pub struct TrustedProxyError {
    value: String,
    why: &'static str,
}

impl FromStr for TrustedProxy {
    type Err = TrustedProxyError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = |why| TrustedProxyError {
            value: raw.to_string(),
            why,
        };
        let (addr, prefix) = match raw.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (raw.trim(), None),
        };
        let network = canonical(addr.parse().map_err(|_| bad("not an IP address"))?);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                bad("the prefix length is not a number within the address's bits")
            })?,
        };
        Ok(Self { network, prefix })
    }
}

impl TrustedProxy {
    /// True when `addr` is in this block.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, canonical(addr)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                same_prefix(&net.octets(), &a.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                same_prefix(&net.octets(), &a.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[whole] & mask == b[whole] & mask
}

/// An IPv4-mapped IPv6 address as IPv4, so `10.0.0.0/8` matches `::ffff:10.1.2.3`.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: `peer` itself unless it is a trusted proxy; then the right-most hop
/// of `forwarded_for` (the `X-Forwarded-For` values in order) that is not a trusted proxy,
/// the left-most hop when all are, and `peer` when there are none or the hop to use is not an
/// address.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[TrustedProxy],
) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |addr: IpAddr| trusted.iter().any(|p| p.contains(addr));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(addr) = hop.parse::<IpAddr>().map(canonical) else {
            return peer;
        };
        client = addr;
        if !is_trusted(addr) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn a_trusted_proxy_is_an_address_or_a_block_and_a_bad_one_is_named() {
        let block: TrustedProxy = "10.0.0.0/8".parse().unwrap();
        let one: TrustedProxy = "127.0.0.1".parse().unwrap();
        let v6: TrustedProxy = "fd00::/8".parse().unwrap();

        assert!(block.contains(ip("10.200.3.4")) && !block.contains(ip("11.0.0.1")));
        assert!(block.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!("10.0.0.0/12"
            .parse::<TrustedProxy>()
            .unwrap()
            .contains(ip("10.15.255.255")));
        assert!(!"10.0.0.0/12"
            .parse::<TrustedProxy>()
            .unwrap()
            .contains(ip("10.16.0.0")));
        for bad in ["proxy", "10.0.0.0/33", "10.0.0.0/x", "::1/129", ""] {
            let err = bad.parse::<TrustedProxy>().unwrap_err().to_string();
            assert!(
                err.contains("--trusted-proxy") && err.contains(bad),
                "{err}"
            );
        }
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() {
        let got = client_address(ip("192.0.2.7"), ["203.0.113.9"], &[]);
        assert_eq!(got, ip("192.0.2.7"));
        let untrusted_peer =
            client_address(ip("192.0.2.7"), ["203.0.113.9"], &proxies(&["10.0.0.0/8"]));
        assert_eq!(untrusted_peer, ip("192.0.2.7"));
    }

    #[test]
    fn behind_trusted_proxies_the_client_is_the_right_most_untrusted_hop() {
        let trusted = proxies(&["127.0.0.1", "10.0.0.0/8"]);

        // The client wrote a fake first hop; the proxies appended the real one and themselves.
        let chain = client_address(
            ip("127.0.0.1"),
            ["6.6.6.6, 198.51.100.4", "10.1.1.1"],
            &trusted,
        );
        assert_eq!(chain, ip("198.51.100.4"));
        let spaced = client_address(ip("10.0.0.5"), [" 198.51.100.4 "], &trusted);
        assert_eq!(spaced, ip("198.51.100.4"));
        let all_trusted = client_address(ip("127.0.0.1"), ["10.0.0.9, 10.0.0.8"], &trusted);
        assert_eq!(all_trusted, ip("10.0.0.9"));
        let no_header = client_address(ip("127.0.0.1"), [], &trusted);
        assert_eq!(no_header, ip("127.0.0.1"));
        let garbage = client_address(ip("127.0.0.1"), ["1.2.3.4, not-an-address"], &trusted);
        assert_eq!(garbage, ip("127.0.0.1"));
    }
}
