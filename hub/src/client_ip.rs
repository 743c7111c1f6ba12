//! Which address a request came from: the TCP peer, or what a trusted reverse proxy in front of the hub says.
//!
//! Forwarding headers are written by whoever sends the request, so they only count when the peer is one of the
//! configured `trusted_proxies`. A trusted peer is asked, in order: `CF-Connecting-IP`, `X-Real-IP`, then
//! `X-Forwarded-For` read from the right, where each trusted proxy appended the address it saw: the first hop
//! that is not a trusted proxy is the client. Anything unreadable falls through to the next rule and finally to
//! the peer. A trusted proxy must therefore set or strip `CF-Connecting-IP` and `X-Real-IP` itself, or a client
//! could choose its own address through them.
//!
//! The address is used in memory only: it never appears in an error or a log line from here.

use actix_web::http::header::{HeaderMap, HeaderName};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
}

impl TrustedProxies {
    /// Entries are CIDR networks or single addresses, IPv4 or IPv6; empty entries are skipped. An empty list trusts
    /// nobody.
    pub fn parse(cidrs: &[String]) -> Result<Self, String> {
        let mut networks = Vec::with_capacity(cidrs.len());
        for entry in cidrs {
            let text = entry.trim();
            if text.is_empty() {
                continue;
            }
            let net = match text.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match text.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => {
                        return Err(format!("{text:?} is neither an IP address nor a CIDR network (like 10.0.0.0/8)"));
                    }
                },
            };
            networks.push(unmap_network(net));
        }
        Ok(Self { networks })
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|net| net.contains(&ip))
    }

    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        single(headers, &CF_CONNECTING_IP)
            .or_else(|| single(headers, &X_REAL_IP))
            .or_else(|| self.forwarded_for_client(headers))
            .unwrap_or(peer)
    }

    fn forwarded_for_client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        // Several header lines form one list, in order (RFC 9110 section 5.3).
        let values: Vec<&str> = headers.get_all(&X_FORWARDED_FOR).filter_map(|v| v.to_str().ok()).collect();
        let mut innermost_trusted = None;
        for hop in values.iter().rev().flat_map(|v| v.rsplit(',')) {
            if hop.trim().is_empty() {
                continue;
            }
            // An unreadable hop was written by someone untrusted (trusted proxies write addresses), and nothing to
            // its left can be believed either.
            let ip = parse_ip(hop)?;
            if !self.trusts(ip) {
                return Some(ip);
            }
            innermost_trusted = Some(ip);
        }
        // Every hop was a trusted proxy: the request started inside the operator's own network.
        innermost_trusted
    }
}

// Header names as constants: a lookup by `&str` parses the name on every request.
const CF_CONNECTING_IP: HeaderName = HeaderName::from_static("cf-connecting-ip");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

fn single(headers: &HeaderMap, name: &HeaderName) -> Option<IpAddr> {
    headers.get(name).and_then(|v| v.to_str().ok()).and_then(parse_ip)
}

/// An address as proxies write it: bare, or with a port (`1.2.3.4:80`, `[2001:db8::1]:443`), or in brackets.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| text.strip_prefix('[')?.strip_suffix(']')?.parse::<IpAddr>().ok())?;
    Some(ip.to_canonical())
}

