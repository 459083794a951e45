//! Fetching a picture by URL (`?url=` on HMA's routes): a request the server makes to a place
//! the caller names, so it is refused unless the operator allowed it.
//!
//! Off while the host list is empty (`--fetch-allow-hosts`). When on: `http` and `https` only;
//! only the listed hosts, on every hop (a redirect to another host is refused); every address a
//! host resolves to is checked, and a private, loopback, link-local, multicast or unspecified
//! address is refused unless that very address is listed; the socket connects to the address
//! that was checked (no second resolution for a rebinding DNS answer to slip through); the body
//! is read up to the upload byte limit; the whole fetch, redirects included, has one time limit.
//!
//! The request is hyper's own HTTP/1 client connection (in the tree through tonic) over a socket
//! vigie connects itself, with rustls (tonic's TLS) and Mozilla's root certificates for `https`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, RootCertStore};

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

pub use crate::config::FetchPolicy;

/// Why a fetch was refused or failed. Each says what to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    /// No host is allowed.
    #[error(
        "fetching by URL is off on this server (the operator allows hosts with --fetch-allow-hosts); upload the picture instead"
    )]
    Disabled,
    /// Not an absolute http(s) URL, or it carries credentials.
    #[error("{0}")]
    BadUrl(String),
    /// The host is not in the list.
    #[error("host {0:?} is not in the fetch allow list")]
    HostNotAllowed(String),
    /// The host resolves only to addresses that may not be fetched.
    #[error(
        "{host:?} resolves to {addr}, a private, loopback or link-local address, which is fetched only when listed itself"
    )]
    PrivateAddress {
        /// The host.
        host: String,
        /// The refused address.
        addr: IpAddr,
    },
    /// More than [`MAX_REDIRECTS`] redirects, or one without a usable `Location`.
    #[error("too many redirects, or a redirect without a usable Location")]
    Redirects,
    /// The body is over the upload limit.
    #[error("the fetched body exceeds the limit of {0} bytes")]
    TooLarge(usize),
    /// The time limit passed.
    #[error("the fetch took longer than {0:?}")]
    Timeout(Duration),
    /// The answer was not a success.
    #[error("the URL answered {0}")]
    Status(u16),
    /// DNS, connection, TLS or HTTP failure.
    #[error("fetch failed: {0}")]
    Io(String),
}

impl FetchError {
    /// The HTTP status vigie answers for this error: 403 off or refused by policy, 400 bad URL,
    /// 413 too large, 504 too slow, 502 the remote side failed.
    pub fn http_status(&self) -> StatusCode {
        match self {
            FetchError::Disabled
            | FetchError::HostNotAllowed(_)
            | FetchError::PrivateAddress { .. } => StatusCode::FORBIDDEN,
            FetchError::BadUrl(_) => StatusCode::BAD_REQUEST,
            FetchError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            FetchError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            FetchError::Redirects | FetchError::Status(_) | FetchError::Io(_) => {
                StatusCode::BAD_GATEWAY
            }
        }
    }
}

/// A fetched body and its `Content-Type`.
#[derive(Debug)]
pub struct Fetched {
    /// The bytes (at most the limit).
    pub body: Bytes,
    /// The answer's content type, when given.
    pub content_type: Option<String>,
}

/// Fetches URLs under a [`FetchPolicy`]; shared by every request.
pub struct Fetcher {
    policy: FetchPolicy,
    max_bytes: usize,
    tls: Option<TlsConnector>,
}

impl Fetcher {
    /// A fetcher for `policy` reading at most `max_bytes` of a body.
    pub fn new(policy: FetchPolicy, max_bytes: usize) -> Fetcher {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let tls = match config {
            Ok(c) => Some(TlsConnector::from(Arc::new(c))),
            // ring supports rustls's default protocol versions; kept panic-free all the same.
            Err(e) => {
                tracing::error!(error = %e, "TLS setup for URL fetches failed; https fetches will fail");
                None
            }
        };
        Fetcher {
            policy,
            max_bytes,
            tls,
        }
    }

    /// Whether fetching is on.
    pub fn enabled(&self) -> bool {
        !self.policy.allow_hosts.is_empty()
    }

