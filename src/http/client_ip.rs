//! The client's IP, for the per-IP limits: the socket's peer, or, behind proxies the
//! operator named (`TRUST_PROXY_HEADERS`, `TRUSTED_PROXIES`, `PROXY_HEADER`), the address
//! the proxies wrote into the forwarding header.
//!
//! A proxy appends the address it got the request from to what the request already
//! carried, so only the right-hand end of the header is the proxies' word; everything to
//! the left of it is whatever the client sent. The header is therefore read from the
//! right: the client is the first hop that is not a proxy. Taking the left-most entry
//! (as actix's `realip_remote_addr` does), or a `Forwarded` header the proxies do not
//! write, would let every request choose the address it is counted under.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::{FORWARDED, HeaderMap, HeaderName, X_FORWARDED_FOR};

use crate::config::{Proxies, ProxyHeader, TrustedProxies};

/// The address to count a request under: `peer` (the socket's), unless `proxies` say
/// that the header is to be believed as far as it was written by them.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, proxies: Option<&Proxies>) -> Option<IpAddr> {
    let peer = peer.map(|ip| ip.to_canonical());
    let (Some(proxies), Some(peer)) = (proxies, peer) else { return peer };
    let mut hops = hops_from_the_right(headers, proxies.header).into_iter();
    match &proxies.trusted {
        // The nth hop from the right, or the left-most one if fewer proxies wrote the
        // header (a request that came in past the outer ones); every one of those was
        // written by a proxy. An entry that is no address leaves the proxy's own.
        TrustedProxies::Hops(n) => hops.take(*n).next_back().flatten().or(Some(peer)),
        TrustedProxies::Networks(networks) => {
            let trusted = |ip: &IpAddr| networks.iter().any(|net| net.contains(ip));
            let mut client = peer;
            // Past each proxy to the hop it names, until one is not a proxy. A proxy that
            // wrote no address is where the trail ends: it is counted itself.
            while trusted(&client) {
                match hops.next() {
                    Some(Some(ip)) => client = ip,
                    Some(None) | None => break,
                }
            }
            Some(client)
        }
    }
}

/// The header's hops, right-most first, each the address it names if it names one.
/// Repeated header lines are one list in their order (RFC 9110 §5.3); a line that is not
/// visible ASCII is one hop naming nothing.
fn hops_from_the_right(headers: &HeaderMap, header: ProxyHeader) -> Vec<Option<IpAddr>> {
    let (name, parse): (HeaderName, fn(&str) -> Option<IpAddr>) = match header {
        ProxyHeader::XForwardedFor => (X_FORWARDED_FOR, address),
        ProxyHeader::Forwarded => (FORWARDED, forwarded_for),
    };
    let lines: Vec<&str> = headers.get_all(name).map(|line| line.to_str().unwrap_or_default()).collect();
    // Split at every comma, quoted or not: a quote the client left open must not swallow
    // the entries the proxies appended after it.
    lines.iter().rev().flat_map(|line| line.rsplit(',')).map(parse).collect()
}

