//! Workloads under node faults: the leader is killed about every 10 seconds (then
//! restarted), paused once for 5 seconds, and its leadership transferred once, while clients
//! keep writing.
//!
//! * Set: 8 writers insert unique values; every operation is recorded as acknowledged,
//!   failed (definitely not applied) or ambiguous. After healing: 0 acknowledged writes lost,
//!   0 duplicated, 0 failed-but-present.
//! * Bank: transfers between accounts in transactions; the total never changes and no reader
//!   ever sees a partial transfer.
//!
//! The set workload also runs over mutual TLS, on a cluster of go-dqlite TLS nodes
//! (`tlsnode`), with kills and a pause (leadership transfer needs the plaintext protocol
//! helpers of the harness). Set and bank also run over unix sockets: on plaintext `tlsnode`s
//! with unix fronts, through a dial function that carries every connection the pool makes
//! (discovery, redirects to the leader, refreshed membership) to the front of the address it
//! is given, so no request goes over TCP.
//!
//! `DQLITE_WORKLOAD_SECS` sets the length (default 60).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use std::sync::Arc;

use dqlite_client::{
    BoxFuture, BoxStream, Config, Error, Pool, PoolOptions, Runtime, TlsConfig, Value,
};
use dqlite_smol::Smol;
use dqlite_tests::harness::{Cluster, ServerCommand};
use dqlite_tests::nodes::{unix_front_name, TlsCluster};

/// How the client reaches the nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// `dqlite-demo` nodes over TCP.
    Tcp,
    /// `tlsnode`s over mutual TLS.
    Tls,
    /// Plaintext `tlsnode`s, every connection over the unix front of its node.
    Unix,
}

/// The cluster a workload runs on.
enum Nodes {
    Plain(Cluster),
    Tls(Box<TlsCluster>),
    Unix(Cluster),
}

impl Nodes {
    fn cluster(&mut self) -> &mut Cluster {
        match self {
            Nodes::Plain(c) | Nodes::Unix(c) => c,
            Nodes::Tls(c) => c,
        }
    }

    fn leader(&self) -> Option<usize> {
        match self {
            Nodes::Plain(c) | Nodes::Unix(c) => c.leader(),
            Nodes::Tls(c) => c.leader(),
        }
    }

    fn wait_ready(&self, voters: usize) -> usize {
        match self {
            Nodes::Plain(c) | Nodes::Unix(c) => c.wait_ready(voters),
            Nodes::Tls(c) => c.wait_ready(voters),
        }
    }

    /// Hands leadership on, where the harness can (plaintext only).
    fn transfer_leadership(&self, leader: usize) -> Option<Result<String, String>> {
        match self {
            Nodes::Plain(c) | Nodes::Unix(c) => Some(c.transfer_leadership(leader)),
            Nodes::Tls(_) => None,
        }
    }

    /// The client's settings for this cluster.
    fn config(&self) -> Config {
        let config = Config::new()
            .database("workload")
            .request_timeout(Duration::from_secs(3))
            .frame_timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(5));
        match self {
            Nodes::Plain(_) => config,
            Nodes::Tls(c) => {
                let id = c.identity();
                let (cert, key) = (id.cert_pem.as_bytes(), id.key_pem.as_bytes());
                config.tls(TlsConfig::from_pem(cert, cert, key).expect("TLS settings"))
            }
            Nodes::Unix(_) => config.dial_with(Arc::new(dial_unix_front)),
        }
    }
}

/// Dials the unix front of the node at `address` (a TCP address, as seeds, leader hints and
/// the membership name nodes), counting the dials.
fn dial_unix_front(address: &str) -> BoxFuture<'static, std::io::Result<BoxStream>> {
    UNIX_DIALS.fetch_add(1, Ordering::Relaxed);
    match address.parse() {
        Ok(tcp) => Smol.connect_unix(&unix_front_name(tcp)),
        Err(_) => {
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("not a node address: {address}"),
            );
            Box::pin(std::future::ready(Err(e)))
        }
    }
}

/// Over unix sockets, the connections went through [`dial_unix_front`].
fn assert_transport(transport: Transport) {
    if transport == Transport::Unix {
        assert!(UNIX_DIALS.load(Ordering::Relaxed) > 0, "no unix dial");
    }
}

