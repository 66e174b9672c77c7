//! `dqlite-failover`: workload g, the time a client needs to write again after the leader
//! dies.
//!
//! ```text
//! dqlite-failover [--kills N] [--placement pinned|shared] [--label FIELDS] -- WRITER ARGS...
//! ```
//!
//! It starts its own 3-node cluster (the test harness's, so `DQLITE_SERVER` and friends pick
//! the server generation) and runs WRITER, in whose arguments `{cluster}` becomes the nodes'
//! addresses and `{stop}` a file that appears when the writer must stop. The writer
//! (`dqlite-bench --failover-writer`, or the go-dqlite peer's `-failover-writer`) writes one
//! row every 10 ms and prints `ack NS` for each acknowledged write and `error NS MESSAGE` for
//! each failed one, NS being Unix time in nanoseconds (the clock read here too).
//!
//! N times (default 5): it waits for a confirmed leader and SIGKILLs it, asks the two
//! survivors every millisecond who leads until one names itself (the election is done), then
//! writes through a connection of its own to that node, again every millisecond, until a
//! write is acknowledged: from then on the cluster takes writes (a new leader's first write
//! can wait most of a second after its election). It waits for the writer's first
//! acknowledgement after the election, restarts the killed node with its data and waits until
//! the cluster has three voters again and the writer has written 20 more rows. Per kill it
//! measures:
//! * kill to first ack: what an application sees;
//! * ready to first ack: the client's share, from the driver's own first acknowledged write
//!   to the writer's (a writer whose write joined the same commit can be slightly early, so
//!   it can be slightly negative);
//! * kill to election and kill to ready: the servers' share.
//!
//! `--placement pinned` runs every server thread on core 0 and the writer on core 1
//! (`taskset`), `shared` (the default) pins nothing. `--label` is a list of JSON fields naming
//! the writer (e.g. `"client":"dqlite-rs","runtime":"tokio"`). Prints one JSON line: those
//! fields, the placement, the server version, the medians (`g_kill_to_ack_ms`,
//! `g_ready_to_ack_ms`, `g_election_ms`, `g_ready_ms`), the mean and the largest of the
//! client's share (it is bimodal: a client that happens to be asking when the cluster starts
//! taking writes is served in a millisecond, one that is pausing waits out its pause), every
//! kill's figures, and the writer's count of failed writes. Every wait is bounded: a cluster
//! that does not recover, or a writer that stops acknowledging, ends the run with an error
//! after a minute.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use dqlite_bench::unix_ns;
use dqlite_blocking::BlockingConn;
use dqlite_proto::{Config, Value};
use dqlite_tests::harness::{process_group_members, server_version, Cluster};

/// How long any one wait may last before the run is given up.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Acknowledged writes required before the first kill and after each recovery.
const SETTLE_ACKS: usize = 20;

/// The database the writers use, and the driver's own table in it.
const DATABASE: &str = "bench";
const PROBE_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS failover_probe (id INTEGER PRIMARY KEY, at INTEGER)";
const PROBE_WRITE: &str = "INSERT INTO failover_probe (at) VALUES (?)";

/// One write through a connection of the driver's own to `address`.
fn write_once(address: &str, sql: &str, params: &[Value]) -> Result<(), String> {
    let mut c = BlockingConn::connect_with(address, Config::default(), Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    c.call(|p| p.open(DATABASE)).map_err(|e| format!("{e:?}"))?;
    c.call(|p| p.exec_sql(sql, params))
        .map_err(|e| format!("{e:?}"))?;
    Ok(())
}

/// What the writer has reported so far.
#[derive(Default)]
struct Writes {
    acks: Vec<u128>,
    errors: usize,
    last_error: String,
}

struct Args {
    kills: usize,
    placement: String,
    label: String,
    writer: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: dqlite-failover [--kills N] [--placement pinned|shared] [--label FIELDS] -- WRITER ARGS..."
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        kills: 5,
        placement: "shared".into(),
        label: String::new(),
        writer: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kills" => {
                args.kills = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--placement" => args.placement = it.next().unwrap_or_else(|| usage()),
            "--label" => args.label = it.next().unwrap_or_else(|| usage()),
            "--" => {
                args.writer = it.collect();
                break;
            }
            _ => usage(),
        }
    }
    if args.writer.is_empty() || !["pinned", "shared"].contains(&args.placement.as_str()) {
        usage();
    }
    args
}

