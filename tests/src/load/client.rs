//! A lean HTTP/1.1 client: one connection per worker, requests sent back to back on it, no
//! pool. Plain TCP for `http://`, rustls for `https://` (a deployed API).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HeaderValue;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// Where the load goes.
#[derive(Clone, Debug)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix before `/v1/...` (an API Gateway stage, say); empty or starting with `/`.
    pub base_path: String,
    /// What the `Host` header carries.
    pub authority: HeaderValue,
    /// The addresses `host` resolved to.
    pub addrs: Vec<SocketAddr>,
}

impl Target {
    /// Parses and resolves a base URL such as `http://127.0.0.1:3000` or
    /// `https://abc.execute-api.eu-west-1.amazonaws.com/prod`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(format!("`{url}`: scheme {other} is not http or https")),
            None => {
                return Err(format!(
                    "`{url}` has no scheme; write http://{url} or https://{url}"
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{url}` has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("`{url}`: credentials in the URL are not supported"));
        }
        if uri.query().is_some() {
            return Err(format!("`{url}`: give the base URL without a query"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let addrs: Vec<SocketAddr> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        let authority = HeaderValue::from_str(authority.as_str())
            .map_err(|_| format!("`{url}`: the host cannot go in a Host header"))?;
        Ok(Self {
            https,
            host,
            port,
            base_path,
            authority,
            addrs,
        })
    }

    /// Whether every address the host resolved to is a loopback address.
    pub fn is_loopback(&self) -> bool {
        self.addrs.iter().all(|a| a.ip().is_loopback())
    }

    /// The request URI (origin form) of an API path.
    pub fn uri(&self, path: &str) -> Uri {
        format!("{}{path}", self.base_path)
            .parse()
            .unwrap_or_else(|_| Uri::from_static("/"))
    }

    /// The full URL of an API path, for messages.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!(
            "{scheme}://{}{}{path}",
            self.authority.to_str().unwrap_or(&self.host),
            self.base_path
        )
    }
}

/// Why a request got no HTTP response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("connect: {0}")]
    Connect(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("no response within the request timeout")]
    Timeout,
    #[error("connection closed: {0}")]
    Closed(String),
    #[error("http: {0}")]
    Http(String),
}

impl TransportError {
    /// A short stable label to count errors by.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportError::Connect(_) => "connect",
            TransportError::Tls(_) => "tls",
            TransportError::Timeout => "timeout",
            TransportError::Closed(_) => "connection-closed",
            TransportError::Http(_) => "http",
        }
    }
}

/// Opens connections to a target.
#[derive(Clone)]
pub struct Connector {
    target: Arc<Target>,
    tls: Option<TlsConnector>,
    connect_timeout: Duration,
}

impl Connector {
    pub fn new(target: Arc<Target>, connect_timeout: Duration) -> Result<Self, String> {
        let tls = if target.https {
            Some(tls_connector()?)
        } else {
            None
        };
        Ok(Self {
            target,
            tls,
            connect_timeout,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub async fn connect(&self) -> Result<Connection, TransportError> {
        tokio::time::timeout(self.connect_timeout, self.connect_now())
            .await
            .unwrap_or_else(|_| Err(TransportError::Connect("timed out".to_owned())))
    }

    async fn connect_now(&self) -> Result<Connection, TransportError> {
        let stream = TcpStream::connect(&self.target.addrs[..])
            .await
            .map_err(|e| TransportError::Connect(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => Connection::handshake(stream).await,
            Some(tls) => {
                let name = ServerName::try_from(self.target.host.clone())
                    .map_err(|e| TransportError::Tls(e.to_string()))?;
                let stream = tls
                    .connect(name, stream)
                    .await
                    .map_err(|e| TransportError::Tls(e.to_string()))?;
                Connection::handshake(stream).await
            }
        }
    }
}

fn tls_connector() -> Result<TlsConnector, String> {
    use tokio_rustls::rustls;
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no trusted root certificates found for https ({} errors loading them)",
            found.errors.len()
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// One HTTP/1.1 connection; requests go one after another.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

/// What came back for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body_bytes: usize,
}

impl Connection {
    async fn handshake<S>(stream: S) -> Result<Self, TransportError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| TransportError::Http(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { sender, driver })
    }

    /// Sends a request and reads the whole response. After an error the connection is unusable.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Answer, TransportError> {
        let (status, body) = self.send_for_body(request).await?;
        Ok(Answer {
            status,
            body_bytes: body.len(),
        })
    }

    /// Sends a request and returns the status and the body.
    pub async fn send_for_body(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(u16, Bytes), TransportError> {
        self.sender.ready().await.map_err(classify)?;
        let response = self.sender.send_request(request).await.map_err(classify)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(classify)?
            .to_bytes();
        Ok((status, body))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn classify(error: hyper::Error) -> TransportError {
    if error.is_closed() || error.is_incomplete_message() || error.is_canceled() {
        TransportError::Closed(error.to_string())
    } else if error.is_timeout() {
        TransportError::Timeout
    } else {
        TransportError::Http(error.to_string())
    }
}
