//! A fault-injecting TCP proxy for tests: sits between a client and one server on loopback
//! and misbehaves on cue.
//!
//! It is std-only (threads and `std::net`, no async runtime), so tests on any runtime, or
//! none, can put it in front of a dqlite node (or any TCP server):
//!
//! ```no_run
//! use std::time::Duration;
//! use dqlite_tests::proxy::Proxy;
//!
//! # let node: std::net::SocketAddr = "127.0.0.1:9001".parse().unwrap();
//! let proxy = Proxy::start(node);
//! // Connect the client under test to `proxy.address()` instead of `node`, then:
//! proxy.set_latency(Duration::from_millis(50));
//! proxy.slice_writes(true);
//! proxy.truncate_after(10);
//! proxy.black_hole(true);
//! proxy.reset_all();
//! proxy.heal();
//! ```
//!
//! # Model
//!
//! [`Proxy::start`] listens on a free `127.0.0.1` port. Every accepted connection is
//! dialled through to the upstream server at once (an upstream that cannot be reached
//! closes the client's connection) and gets two pump threads, one per direction, that
//! read a chunk (at most 16 KiB) from one side and write it to the other.
//!
//! Faults can be changed at any time; they apply to live connections from the next chunk
//! on, and to new connections. [`heal`](Proxy::heal) clears them all.
//!
//! When either side closes (EOF or an error), the connection is closed on both sides with
//! a FIN (`shutdown`), except after [`reset_all`](Proxy::reset_all), which sends an RST.
//! Half-closes are not propagated: a client's `shutdown(Write)` closes the whole
//! connection.
//!
//! # Threads and bounds
//!
//! Pumps use read and write timeouts of [`POLL_INTERVAL`] and check a stop flag between
//! attempts, and every wait (latency, black hole) sleeps in steps of at most that, so no
//! thread blocks for long. Dropping the [`Proxy`] stops the listener (a stop flag plus a
//! connection to itself to wake the blocking `accept`), closes every connection and joins
//! every thread; the listening port is closed when `drop` returns.
//!
//! Threads are named `px<PORT>-acc` (the accept loop), `px<PORT>-c2s` (client to server)
//! and `px<PORT>-s2c` (server to client), where `PORT` is the proxy's listening port, so a
//! test can check in `/proc/self/task/*/comm` that none outlives the proxy.
//!
//! Only loopback addresses are used: [`Proxy::start`] panics on another upstream.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often blocked pump threads look at the stop flags: the read and write timeout of
/// the proxy's sockets, and the longest single sleep while waiting out a fault.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long the proxy waits to connect to the upstream server for each new connection.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Size of the buffer each pump reads into: the largest chunk forwarded at once.
const CHUNK: usize = 16 * 1024;

/// The faults in force, as returned by [`Proxy::faults`]. The default is no fault at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Delay added to every forwarded chunk; see [`Proxy::set_latency`].
    pub latency: Duration,
    /// Whether nothing is forwarded; see [`Proxy::black_hole`].
    pub black_hole: bool,
    /// Server-to-client budget per connection; see [`Proxy::truncate_after`].
    pub truncate_after: Option<usize>,
    /// Whether chunks are written one byte per `write`; see [`Proxy::slice_writes`].
    pub slice_writes: bool,
    /// Whether new connections are closed at once; see [`Proxy::refuse`].
    pub refuse: bool,
}

/// The fault settings plus the generation of the truncation setting, so that every
/// connection restarts its budget when [`Proxy::truncate_after`] is called again.
#[derive(Default)]
struct State {
    faults: Faults,
    truncate_generation: u64,
}

/// What the proxy's threads share.
struct Shared {
    stop: AtomicBool,
    state: Mutex<State>,
    accepted: AtomicU64,
    to_server: AtomicU64,
    to_client: AtomicU64,
    conns: Mutex<Vec<Entry>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn conns(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A live connection in the registry. The pumps own the only strong references to the
/// sockets, so the sockets close once both pumps have finished.
struct Entry {
    conn: Weak<Conn>,
    pumps: Vec<JoinHandle<()>>,
}

impl Entry {
    fn finished(&self) -> bool {
        self.pumps.iter().all(JoinHandle::is_finished)
    }

    fn join(self) {
        for pump in self.pumps {
            let _ = pump.join();
        }
    }
}

const OPEN: u8 = 0;
const CLOSING: u8 = 1;
const RESETTING: u8 = 2;

/// One proxied connection: the client's socket and the upstream socket.
struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    /// [`OPEN`], [`CLOSING`] (FIN on both sides) or [`RESETTING`] (RST on both sides).
    state: AtomicU8,
}

impl Conn {
    fn done(&self, shared: &Shared) -> bool {
        shared.stop.load(Ordering::Acquire) || self.state.load(Ordering::Acquire) != OPEN
    }

