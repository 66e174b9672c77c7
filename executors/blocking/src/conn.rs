//! The protocol core driven over a blocking `std::net::TcpStream` (optionally through
//! rustls), with no async runtime: the low level of this crate.
//!
//! [`BlockingConn`] is the smallest complete driver of [`dqlite_proto::Connection`] and
//! doubles as the example of embedding the core in an event loop of one's own: queue a
//! command, write what `poll_transmit` gives, read into `handle_input`, and drain
//! `poll_event`. Every request is one call; the replies come back as the core's
//! [`Reply`] values.
//!
//! ```no_run
//! use dqlite_blocking::BlockingConn;
//! use dqlite_proto::{Reply, Value};
//!
//! let mut c = BlockingConn::connect("127.0.0.1:9001").unwrap();
//! c.call(|p| p.open("app")).unwrap();
//! c.call(|p| p.exec_sql("CREATE TABLE IF NOT EXISTS t (x INTEGER)", &[])).unwrap();
//! let replies = c.call(|p| p.query_sql("SELECT ?", &[Value::Integer(1)])).unwrap();
//! assert!(matches!(replies.last(), Some(Reply::Rows(_))));
//! ```

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use dqlite_proto::{Config, Connection, Error, NodeInfo, Reply, RequestId};

/// How long a blocking call may wait for the server before failing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Failure of a blocking call: the socket or the protocol.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Socket error (including timeouts).
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// Protocol error, or a FAILURE from the server (`Error::Server`).
    #[error(transparent)]
    Proto(#[from] Error),
}

/// A blocking connection: a socket and the sans-IO core.
pub struct BlockingConn {
    sock: TcpStream,
    /// TLS on top of `sock`, when connected with [`connect_tls`](Self::connect_tls).
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ClientConnection>>,
    core: Connection,
    buf: Vec<u8>,
    /// Every byte received, when recording (for capturing fixtures).
    recording: Option<Vec<u8>>,
    /// How long to poll the socket before a blocking read.
    busy_poll: Duration,
    /// How long to sleep between reads in the middle of a multi-part result.
    coalesce: Duration,
}

impl BlockingConn {
    /// Dials `addr` with [`DEFAULT_TIMEOUT`] on connect, reads and writes.
    pub fn connect(addr: &str) -> io::Result<BlockingConn> {
        Self::connect_with(addr, Config::default(), DEFAULT_TIMEOUT)
    }

    /// Dials `addr` with a core configuration and a timeout for every socket operation.
    pub fn connect_with(addr: &str, config: Config, timeout: Duration) -> io::Result<BlockingConn> {
        let sa = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
        let sock = TcpStream::connect_timeout(&sa, timeout)?;
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_write_timeout(Some(timeout))?;
        Ok(BlockingConn {
            sock,
            #[cfg(feature = "tls")]
            tls: None,
            core: Connection::new(config),
            buf: vec![0; 64 * 1024],
            recording: None,
            busy_poll: Duration::ZERO,
            coalesce: Duration::ZERO,
        })
    }