/// Gives up the run: stops the writer and panics with the message, so that unwinding drops
/// the cluster, which stops its nodes.
fn give_up(writer: &mut Child, message: &str) -> ! {
    let _ = writer.kill();
    let _ = writer.wait();
    panic!("dqlite-failover: {message}")
}

/// Pins every thread of node `i`'s processes to core 0 when the placement is pinned.
fn place(cluster: &Cluster, i: usize, placement: &str) {
    if placement != "pinned" {
        return;
    }
    let Some(pid) = cluster.pid(i) else { return };
    for p in process_group_members(pid) {
        let _ = Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &p.to_string()])
            .stdout(Stdio::null())
            .status();
    }
}

/// Starts the writer with `{cluster}` and `{stop}` filled in, and a thread collecting what
/// it prints.
fn start_writer(args: &Args, nodes: &str, stop: &str, writes: Arc<Mutex<Writes>>) -> Child {
    let fill = |a: &String| a.replace("{cluster}", nodes).replace("{stop}", stop);
    let mut command = if args.placement == "pinned" {
        let mut c = Command::new("taskset");
        c.args(["-c", "1"]).args(args.writer.iter().map(fill));
        c
    } else {
        let mut c = Command::new(fill(&args.writer[0]));
        c.args(args.writer[1..].iter().map(fill));
        c
    };
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap_or_else(|e| {
        eprintln!("dqlite-failover: cannot start {:?}: {e}", args.writer[0]);
        std::process::exit(1)
    });
    let out = child.stdout.take().expect("piped stdout");
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let mut parts = line.splitn(3, ' ');
            let (kind, ns) = (parts.next(), parts.next().and_then(|n| n.parse().ok()));
            let mut w = writes.lock().unwrap_or_else(|e| e.into_inner());
            match (kind, ns) {
                (Some("ack"), Some(ns)) => w.acks.push(ns),
                (Some("error"), Some(_)) => {
                    w.errors += 1;
                    w.last_error = parts.next().unwrap_or_default().to_owned();
                }
                _ => eprintln!("dqlite-failover: writer printed {line:?}"),
            }
        }
    });
    child
}

/// Waits until `done` holds for what the writer reported, at most [`WAIT_LIMIT`].
fn wait_writes<T>(
    writer: &mut Child,
    writes: &Mutex<Writes>,
    what: &str,
    done: impl Fn(&Writes) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        {
            let w = writes.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = done(&w) {
                return t;
            }
            if Instant::now() > deadline {
                let message = format!(
                    "{what}: not within {WAIT_LIMIT:?} ({} acks, {} errors, last error: {})",
                    w.acks.len(),
                    w.errors,
                    w.last_error
                );
                drop(w);
                give_up(writer, &message);
            }
        }
        if let Ok(Some(status)) = writer.try_wait() {
            give_up(writer, &format!("{what}: the writer exited ({status})"));
        }
        thread::sleep(Duration::from_micros(200));
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NAN, f64::max)
}

fn list(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|x| format!("{x:.1}")).collect();
    format!("[{}]", items.join(","))
}

