//! The fault-injecting proxy: each fault against a local echo server, then all of them in
//! front of a real dqlite node driven by the blocking driver.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use dqlite_blocking::{BlockingConn, CallError};
use dqlite_proto::{Config, Reply};
use dqlite_tests::harness::{reserve_loopback_addr, Cluster};
use dqlite_tests::proxy::{Faults, Proxy};

/// Read timeout of test clients: long enough for any expected answer, short enough to keep
/// a broken test bounded.
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// A loopback server echoing every byte back on every connection; stopped and joined on
/// drop.
struct Echo {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = thread::spawn(move || {
            let mut conns = Vec::new();
            while !s.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let s = s.clone();
                        conns.push(thread::spawn(move || echo(sock, &s)));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        Echo {
            address,
            stop,
            thread: Some(thread),
        }
    }
}

fn echo(mut sock: TcpStream, stop: &AtomicBool) {
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Acquire) {
        match sock.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if sock.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn client(proxy: &Proxy) -> TcpStream {
    let sock = TcpStream::connect(proxy.address()).unwrap();
    sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    sock.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
    sock
}

/// Sends `data` and reads as many bytes back.
fn roundtrip(sock: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    sock.write_all(data).unwrap();
    let mut back = vec![0; data.len()];
    sock.read_exact(&mut back).unwrap();
    back
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Names of this process's threads that belong to the proxy listening on `port`.
fn proxy_threads(port: u16) -> Vec<String> {
    let prefix = format!("px{port}-");
    fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

/// Checks the byte counters, which may run ahead of what a peer has received while a write
/// is under way.
fn assert_counts(proxy: &Proxy, to_server: u64, to_client: u64) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while (proxy.bytes_to_server(), proxy.bytes_to_client()) != (to_server, to_client)
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(proxy.bytes_to_server(), to_server, "bytes to server");
    assert_eq!(proxy.bytes_to_client(), to_client, "bytes to client");
}

fn is_timeout(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

#[test]
fn forwards_both_ways_and_counts() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.address);
    assert!(proxy.address().ip().is_loopback());
    assert_eq!(proxy.upstream(), echo.address);
    assert_eq!(proxy.faults(), Faults::default());

    let mut a = client(&proxy);
    let mut b = client(&proxy);
    assert_eq!(roundtrip(&mut a, b"hello"), b"hello");
    assert_eq!(roundtrip(&mut b, b"world!"), b"world!");
    let big = pattern(200_000);
    let mut writer = a.try_clone().unwrap();
    let sent = big.clone();
    let w = thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut back = vec![0; big.len()];
    a.read_exact(&mut back).unwrap();
    w.join().unwrap();
    assert!(back == big, "200 kB came back altered");

    assert_eq!(proxy.connections_accepted(), 2);
    assert_eq!(proxy.live_connections(), 2);
    let total = 5 + 6 + big.len() as u64;
    assert_counts(&proxy, total, total);
}

#[test]
fn latency_delays_each_direction() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.address);
    let mut sock = client(&proxy);
    assert_eq!(roundtrip(&mut sock, b"warm"), b"warm");

    // Long enough that a loopback echo on a busy machine is far quicker than two trips,
    // short enough that two trips stay within the sockets' read timeout.
    let latency = Duration::from_millis(500);
    proxy.set_latency(latency);
    assert_eq!(proxy.faults().latency, latency);
    let start = Instant::now();
    assert_eq!(roundtrip(&mut sock, b"slow"), b"slow");
    let took = start.elapsed();
    assert!(took >= 2 * latency, "round trip took only {took:?}");

    proxy.set_latency(Duration::ZERO);
    let start = Instant::now();
    assert_eq!(roundtrip(&mut sock, b"fast"), b"fast");
    let took = start.elapsed();
    assert!(took < 2 * latency, "latency still applied: {took:?}");
}

