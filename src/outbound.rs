//! Where the service may connect on a user's behalf. Whoever may register a cluster chooses a
//! Milvus address and an S3 endpoint; without a policy that would let them aim the service at
//! a cloud's metadata address or scan the service's own network. Every address a host name
//! resolves to must pass (`outbound.allow`, when set, must hold it; no `outbound.deny` network
//! may), at registration and again before every connection: Milvus connections go through
//! `connector`, which resolves, checks and dials itself; S3 endpoints are checked each time a
//! cluster's binlog store is opened.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundPolicy {
    /// When not empty, the only networks the service connects to for a cluster.
    pub allow: Vec<IpNet>,
    /// Networks it never connects to for a cluster; wins over `allow`.
    pub deny: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OutboundError {
    #[error("{host} resolves to {ip}, in {net}, which outbound.deny keeps the service from")]
    Denied {
        host: String,
        ip: IpAddr,
        net: IpNet,
    },
    #[error("{host} resolves to {ip}, outside the networks of outbound.allow")]
    NotAllowed { host: String, ip: IpAddr },
    #[error("host name {0} did not resolve")]
    Unresolved(String),
}

impl OutboundPolicy {
    /// Whether the service may connect to `ip` (reached as `host`).
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), OutboundError> {
        // An IPv4 address written as IPv6 (::ffff:169.254.169.254) is that IPv4 address.
        let ip = ip.to_canonical();
        if let Some(net) = self.deny.iter().find(|net| net.contains(&ip)) {
            return Err(OutboundError::Denied {
                host: host.to_owned(),
                ip,
                net: *net,
            });
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&ip)) {
            return Err(OutboundError::NotAllowed {
                host: host.to_owned(),
                ip,
            });
        }
        Ok(())
    }

    /// Every address of `host:port`, each checked; refused when any one is not allowed (a
    /// name that resolves to an allowed and a denied address is not to be trusted).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, OutboundError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|_| OutboundError::Unresolved(host.to_owned()))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(OutboundError::Unresolved(host.to_owned()));
        }
        for addr in &addrs {
            self.check_ip(host, addr.ip())?;
        }
        Ok(addrs)
    }

    /// The host and port of an `http(s)://host[:port]` address, resolved and checked; an
    /// address that does not parse is left to the caller's own validation.
    pub async fn check_url(&self, url: &str) -> Result<(), OutboundError> {
        let Some((host, port)) = url.parse::<http::Uri>().ok().as_ref().and_then(host_port) else {
            return Ok(());
        };
        self.resolve(&host, port).await.map(|_| ())
    }
}

/// The host of `uri` and its port (the scheme's default when none is written).
fn host_port(uri: &http::Uri) -> Option<(String, u16)> {
    let default = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    Some((uri.host()?.to_owned(), uri.port_u16().unwrap_or(default)))
}

/// Dials a Milvus for tonic: resolves the URI's host, checks every address against `policy`,
/// and connects to the first that answers. Runs for every (re)connection of a channel, so a
/// name that later resolves elsewhere is checked again.
pub fn connector(
    policy: Arc<OutboundPolicy>,
) -> impl tower::Service<
    http::Uri,
    Response = hyper_util::rt::TokioIo<tokio::net::TcpStream>,
    Error = std::io::Error,
    Future = impl std::future::Future<
        Output = std::io::Result<hyper_util::rt::TokioIo<tokio::net::TcpStream>>,
    > + Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |uri: http::Uri| {
        let policy = policy.clone();
        async move {
            let invalid = std::io::Error::other;
            let (host, port) =
                host_port(&uri).ok_or_else(|| invalid(format!("{uri} names no host")))?;
            let addrs = policy
                .resolve(&host, port)
                .await
                .map_err(|e| invalid(format!("outbound policy: {e}")))?;
            let mut last = None;
            for addr in addrs {
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(stream) => {
                        stream.set_nodelay(true)?;
                        return Ok(hyper_util::rt::TokioIo::new(stream));
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(last.expect("resolve returns at least one address"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> OutboundPolicy {
        OutboundPolicy {
            allow: allow.iter().map(|n| n.parse().unwrap()).collect(),
            deny: deny.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn deny_wins_and_allow_confines() {
        let p = policy(&[], &["169.254.0.0/16", "fe80::/10"]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(p.check_ip("h", ip("127.0.0.1")).is_ok());
        assert!(p.check_ip("h", ip("10.1.2.3")).is_ok());
        assert!(matches!(
            p.check_ip("h", ip("169.254.169.254")),
            Err(OutboundError::Denied { .. })
        ));
        assert!(
            p.check_ip("h", ip("::ffff:169.254.169.254")).is_err(),
            "an IPv4-mapped address is its IPv4 address"
        );
        assert!(p.check_ip("h", ip("fe80::1")).is_err());
        let confined = policy(&["10.0.0.0/8"], &["10.9.0.0/16"]);
        assert!(confined.check_ip("h", ip("10.1.2.3")).is_ok());
        assert!(matches!(
            confined.check_ip("h", ip("127.0.0.1")),
            Err(OutboundError::NotAllowed { .. })
        ));
        assert!(matches!(
            confined.check_ip("h", ip("10.9.0.1")),
            Err(OutboundError::Denied { .. })
        ));
    }

    #[tokio::test]
    async fn urls_are_resolved_and_every_address_checked() {
        let p = policy(&[], &["169.254.0.0/16", "127.0.0.0/8", "::1/128"]);
        assert!(p.check_url("http://169.254.169.254/latest").await.is_err());
        assert!(p.check_url("http://[::1]:9000").await.is_err());
        assert!(
            p.check_url("https://localhost").await.is_err(),
            "names resolve"
        );
        assert!(p.check_url("http://10.0.0.1:19530").await.is_ok());
        assert!(matches!(
            p.check_url("http://no-such-host.invalid:1").await,
            Err(OutboundError::Unresolved(_))
        ));
    }
}