fn main() {
    let args = parse_args();
    let mut cluster = Cluster::start(3);
    let first = cluster.wait_ready(3);
    write_once(&cluster.db_address(first).to_string(), PROBE_TABLE, &[])
        .unwrap_or_else(|e| panic!("dqlite-failover: creating the probe table: {e}"));
    for i in 0..3 {
        place(&cluster, i, &args.placement);
    }
    let nodes: Vec<String> = cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let stop = cluster.data_dir(0).with_file_name("writer.stop");
    let writes = Arc::new(Mutex::new(Writes::default()));
    let mut writer = start_writer(
        &args,
        &nodes.join(","),
        &stop.to_string_lossy(),
        writes.clone(),
    );
    wait_writes(&mut writer, &writes, "the writer's first writes", |w| {
        (w.acks.len() >= SETTLE_ACKS).then_some(())
    });

    let (mut to_ack, mut share) = (Vec::new(), Vec::new());
    let (mut election, mut ready) = (Vec::new(), Vec::new());
    for k in 0..args.kills {
        let deadline = Instant::now() + WAIT_LIMIT;
        let leader = loop {
            if let Some(l) = cluster.leader() {
                break l;
            }
            if Instant::now() > deadline {
                give_up(&mut writer, &format!("kill {k}: no leader"));
            }
            thread::sleep(Duration::from_millis(10));
        };
        let killed_at = unix_ns();
        cluster.kill(leader);
        // The survivors, asked in turn until one names itself.
        let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let (elected, elected_at) = loop {
            let asked = unix_ns();
            if let Some(&j) = survivors
                .iter()
                .find(|&&i| cluster.leader_named_by(i) == Some(i))
            {
                break (j, asked);
            }
            if Instant::now() > deadline {
                give_up(&mut writer, &format!("kill {k}: no new leader"));
            }
            thread::sleep(Duration::from_millis(1));
        };
        // The driver's own writes to the new leader until one is acknowledged.
        let address = cluster.db_address(elected).to_string();
        let ready_at = loop {
            if write_once(&address, PROBE_WRITE, &[Value::Integer(k as i64)]).is_ok() {
                break unix_ns();
            }
            if Instant::now() > deadline {
                give_up(
                    &mut writer,
                    &format!("kill {k}: the new leader takes no write"),
                );
            }
            thread::sleep(Duration::from_millis(1));
        };
        // The writer's first acknowledgement since the election.
        let acked_at = wait_writes(&mut writer, &writes, "the first write after a kill", |w| {
            w.acks.iter().copied().find(|&a| a > elected_at)
        });
        let ms = |a: u128, b: u128| (a as f64 - b as f64) / 1e6;
        to_ack.push(ms(acked_at, killed_at));
        share.push(ms(acked_at, ready_at));
        election.push(ms(elected_at, killed_at));
        ready.push(ms(ready_at, killed_at));

        cluster.restart(leader);
        place(&cluster, leader, &args.placement);
        cluster.wait_ready(3);
        let seen = writes.lock().unwrap_or_else(|e| e.into_inner()).acks.len();
        wait_writes(&mut writer, &writes, "the writes after a restart", |w| {
            (w.acks.len() >= seen + SETTLE_ACKS).then_some(())
        });
    }

    let _ = std::fs::write(&stop, b"");
    let deadline = Instant::now() + WAIT_LIMIT;
    while writer.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            give_up(&mut writer, "the writer did not stop");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let errors = writes.lock().unwrap_or_else(|e| e.into_inner()).errors;
    let (major, minor, patch) = server_version();
    let label = if args.label.is_empty() {
        String::new()
    } else {
        format!("{},", args.label)
    };
    println!(
        "{{{label}\"placement\":\"{}\",\"server_version\":\"{major}.{minor}.{patch}\",\"g_kills\":{},\"g_kill_to_ack_ms\":{:.1},\"g_ready_to_ack_ms\":{:.1},\"g_ready_to_ack_mean_ms\":{:.1},\"g_ready_to_ack_max_ms\":{:.1},\"g_election_ms\":{:.1},\"g_ready_ms\":{:.1},\"g_write_errors\":{errors},\"g_kill_to_ack_each\":{},\"g_ready_to_ack_each\":{},\"g_election_each\":{},\"g_ready_each\":{}}}",
        args.placement,
        args.kills,
        median(&to_ack),
        median(&share),
        mean(&share),
        max(&share),
        median(&election),
        median(&ready),
        list(&to_ack),
        list(&share),
        list(&election),
        list(&ready),
    );
}