    /// As [`connect`](Self::connect), over TLS with `config`, checking the server's
    /// certificate against `server_name`. The handshake runs with the first request; direct
    /// socket reads (busy-polling, coalescing) are off, since the socket's bytes are not the
    /// plaintext.
    #[cfg(feature = "tls")]
    pub fn connect_tls(
        addr: &str,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> io::Result<BlockingConn> {
        Self::connect_tls_with(
            addr,
            Config::default(),
            DEFAULT_TIMEOUT,
            config,
            server_name,
        )
    }

    /// As [`connect_tls`](Self::connect_tls), with a core configuration and a timeout for
    /// every socket operation.
    #[cfg(feature = "tls")]
    pub fn connect_tls_with(
        addr: &str,
        core: Config,
        timeout: Duration,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> io::Result<BlockingConn> {
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        let mut conn = Self::connect_with(addr, core, timeout)?;
        conn.tls = Some(Box::new(tls));
        Ok(conn)
    }

    /// Whether this connection runs over TLS.
    fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        {
            self.tls.is_some()
        }
        #[cfg(not(feature = "tls"))]
        {
            false
        }
    }

    /// Polls the socket for up to `window` before each blocking read for a reply (zero, the
    /// default, never polls), as the async client does by default: a reply that comes within
    /// the window is read without the wake-up of a sleeping thread. Like the client, it does
    /// not poll in the middle of a multi-part result.
    pub fn set_busy_poll(&mut self, window: Duration) {
        self.busy_poll = window;
    }

    /// Sleeps for `interval` before reading again when the socket is empty in the middle of a
    /// long result (from its 8th batch on; zero, the default, never does), as the async client
    /// does by default: the server's frames are read a few at a time instead of one per
    /// wake-up.
    pub fn set_stream_coalesce(&mut self, interval: Duration) {
        self.coalesce = interval;
    }

    /// The core, for inspection.
    pub fn core(&self) -> &Connection {
        &self.core
    }

    /// Starts recording received bytes; [`take_recording`](Self::take_recording) returns them.
    pub fn record(&mut self) {
        self.recording = Some(Vec::new());
    }

    /// The bytes received since [`record`](Self::record), and stops recording.
    pub fn take_recording(&mut self) -> Vec<u8> {
        self.recording.take().unwrap_or_default()
    }

    /// Queues one command with `f`, sends it, and returns every reply to it (several for a
    /// multi-part query). A FAILURE reply becomes `Err(CallError::Proto(Error::Server(..)))`.
    pub fn call(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<RequestId, Error>,
    ) -> Result<Vec<Reply>, CallError> {
        let mut replies = Vec::new();
        self.call_each(f, |r| replies.push(r))?;
        Ok(replies)
    }

    /// As [`call`](Self::call), but hands each reply to `each` as it arrives instead of
    /// keeping them (a long result streams through in bounded memory).
    pub fn call_each(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<RequestId, Error>,
        mut each: impl FnMut(Reply),
    ) -> Result<(), CallError> {
        let id = f(&mut self.core)?;
        self.flush()?;
        // As the async client: no busy-polling in the middle of a multi-part result, and
        // coalescing from its 8th batch on.
        let mut batches = 0u32;
        loop {
            while let Some(ev) = self.core.poll_event()? {
                if ev.request != id {
                    continue;
                }
                let done = ev.completes_request();
                batches += 1;
                match ev.reply {
                    Reply::Failure(f) => return Err(Error::Server(f).into()),
                    reply => each(reply),
                }
                if done {
                    return Ok(());
                }
            }
            self.read_some(batches)?;
        }
    }

    /// Asks this node who it thinks leads.
    pub fn leader(&mut self) -> Result<NodeInfo, CallError> {
        match self.call(Connection::leader)?.pop() {
            Some(Reply::Leader(n)) => Ok(n),
            other => Err(io::Error::other(format!("unexpected reply {other:?}")).into()),
        }
    }

    /// Asks this node for the cluster's nodes, with roles.
    pub fn cluster(&mut self) -> Result<Vec<NodeInfo>, CallError> {
        match self.call(|c| c.cluster(true))?.pop() {
            Some(Reply::Nodes(n)) => Ok(n),
            other => Err(io::Error::other(format!("unexpected reply {other:?}")).into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        while let Some(bytes) = self.core.poll_transmit() {
            #[cfg(feature = "tls")]
            let n = match &mut self.tls {
                Some(tls) => rustls::Stream::new(&mut **tls, &mut self.sock).write(bytes)?,
                None => self.sock.write(bytes)?,
            };
            #[cfg(not(feature = "tls"))]
            let n = self.sock.write(bytes)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.core.advance_transmit(n);
        }
        Ok(())
    }

    /// Reads once, `batches` into a result: busy-polling for the first, coalescing from the
    /// 8th on, plainly in between.
    fn read_some(&mut self, batches: u32) -> Result<(), CallError> {
        let polled = match batches {
            _ if self.is_tls() => None,
            0 => self.poll_socket()?,
            1..COALESCE_FROM_BATCH => None,
            _ => self.coalesced()?,
        };
        let n = match polled {
            Some(n) => n,
            None => self.read_socket()?,
        };
        rearm_quickack(&self.sock);
        if n == 0 {
            return Err(self.core.handle_eof().into());
        }
        let data = self.buf.get(..n).unwrap_or_default();
        if let Some(rec) = &mut self.recording {
            rec.extend_from_slice(data);
        }
        self.core.handle_input(data);
        Ok(())
    }
}

impl BlockingConn {
    /// One blocking read of plaintext (through TLS when it is on).
    fn read_socket(&mut self) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return rustls::Stream::new(&mut **tls, &mut self.sock).read(&mut self.buf);
        }
        self.sock.read(&mut self.buf)
    }

    /// Reads what arrives within the busy-poll window, without blocking.
    fn poll_socket(&mut self) -> io::Result<Option<usize>> {
        if self.busy_poll.is_zero() {
            return Ok(None);
        }
        let until = Instant::now() + self.busy_poll;
        loop {
            if let Some(n) = self.recv_now()? {
                return Ok(Some(n));
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            std::hint::spin_loop();
        }
    }

    /// Mid-result: what the socket holds, or what it holds after one coalescing interval.
    fn coalesced(&mut self) -> io::Result<Option<usize>> {
        if self.coalesce.is_zero() {
            return Ok(None);
        }
        if let Some(n) = self.recv_now()? {
            return Ok(Some(n));
        }
        std::thread::sleep(self.coalesce);
        self.recv_now()
    }

    /// One read that never blocks: `None` if nothing has arrived.
    #[cfg(target_os = "linux")]
    fn recv_now(&mut self) -> io::Result<Option<usize>> {
        use std::os::fd::AsRawFd;
        // SAFETY: recv writes at most `buf.len()` bytes into `buf`, which it borrows mutably
        // for the call; the fd is owned by `sock`.
        #[allow(unsafe_code)]
        let n = unsafe {
            libc::recv(
                self.sock.as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if let Ok(n) = usize::try_from(n) {
            return Ok(Some(n));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn recv_now(&mut self) -> io::Result<Option<usize>> {
        Ok(None)
    }
}

/// The batch of a result from which reads are coalesced, as in the async client.
const COALESCE_FROM_BATCH: u32 = 8;

/// Re-arms `TCP_QUICKACK` (Linux), which the kernel clears after a while: without it a
/// delayed ACK and the server's Nagle can stall the tail of a large result by ~40 ms.
fn rearm_quickack(sock: &TcpStream) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a valid pointer; the fd is
        // owned by `sock` for the duration of the call. Failure only costs latency.
        #[allow(unsafe_code)]
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}