/// Connections made through [`dial_unix_front`].
static UNIX_DIALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Transport {
    fn start(self) -> Nodes {
        match self {
            Transport::Tcp => Nodes::Plain(Cluster::start(3)),
            Transport::Tls => Nodes::Tls(Box::new(TlsCluster::start(3))),
            Transport::Unix => Nodes::Unix(Cluster::start_with(
                ServerCommand::plain_node().with_unix_front(),
                3,
            )),
        }
    }
}

fn workload_length() -> Duration {
    let secs = std::env::var("DQLITE_WORKLOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// One fault and when it was injected.
#[derive(Debug, Clone)]
struct Fault {
    what: String,
    at: Instant,
}

/// Injects faults on a schedule until `length` has passed, then heals the cluster. Runs on
/// its own thread: the harness's calls block.
fn inject_faults(nodes: &mut Nodes, length: Duration, faults: &Mutex<Vec<Fault>>) {
    let start = Instant::now();
    let record = |what: String| {
        println!("fault at {:?}: {what}", start.elapsed());
        faults.lock().unwrap().push(Fault {
            what,
            at: Instant::now(),
        });
    };
    let sleep_until = |t: Duration| {
        if let Some(d) = t.checked_sub(start.elapsed()) {
            thread::sleep(d);
        }
    };
    let mut step = 0;
    let mut t = Duration::from_secs(5);
    // The last fault leaves time for recovery before the workload stops.
    while t + Duration::from_secs(12) < length {
        sleep_until(t);
        let Some(leader) = nodes.leader() else {
            t += Duration::from_secs(2);
            continue;
        };
        match step % 5 {
            2 => {
                record(format!("pause leader {leader} for 5 s"));
                nodes.cluster().pause(leader);
                thread::sleep(Duration::from_secs(5));
                nodes.cluster().resume(leader);
            }
            3 if matches!(nodes, Nodes::Plain(_) | Nodes::Unix(_)) => {
                record(format!("transfer leadership from {leader}"));
                match nodes.transfer_leadership(leader) {
                    Some(Ok(to)) => println!("leadership transferred to {to}"),
                    Some(Err(e)) => println!("transfer failed: {e}"),
                    None => {}
                }
            }
            _ => {
                record(format!("kill leader {leader}"));
                nodes.cluster().kill(leader);
                thread::sleep(Duration::from_secs(3));
                nodes.cluster().restart(leader);
            }
        }
        step += 1;
        t += Duration::from_secs(10);
    }
    sleep_until(length);
}

/// Failover time of each fault: from the fault to the end of the first operation begun
/// after it that was acknowledged. `acks` holds (begun, acknowledged) instants.
fn failover_times(faults: &[Fault], acks: &[(Instant, Instant)]) -> Vec<Duration> {
    faults
        .iter()
        .filter_map(|f| {
            acks.iter()
                .filter(|(began, _)| *began > f.at)
                .map(|(_, done)| *done - f.at)
                .min()
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn report_failovers(name: &str, faults: &[Fault], acks: &[(Instant, Instant)]) {
    for (f, t) in faults.iter().zip(failover_times(faults, acks)) {
        println!("{name}: {} -> next success after {t:?}", f.what);
    }
    let mut times = failover_times(faults, acks);
    times.sort();
    println!(
        "{name}: {} faults; failover p50 {:?}, p99 {:?}, max {:?}",
        faults.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or_default()
    );
    assert_eq!(
        times.len(),
        faults.len(),
        "a fault was never followed by a successful operation"
    );
}

/// An error a writer may see under faults: anything else fails the test.
fn expected_under_faults(e: &Error) -> bool {
    e.is_ambiguous()
        || e.is_not_leader()
        || e.is_busy()
        || matches!(
            e,
            Error::Connection(_) | Error::Timeout(_) | Error::NoLeader(_)
        )
        || e.server_failure()
            .is_some_and(|f| f.code == 12 || f.primary_code() == 10)
}

/// A workload's result after a run under faults, with the healed cluster.
struct Run<T> {
    result: T,
    faults: Vec<Fault>,
    seeds: Vec<String>,
    config: Config,
    _nodes: Nodes,
}

impl<T> Run<T> {
    /// A pool on the healed cluster, to read back what the workload left.
    async fn healed_pool(&self) -> Pool<Smol> {
        let seeds: Vec<&str> = self.seeds.iter().map(String::as_str).collect();
        Pool::new(Smol, &seeds, self.config.clone(), PoolOptions::default())
            .await
            .unwrap()
    }
}

/// Starts a 3-node cluster reached over `transport`, runs `workload` (given the node
/// addresses, the client's settings and a flag that is set when it must stop) on this thread
/// while faults are injected on another, then heals the cluster: every node running again and
/// a leader elected.
fn under_faults<T>(
    transport: Transport,
    workload: impl FnOnce(&[&str], &Config, &AtomicBool) -> T,
) -> Run<T> {
    let length = workload_length();
    let mut nodes = transport.start();
    nodes.wait_ready(3);
    let config = nodes.config();
    let seeds: Vec<String> = nodes
        .cluster()
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let faults = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let result = thread::scope(|s| {
        s.spawn(|| {
            inject_faults(&mut nodes, length, &faults);
            stop.store(true, Ordering::Release);
        });
        let addrs: Vec<&str> = seeds.iter().map(String::as_str).collect();
        workload(&addrs, &config, &stop)
    });
    let cluster = nodes.cluster();
    for i in 0..cluster.size() {
        if !cluster.is_running(i) {
            cluster.restart(i);
        }
    }
    nodes.wait_ready(3);
    Run {
        result,
        faults: faults.into_inner().unwrap(),
        seeds,
        config,
        _nodes: nodes,
    }
}

/// The pool the workloads write through: up to 8 connections, 5 s to acquire.
async fn workload_pool(seeds: &[&str], config: &Config) -> Pool<Smol> {
    let options = PoolOptions {
        min_size: 2,
        max_size: 8,
        acquire_timeout: Duration::from_secs(5),
        ..PoolOptions::default()
    };
    Pool::new(Smol, seeds, config.clone(), options)
        .await
        .unwrap()
}

#[test]
fn set_workload_under_faults() {
    set_workload(Transport::Tcp);
}

#[test]
fn set_workload_over_tls_under_faults() {
    set_workload(Transport::Tls);
}

#[test]
fn set_workload_over_unix_sockets_under_faults() {
    set_workload(Transport::Unix);
}

fn set_workload(transport: Transport) {
    let run = under_faults(transport, |seeds, config, stop| {
        smol::block_on(async {
            let pool = workload_pool(seeds, config).await;
            pool.execute("CREATE TABLE set_w (v INTEGER)", ())
                .await
                .unwrap();
            let writers = (0..8i64).map(|w| {
                let pool = pool.clone();
                async move {
                    let (mut acked, mut failed, mut ambiguous, mut acks) =
                        (vec![], vec![], vec![], vec![]);
                    let mut n = 0i64;
                    while !stop.load(Ordering::Acquire) {
                        let v = w * 10_000_000 + n;
                        n += 1;
                        let began = Instant::now();
                        match pool.execute("INSERT INTO set_w VALUES (?)", (v,)).await {
                            Ok(_) => {
                                acked.push(v);
                                acks.push((began, Instant::now()));
                            }
                            Err(e) if e.is_ambiguous() => ambiguous.push(v),
                            Err(e) => {
                                assert!(expected_under_faults(&e), "unexpected error: {e:?}");
                                failed.push(v);
                                smol::Timer::after(Duration::from_millis(50)).await;
                            }
                        }
                    }
                    (acked, failed, ambiguous, acks)
                }
            });
            let results = futures_util::future::join_all(writers).await;
            let mut all = (vec![], vec![], vec![], vec![]);
            for (a, f, m, t) in results {
                all.0.extend(a);
                all.1.extend(f);
                all.2.extend(m);
                all.3.extend(t);
            }
            all
        })
    });
    let (acked, failed, ambiguous, acks) = &run.result;
    let rows = smol::block_on(async {
        let pool = run.healed_pool().await;
        pool.fetch_all("SELECT v FROM set_w", ()).await.unwrap()
    });
    let values: Vec<i64> = rows
        .into_iter()
        .map(|r| match r[0] {
            Value::Integer(v) => v,
            ref other => panic!("{other:?}"),
        })
        .collect();
    let present: HashSet<i64> = values.iter().copied().collect();
    let duplicated = values.len() - present.len();
    let lost = acked.iter().filter(|v| !present.contains(v)).count();
    let failed_present = failed.iter().filter(|v| present.contains(v)).count();
    let ambiguous_present = ambiguous.iter().filter(|v| present.contains(v)).count();
    println!(
        "set: {} acknowledged, {} failed, {} ambiguous ({ambiguous_present} applied); \
         lost {lost}, duplicated {duplicated}, failed-but-present {failed_present}",
        acked.len(),
        failed.len(),
        ambiguous.len()
    );
    report_failovers("set", &run.faults, acks);
    assert_eq!(lost, 0, "acknowledged writes lost");
    assert_eq!(duplicated, 0, "writes applied twice");
    assert_eq!(failed_present, 0, "writes reported as failed but applied");
    assert!(acked.len() > 100, "too little progress: {}", acked.len());
    assert_transport(transport);
}

const ACCOUNTS: i64 = 10;
const OPENING: i64 = 100;

#[test]
fn bank_workload_under_faults() {
    bank_workload(Transport::Tcp);
}

#[test]
fn bank_workload_over_unix_sockets_under_faults() {
    bank_workload(Transport::Unix);
}

fn bank_workload(transport: Transport) {
    let run = under_faults(transport, |seeds, config, stop| {
        smol::block_on(async {
            let pool = workload_pool(seeds, config).await;
            pool.execute(
                "CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER NOT NULL)",
                (),
            )
            .await
            .unwrap();
            for id in 0..ACCOUNTS {
                pool.execute("INSERT INTO acct VALUES (?, ?)", (id, OPENING))
                    .await
                    .unwrap();
            }
            let transferers = (0..4i64).map(|w| {
                let pool = pool.clone();
                async move {
                    let (mut done, mut acks) = (0u64, vec![]);
                    let mut n = w;
                    while !stop.load(Ordering::Acquire) {
                        n += 1;
                        let (from, to, amount) = (n % ACCOUNTS, (n * 7 + 3) % ACCOUNTS, 1 + n % 5);
                        if from == to {
                            continue;
                        }
                        let began = Instant::now();
                        let result = pool
                            .transaction(async |tx| {
                                tx.execute(
                                    "UPDATE acct SET bal = bal - ? WHERE id = ?",
                                    (amount, from),
                                )
                                .await?;
                                tx.execute(
                                    "UPDATE acct SET bal = bal + ? WHERE id = ?",
                                    (amount, to),
                                )
                                .await?;
                                Ok(())
                            })
                            .await;
                        match result {
                            Ok(()) => {
                                done += 1;
                                acks.push((began, Instant::now()));
                            }
                            Err(e) => {
                                // A failed transfer is rolled back; what matters is the
                                // invariant. Only client-side faults are bugs here.
                                assert!(
                                    expected_under_faults(&e) || matches!(e, Error::Server(_)),
                                    "unexpected error: {e:?}"
                                );
                                smol::Timer::after(Duration::from_millis(50)).await;
                            }
                        }
                    }
                    (done, acks)
                }
            });
            let readers = (0..2).map(|_| {
                let pool = pool.clone();
                async move {
                    let mut reads = 0u64;
                    while !stop.load(Ordering::Acquire) {
                        match pool
                            .fetch_all("SELECT count(*), sum(bal) FROM acct", ())
                            .await
                        {
                            Ok(rows) => {
                                assert_eq!(
                                    rows[0],
                                    [Value::Integer(ACCOUNTS), Value::Integer(ACCOUNTS * OPENING)],
                                    "a reader saw a partial transfer"
                                );
                                reads += 1;
                                smol::Timer::after(Duration::from_millis(5)).await;
                            }
                            Err(e) => {
                                assert!(expected_under_faults(&e), "unexpected error: {e:?}");
                                smol::Timer::after(Duration::from_millis(50)).await;
                            }
                        }
                    }
                    reads
                }
            });
            let (t, r) = futures_util::future::join(
                futures_util::future::join_all(transferers),
                futures_util::future::join_all(readers),
            )
            .await;
            let transfers: u64 = t.iter().map(|(d, _)| d).sum();
            let acks: Vec<(Instant, Instant)> = t.into_iter().flat_map(|(_, a)| a).collect();
            (transfers, r.iter().sum::<u64>(), acks)
        })
    });
    let (transfers, reads, acks) = &run.result;
    let total: i64 = smol::block_on(async {
        let pool = run.healed_pool().await;
        pool.fetch_val("SELECT sum(bal) FROM acct", ())
            .await
            .unwrap()
    });
    println!(
        "bank: {transfers} transfers committed, {reads} consistent reads, final total {total}"
    );
    report_failovers("bank", &run.faults, acks);
    assert_eq!(total, ACCOUNTS * OPENING, "money created or destroyed");
    assert!(*transfers > 20 && *reads > 20, "too little progress");
    assert_transport(transport);
}
