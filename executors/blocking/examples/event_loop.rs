//! The protocol core in an event loop of one's own: several connections on one thread,
//! non-blocking sockets, `poll(2)`. Each connection opens the database and runs a query
//! of its own size; the loop writes what each core wants sent, waits until a socket can
//! be read (or written), feeds what it reads to that core, and drains the core's events.
//! No async runtime and no thread per connection: the same few steps fit any loop (mio,
//! epoll, a game loop, an embedded scheduler).
//!
//! `cargo run -p dqlite-blocking --example event_loop -- LEADER_ADDR [CONNECTIONS]`

use std::error::Error;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use dqlite_proto::{Config, Connection, Reply, RequestId, Value};

/// How long one `poll` may wait before the example gives up on the server.
const POLL_TIMEOUT_MS: libc::c_int = 10_000;

/// One connection: its socket, its core, and what it waits for.
struct Peer {
    sock: TcpStream,
    core: Connection,
    query: RequestId,
    rows: usize,
    done: bool,
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(address) = args.next() else {
        eprintln!("usage: event_loop LEADER_ADDR [CONNECTIONS]");
        return ExitCode::from(2);
    };
    let connections = match args.next().map(|n| n.parse::<usize>()) {
        None => 4,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("event_loop: CONNECTIONS must be a positive number");
            return ExitCode::from(2);
        }
    };
    match run(&address, connections) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("event_loop: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(address: &str, connections: usize) -> Result<(), Box<dyn Error>> {
    let mut peers = Vec::with_capacity(connections);
    for i in 0..connections {
        let sock = TcpStream::connect(address)?;
        sock.set_nodelay(true)?;
        sock.set_nonblocking(true)?;
        // The core queues the handshake; OPEN and the query go out behind it (pipelined).
        let mut core = Connection::new(Config::default());
        core.open("event-loop")?;
        let last = i64::try_from(10_000 * (i + 1))?;
        let query = core.query_sql(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?) \
             SELECT x FROM c",
            &[Value::Integer(last)],
        )?;
        peers.push(Peer {
            sock,
            core,
            query,
            rows: 0,
            done: false,
        });
    }
    let mut buf = vec![0u8; 64 * 1024];
    while peers.iter().any(|p| !p.done) {
        // 1. Send what each core wants sent, as far as the socket takes it.
        for peer in &mut peers {
            write_some(peer)?;
        }
        // 2. Wait until a socket has something to read, or room for what is left to send.
        let mut fds: Vec<libc::pollfd> = peers
            .iter()
            .map(|p| libc::pollfd {
                fd: p.sock.as_raw_fd(),
                events: if p.done {
                    0
                } else if p.core.poll_transmit().is_some() {
                    libc::POLLIN | libc::POLLOUT
                } else {
                    libc::POLLIN
                },
                revents: 0,
            })
            .collect();
        let count = libc::nfds_t::try_from(fds.len())?;
        // SAFETY: `fds` is a live, exclusively borrowed array of `count` pollfd structs,
        // which poll(2) reads and whose `revents` it writes, for the duration of the call.
        #[allow(unsafe_code)]
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, POLL_TIMEOUT_MS) };
        if ready < 0 {
            return Err(io::Error::last_os_error().into());
        }
        if ready == 0 {
            return Err("the server sent nothing for 10 s".into());
        }
        // 3. Feed what arrived to the cores and drain their events.
        for (peer, fd) in peers.iter_mut().zip(&fds) {
            if fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
                continue;
            }
            match peer.sock.read(&mut buf) {
                Ok(0) => return Err(peer.core.handle_eof().into()),
                Ok(n) => peer.core.handle_input(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
            while let Some(event) = peer.core.poll_event()? {
                match event.reply {
                    Reply::Opened => {}
                    Reply::Rows(batch) if event.request == peer.query => {
                        peer.rows += batch.len();
                        peer.done = batch.is_last();
                    }
                    Reply::Failure(f) => return Err(f.into()),
                    other => return Err(format!("unexpected reply {other:?}").into()),
                }
            }
        }
    }
    for (i, peer) in peers.iter().enumerate() {
        println!("connection {i}: {} rows", peer.rows);
    }
    Ok(())
}

/// Writes what the core wants sent until the socket would block.
fn write_some(peer: &mut Peer) -> io::Result<()> {
    while let Some(bytes) = peer.core.poll_transmit() {
        match peer.sock.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => peer.core.advance_transmit(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