#[test]
fn black_hole_silences_and_healing_resumes_the_stream() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.address);
    let mut live = client(&proxy);
    assert_eq!(roundtrip(&mut live, b"before"), b"before");
    assert_counts(&proxy, 6, 6);

    proxy.black_hole(true);
    // Live connection: the request is neither forwarded nor answered.
    live.write_all(b"ping").unwrap();
    live.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    let err = live.read(&mut buf).unwrap_err();
    assert!(is_timeout(err.kind()), "expected a timeout, got {err:?}");
    assert_counts(&proxy, 6, 6);

    // New connection: accepted and kept open, but silent too.
    let mut fresh = client(&proxy);
    fresh.write_all(b"new").unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let err = fresh.read(&mut buf).unwrap_err();
    assert!(is_timeout(err.kind()), "expected a timeout, got {err:?}");

    // Nothing was read and discarded: lifting the black hole delivers the held bytes.
    proxy.black_hole(false);
    live.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    fresh.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut back = [0u8; 4];
    live.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    let mut back = [0u8; 3];
    fresh.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"new");
}

#[test]
fn reset_all_sends_rst_to_live_connections_only() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.address);
    let mut a = client(&proxy);
    let mut b = client(&proxy);
    assert_eq!(roundtrip(&mut a, b"a"), b"a");
    assert_eq!(roundtrip(&mut b, b"b"), b"b");

    // Resets at once: no wait for traffic or a timeout (the bound is only generous).
    let start = Instant::now();
    proxy.reset_all();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(proxy.live_connections(), 0);
    let mut buf = [0u8; 8];
    for sock in [&mut a, &mut b] {
        let err = sock.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?}");
    }

    // The proxy itself keeps working.
    let mut c = client(&proxy);
    assert_eq!(roundtrip(&mut c, b"again"), b"again");
}

#[test]
fn truncate_after_delivers_exactly_n_bytes_then_eof() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.address);
    let mut live = client(&proxy);
    assert_eq!(roundtrip(&mut live, b"untouched"), b"untouched");

    // Live connection: n more bytes, counted from the call.
    proxy.truncate_after(10);
    assert_eq!(proxy.faults().truncate_after, Some(10));
    let data = pattern(100);
    live.write_all(&data).unwrap();
    let mut got = Vec::new();
    live.read_to_end(&mut got).unwrap();
    assert_eq!(got, &data[..10]);

    // New connection: n bytes from its start, even across several chunks.
    let mut fresh = client(&proxy);
    assert_eq!(roundtrip(&mut fresh, b"12345"), b"12345");
    fresh.write_all(&data).unwrap();
    let mut got = Vec::new();
    fresh.read_to_end(&mut got).unwrap();
    assert_eq!(got, &data[..5]);

    // Zero closes at once, without any traffic.
    proxy.no_truncation();
    let mut idle = client(&proxy);
    assert_eq!(roundtrip(&mut idle, b"x"), b"x");
    proxy.truncate_after(0);
    let start = Instant::now();
    assert_eq!(idle.read(&mut [0u8; 4]).unwrap(), 0);
    assert!(start.elapsed() < Duration::from_secs(10));

    proxy.no_truncation();
    let mut whole = client(&proxy);
    assert_eq!(roundtrip(&mut whole, &data), data);
}

#[test]
fn slice_writes_delivers_the_same_bytes() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.address);
    proxy.slice_writes(true);
    let mut sock = client(&proxy);
    let data = pattern(20_000);
    let mut writer = sock.try_clone().unwrap();
    let sent = data.clone();
    let w = thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut back = vec![0; data.len()];
    sock.read_exact(&mut back).unwrap();
    w.join().unwrap();
    assert!(back == data, "sliced bytes came back altered");
    let len = data.len() as u64;
    assert_counts(&proxy, len, len);
}

#[test]
fn refuse_closes_new_connections_at_once() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.address);
    let mut live = client(&proxy);
    assert_eq!(roundtrip(&mut live, b"live"), b"live");

    proxy.refuse(true);
    let mut refused = client(&proxy);
    let start = Instant::now();
    assert_eq!(refused.read(&mut [0u8; 4]).unwrap(), 0);
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(proxy.connections_accepted(), 2);
    // Live connections are not affected.
    assert_eq!(roundtrip(&mut live, b"still"), b"still");

    proxy.heal();
    assert_eq!(proxy.faults(), Faults::default());
    let mut c = client(&proxy);
    assert_eq!(roundtrip(&mut c, b"back"), b"back");
}