/// `::ffff:10.0.0.0/104` is written as `10.0.0.0/8`, since addresses are compared in their canonical form.
fn unmap_network(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).map(|n| n.trunc()).unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_accepts_networks_and_single_addresses_of_both_versions() {
        let p = proxies(&["10.0.0.0/8", "192.168.1.7", " 2001:db8::/32 ", "::1", "", "172.16.5.9/12"]);
        assert!(p.trusts(ip("10.200.0.1")));
        assert!(p.trusts(ip("192.168.1.7")));
        assert!(!p.trusts(ip("192.168.1.8")));
        assert!(p.trusts(ip("2001:db8:ffff::1")));
        assert!(p.trusts(ip("::1")));
        assert!(p.trusts(ip("172.31.0.1")), "host bits in a CIDR are ignored");
        assert!(!p.trusts(ip("11.0.0.1")));
    }

    #[test]
    fn parse_error_names_the_bad_entry() {
        for bad in ["10.0.0.0/33", "proxy.internal", "1.2.3", "10.0.0.0/8/8"] {
            let err = TrustedProxies::parse(&["10.0.0.0/8".into(), bad.into()]).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn mapped_addresses_and_networks_compare_as_ipv4() {
        let p = proxies(&["::ffff:10.0.0.0/104"]);
        assert!(p.trusts(ip("10.1.1.1")));
        let p = proxies(&["10.0.0.0/8"]);
        assert!(p.trusts(ip("::ffff:10.1.1.1")));
        let h = headers(&[("x-real-ip", "::ffff:198.51.100.4")]);
        assert_eq!(p.client_ip(ip("::ffff:10.0.0.2"), &h), ip("198.51.100.4"));
        assert_eq!(TrustedProxies::default().client_ip(ip("::ffff:198.51.100.4"), &h), ip("198.51.100.4"));
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_claim() {
        let h = headers(&[
            ("cf-connecting-ip", "198.51.100.1"),
            ("x-real-ip", "198.51.100.2"),
            ("x-forwarded-for", "198.51.100.3"),
        ]);
        assert_eq!(proxies(&["10.0.0.0/8"]).client_ip(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        assert_eq!(proxies(&[]).client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"), "an empty list trusts nobody");
    }

    #[test]
    fn trusted_peers_are_asked_cloudflare_then_real_ip_then_forwarded_for() {
        let p = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        let all = headers(&[
            ("cf-connecting-ip", "198.51.100.1"),
            ("x-real-ip", "198.51.100.2"),
            ("x-forwarded-for", "198.51.100.3"),
        ]);
        assert_eq!(p.client_ip(peer, &all), ip("198.51.100.1"));
        let no_cf = headers(&[("x-real-ip", "198.51.100.2"), ("x-forwarded-for", "198.51.100.3")]);
        assert_eq!(p.client_ip(peer, &no_cf), ip("198.51.100.2"));
        let bad_cf = headers(&[("cf-connecting-ip", "unknown"), ("x-forwarded-for", "198.51.100.3")]);
        assert_eq!(p.client_ip(peer, &bad_cf), ip("198.51.100.3"));
        assert_eq!(p.client_ip(peer, &HeaderMap::new()), peer);
    }

    #[test]
    fn forwarded_for_is_walked_from_the_right_past_trusted_hops() {
        let p = proxies(&["10.0.0.0/8", "2001:db8:aaaa::/48"]);
        let peer = ip("10.0.0.1");
        // The leftmost entry is whatever the client wrote: it must not win over the hop our proxy saw.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.0.0.3, 10.0.0.2")]);
        assert_eq!(p.client_ip(peer, &h), ip("198.51.100.7"));
        // Split over several header lines, IPv6 with a port and brackets.
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "[2001:db8::5]:443, 2001:db8:aaaa::9")]);
        assert_eq!(p.client_ip(peer, &h), ip("2001:db8::5"));
        let h = headers(&[("x-forwarded-for", "203.0.113.8:51000,10.0.0.2,")]);
        assert_eq!(p.client_ip(peer, &h), ip("203.0.113.8"));
        // All hops trusted: the request started inside; the outermost hop is the best answer.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.2")]);
        assert_eq!(p.client_ip(peer, &h), ip("10.9.9.9"));
    }

    #[test]
    fn an_unreadable_forwarded_for_hop_falls_back_to_the_peer() {
        let p = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        for value in ["198.51.100.7, garbage, 10.0.0.2", "unknown", "fe80::1%eth0", "1.2.3.4.5"] {
            let h = headers(&[("x-forwarded-for", value)]);
            assert_eq!(p.client_ip(peer, &h), peer, "{value}");
        }
    }

    fn ip_strategy() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u16; 8]>().prop_map(IpAddr::from),
            any::<[u8; 4]>().prop_map(|o| IpAddr::V6(std::net::Ipv4Addr::from(o).to_ipv6_mapped())),
            (0u8..4).prop_map(|i| IpAddr::from([10, 0, 0, i])),
        ]
    }

    /// An address written the ways proxies write it, or junk.
    fn hop_strategy() -> impl Strategy<Value = (String, Option<IpAddr>)> {
        prop_oneof![
            ip_strategy().prop_map(|a| (a.to_string(), Some(a))),
            (ip_strategy(), any::<u16>()).prop_map(|(a, port)| (SocketAddr::new(a, port).to_string(), Some(a))),
            ip_strategy().prop_map(|a| (format!("[{a}]"), Some(a))),
            "[ -~]{0,24}".prop_map(|junk| (junk, None)),
        ]
    }

    fn header_strategy() -> impl Strategy<Value = (&'static str, Vec<(String, Option<IpAddr>)>, String)> {
        (
            prop::sample::select(vec!["x-forwarded-for", "x-real-ip", "cf-connecting-ip", "forwarded"]),
            prop::collection::vec(hop_strategy(), 0..5),
            prop::sample::select(vec![",", ", ", " , ", ";"]).prop_map(str::to_owned),
        )
    }

    /// Every address a lenient reader could find in a header value, independently of `parse_ip`.
    fn visible_addresses(value: &str) -> Vec<IpAddr> {
        value
            .split([',', ';'])
            .chain(std::iter::once(value))
            .filter_map(|token| {
                let t = token.trim();
                t.trim_matches(['[', ']'])
                    .parse::<IpAddr>()
                    .ok()
                    .or_else(|| t.parse::<SocketAddr>().ok().map(|s| s.ip()))
                    .map(|ip| ip.to_canonical())
            })
            .collect()
    }

    proptest! {
        #[test]
        fn client_ip_is_the_peer_or_an_address_from_the_headers(
            peer in ip_strategy(),
            raw in prop::collection::vec(header_strategy(), 0..6),
            odd_bytes in prop::collection::vec(any::<u8>(), 0..16),
        ) {
            let p = proxies(&["10.0.0.0/8", "2001:db8::/32"]);
            let mut map = HeaderMap::new();
            let mut allowed = vec![peer.to_canonical()];
            for (name, hops, sep) in &raw {
                let value = hops.iter().map(|(text, _)| text.as_str()).collect::<Vec<_>>().join(sep);
                let Ok(header) = HeaderValue::from_str(&value) else { continue };
                allowed.extend(hops.iter().filter_map(|(_, a)| a.map(|a| a.to_canonical())));
                allowed.extend(visible_addresses(&value));
                map.append(HeaderName::from_static(name), header);
            }
            // Bytes that are not UTF-8 reach the hub too; they must be ignored, not trusted or panicked on.
            if let Ok(header) = HeaderValue::from_bytes(&odd_bytes) {
                if let Ok(text) = header.to_str() {
                    allowed.extend(visible_addresses(text));
                }
                map.append(HeaderName::from_static("x-forwarded-for"), header);
            }
            let got = p.client_ip(peer, &map);
            prop_assert!(allowed.contains(&got), "{got} not among {allowed:?}");
            prop_assert!(!got.to_string().starts_with("::ffff:"), "mapped addresses come back as IPv4: {got}");
            if !p.trusts(peer) {
                prop_assert_eq!(got, peer.to_canonical());
            }
            prop_assert_eq!(proxies(&[]).client_ip(peer, &map), peer.to_canonical());
        }
    }
}
