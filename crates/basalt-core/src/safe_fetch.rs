//! Fetching URLs that come from outside (an OAuth2 provider's avatar URL) without
//! reaching internal services (SSRF).
//!
//! - Only public unicast addresses are connected to: loopback, private, link-local
//!   (cloud metadata at 169.254.169.254 among them), CGNAT, unspecified, multicast,
//!   reserved and documentation ranges are refused, for IPv4, IPv6 and IPv4 inside
//!   IPv6 (mapped, compatible, NAT64).
//! - Names are resolved by our own resolver, which drops refused addresses; the HTTP
//!   client connects only to the addresses it returns, so there is no second lookup
//!   an attacker's DNS could answer differently (rebinding). Literal IP hosts never
//!   reach a resolver and are checked from the URL. The connected peer address is
//!   checked again before the body is read.
//! - No redirects, no proxies from the environment, short timeouts, a size cap.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;

/// Whether connecting to `ip` is allowed: public unicast only.
pub(crate) fn public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network", 0.0.0.0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || a >= 224; // multicast, reserved, broadcast
    !refused
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return public_v4(v4);
    }
    if segments[..6] == [0, 0, 0, 0, 0, 0] {
        // ::, ::1 and the deprecated IPv4-compatible form.
        let v4 = Ipv4Addr::from(((segments[6] as u32) << 16) | segments[7] as u32);
        return !ip.is_unspecified() && !ip.is_loopback() && public_v4(v4);
    }
    if segments[0] == 0x64 && segments[1] == 0xff9b {
        let v4 = Ipv4Addr::from(((segments[6] as u32) << 16) | segments[7] as u32);
        return public_v4(v4);
    }
    let refused = (segments[0] & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 metadata)
        || (segments[0] & 0xffc0) == 0xfe80 // link-local
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (segments[0] & 0xff00) == 0xff00 // multicast
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[0] == 0x0100; // discard-only 100::/64
    !refused
}

/// A resolver that returns only public addresses.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| public_ip(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .dns_resolver(Arc::new(PublicOnly))
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(3))
                .timeout(Duration::from_secs(10))
                .user_agent("basalt")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// GETs a public `http(s)` URL; at most `max` bytes, 200 only. Errors are for the log.
pub(crate) async fn fetch_public(url: &str, max: usize) -> Result<Bytes, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("only http and https URLs are fetched".into());
    }
    match parsed.host() {
        Some(url::Host::Ipv4(ip)) if !public_v4(ip) => {
            return Err(format!("refused address {ip}"));
        }
        Some(url::Host::Ipv6(ip)) if !public_v6(ip) => {
            return Err(format!("refused address {ip}"));
        }
        None => return Err("no host".into()),
        _ => {}
    }
    let mut response = client()?
        .get(parsed)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    match response.remote_addr() {
        Some(peer) if public_ip(peer.ip()) => {}
        other => return Err(format!("connected to a refused address {other:?}")),
    }
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("status {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > max {
            return Err("too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_and_allowed_addresses() {
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "fd00:ec2::254",
            "fe80::1",
            "ff02::1",
        ] {
            let ip: IpAddr = refused.parse().expect("an address");
            assert!(!public_ip(ip), "{refused} must be refused");
        }
        for allowed in [
            "1.1.1.1",
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = allowed.parse().expect("an address");
            assert!(public_ip(ip), "{allowed} must be allowed");
        }
    }

    #[tokio::test]
    async fn loopback_urls_are_refused_before_any_connection() {
        // A listener that would see a connection.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        for url in [
            format!("http://127.0.0.1:{port}/a.png"),
            format!("http://localhost:{port}/a.png"),
            format!("http://[::ffff:127.0.0.1]:{port}/a.png"),
            format!("http://2130706433:{port}/a.png"),
            format!("http://0.0.0.0:{port}/a.png"),
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "file:///etc/passwd".to_string(),
        ] {
            assert!(fetch_public(&url, 1024).await.is_err(), "{url}");
        }
        assert!(
            listener.accept().is_err(),
            "a refused URL reached the listener"
        );
    }
}
