//! Fetching a template's text from its URL, within rules a stranger cannot bend.
//!
//! The URL comes from `sales.email_templates` (operators write it); what its server
//! answers does not. So: `https://` only (`http://` too outside production and staging),
//! `file://` only under `MAIL_TEMPLATE_DIR`, redirects followed by hand and only to
//! public addresses (never loopback, private, link-local or the metadata service, the
//! address pinned so a second DNS answer cannot differ), and never more than 1 MiB read.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// The most template text fetched.
pub const MAX_TEMPLATE_BYTES: usize = 1 << 20;
/// The most redirects followed.
const MAX_REDIRECTS: usize = 5;

/// Where template text may come from.
#[derive(Debug, Clone, Default)]
pub struct FetchRules {
    /// Whether `http://` URLs are fetched (outside production and staging).
    pub allow_http: bool,
    /// `MAIL_TEMPLATE_DIR`: the only directory `file://` templates are read from;
    /// `None` refuses every `file://` URL.
    pub file_dir: Option<PathBuf>,
}

/// Why a template's text could not be fetched: for the log, never for the client.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("the template URL is not a URL")]
    NotAUrl(#[source] url::ParseError),
    #[error("scheme {0:?} is not allowed for templates here")]
    Scheme(String),
    #[error("file templates are read only under MAIL_TEMPLATE_DIR, which is not set")]
    NoTemplateDir,
    #[error("{0} is not under MAIL_TEMPLATE_DIR")]
    OutsideDir(PathBuf),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot reach the template server")]
    Unreachable(#[source] reqwest::Error),
    #[error("the template server answered {0}")]
    Status(reqwest::StatusCode),
    #[error("cannot resolve {0}")]
    Resolve(String, #[source] std::io::Error),
    #[error("redirected to {0}, which is not a public address")]
    PrivateRedirect(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("larger than {MAX_TEMPLATE_BYTES} bytes")]
    TooLarge,
    #[error("the template is not UTF-8")]
    NotUtf8,
    #[error("reading the file failed")]
    Task(#[source] tokio::task::JoinError),
    #[error("cannot build an HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Whether `ip` is an address of the public internet: not loopback, private, link-local
/// (the metadata service's 169.254.169.254 among them), shared, unspecified, broadcast
/// or multicast, in IPv4 or IPv6 (mapped IPv4 included).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

/// Fetches template text by the rules.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    rules: FetchRules,
    http: reqwest::Client,
}

impl Fetcher {
    pub(crate) fn new(rules: FetchRules) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: client()?,
            rules,
        })
    }

    pub(crate) async fn fetch(&self, location: &str) -> Result<String, FetchError> {
        let url = Url::parse(location).map_err(FetchError::NotAUrl)?;
        let bytes = match url.scheme() {
            "file" => self.read_file(&url).await?,
            "https" => self.get(url).await?,
            "http" if self.rules.allow_http => self.get(url).await?,
            other => return Err(FetchError::Scheme(other.to_owned())),
        };
        String::from_utf8(bytes).map_err(|_| FetchError::NotUtf8)
    }

    async fn read_file(&self, url: &Url) -> Result<Vec<u8>, FetchError> {
        let dir = self
            .rules
            .file_dir
            .clone()
            .ok_or(FetchError::NoTemplateDir)?;
        let path = url
            .to_file_path()
            .map_err(|()| FetchError::Scheme("file".to_owned()))?;
        tokio::task::spawn_blocking(move || {
            use std::io::Read as _;
            fn read(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> FetchError {
                let path = path.to_path_buf();
                move |source| FetchError::Read { path, source }
            }
            // Symbolic links and `..` resolved, on both sides.
            let dir = dir.canonicalize().map_err(read(&dir))?;
            let real = path.canonicalize().map_err(read(&path))?;
            if !real.starts_with(&dir) {
                return Err(FetchError::OutsideDir(path));
            }
            // One byte over the limit is enough to refuse it.
            let mut bytes = Vec::new();
            std::fs::File::open(&real)
                .and_then(|file| {
                    file.take(MAX_TEMPLATE_BYTES as u64 + 1)
                        .read_to_end(&mut bytes)
                })
                .map_err(read(&real))?;
            if bytes.len() > MAX_TEMPLATE_BYTES {
                return Err(FetchError::TooLarge);
            }
            Ok(bytes)
        })
        .await
        .map_err(FetchError::Task)?
    }

    /// GETs `url`, following redirects by hand, each only to a public address.
    async fn get(&self, mut url: Url) -> Result<Vec<u8>, FetchError> {
        let mut http = self.http.clone();
        for _ in 0..=MAX_REDIRECTS {
            let response = http
                .get(url.clone())
                .send()
                .await
                .map_err(FetchError::Unreachable)?;
            let status = response.status();
            if status.is_redirection() {
                let next = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|location| url.join(location).ok())
                    .ok_or(FetchError::Status(status))?;
                (http, url) = self.redirect_to(next).await?;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status(status));
            }
            return read_limited(response).await;
        }
        Err(FetchError::TooManyRedirects)
    }

    /// A client pinned to the one public address `next` may be fetched from.
    async fn redirect_to(&self, next: Url) -> Result<(reqwest::Client, Url), FetchError> {
        match next.scheme() {
            "https" => {}
            "http" if self.rules.allow_http => {}
            other => return Err(FetchError::Scheme(other.to_owned())),
        }
        let host = next
            .host_str()
            .ok_or_else(|| FetchError::PrivateRedirect(next.to_string()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = next.port_or_known_default().unwrap_or(443);
        let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|err| FetchError::Resolve(host.clone(), err))?
                .collect(),
        };
        // Every address the name has must be public: any of them could be the one used.
        let Some(first) = addresses.first().copied() else {
            return Err(FetchError::PrivateRedirect(next.to_string()));
        };
        if !addresses.iter().all(|address| is_public(address.ip())) {
            return Err(FetchError::PrivateRedirect(next.to_string()));
        }
        let pinned = base_client()
            .resolve(&host, first)
            .build()
            .map_err(FetchError::Client)?;
        Ok((pinned, next))
    }
}

fn base_client() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
}

fn client() -> Result<reqwest::Client, reqwest::Error> {
    base_client().build()
}

/// The body, read up to the limit whatever length the server declares.
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, FetchError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(FetchError::Unreachable)? {
        if bytes.len() + chunk.len() > MAX_TEMPLATE_BYTES {
            return Err(FetchError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(
                !is_public(private.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))),
                "{private}"
            );
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(
                is_public(public.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))),
                "{public}"
            );
        }
    }
}