    /// Fetches `url` under the policy (see the module doc). Errors: [`FetchError`].
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        if !self.enabled() {
            return Err(FetchError::Disabled);
        }
        let timeout = if self.policy.timeout.is_zero() {
            FetchPolicy::DEFAULT_TIMEOUT
        } else {
            self.policy.timeout
        };
        let deadline = Instant::now() + timeout;
        match tokio::time::timeout_at(deadline.into(), self.follow(url)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout(timeout)),
        }
    }

    async fn follow(&self, url: &str) -> Result<Fetched, FetchError> {
        let mut uri: Uri = url
            .trim()
            .parse()
            .map_err(|e| FetchError::BadUrl(format!("{url:?} is not a URL: {e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            let target = self.check(&uri)?;
            let addrs = self.resolve(&target).await?;
            match self.get_once(&target, &uri, &addrs).await? {
                Hop::Done(fetched) => return Ok(fetched),
                Hop::Redirect(location) => uri = redirect_target(&uri, &location)?,
            }
        }
        Err(FetchError::Redirects)
    }

    /// Scheme, credentials and host of `uri` under the policy.
    fn check(&self, uri: &Uri) -> Result<Target, FetchError> {
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(FetchError::BadUrl(format!(
                    "only http and https URLs are fetched, not {uri}"
                )));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| FetchError::BadUrl(format!("{uri} names no host")))?;
        if authority.as_str().contains('@') {
            return Err(FetchError::BadUrl(
                "URLs with credentials are not fetched".into(),
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if host.is_empty() {
            return Err(FetchError::BadUrl(format!("{uri} names no host")));
        }
        if !self.listed(&host) {
            return Err(FetchError::HostNotAllowed(host));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target { host, port, tls })
    }

    fn listed(&self, host: &str) -> bool {
        self.policy.allow_hosts.iter().any(|h| {
            let h = h.trim().trim_start_matches('[').trim_end_matches(']');
            h.eq_ignore_ascii_case(host)
                || h.parse::<IpAddr>()
                    .ok()
                    .zip(host.parse::<IpAddr>().ok())
                    .is_some_and(|(a, b)| a == b)
        })
    }

    /// The addresses of `target` that may be fetched; errors when there is none.
    async fn resolve(&self, target: &Target) -> Result<Vec<SocketAddr>, FetchError> {
        let found: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, target.port)],
            Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_err(|e| FetchError::Io(format!("{}: {e}", target.host)))?
                .collect(),
        };
        let mut refused = None;
        let allowed: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| {
                let ok = !is_internal(a.ip()) || self.listed(&a.ip().to_string());
                if !ok {
                    refused = Some(a.ip());
                }
                ok
            })
            .collect();
        if allowed.is_empty() {
            return Err(match refused {
                Some(addr) => FetchError::PrivateAddress {
                    host: target.host.clone(),
                    addr,
                },
                None => FetchError::Io(format!("{} has no address", target.host)),
            });
        }
        Ok(allowed)
    }

    async fn get_once(
        &self,
        target: &Target,
        uri: &Uri,
        addrs: &[SocketAddr],
    ) -> Result<Hop, FetchError> {
        let mut last = None;
        let mut stream = None;
        for a in addrs {
            match TcpStream::connect(a).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(stream) = stream else {
            return Err(FetchError::Io(format!(
                "cannot connect to {}: {}",
                target.host,
                last.map(|e| e.to_string()).unwrap_or_default()
            )));
        };
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        let host_header = match uri.authority() {
            Some(a) => a.as_str().to_string(),
            None => target.host.clone(),
        };
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, host_header)
            .header(header::USER_AGENT, "vigie")
            .header(header::ACCEPT, "image/*")
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::BadUrl(e.to_string()))?;
        if target.tls {
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| FetchError::BadUrl(format!("{}: {e}", target.host)))?;
            let connector = self
                .tls
                .as_ref()
                .ok_or_else(|| FetchError::Io("TLS is unavailable on this server".into()))?;
            let tls = connector
                .connect(name, stream)
                .await
                .map_err(|e| FetchError::Io(format!("TLS with {}: {e}", target.host)))?;
            self.exchange(TokioIo::new(tls), request).await
        } else {
            self.exchange(TokioIo::new(stream), request).await
        }
    }

    async fn exchange<T>(&self, io: T, request: Request<Empty<Bytes>>) -> Result<Hop, FetchError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| FetchError::Io(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| FetchError::Io(e.to_string()));
        let result = match response {
            Ok(response) => self.read(response).await,
            Err(e) => Err(e),
        };
        driver.abort();
        result
    }

    async fn read(
        &self,
        response: hyper::Response<hyper::body::Incoming>,
    ) -> Result<Hop, FetchError> {
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or(FetchError::Redirects)?;
            return Ok(Hop::Redirect(location));
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let declared = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_bytes as u64) {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| FetchError::Io(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                if bytes.len() + data.len() > self.max_bytes {
                    return Err(FetchError::TooLarge(self.max_bytes));
                }
                bytes.extend_from_slice(data);
            }
        }
        Ok(Hop::Done(Fetched {
            body: Bytes::from(bytes),
            content_type,
        }))
    }
}

