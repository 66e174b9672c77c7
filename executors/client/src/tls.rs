//! TLS for connections (feature `tls`): rustls over any transport, with no OpenSSL. It is
//! compatible with go-dqlite clusters set up with `app.WithTLS`: see [`TlsConfig::from_pem`].

use std::io;
use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use futures_rustls::client::TlsStream;
use futures_rustls::rustls::{self, ClientConfig, RootCertStore};
use futures_rustls::TlsConnector;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::{Error, Result, TlsErrorKind};
use crate::transport::{BoxStream, NodeStream};

/// TLS settings for every connection of a [`Config`](crate::Config) (and so of a pool):
/// which servers to trust, the client certificate for mutual TLS, and the name servers'
/// certificates must carry.
///
/// By default the name checked is the host of each node's address: an IP address is matched
/// against the certificate's IP SANs, a host name against its DNS names. Leader redirects and
/// membership refreshes use TLS to the addresses the cluster reports, checked the same way.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// From a rustls client configuration of the caller's making (roots, client certificate,
    /// protocol versions, a custom verifier).
    pub fn new(config: Arc<ClientConfig>) -> TlsConfig {
        TlsConfig {
            config,
            server_name: None,
        }
    }

    /// Mutual TLS from PEM text: servers are verified against the certificates of `ca_pem`,
    /// and the client presents the certificate chain `cert_pem` with its private key
    /// `key_pem`.
    ///
    /// A go-dqlite cluster set up with `app.WithTLS(app.SimpleTLSConfig(cert, pool))` uses one
    /// cluster certificate for everything: it is the CA that verifies both sides and the
    /// certificate each side presents. Connect to it with the same file three times:
    ///
    /// ```no_run
    /// # fn demo() -> dqlite_client::Result<()> {
    /// use dqlite_client::{Config, TlsConfig};
    /// let cert = std::fs::read("cluster.crt")?;
    /// let key = std::fs::read("cluster.key")?;
    /// let config = Config::new().tls(TlsConfig::from_pem(&cert, &cert, &key)?);
    /// # let _ = config; Ok(()) }
    /// ```
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsConfig> {
        let chain = certificates(cert_pem, "client certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| settings(format!("no usable private key in the key PEM: {e}")))?;
        let config = builder(ca_pem)?
            .with_client_auth_cert(chain, key)
            .map_err(|e| settings(format!("client certificate and key do not fit: {e}")))?;
        Ok(TlsConfig::new(Arc::new(config)))
    }

    /// Server verification only, against the certificates of `ca_pem`; no client
    /// certificate (for servers that do not ask for one).
    pub fn server_only(ca_pem: &[u8]) -> Result<TlsConfig> {
        let config = builder(ca_pem)?.with_no_client_auth();
        Ok(TlsConfig::new(Arc::new(config)))
    }

    /// Checks every server's certificate against `name` instead of the host of its address
    /// (needed for unix-socket addresses, or certificates issued for one cluster name).
    pub fn server_name(mut self, name: &str) -> Result<TlsConfig> {
        let name = ServerName::try_from(name.to_owned())
            .map_err(|e| settings(format!("invalid TLS server name {name:?}: {e}")))?;
        self.server_name = Some(name);
        Ok(self)
    }

    /// Runs the handshake over `stream` to the node at `address` (the caller bounds it with
    /// the dial deadline).
    pub(crate) async fn wrap(&self, stream: BoxStream, address: &str) -> Result<BoxStream> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => name_of(address)?,
        };
        let connector = TlsConnector::from(self.config.clone());
        match connector.connect(name, Ciphertext::new(stream)).await {
            Ok(tls) => Ok(Box::new(Tls(Mutex::new(tls)))),
            Err(e) => Err(handshake_error(address, e)),
        }
    }
}

/// A TLS stream: it forwards `after_read` (re-arming TCP_QUICKACK helps TLS too), and its
/// `read_now` decrypts what its transport's `read_now` reads, so busy-polling and read
/// coalescing work over TLS without ever handing out the socket's raw bytes. The lock is
/// uncontended: `read_now` takes `&self`, every other path has `&mut self`.
struct Tls(Mutex<TlsStream<Ciphertext>>);

impl Tls {
    /// The stream, for the `&mut self` paths (no locking: exclusive access). A panic while
    /// the lock was held (in rustls or the socket) leaves nothing half-done that a later call
    /// could not report, so a poisoned lock is taken over.
    fn stream(&mut self) -> &mut TlsStream<Ciphertext> {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.stream()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.stream()).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream()).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.stream()).poll_close(cx)
    }
}