    /// Closes both sides gracefully, unless a reset is under way (a FIN would go out
    /// before the RST).
    fn close(&self) {
        if self
            .state
            .compare_exchange(OPEN, CLOSING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            || self.state.load(Ordering::Acquire) == CLOSING
        {
            let _ = self.client.shutdown(Shutdown::Both);
            let _ = self.upstream.shutdown(Shutdown::Both);
        }
    }

    /// Arms both sockets to send an RST when they are closed and tells the pumps to stop.
    fn reset(&self) {
        let _ = set_linger_zero(&self.client);
        let _ = set_linger_zero(&self.upstream);
        self.state.store(RESETTING, Ordering::Release);
    }
}

/// Sets `SO_LINGER` to "on, 0 seconds": closing the socket then sends an RST and drops
/// unsent data (`TcpStream::set_linger` is not stable).
fn set_linger_zero(sock: &TcpStream) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let len =
        libc::socklen_t::try_from(std::mem::size_of::<libc::linger>()).map_err(io::Error::other)?;
    // SAFETY: the fd is a live socket owned by `sock`; the option value points to a
    // `linger` that lives across the call, and `len` is its size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A running fault-injecting proxy in front of one upstream server; see the
/// [module docs](self). Dropping it closes everything and joins its threads.
pub struct Proxy {
    address: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    /// A handle on the listening socket, to wake the accept loop if connecting to it fails.
    listener: TcpListener,
    accept: Option<JoinHandle<()>>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("address", &self.address)
            .field("upstream", &self.upstream)
            .field("faults", &self.faults())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free `127.0.0.1` port, with no faults.
    ///
    /// Panics if `upstream` is not a loopback address or if the listener cannot be set up.
    /// The upstream need not be up yet: it is dialled for each accepted connection.
    pub fn start(upstream: SocketAddr) -> Proxy {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy only forwards to loopback addresses, not {upstream}"
        );
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("proxy: bind 127.0.0.1:0");
        let address = listener.local_addr().expect("proxy: local address");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            accepted: AtomicU64::new(0),
            to_server: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
        });
        let handle = listener.try_clone().expect("proxy: clone listener");
        let accept = {
            let shared = shared.clone();
            thread::Builder::new()
                .name(format!("px{}-acc", address.port()))
                .spawn(move || accept_loop(&listener, upstream, &shared))
                .expect("proxy: spawn accept thread")
        };
        Proxy {
            address,
            upstream,
            shared,
            listener: handle,
            accept: Some(accept),
        }
    }

    /// The address clients connect to (`127.0.0.1:PORT`).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The server every connection is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The faults in force now.
    pub fn faults(&self) -> Faults {
        self.shared.state().faults
    }

    /// **Latency**: every chunk read from either side is held for `latency` before it is
    /// written to the other side. Chunks are handled in order, one at a time per
    /// direction, so it adds at least `latency` to each one-way trip (and about twice that
    /// to a request-reply round trip); bytes that arrive while a chunk waits are forwarded
    /// as the next chunk, after their own delay. `Duration::ZERO` turns it off.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.state().faults.latency = latency;
    }

    /// **Black hole**: while on, connections are accepted (and dialled through) and kept
    /// open, but nothing is forwarded in either direction, which models a silent peer or
    /// a stalled network.
    ///
    /// Data is **not read and not discarded**: the pumps stop reading, so the bytes stay
    /// in the kernel's buffers (a peer that writes a lot eventually blocks or times out in
    /// `write`), and a chunk already read is held. Turning the black hole off resumes
    /// forwarding with the stream intact. While on, a peer closing its side goes unnoticed
    /// until the black hole is lifted (or [`reset_all`](Self::reset_all) / drop).
    pub fn black_hole(&self, on: bool) {
        self.shared.state().faults.black_hole = on;
    }

    /// **Reset**: closes every live connection abruptly, on both sides, with an RST
    /// (`SO_LINGER` set to 0 before the sockets are closed): a client blocked in or later
    /// calling `read` gets `ECONNRESET` (`ErrorKind::ConnectionReset`) once it has read
    /// what was already delivered; data still queued in the proxy is dropped. Returns once
    /// the connections' threads have finished and the sockets are closed. Only connections
    /// the proxy has already accepted are reset (a client's `connect` can return before
    /// that: exchange some data first to be sure); later ones are not affected.
    pub fn reset_all(&self) {
        let entries: Vec<Entry> = std::mem::take(&mut *self.shared.conns());
        for entry in &entries {
            if let Some(conn) = entry.conn.upgrade() {
                conn.reset();
            }
        }
        for entry in entries {
            entry.join();
        }
    }

    /// **Truncation**: from now on, each connection, live or new, forwards at most
    /// `n_bytes` more bytes from the server to the client and is then closed on both sides
    /// (FIN), so a reply can be cut mid-frame: the client reads exactly `n_bytes` (counted
    /// per connection from this call, or from its start for a new connection) and then
    /// EOF. With `0` every connection is closed at once, new ones right after they are
    /// accepted. Calling it again restarts every connection's budget;
    /// [`no_truncation`](Self::no_truncation) turns it off. The client-to-server direction
    /// is not limited.
    pub fn truncate_after(&self, n_bytes: usize) {
        let mut state = self.shared.state();
        state.faults.truncate_after = Some(n_bytes);
        state.truncate_generation += 1;
    }

    /// Turns [`truncate_after`](Self::truncate_after) off; connections it has already
    /// closed stay closed.
    pub fn no_truncation(&self) {
        let mut state = self.shared.state();
        state.faults.truncate_after = None;
        state.truncate_generation += 1;
    }

    /// **Slicing**: while on, every chunk is written with one `write` call per byte, in
    /// both directions, on sockets with `TCP_NODELAY`, so the peers see their messages
    /// arrive in many small pieces and exercise their partial-read paths (how small the
    /// pieces a reader gets are still depends on how fast it reads). The bytes are the
    /// same, in the same order.
    pub fn slice_writes(&self, on: bool) {
        self.shared.state().faults.slice_writes = on;
    }

    /// **Refusal**: while on, new connections are accepted and closed at once (FIN, so the
    /// client reads EOF) without dialling the upstream; live connections are not
    /// affected. Refused connections count in
    /// [`connections_accepted`](Self::connections_accepted).
    pub fn refuse(&self, on: bool) {
        self.shared.state().faults.refuse = on;
    }

    /// Clears every fault: no latency, black hole, truncation, slicing or refusal.
    /// Connections already closed by a fault stay closed.
    pub fn heal(&self) {
        let mut state = self.shared.state();
        state.faults = Faults::default();
        state.truncate_generation += 1;
    }

    /// Connections accepted so far, including refused ones and ones whose upstream could
    /// not be reached.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Acquire)
    }

    /// Bytes written to the upstream server so far, over all connections. Like
    /// [`bytes_to_client`](Self::bytes_to_client), it never lags what the peer has
    /// received: a write is counted as it starts and corrected when it returns, so while
    /// one is under way the count may run ahead by at most one chunk.
    pub fn bytes_to_server(&self) -> u64 {
        self.shared.to_server.load(Ordering::Acquire)
    }

    /// Bytes written to clients so far, over all connections.
    pub fn bytes_to_client(&self) -> u64 {
        self.shared.to_client.load(Ordering::Acquire)
    }

    /// Connections whose pump threads are still running.
    pub fn live_connections(&self) -> usize {
        let mut conns = self.shared.conns();
        conns.retain(|e| !e.finished());
        conns.len()
    }
}

