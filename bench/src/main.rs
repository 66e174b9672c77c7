//! `dqlite-bench`: the client's speed and memory, measured on a real cluster.
//!
//! ```text
//! cargo run --release -p dqlite-bench -- [--runtime tokio|smol] [--cluster A,B,C]
//!                                       [--workloads a,b,c,d,e,f,h,i,j] [--floor] [--sqlx]
//!                                       [--busy-poll MICROS] [--coalesce MICROS]
//!                                       [--statement-cache N] [--tls CERT,KEY]
//!                                       [--failover-writer STOPFILE] [--discovery-cap MILLIS]
//! ```
//!
//! Without `--cluster` it starts its own local 3-node cluster (dqlite-demo) and stops it at
//! the end. It prints one JSON line of figures:
//! * a: 2000 sequential `SELECT 1` on one connection, p50 / p99 latency;
//! * b: 10 000 single-row INSERTs in one transaction, one at a time and pipelined;
//! * c: fetching 100 000 rows x 4 columns, wall time and this process's CPU time: streamed
//!   and every value read (as go-dqlite's `rows.Next`/`Scan`), and all rows kept by `fetch`;
//!   medians of 15 runs each;
//! * d: 2000 `SELECT 1` from 8 tasks over a pool of 8, queries per second;
//! * e: time to the first result when the first of three addresses is a follower (median of
//!   5 runs);
//! * f: streaming 1 000 000 rows, this process's peak resident memory;
//! * g (failover) is driven by `dqlite-failover`, which kills leaders: with
//!   `--failover-writer STOPFILE` this program is its writer, one INSERT through a pool every
//!   10 ms until STOPFILE exists (see `src/bin/failover.rs`);
//! * h: 64, then 512 tasks sharing a pool of 8 for 2 s, each acquiring and running
//!   `SELECT 1` in a loop: queries per second, p50 / p99 of the acquire wait and of the whole
//!   call, and fairness (the slowest task's calls against the mean);
//! * i: a 10 MiB BLOB written and read back, MB/s (medians of 5 runs);
//! * j: a pool of 16 connected from cold and its first query answered (median of 5 runs).
//!
//! `--floor` runs a, b (one at a time) and c through the bare protocol core over a blocking
//! socket instead (`dqlite-blocking`'s `BlockingConn`), to show what the async client adds. `--busy-poll` sets the window of
//! [`Config::busy_poll`] and `--coalesce` the interval of [`Config::stream_coalesce`] (0 turns
//! either off), for the client and the floor alike. `--statement-cache` sets the client's
//! [`Config::statement_cache`] capacity (0: every statement sent as text, as before).
//! `--discovery-cap` sets the longest pause between rounds of leader discovery
//! (`DiscoveryConfig::backoff_cap`), for workload g's A/B runs.
//! `--tls CERT,KEY` speaks mutual TLS to a go-dqlite TLS cluster given with `--cluster`, with
//! the one cluster certificate as CA and client certificate (as `app.SimpleTLSConfig` sets
//! it up).

mod sqlx_run;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use dqlite_bench::unix_ns;
use dqlite_blocking::BlockingConn;
use dqlite_client::{Config, Connection, Pool, PoolOptions, Runtime, Value};
use dqlite_tests::harness::Cluster;

struct Args {
    capture: Option<String>,
    failover_writer: Option<String>,
    runtime: String,
    cluster: Option<Vec<String>>,
    workloads: String,
    floor: bool,
    sqlx: bool,
    busy_poll: Option<Duration>,
    coalesce: Option<Duration>,
}