/// An `X-Forwarded-For` entry, or the node of a `for=`: `ip`, `ip:port`, `[v6]` or
/// `[v6]:port`.
fn address(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    let ip = raw
        .parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .or_else(|| raw.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(ip.to_canonical())
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.60;proto=https`,
/// `for="[2001:db8::17]:4711"`); `unknown`, obfuscated names and an element without
/// `for` name no address.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then_some(value.trim())
    })?;
    let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    address(value)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    const PEER: &str = "10.0.0.2";

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(name: HeaderName, lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(name.clone(), HeaderValue::from_str(line).unwrap());
        }
        map
    }

    fn xff(trusted: TrustedProxies, lines: &[&str]) -> Option<IpAddr> {
        let proxies = Proxies { trusted, header: ProxyHeader::XForwardedFor };
        client_ip(Some(ip(PEER)), &headers(X_FORWARDED_FOR, lines), Some(&proxies))
    }

    fn networks(list: &[&str]) -> TrustedProxies {
        TrustedProxies::Networks(list.iter().map(|n| n.parse().unwrap()).collect())
    }

    #[test]
    fn without_trusted_proxies_the_socket_decides() {
        let forged = headers(X_FORWARDED_FOR, &["203.0.113.9"]);
        assert_eq!(client_ip(Some(ip(PEER)), &forged, None), Some(ip(PEER)));
        assert_eq!(client_ip(None, &forged, None), None);
        let mapped = client_ip(Some(ip("::ffff:192.0.2.1")), &HeaderMap::new(), None);
        assert_eq!(mapped, Some(ip("192.0.2.1")), "an IPv4 client of a dual-stack socket");
    }

    #[test]
    fn one_proxy_hop_takes_the_entry_it_appended_whatever_the_client_put_before() {
        let one = || TrustedProxies::Hops(1);
        assert_eq!(xff(one(), &["198.51.100.7"]), Some(ip("198.51.100.7")));
        // Spoofed entries to the left, in the same line or a line of their own.
        assert_eq!(xff(one(), &["1.1.1.1, 2.2.2.2, 198.51.100.7"]), Some(ip("198.51.100.7")));
        assert_eq!(xff(one(), &["1.1.1.1", "198.51.100.7"]), Some(ip("198.51.100.7")));
        assert_eq!(xff(one(), &["\"1.1.1.1, 198.51.100.7"]), Some(ip("198.51.100.7")), "an open quote");
        // No header: the peer itself (a request to tollgate past the proxy).
        assert_eq!(xff(one(), &[]), Some(ip(PEER)));
        // The proxy's entry is no address: counted as the proxy, never as the entry before.
        assert_eq!(xff(one(), &["198.51.100.7, unknown"]), Some(ip(PEER)));
        assert_eq!(xff(one(), &["198.51.100.7,"]), Some(ip(PEER)));
    }

    #[test]
    fn n_hops_take_the_nth_from_the_right_or_the_left_most_of_fewer() {
        let two = || TrustedProxies::Hops(2);
        assert_eq!(xff(two(), &["1.1.1.1, 198.51.100.7, 10.0.0.9"]), Some(ip("198.51.100.7")));
        assert_eq!(xff(two(), &["198.51.100.7"]), Some(ip("198.51.100.7")));
        assert_eq!(xff(TrustedProxies::Hops(3), &["1.1.1.1", "198.51.100.7, 10.0.0.9"]), Some(ip("1.1.1.1")));
    }

    #[test]
    fn listed_networks_skip_every_proxy_from_the_right() {
        let ours = || networks(&["10.0.0.0/8", "2001:db8:1::/48"]);
        assert_eq!(xff(ours(), &["1.1.1.1, 198.51.100.7, 10.0.0.9"]), Some(ip("198.51.100.7")));
        assert_eq!(xff(ours(), &["198.51.100.7, 10.0.0.9, 10.1.1.1"]), Some(ip("198.51.100.7")));
        // Every hop a proxy: the left-most (an internal client).
        assert_eq!(xff(ours(), &["10.3.3.3, 10.0.0.9"]), Some(ip("10.3.3.3")));
        // A proxy that wrote no address is counted itself.
        assert_eq!(xff(ours(), &["198.51.100.7, garbage, 10.0.0.9"]), Some(ip("10.0.0.9")));
        // A peer outside the list is no proxy: its header is the client's own.
        let direct = client_ip(
            Some(ip("198.51.100.50")),
            &headers(X_FORWARDED_FOR, &["10.0.0.9"]),
            Some(&Proxies { trusted: ours(), header: ProxyHeader::XForwardedFor }),
        );
        assert_eq!(direct, Some(ip("198.51.100.50")));
    }

    #[test]
    fn ipv6_and_ports_parse_in_every_form_proxies_write() {
        assert_eq!(address("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(address(" [2001:db8::1] "), Some(ip("2001:db8::1")));
        assert_eq!(address("[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(address("192.0.2.1:8080"), Some(ip("192.0.2.1")));
        assert_eq!(address("::ffff:192.0.2.1"), Some(ip("192.0.2.1")));
        for garbage in ["", "unknown", "_hidden", "192.0.2", "192.0.2.1:port", "[2001:db8::1", "fe80::1%eth0"]
        {
            assert_eq!(address(garbage), None, "{garbage:?}");
        }
        let ours = networks(&["10.0.0.0/8", "2001:db8:1::/48"]);
        assert_eq!(xff(ours, &["[2001:db8::7]:1234, 2001:db8:1::5"]), Some(ip("2001:db8::7")));
    }

    #[test]
    fn forwarded_is_read_only_when_it_is_the_configured_header() {
        let lines = &["for=1.1.1.1, for=198.51.100.7;proto=https;by=10.0.0.2"];
        let forwarded = Proxies { trusted: TrustedProxies::Hops(1), header: ProxyHeader::Forwarded };
        assert_eq!(
            client_ip(Some(ip(PEER)), &headers(FORWARDED, lines), Some(&forwarded)),
            Some(ip("198.51.100.7"))
        );
        // With X-Forwarded-For configured, a client's Forwarded is ignored, and the reverse.
        let mut both = headers(FORWARDED, &["for=203.0.113.9"]);
        both.append(X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.7"));
        let xff = Proxies { trusted: TrustedProxies::Hops(1), header: ProxyHeader::XForwardedFor };
        assert_eq!(client_ip(Some(ip(PEER)), &both, Some(&xff)), Some(ip("198.51.100.7")));
        let only_xff = headers(X_FORWARDED_FOR, &["198.51.100.7"]);
        assert_eq!(client_ip(Some(ip(PEER)), &only_xff, Some(&forwarded)), Some(ip(PEER)));

        assert_eq!(forwarded_for("For=\"[2001:db8:cafe::17]:4711\""), Some(ip("2001:db8:cafe::17")));
        assert_eq!(forwarded_for("proto=https; for=192.0.2.60"), Some(ip("192.0.2.60")));
        for nothing in ["for=unknown", "for=_hidden", "by=10.0.0.1", "", "for"] {
            assert_eq!(forwarded_for(nothing), None, "{nothing:?}");
        }
    }
}