impl Drop for Proxy {
    /// Stops the listener (the port is closed when `drop` returns), closes every
    /// connection gracefully (FIN) and joins all threads.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Wake the blocking accept; if that fails, shutting the listening socket down
        // makes accept fail on Linux.
        if TcpStream::connect_timeout(&self.address, Duration::from_secs(1)).is_err() {
            // SAFETY: the fd belongs to `self.listener`, which is alive; shutdown(2) has
            // no memory-safety preconditions.
            unsafe {
                libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR);
            }
        }
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let entries: Vec<Entry> = std::mem::take(&mut *self.shared.conns());
        for entry in entries {
            entry.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<Shared>) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let client = match accepted {
            Ok((client, _)) => client,
            Err(_) => {
                // EMFILE and the like: back off, stay responsive to the stop flag.
                thread::sleep(POLL_INTERVAL);
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::AcqRel);
        shared.conns().retain(|e| !e.finished());
        if shared.state().faults.refuse {
            drop(client);
            continue;
        }
        let Ok(upstream) = TcpStream::connect_timeout(&upstream, UPSTREAM_CONNECT_TIMEOUT) else {
            drop(client);
            continue;
        };
        // Registered under the lock, so reset_all and drop see every pump started.
        let mut conns = shared.conns();
        if let Some(entry) = spawn_pumps(client, upstream, port, shared) {
            conns.push(entry);
        }
    }
}