impl NodeStream for Tls {
    fn after_read(&self) {
        let tls = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        tls.get_ref().0.socket.after_read();
    }

    /// Plaintext already decrypted, else ciphertext read straight from the socket by the
    /// transport's own `read_now` and decrypted here: the TLS layer is never skipped, and
    /// the runtime's reactor is never touched. `None` when the transport cannot read now.
    fn read_now(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        let mut tls = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (socket, conn) = tls.get_mut();
        let mut eof = false;
        loop {
            match conn.reader().read(buf) {
                Ok(n) => return Some(Ok(n)),
                // The socket closed after the last record: what the next poll_read reports.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && eof => return Some(Ok(0)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Some(Err(e)),
            }
            let mut raw = RawSocket {
                socket: &mut *socket,
                declined: false,
            };
            match conn.read_tls(&mut raw) {
                Ok(0) => eof = true,
                Ok(_) => {}
                Err(_) if raw.declined => return None,
                Err(e) => return Some(Err(e)),
            }
            if let Err(e) = conn.process_new_packets() {
                // The alert rustls queued goes out with the next write, as on the
                // poll_read path.
                return Some(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
        }
    }
}

/// How much ciphertext one read from the transport may bring: rustls asks for about 4 KiB
/// at a time, so without this buffer a long result would cost a system call per 4 KiB.
const CIPHERTEXT_BUFFER: usize = 64 * 1024;

/// The transport under a TLS stream, with a read buffer for ciphertext (see
/// [`CIPHERTEXT_BUFFER`]). Writes go straight through.
struct Ciphertext {
    socket: BoxStream,
    buf: Box<[u8]>,
    /// Bytes `start..end` of `buf` have arrived and rustls has not taken them yet.
    start: usize,
    end: usize,
}

impl Ciphertext {
    fn new(socket: BoxStream) -> Ciphertext {
        Ciphertext {
            socket,
            buf: vec![0; CIPHERTEXT_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Hands out buffered bytes; `None` when there are none.
    fn take(&mut self, out: &mut [u8]) -> Option<usize> {
        if self.start == self.end {
            return None;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Some(n)
    }

    /// Records a fill of `n` bytes into `buf` and hands out what `out` can take.
    fn filled(&mut self, n: usize, out: &mut [u8]) -> usize {
        self.start = 0;
        self.end = n;
        self.take(out).unwrap_or(0)
    }
}

impl AsyncRead for Ciphertext {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Some(n) = this.take(out) {
            return Poll::Ready(Ok(n));
        }
        match Pin::new(&mut this.socket).poll_read(cx, &mut this.buf) {
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(this.filled(n, out))),
            other => other,
        }
    }
}

impl AsyncWrite for Ciphertext {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_close(cx)
    }
}

/// The ciphertext side of [`Tls::read_now`]: buffered bytes, else the transport's own
/// non-blocking read.
struct RawSocket<'a> {
    socket: &'a mut Ciphertext,
    /// The transport has no `read_now`.
    declined: bool,
}

impl io::Read for RawSocket<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let c = &mut *self.socket;
        if let Some(n) = c.take(out) {
            return Ok(n);
        }
        match c.socket.read_now(&mut c.buf) {
            Some(Ok(n)) => Ok(c.filled(n, out)),
            Some(Err(e)) => Err(e),
            None => {
                self.declined = true;
                Err(io::ErrorKind::Unsupported.into())
            }
        }
    }
}

fn settings(message: String) -> Error {
    Error::Tls {
        address: String::new(),
        kind: TlsErrorKind::Settings,
        message,
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| settings(format!("unreadable {what} PEM: {e}")))?;
    if certs.is_empty() {
        return Err(settings(format!("no certificate in the {what} PEM")));
    }
    Ok(certs)
}

/// A configuration builder trusting the certificates of `ca_pem`, on the ring provider
/// with rustls's safe default protocol versions.
fn builder(
    ca_pem: &[u8],
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_pem, "CA")? {
        roots
            .add(cert)
            .map_err(|e| settings(format!("unusable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| settings(format!("TLS versions: {e}")))?
        .with_root_certificates(roots))
}

/// The server name of a `host:port` address: the host, an IP address or a DNS name.
fn name_of(address: &str) -> Result<ServerName<'static>> {
    let host = match address.rsplit_once(':') {
        Some((host, _)) if !crate::transport::is_unix(address) => host,
        _ => {
            return Err(Error::Tls {
                address: address.to_owned(),
                kind: TlsErrorKind::Settings,
                message: "no host name in this address to check the certificate against; \
                          set TlsConfig::server_name"
                    .to_owned(),
            })
        }
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| Error::Tls {
        address: address.to_owned(),
        kind: TlsErrorKind::Settings,
        message: format!("invalid TLS server name {host:?}: {e}"),
    })
}

/// The typed error of a failed handshake with the node at `address`.
fn handshake_error(address: &str, e: io::Error) -> Error {
    match tls_error(address, &e) {
        Some(typed) => typed,
        None if matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        ) =>
        {
            Error::Tls {
                address: address.to_owned(),
                kind: TlsErrorKind::NotTls,
                message: format!(
                    "the server ended the connection during the TLS handshake ({e}): is it a \
                     plaintext node?"
                ),
            }
        }
        None => Error::from(e),
    }
}