fn parse_args() -> Args {
    let mut args = Args {
        capture: None,
        failover_writer: None,
        runtime: "tokio".into(),
        cluster: None,
        workloads: "abcdef".into(),
        floor: false,
        sqlx: false,
        busy_poll: None,
        coalesce: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runtime" => args.runtime = it.next().unwrap_or_default(),
            "--cluster" => {
                args.cluster = it.next().map(|s| s.split(',').map(str::to_owned).collect())
            }
            "--workloads" => args.workloads = it.next().unwrap_or_default().replace(',', ""),
            "--floor" => args.floor = true,
            "--sqlx" => args.sqlx = true,
            "--capture" => args.capture = it.next(),
            "--failover-writer" => args.failover_writer = it.next(),
            "--coalesce" => {
                args.coalesce = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .map(Duration::from_micros)
            }
            "--tls" => {
                let files = it.next().unwrap_or_default();
                let Some((cert, key)) = files.split_once(',') else {
                    eprintln!("--tls takes CERT,KEY");
                    std::process::exit(2);
                };
                let read = |p: &str| {
                    std::fs::read(p).unwrap_or_else(|e| {
                        eprintln!("--tls: cannot read {p}: {e}");
                        std::process::exit(2)
                    })
                };
                let (cert, key) = (read(cert), read(key));
                match dqlite_client::TlsConfig::from_pem(&cert, &cert, &key) {
                    Ok(tls) => {
                        let _ = TLS.set(tls);
                    }
                    Err(e) => {
                        eprintln!("--tls: {e}");
                        std::process::exit(2);
                    }
                }
            }
            "--statement-cache" => {
                let n = it.next().and_then(|v| v.parse().ok());
                let _ = STATEMENT_CACHE.set(n.unwrap_or(Config::DEFAULT_STATEMENT_CACHE));
            }
            "--discovery-cap" => {
                let ms = it.next().and_then(|v| v.parse().ok());
                let _ = DISCOVERY_CAP.set(Duration::from_millis(ms.unwrap_or(250)));
            }
            "--busy-poll" => {
                args.busy_poll = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .map(Duration::from_micros)
            }
            other => {
                eprintln!("unknown argument {other}\nusage: dqlite-bench [--runtime tokio|smol] [--cluster A,B,C] [--workloads a,b,c,d,e,f,h,i,j] [--floor] [--sqlx] [--busy-poll MICROS] [--coalesce MICROS] [--statement-cache N] [--tls CERT,KEY] [--capture DIR] [--failover-writer STOPFILE] [--discovery-cap MILLIS]");
                std::process::exit(2);
            }
        }
    }
    args
}

/// How connections wait for data (`--busy-poll`, `--coalesce`; the client's defaults).
#[derive(Clone, Copy)]
struct Waiting {
    busy_poll: Duration,
    coalesce: Duration,
}

/// Figures collected, printed as one JSON object.
#[derive(Default)]
struct Report(Vec<(String, String)>);