/// Sets the sockets up and starts both pumps; `None` (both sockets closed) on failure.
fn spawn_pumps(
    client: TcpStream,
    upstream: TcpStream,
    port: u16,
    shared: &Arc<Shared>,
) -> Option<Entry> {
    for sock in [&client, &upstream] {
        sock.set_nodelay(true).ok()?;
        sock.set_read_timeout(Some(POLL_INTERVAL)).ok()?;
        sock.set_write_timeout(Some(POLL_INTERVAL)).ok()?;
    }
    let conn = Arc::new(Conn {
        client,
        upstream,
        state: AtomicU8::new(OPEN),
    });
    let weak = Arc::downgrade(&conn);
    let mut pumps = Vec::with_capacity(2);
    for dir in [Direction::ToServer, Direction::ToClient] {
        let (pumped, shared) = (conn.clone(), shared.clone());
        let name = match dir {
            Direction::ToServer => format!("px{port}-c2s"),
            Direction::ToClient => format!("px{port}-s2c"),
        };
        match thread::Builder::new()
            .name(name)
            .spawn(move || pump(&pumped, &shared, dir))
        {
            Ok(handle) => pumps.push(handle),
            Err(_) => {
                conn.close();
                break;
            }
        }
    }
    Some(Entry { conn: weak, pumps })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

/// Truncation budget of one pump, following the proxy's setting.
struct Budget {
    generation: u64,
    remaining: Option<usize>,
}

impl Budget {
    fn update(&mut self, state: &State) {
        if self.generation != state.truncate_generation {
            self.generation = state.truncate_generation;
            self.remaining = state.faults.truncate_after;
        }
    }
}

/// Forwards one direction of `conn` until either side closes, the connection is closed
/// or reset, or the proxy stops; then closes the connection (unless it is being reset).
fn pump(conn: &Conn, shared: &Shared, dir: Direction) {
    let (mut from, to, counter) = match dir {
        Direction::ToServer => (&conn.client, &conn.upstream, &shared.to_server),
        Direction::ToClient => (&conn.upstream, &conn.client, &shared.to_client),
    };
    let mut budget = Budget {
        generation: 0,
        remaining: None,
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        if conn.done(shared) {
            break;
        }
        let black_hole = {
            let state = shared.state();
            if dir == Direction::ToClient {
                budget.update(&state);
            }
            state.faults.black_hole
        };
        if budget.remaining == Some(0) {
            break;
        }
        if black_hole {
            thread::sleep(POLL_INTERVAL);
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if transient(&e) => continue,
            Err(_) => break,
        };
        // Settings as of now, not as of before the (up to POLL_INTERVAL long) read.
        let latency = shared.state().faults.latency;
        if !hold(conn, shared, Instant::now() + latency) {
            break;
        }
        // Settings after the wait: a black hole or truncation set meanwhile applies to
        // this chunk.
        let slice = {
            let state = shared.state();
            if dir == Direction::ToClient {
                budget.update(&state);
            }
            state.faults.slice_writes
        };
        let mut chunk = buf.get(..n).unwrap_or_default();
        if let Some(remaining) = budget.remaining.as_mut() {
            chunk = chunk.get(..*remaining).unwrap_or(chunk);
            *remaining -= chunk.len();
        }
        if !write_all(to, chunk, slice, counter, conn, shared) {
            break;
        }
    }
    conn.close();
}

/// Waits until `until` and then while the black hole is on; `false` if the connection or
/// the proxy stops meanwhile.
fn hold(conn: &Conn, shared: &Shared, until: Instant) -> bool {
    loop {
        if conn.done(shared) {
            return false;
        }
        let now = Instant::now();
        if now < until {
            thread::sleep((until - now).min(POLL_INTERVAL));
        } else if shared.state().faults.black_hole {
            thread::sleep(POLL_INTERVAL);
        } else {
            return true;
        }
    }
}

/// Writes all of `data` (one byte per call if `slice`), retrying on timeouts; `false` if
/// the peer is gone or the connection or the proxy stops.
fn write_all(
    mut to: &TcpStream,
    data: &[u8],
    slice: bool,
    counter: &AtomicU64,
    conn: &Conn,
    shared: &Shared,
) -> bool {
    let mut rest = data;
    while !rest.is_empty() {
        if conn.done(shared) {
            return false;
        }
        let piece = if slice { &rest[..1] } else { rest };
        // Counted before the write and corrected after, so the counter never lags what
        // the peer may already have received.
        let len = piece.len() as u64;
        counter.fetch_add(len, Ordering::AcqRel);
        let result = to.write(piece);
        let written = *result.as_ref().unwrap_or(&0);
        counter.fetch_sub(len - written as u64, Ordering::AcqRel);
        match result {
            Ok(0) => return false,
            Ok(n) => rest = &rest[n..],
            Err(e) if transient(&e) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Timeouts (`EAGAIN` from `SO_RCVTIMEO`/`SO_SNDTIMEO`) and interruptions.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}