/// The typed error behind an I/O error that carries a rustls error (a handshake failure, or
/// an alert the server sent after it, as TLS 1.3 servers do when they refuse a client
/// certificate).
pub(crate) fn tls_error(address: &str, e: &io::Error) -> Option<Error> {
    use rustls::{AlertDescription as A, CertificateError as C};
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    let kind = match inner {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature => TlsErrorKind::UnknownIssuer,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => TlsErrorKind::Expired,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsErrorKind::NameMismatch,
            _ => TlsErrorKind::Other,
        },
        rustls::Error::AlertReceived(
            A::CertificateRequired
            | A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::AccessDenied
            | A::HandshakeFailure,
        ) => TlsErrorKind::Refused,
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            TlsErrorKind::NotTls
        }
        _ => TlsErrorKind::Other,
    };
    Some(Error::Tls {
        address: address.to_owned(),
        kind,
        message: inner.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport that delivers `data` at most `chunk` bytes per read, through both its
    /// `poll_read` and its `read_now`.
    struct Trickle {
        data: Mutex<(Vec<u8>, usize)>,
        chunk: usize,
    }

    impl Trickle {
        fn next(&self, out: &mut [u8]) -> usize {
            let mut d = self.data.lock().unwrap();
            let (data, at) = &mut *d;
            let n = out.len().min(self.chunk).min(data.len() - *at);
            out[..n].copy_from_slice(&data[*at..*at + n]);
            *at += n;
            n
        }
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(self.next(out)))
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl NodeStream for Trickle {
        fn read_now(&self, out: &mut [u8]) -> Option<io::Result<usize>> {
            Some(Ok(self.next(out)))
        }
    }

    #[test]
    fn the_ciphertext_buffer_hands_out_every_byte_in_order_on_both_read_paths() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for chunk in [1, 1000, 5000, CIPHERTEXT_BUFFER + 3] {
            for out_len in [1, 700, 4096, 100_000] {
                let socket = Trickle {
                    data: Mutex::new((data.clone(), 0)),
                    chunk,
                };
                let mut c = Ciphertext::new(Box::new(socket));
                let mut got = Vec::new();
                let mut out = vec![0; out_len];
                let mut cx = Context::from_waker(std::task::Waker::noop());
                // Alternate the two paths, as busy-polling and parking do.
                for turn in 0.. {
                    let n = if turn % 2 == 0 {
                        match Pin::new(&mut c).poll_read(&mut cx, &mut out) {
                            Poll::Ready(r) => r.unwrap(),
                            Poll::Pending => unreachable!("the fake transport is always ready"),
                        }
                    } else {
                        let mut raw = RawSocket {
                            socket: &mut c,
                            declined: false,
                        };
                        raw.read(&mut out).unwrap()
                    };
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&out[..n]);
                }
                assert!(got == data, "chunk {chunk}, reads of {out_len}");
            }
        }
    }

    #[test]
    fn server_names_come_from_the_address_host() {
        assert!(matches!(
            name_of("127.0.0.1:9001"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            name_of("[::1]:9001"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            name_of("db.example:9001"),
            Ok(ServerName::DnsName(_))
        ));
        for unnamed in ["@dqlite", "/run/dqlite.sock", "9001"] {
            assert!(
                matches!(
                    name_of(unnamed),
                    Err(Error::Tls {
                        kind: TlsErrorKind::Settings,
                        ..
                    })
                ),
                "{unnamed}"
            );
        }
    }

    #[test]
    fn bad_pem_is_a_settings_error() {
        for e in [
            TlsConfig::server_only(b"not a certificate").unwrap_err(),
            TlsConfig::from_pem(b"", b"", b"").unwrap_err(),
        ] {
            assert!(
                matches!(
                    e,
                    Error::Tls {
                        kind: TlsErrorKind::Settings,
                        ..
                    }
                ),
                "{e:?}"
            );
        }
    }
}