struct Target {
    host: String,
    port: u16,
    tls: bool,
}

enum Hop {
    Done(Fetched),
    Redirect(String),
}

/// Where a `Location` points from `base`: an absolute URL, or a path on the same host.
fn redirect_target(base: &Uri, location: &str) -> Result<Uri, FetchError> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.parse().map_err(|_| FetchError::Redirects);
    }
    if location.starts_with("//") {
        let scheme = base.scheme_str().unwrap_or("http");
        return format!("{scheme}:{location}")
            .parse()
            .map_err(|_| FetchError::Redirects);
    }
    if location.starts_with('/') {
        let mut parts = base.clone().into_parts();
        parts.path_and_query = Some(location.parse().map_err(|_| FetchError::Redirects)?);
        return Uri::from_parts(parts).map_err(|_| FetchError::Redirects);
    }
    Err(FetchError::Redirects)
}

/// Whether `ip` is an address a server-side fetch must not reach unless listed: loopback,
/// private (RFC 1918, IPv6 unique local), link-local, shared (RFC 6598), unspecified, broadcast,
/// multicast, reserved; an IPv4-mapped IPv6 address is judged as its IPv4 address.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetcher(hosts: &[&str]) -> Fetcher {
        Fetcher::new(
            FetchPolicy {
                allow_hosts: hosts.iter().map(|h| h.to_string()).collect(),
                timeout: Duration::from_secs(2),
            },
            1024,
        )
    }

    #[test]
    fn internal_ranges_are_recognised() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(is_internal(a.parse().unwrap()), "{a}");
        }
        for a in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(!is_internal(a.parse().unwrap()), "{a}");
        }
    }

    #[tokio::test]
    async fn refusals_before_any_connection() {
        assert_eq!(
            fetcher(&[])
                .fetch("http://example.com/a.jpg")
                .await
                .unwrap_err(),
            FetchError::Disabled
        );
        let f = fetcher(&["example.com"]);
        assert!(matches!(
            f.fetch("ftp://example.com/a.jpg").await,
            Err(FetchError::BadUrl(_))
        ));
        assert!(matches!(
            f.fetch("file:///etc/passwd").await,
            Err(FetchError::BadUrl(_))
        ));
        assert!(matches!(
            f.fetch("http://user:pw@example.com/a.jpg").await,
            Err(FetchError::BadUrl(_))
        ));
        assert_eq!(
            f.fetch("http://other.example/a.jpg").await.unwrap_err(),
            FetchError::HostNotAllowed("other.example".into())
        );
        // A listed name is not a licence for an internal address.
        let f = fetcher(&["localhost"]);
        assert!(matches!(
            f.fetch("http://localhost:1/a.jpg").await,
            Err(FetchError::PrivateAddress { .. })
        ));
    }

    #[test]
    fn redirect_targets() {
        let base: Uri = "http://a.example/x/y.jpg".parse().unwrap();
        assert_eq!(
            redirect_target(&base, "/z.jpg").unwrap().to_string(),
            "http://a.example/z.jpg"
        );
        assert_eq!(
            redirect_target(&base, "https://b.example/q")
                .unwrap()
                .to_string(),
            "https://b.example/q"
        );
        assert!(redirect_target(&base, "relative.jpg").is_err());
    }
}