impl Report {
    fn num(&mut self, key: &str, v: f64) {
        self.0.push((key.to_owned(), format!("{v:.3}")));
    }
    fn text(&mut self, key: &str, v: &str) {
        self.0.push((key.to_owned(), format!("\"{v}\"")));
    }
    fn json(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in self.0.iter().enumerate() {
            let _ = write!(s, "{}\"{k}\":{v}", if i == 0 { "" } else { "," });
        }
        s.push('}');
        s
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Wall and CPU times of repeated runs of one workload, reported as medians.
#[derive(Default)]
struct Runs {
    walls: Vec<Duration>,
    cpus: Vec<Duration>,
}

impl Runs {
    /// The clocks at the start of a run.
    fn start() -> (Instant, Duration) {
        (Instant::now(), cpu_time())
    }

    /// Records a run that began at `start`.
    fn done(&mut self, (t, cpu): (Instant, Duration)) {
        self.walls.push(t.elapsed());
        self.cpus.push(cpu_time() - cpu);
    }

    /// Reports `{prefix}_wall_ms` and `{prefix}_cpu_ms`.
    fn report(mut self, report: &mut Report, prefix: &str) {
        report.num(&format!("{prefix}_wall_ms"), ms(median(&mut self.walls)));
        report.num(&format!("{prefix}_cpu_ms"), ms(median(&mut self.cpus)));
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    percentile(v, 0.5)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len().saturating_sub(1)) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// User + system CPU time of this process (the cluster runs in child processes).
fn cpu_time() -> Duration {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr());
        u.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(r.ru_utime) + tv(r.ru_stime)
}

/// Peak resident memory of this process since the last reset, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak-RSS counter (Linux: writing 5 to clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

const BIG_ROWS: i64 = 100_000;
/// Workload h: tasks sharing the pool, its size, and how long they run.
const H_TASKS: [usize; 2] = [64, 512];
const H_POOL: usize = 8;
const H_WINDOW: Duration = Duration::from_secs(2);
/// Workload i: the BLOB's size (10 MiB).
const BLOB_BYTES: usize = 10 << 20;
/// Workload j: the pool connected from cold.
const J_POOL: usize = 16;
/// Workloads c and e run this many times in a row; their figures are the medians.
const C_RUNS: usize = 15;
const E_RUNS: usize = 5;
const STREAM_ROWS: i64 = 1_000_000;

/// `--tls`: the client's TLS settings.
static TLS: std::sync::OnceLock<dqlite_client::TlsConfig> = std::sync::OnceLock::new();

/// `--statement-cache`: the client's statement cache capacity.
static STATEMENT_CACHE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// `--discovery-cap`: the longest pause between two rounds of leader discovery.
static DISCOVERY_CAP: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();

fn config() -> Config {
    let cache = STATEMENT_CACHE
        .get()
        .copied()
        .unwrap_or(Config::DEFAULT_STATEMENT_CACHE);
    let config = Config::new()
        .database("bench")
        .request_timeout(Duration::from_secs(120))
        .frame_timeout(Duration::from_secs(60))
        .statement_cache(cache);
    let config = match DISCOVERY_CAP.get() {
        Some(&cap) => config.discovery(dqlite_proto::discovery::DiscoveryConfig {
            backoff_cap: cap,
            ..Default::default()
        }),
        None => config,
    };
    match TLS.get() {
        Some(tls) => config.tls(tls.clone()),
        None => config,
    }
}

/// Creates the `big` table of [`STREAM_ROWS`] rows, unless an earlier run did.
async fn setup<R: Runtime>(rt: R, leader: &str) {
    let mut c = Connection::connect(rt, leader, config())
        .await
        .expect("connect");
    if c.fetch_val::<i64>("SELECT count(*) FROM big", ())
        .await
        .ok()
        == Some(STREAM_ROWS)
    {
        return;
    }
    c.execute_batch(
        "DROP TABLE IF EXISTS big; CREATE TABLE big (id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB)",
    )
    .await
    .expect("create big");
    c.execute(
        "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < ?) \
         INSERT INTO big SELECT x, printf('text value %010d', x), x * 0.5, randomblob(16) FROM s",
        (STREAM_ROWS,),
    )
    .await
    .expect("fill big");
}

async fn run_client<R: Runtime>(
    rt: R,
    nodes: &[String],
    leader: &str,
    follower: &str,
    w: &str,
    waiting: Waiting,
    report: &mut Report,
) {
    setup(rt.clone(), leader).await;
    let config = || {
        config()
            .busy_poll(waiting.busy_poll)
            .stream_coalesce(waiting.coalesce)
    };
    let mut conn = Connection::connect(rt.clone(), leader, config())
        .await
        .expect("connect");
    if w.contains('a') {
        let mut lat = Vec::with_capacity(2000);
        for _ in 0..2000 {
            let t = Instant::now();
            let _: i64 = conn.fetch_val("SELECT 1", ()).await.expect("select 1");
            lat.push(t.elapsed());
        }
        lat.sort();
        report.num("a_p50_us", percentile(&lat, 0.5).as_secs_f64() * 1e6);
        report.num("a_p99_us", percentile(&lat, 0.99).as_secs_f64() * 1e6);
    }
    if w.contains('b') {
        conn.execute_batch("DROP TABLE IF EXISTS ins; CREATE TABLE ins (id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB)")
            .await
            .expect("create ins");
        let row = |i: i64| {
            (
                i,
                format!("name number {i:08}"),
                i as f64 * 0.25,
                vec![7u8; 16],
            )
        };
        let t = Instant::now();
        let mut tx = conn.begin().await.expect("begin");
        for i in 0..10_000 {
            tx.execute("INSERT INTO ins VALUES (?, ?, ?, ?)", row(i))
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
        report.num("b_serial_ms", ms(t.elapsed()));
        let t = Instant::now();
        let mut tx = conn.begin().await.expect("begin");
        let results = tx
            .execute_pipelined(
                "INSERT INTO ins VALUES (?, ?, ?, ?)",
                (10_000..20_000).map(row),
            )
            .await
            .expect("pipelined");
        assert!(results.iter().all(Result::is_ok), "pipelined insert failed");
        tx.commit().await.expect("commit");
        report.num("b_pipelined_ms", ms(t.elapsed()));
    }
    if w.contains('c') {
        // As go-dqlite's rows.Next/Scan: stream the result and read every value.
        let mut runs = Runs::default();
        for _ in 0..C_RUNS {
            let start = Runs::start();
            let mut stream = conn
                .stream("SELECT id, a, b, c FROM big WHERE id <= ?", (BIG_ROWS,))
                .await
                .expect("stream");
            let (mut n, mut check) = (0i64, 0usize);
            while let Some(batch) = stream.next_batch().await.expect("batch") {
                for row in batch.rows() {
                    check += scan(row);
                    n += 1;
                }
            }
            drop(stream);
            assert_eq!((n, check), (BIG_ROWS, BIG_ROWS as usize * 41));
            runs.done(start);
        }
        runs.report(report, "c");
        // Every row in memory at once, by `fetch`.
        let mut runs = Runs::default();
        for _ in 0..C_RUNS {
            let start = Runs::start();
            let rows = conn
                .fetch("SELECT id, a, b, c FROM big WHERE id <= ?", (BIG_ROWS,))
                .await
                .expect("fetch");
            let check: usize = rows.iter().map(|r| scan(r.values())).sum();
            assert_eq!(check, BIG_ROWS as usize * 41);
            runs.done(start);
        }
        runs.report(report, "c_fetch");
    }
    if w.contains('d') {
        let pool = Pool::new(
            rt.clone(),
            &[leader],
            config(),
            PoolOptions::new().min_size(8).max_size(8),
        )
        .await
        .expect("pool");
        let t = Instant::now();
        let tasks = (0..8).map(|_| {
            let pool = pool.clone();
            async move {
                for _ in 0..250 {
                    let _: i64 = pool.fetch_val("SELECT 1", ()).await.expect("select 1");
                }
            }
        });
        futures_util::future::join_all(tasks).await;
        report.num("d_qps", 2000.0 / t.elapsed().as_secs_f64());
    }
    if w.contains('h') {
        for tasks in H_TASKS {
            contended_pool(rt.clone(), leader, tasks, report).await;
        }
    }
    if w.contains('i') {
        big_blob(&mut conn, report).await;
    }
    if w.contains('j') {
        let mut times = Vec::new();
        for _ in 0..E_RUNS {
            let t = Instant::now();
            let pool = Pool::new(
                rt.clone(),
                &[leader],
                config(),
                PoolOptions::new().min_size(J_POOL).max_size(J_POOL),
            )
            .await
            .expect("pool");
            let _: i64 = pool.fetch_val("SELECT 1", ()).await.expect("select 1");
            times.push(t.elapsed());
            pool.close().await;
        }
        report.num("j_cold_pool_ms", ms(median(&mut times)));
    }
    if w.contains('e') {
        let mut ordered: Vec<&str> = vec![follower];
        ordered.extend(nodes.iter().map(String::as_str).filter(|a| *a != follower));
        let mut times = Vec::new();
        for _ in 0..E_RUNS {
            let t = Instant::now();
            let mut c = dqlite_client::connect_cluster(rt.clone(), &ordered, config())
                .await
                .expect("connect_cluster");
            let _: i64 = c.fetch_val("SELECT 1", ()).await.expect("select 1");
            times.push(t.elapsed());
        }
        report.num("e_first_result_ms", ms(median(&mut times)));
    }
    if w.contains('f') {
        reset_peak_rss();
        let mut stream = conn
            .stream("SELECT id, a, b, c FROM big", ())
            .await
            .expect("stream");
        let mut n = 0i64;
        while let Some(batch) = stream.next_batch().await.expect("batch") {
            n += batch.len() as i64;
        }
        assert_eq!(n, STREAM_ROWS);
        report.num("f_peak_rss_mib", peak_rss_mib());
    }
}

/// Reads the four values of a `big` row as typed values (as a Scan would) and returns the
/// text and blob lengths plus 4 (21 + 16 + 4 for a row of `big`), so the work cannot be
/// optimised away.
fn scan(row: &[Value]) -> usize {
    match row {
        [Value::Integer(id), Value::Text(a), Value::Float(b), Value::Blob(c)] => {
            std::hint::black_box((*id, *b));
            a.as_str().len() + c.len() + 4
        }
        other => panic!("unexpected row {other:?}"),
    }
}

/// The floor: the bare core over a blocking socket, waiting for data as the client does.
fn run_floor(leader: &str, w: &str, waiting: Waiting, report: &mut Report) {
    let mut c = BlockingConn::connect_with(
        leader,
        dqlite_proto::Config::default(),
        Duration::from_secs(120),
    )
    .expect("connect");
    c.set_busy_poll(waiting.busy_poll);
    c.set_stream_coalesce(waiting.coalesce);
    c.call(|p| p.open("bench")).expect("open");
    if w.contains('a') {
        let mut lat = Vec::with_capacity(2000);
        for _ in 0..2000 {
            let t = Instant::now();
            c.call(|p| p.query_sql("SELECT 1", &[])).expect("select 1");
            lat.push(t.elapsed());
        }
        lat.sort();
        report.num("a_p50_us", percentile(&lat, 0.5).as_secs_f64() * 1e6);
        report.num("a_p99_us", percentile(&lat, 0.99).as_secs_f64() * 1e6);
    }
    if w.contains('b') {
        c.call(|p| p.exec_sql("DROP TABLE IF EXISTS ins", &[]))
            .expect("drop");
        c.call(|p| {
            p.exec_sql(
                "CREATE TABLE ins (id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB)",
                &[],
            )
        })
        .expect("create");
        let t = Instant::now();
        c.call(|p| p.exec_sql("BEGIN", &[])).expect("begin");
        for i in 0..10_000i64 {
            let params = [
                Value::Integer(i),
                Value::from(format!("name number {i:08}")),
                Value::Float(i as f64 * 0.25),
                Value::from(vec![7u8; 16]),
            ];
            c.call(|p| p.exec_sql("INSERT INTO ins VALUES (?, ?, ?, ?)", &params))
                .expect("insert");
        }
        c.call(|p| p.exec_sql("COMMIT", &[])).expect("commit");
        report.num("b_serial_ms", ms(t.elapsed()));
    }
    if w.contains('c') {
        let mut runs = Runs::default();
        for _ in 0..C_RUNS {
            let start = Runs::start();
            let mut check = 0usize;
            c.call_each(
                |p| {
                    p.query_sql(
                        "SELECT id, a, b, c FROM big WHERE id <= ?",
                        &[Value::Integer(BIG_ROWS)],
                    )
                },
                |reply| {
                    if let dqlite_proto::Reply::Rows(b) = reply {
                        check += b.rows().map(scan).sum::<usize>();
                    }
                },
            )
            .expect("fetch");
            assert_eq!(check, BIG_ROWS as usize * 41);
            runs.done(start);
        }
        runs.report(report, "c");
    }
}

/// Writes real server replies as fixture files into `dir`: the raw bytes of a multi-batch
/// ROWS response (4000 rows x 4 columns of `big`, for the decoder micro-benchmark in
/// `proto/benches/`) and one reply of each other kind (for `proto/tests/captured.rs`).
fn capture(leader: &str, follower: &str, dir: &str) {
    let path = |name: &str| std::path::Path::new(dir).join(name);
    let mut c = BlockingConn::connect(leader).expect("connect");
    let save = |c: &mut BlockingConn,
                name: &str,
                f: &dyn Fn(
        &mut dqlite_proto::Connection,
    ) -> Result<dqlite_proto::RequestId, dqlite_proto::Error>| {
        c.record();
        let _ = c.call(f);
        let bytes = c.take_recording();
        std::fs::write(path(name), &bytes).expect("write capture");
        eprintln!("captured {} bytes into {name}", bytes.len());
    };
    save(&mut c, "leader.bin", &|p| p.leader());
    save(&mut c, "welcome.bin", &|p| p.client(0));
    save(&mut c, "servers.bin", &|p| p.cluster(true));
    save(&mut c, "db.bin", &|p| p.open("bench"));
    save(&mut c, "rows_4000x4.bin", &|p| {
        p.query_sql("SELECT id, a, b, c FROM big WHERE id <= 4000", &[])
    });
    c.call(|p| p.exec_sql("DROP TABLE IF EXISTS nulls", &[]))
        .expect("drop");
    c.call(|p| {
        p.exec_sql(
            "CREATE TABLE nulls (i INTEGER, flag BOOLEAN, d DATETIME)",
            &[],
        )
    })
    .expect("create");
    save(&mut c, "result.bin", &|p| {
        p.exec_sql(
            "INSERT INTO nulls VALUES (NULL, NULL, NULL), (1, 1, 1700000000), (2, 0, '2024-01-02')",
            &[],
        )
    });
    save(&mut c, "rows_nulls.bin", &|p| {
        p.query_sql("SELECT i, flag, d FROM nulls ORDER BY rowid", &[])
    });
    save(&mut c, "failure_syntax.bin", &|p| {
        p.exec_sql("NOT SQL", &[])
    });
    save(&mut c, "stmt.bin", &|p| p.prepare("SELECT ?, ?"));
    save(&mut c, "metadata.bin", &|p| p.describe());
    let mut f = BlockingConn::connect(follower).expect("connect follower");
    f.call(|p| p.open("bench")).expect("open on follower");
    save(&mut f, "failure_not_leader.bin", &|p| {
        p.query_sql("SELECT 1", &[])
    });
}

/// The leader's address, asked of the nodes for up to a minute (a cluster may be electing),
/// over TLS when `--tls` is given.
fn find_leader(nodes: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let leader = nodes.iter().find_map(|a| {
            let l = if TLS.get().is_some() {
                smol::block_on(async {
                    let mut node =
                        dqlite_client::NodeClient::connect(dqlite_smol::Smol, a, config()).await?;
                    node.leader().await
                })
                .ok()??
            } else {
                BlockingConn::connect(a).ok()?.leader().ok()?
            };
            (!l.address.is_empty()).then(|| l.address.to_string())
        });
        if let Some(l) = leader {
            return l;
        }
        assert!(Instant::now() < deadline, "no leader among {nodes:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Workload h: `tasks` tasks share a pool of [`H_POOL`] connections for [`H_WINDOW`], each
/// acquiring a connection and running `SELECT 1` in a loop. Reports throughput, the p50 and
/// p99 of the acquire wait and of the whole call, and fairness: the slowest task's count of
/// calls against the mean (1.0: every task served alike).
async fn contended_pool<R: Runtime>(rt: R, leader: &str, tasks: usize, report: &mut Report) {
    let pool = Pool::new(
        rt,
        &[leader],
        config(),
        PoolOptions::new().min_size(H_POOL).max_size(H_POOL),
    )
    .await
    .expect("pool");
    let start = Instant::now();
    let work = (0..tasks).map(|_| {
        let pool = pool.clone();
        async move {
            let (mut waits, mut calls) = (Vec::new(), Vec::new());
            while start.elapsed() < H_WINDOW {
                let t = Instant::now();
                let mut c = pool.acquire().await.expect("acquire");
                waits.push(t.elapsed());
                let _: i64 = c.fetch_val("SELECT 1", ()).await.expect("select 1");
                drop(c);
                calls.push(t.elapsed());
            }
            (waits, calls)
        }
    });
    let results = futures_util::future::join_all(work).await;
    let elapsed = start.elapsed();
    let counts: Vec<usize> = results.iter().map(|(_, c)| c.len()).collect();
    let total: usize = counts.iter().sum();
    let (mut waits, mut calls): (Vec<_>, Vec<_>) = (Vec::new(), Vec::new());
    for (w, c) in results {
        waits.extend(w);
        calls.extend(c);
    }
    waits.sort();
    calls.sort();
    let mean = total as f64 / tasks as f64;
    let slowest = counts.iter().copied().min().unwrap_or(0) as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    report.num(
        &format!("h{tasks}_qps"),
        total as f64 / elapsed.as_secs_f64(),
    );
    report.num(
        &format!("h{tasks}_acquire_p50_us"),
        us(percentile(&waits, 0.5)),
    );
    report.num(
        &format!("h{tasks}_acquire_p99_us"),
        us(percentile(&waits, 0.99)),
    );
    report.num(
        &format!("h{tasks}_call_p50_us"),
        us(percentile(&calls, 0.5)),
    );
    report.num(
        &format!("h{tasks}_call_p99_us"),
        us(percentile(&calls, 0.99)),
    );
    report.num(
        &format!("h{tasks}_fairness"),
        if mean > 0.0 { slowest / mean } else { 0.0 },
    );
    pool.close().await;
}

/// Workload i: one BLOB of [`BLOB_BYTES`] written and read back, [`E_RUNS`] times; MB/s of
/// the medians.
async fn big_blob<R: Runtime>(conn: &mut Connection<R>, report: &mut Report) {
    conn.execute_batch(
        "DROP TABLE IF EXISTS blobs; CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)",
    )
    .await
    .expect("create blobs");
    let blob: Vec<u8> = (0..BLOB_BYTES).map(|i| (i % 251) as u8).collect();
    let (mut writes, mut reads) = (Vec::new(), Vec::new());
    for run in 0..E_RUNS as i64 {
        let t = Instant::now();
        conn.execute("INSERT INTO blobs VALUES (?, ?)", (run, blob.clone()))
            .await
            .expect("insert blob");
        writes.push(t.elapsed());
        let t = Instant::now();
        let back: Vec<u8> = conn
            .fetch_val("SELECT b FROM blobs WHERE id = ?", (run,))
            .await
            .expect("select blob");
        reads.push(t.elapsed());
        assert_eq!(back.len(), blob.len(), "blob came back short");
    }
    let mb = BLOB_BYTES as f64 / 1e6;
    report.num("i_write_mb_s", mb / median(&mut writes).as_secs_f64());
    report.num("i_read_mb_s", mb / median(&mut reads).as_secs_f64());
}

/// Workload g's writer (`--failover-writer STOPFILE`), driven by `dqlite-failover`: one
/// INSERT through a pool over all `nodes` every [`G_PACE`] until `stop` exists, as a light
/// application load. Prints `ack NS` (Unix time in ns) for each acknowledged write and
/// `error NS MESSAGE` for each failed one; a failed write is tried again after 1 ms.
fn failover_writer(nodes: &[String], stop: &str) {
    use std::io::Write as _;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let nodes = nodes.to_vec();
    let stop = std::path::PathBuf::from(stop);
    rt.block_on(async move {
        let addrs: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let pool = Pool::new(dqlite_tokio::Tokio, &addrs, config(), PoolOptions::new())
            .await
            .expect("pool");
        // The driver starts the writer on a cluster with a leader and three voters.
        pool.execute(
            "CREATE TABLE IF NOT EXISTS failover_rs (id INTEGER PRIMARY KEY, v INTEGER)",
            (),
        )
        .await
        .expect("create failover_rs");
        let mut out = std::io::stdout().lock();
        let mut i = 0i64;
        while !stop.exists() {
            let result = pool
                .execute("INSERT INTO failover_rs (v) VALUES (?)", (i,))
                .await;
            let ns = unix_ns();
            match result {
                Ok(_) => {
                    i += 1;
                    writeln!(out, "ack {ns}").expect("stdout");
                    out.flush().expect("stdout");
                    tokio::time::sleep(G_PACE).await;
                }
                Err(e) => {
                    writeln!(out, "error {ns} {e}").expect("stdout");
                    out.flush().expect("stdout");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    });
}

/// The pause between two of workload g's writes.
const G_PACE: Duration = Duration::from_millis(10);

fn main() {
    let args = parse_args();
    if let (Some(stop), Some(nodes)) = (&args.failover_writer, &args.cluster) {
        failover_writer(nodes, stop);
        return;
    }
    let local = if args.cluster.is_none() {
        let cluster = Cluster::start(3);
        cluster.wait_ready(3);
        Some(cluster)
    } else {
        None
    };
    let nodes: Vec<String> = match (&args.cluster, &local) {
        (Some(n), _) => n.clone(),
        (None, Some(c)) => c.db_addresses().iter().map(|a| a.to_string()).collect(),
        (None, None) => unreachable!("a cluster was started"),
    };
    // Ask the nodes who leads, and pick a follower for workload e.
    let leader = find_leader(&nodes);
    let follower = nodes
        .iter()
        .find(|a| **a != leader)
        .cloned()
        .unwrap_or_else(|| leader.clone());

    if let Some(path) = &args.capture {
        smol::block_on(setup(dqlite_smol::Smol, &leader));
        capture(&leader, &follower, path);
        return;
    }
    let mut report = Report::default();
    report.text(
        "client",
        if args.floor {
            "dqlite-rs-floor"
        } else if args.sqlx {
            "sqlx-dqlite"
        } else {
            "dqlite-rs"
        },
    );
    report.text(
        "runtime",
        if args.floor {
            "blocking"
        } else {
            &args.runtime
        },
    );
    if !args.floor {
        let cache = STATEMENT_CACHE
            .get()
            .copied()
            .unwrap_or(Config::DEFAULT_STATEMENT_CACHE);
        report.num("statement_cache", cache as f64);
        report.text("transport", if TLS.get().is_some() { "tls" } else { "tcp" });
    }
    let w = args.workloads.as_str();
    let waiting = Waiting {
        busy_poll: args.busy_poll.unwrap_or(Config::DEFAULT_BUSY_POLL),
        coalesce: args.coalesce.unwrap_or(Config::DEFAULT_STREAM_COALESCE),
    };
    if args.floor {
        smol::block_on(setup(dqlite_smol::Smol, &leader));
        run_floor(&leader, w, waiting, &mut report);
    } else if args.sqlx {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio");
        rt.block_on(setup(dqlite_tokio::Tokio, &leader));
        let leader = leader.clone();
        let wl = w.to_owned();
        let task = rt.spawn(async move {
            let mut r = Report::default();
            sqlx_run::run(&leader, &wl, &mut r).await;
            r
        });
        let figures = rt.block_on(task).expect("benchmark task");
        report.0.extend(figures.0);
    } else if args.runtime == "smol" {
        smol::block_on(run_client(
            dqlite_smol::Smol,
            &nodes,
            &leader,
            &follower,
            w,
            waiting,
            &mut report,
        ));
    } else {
        // As a tokio application would: the work runs in a task on the runtime's workers.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let (n, l, f, wl) = (
            nodes.clone(),
            leader.clone(),
            follower.clone(),
            w.to_owned(),
        );
        let task = rt.spawn(async move {
            let mut r = Report::default();
            run_client(dqlite_tokio::Tokio, &n, &l, &f, &wl, waiting, &mut r).await;
            r
        });
        let figures = rt.block_on(task).expect("benchmark task");
        report.0.extend(figures.0);
    }
    println!("{}", report.json());
}