#[test]
fn unreachable_upstream_closes_the_client() {
    let proxy = Proxy::start(reserve_loopback_addr());
    let mut sock = client(&proxy);
    assert_eq!(sock.read(&mut [0u8; 4]).unwrap(), 0);
    assert_eq!(proxy.connections_accepted(), 1);
}

#[test]
fn drop_ends_threads_and_closes_the_port() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.address);
    let address = proxy.address();
    let mut a = client(&proxy);
    assert_eq!(roundtrip(&mut a, b"hi"), b"hi");
    // A black-holed connection and a slow one must not keep the proxy alive.
    let mut b = client(&proxy);
    assert_eq!(roundtrip(&mut b, b"hi"), b"hi");
    proxy.set_latency(Duration::from_secs(30));
    b.write_all(b"stuck in latency").unwrap();
    let mut names = proxy_threads(address.port());
    names.sort();
    assert_eq!(
        names,
        [
            format!("px{}-acc", address.port()),
            format!("px{}-c2s", address.port()),
            format!("px{}-c2s", address.port()),
            format!("px{}-s2c", address.port()),
            format!("px{}-s2c", address.port()),
        ]
    );

    let start = Instant::now();
    drop(proxy);
    assert!(start.elapsed() < Duration::from_secs(2), "drop took long");
    // Joined threads may linger in /proc for a moment.
    let deadline = Instant::now() + Duration::from_secs(1);
    while !proxy_threads(address.port()).is_empty() {
        assert!(Instant::now() < deadline, "proxy threads outlive the proxy");
        thread::sleep(Duration::from_millis(10));
    }
    let err = TcpStream::connect(address).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    // Connections were closed gracefully.
    assert_eq!(a.read(&mut [0u8; 4]).unwrap(), 0);
    assert_eq!(b.read(&mut [0u8; 4]).unwrap(), 0);
}

#[test]
fn faults_in_front_of_a_real_dqlite_node() {
    let cluster = Cluster::start(1);
    let node = cluster.wait_ready(1);
    let proxy = Proxy::start(cluster.db_address(node));
    let address = proxy.address().to_string();

    // Sliced writes both ways: every request and reply in 1-byte writes, still fine.
    proxy.slice_writes(true);
    let mut conn =
        BlockingConn::connect_with(&address, Config::default(), Duration::from_secs(5)).unwrap();
    let leader = conn.leader().unwrap();
    assert_eq!(
        leader.address.to_string(),
        cluster.db_address(node).to_string()
    );
    conn.call(|p| p.open("x")).unwrap();
    let replies = conn.call(|p| p.query_sql("SELECT 1", &[])).unwrap();
    assert!(
        matches!(replies.last(), Some(Reply::Rows(_))),
        "{replies:?}"
    );
    proxy.slice_writes(false);

    // Truncation mid-reply: the rows reply is well over 10 bytes; the call fails, fast.
    proxy.truncate_after(10);
    let before = proxy.bytes_to_client();
    let start = Instant::now();
    let result = conn.call(|p| p.query_sql("SELECT 1", &[]));
    assert!(result.is_err(), "truncated reply accepted: {result:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(proxy.bytes_to_client() - before, 10);
    proxy.no_truncation();

    // Black hole with a 1 s timeout: the call times out instead of hanging.
    let mut conn =
        BlockingConn::connect_with(&address, Config::default(), Duration::from_secs(1)).unwrap();
    conn.call(|p| p.open("x")).unwrap();
    proxy.black_hole(true);
    let start = Instant::now();
    let result = conn.call(|p| p.query_sql("SELECT 1", &[]));
    let took = start.elapsed();
    match result {
        Err(CallError::Io(e)) if is_timeout(e.kind()) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "timed out after {took:?}"
    );
    proxy.black_hole(false);
}
