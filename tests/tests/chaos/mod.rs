//! What the fault tests share (`partitions.rs`, `soak.rs`): client settings and the deadlines
//! they imply, a recorder that checks every call against its deadline, and the set, bank and
//! register workload tasks.

#![allow(dead_code)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dqlite_client::{Config, Error, Pool, PoolOptions, Value};
use dqlite_smol::Smol;
use dqlite_tests::register::{History, Outcome, RegisterOp, RegisterRet};

pub const SLACK: Duration = Duration::from_millis(250);
pub const ACQUIRE: Duration = Duration::from_secs(3);
pub const REQUEST: Duration = Duration::from_secs(2);
pub const BUSY: Duration = Duration::from_secs(1);
/// Attempts a pool method makes at most (the client's `POOL_ATTEMPTS`).
pub const POOL_ATTEMPTS: u32 = 3;

/// The deadline of a pool method: each attempt acquires, may wait out the BUSY budget, and
/// waits for the answer.
pub fn pool_call_deadline() -> Duration {
    (ACQUIRE + BUSY + REQUEST) * POOL_ATTEMPTS
}

/// The deadline of a pool transaction of two statements: acquire, then BEGIN, two
/// statements, COMMIT and a ROLLBACK, each within the request deadline (BUSY is not retried
/// inside a transaction; the budget is counted once all the same).
pub fn transaction_deadline() -> Duration {
    ACQUIRE + BUSY + REQUEST * 5
}

/// The client's settings: short deadlines, one database (`parts`).
pub fn config() -> Config {
    Config::new()
        .database("parts")
        .dial_timeout(Duration::from_secs(1))
        .request_timeout(REQUEST)
        .frame_timeout(REQUEST)
        .probe_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_secs(3))
        .busy_timeout(BUSY)
}

/// A pool of at most `max_size` connections with the [`ACQUIRE`] deadline.
pub async fn pool(seeds: &[&str], max_size: usize) -> Pool<Smol> {
    let options = PoolOptions {
        min_size: 1,
        max_size,
        acquire_timeout: ACQUIRE,
        ..PoolOptions::default()
    };
    Pool::new(Smol, seeds, config(), options).await.unwrap()
}

/// An error a client may see under partitions; anything else fails the test.
pub fn expected_under_faults(e: &Error) -> bool {
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

/// What every workload task records besides its own results.
#[derive(Default)]
pub struct Shared {
    /// (begun, acknowledged) of every successful write (insert, transfer, register write or
    /// compare-and-set).
    pub acks: Mutex<Vec<(Instant, Instant)>>,
    /// (begun, answered) of every successful read.
    pub reads: Mutex<Vec<(Instant, Instant)>>,
    /// Calls that outran their deadline plus [`SLACK`].
    pub overruns: Mutex<Vec<String>>,
    /// Errors outside [`expected_under_faults`].
    pub unexpected: Mutex<Vec<String>>,
    /// The longest call, relative to its deadline: (took, deadline, what).
    pub longest: Mutex<Option<(Duration, Duration, String)>>,
}

impl Shared {
    /// Runs `call`, checks it returned within `deadline` plus [`SLACK`], and records a success.
    pub async fn timed<T>(
        &self,
        what: &str,
        deadline: Duration,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let began = Instant::now();
        let result = call.await;
        let done = Instant::now();
        let took = done - began;
        if took > deadline + SLACK {
            self.overruns.lock().unwrap().push(format!(
                "{what} took {took:?}, deadline {deadline:?}: {:?}",
                result.as_ref().err()
            ));
        }
        {
            let mut longest = self.longest.lock().unwrap();
            let ratio = |t: Duration, d: Duration| t.as_secs_f64() / d.as_secs_f64();
            if longest
                .as_ref()
                .is_none_or(|(t, d, _)| ratio(took, deadline) > ratio(*t, *d))
            {
                *longest = Some((took, deadline, what.to_owned()));
            }
        }
        match &result {
            Ok(_) if is_write(what) => self.acks.lock().unwrap().push((began, done)),
            Ok(_) => self.reads.lock().unwrap().push((began, done)),
            // A transfer the server refused is rolled back; the bank's invariant is what
            // matters there.
            Err(Error::Server(_)) if what == "bank transfer" => {}
            Err(e) if !expected_under_faults(e) => self
                .unexpected
                .lock()
                .unwrap()
                .push(format!("{what}: {e:?}")),
            Err(_) => {}
        }
        result
    }
}

/// One nemesis as it was applied.
pub const ACCOUNTS: i64 = 10;
pub const OPENING: i64 = 100;
pub const KEYS: i64 = 8;
/// Sets of [`KEYS`] registers the register tasks move through (see [`RegisterPlan`]).
pub const KEY_GENERATIONS: i64 = 64;

/// How the register tasks pace themselves and move on to fresh keys: every `rotate_every`
/// since `start`, all tasks leave their [`KEYS`] registers for the next set (after
/// [`KEY_GENERATIONS`] sets, the first again). That bounds each key's history, and so the
/// checker's work, which grows faster than linearly with it.
#[derive(Clone, Copy, Debug)]
pub struct RegisterPlan {
    /// Pause after each operation.
    pub pause: Duration,
    /// How long the tasks stay on one set of keys.
    pub rotate_every: Duration,
    /// When the first set began.
    pub start: Instant,
}

impl RegisterPlan {
    /// The first key of the set in use now.
    fn first_key(&self) -> i64 {
        let generation = self.start.elapsed().as_millis() / self.rotate_every.as_millis().max(1);
        (generation as i64 % KEY_GENERATIONS) * KEYS
    }
}

/// What the set workload recorded: acknowledged, failed, ambiguous values.
pub type SetResult = (Vec<i64>, Vec<i64>, Vec<i64>);

pub async fn set_writer(pool: Pool<Smol>, w: i64, stop: &AtomicBool, shared: &Shared) -> SetResult {
    let (mut acked, mut failed, mut ambiguous) = (vec![], vec![], vec![]);
    let mut n = 0;
    while !stop.load(Ordering::Acquire) {
        let v = w * 10_000_000 + n;
        n += 1;
        let insert = pool.execute("INSERT INTO set_p VALUES (?)", (v,));
        match shared
            .timed("set insert", pool_call_deadline(), insert)
            .await
        {
            Ok(_) => acked.push(v),
            Err(e) if e.is_ambiguous() => ambiguous.push(v),
            Err(_) => {
                failed.push(v);
                smol::Timer::after(Duration::from_millis(50)).await;
            }
        }
    }
    (acked, failed, ambiguous)
}

pub async fn transferer(pool: Pool<Smol>, w: i64, stop: &AtomicBool, shared: &Shared) -> u64 {
    let mut done = 0;
    let mut n = w;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let (from, to, amount) = (n % ACCOUNTS, (n * 7 + 3) % ACCOUNTS, 1 + n % 5);
        if from == to {
            continue;
        }
        let transfer = pool.transaction(async |tx| {
            tx.execute(
                "UPDATE acct_p SET bal = bal - ? WHERE id = ?",
                (amount, from),
            )
            .await?;
            tx.execute("UPDATE acct_p SET bal = bal + ? WHERE id = ?", (amount, to))
                .await?;
            Ok(())
        });
        match shared
            .timed("bank transfer", transaction_deadline(), transfer)
            .await
        {
            Ok(()) => done += 1,
            Err(_) => {
                smol::Timer::after(Duration::from_millis(50)).await;
            }
        }
    }
    done
}

/// Reads the total until stopped; returns (consistent reads, totals seen that were wrong).
pub async fn bank_reader(
    pool: Pool<Smol>,
    stop: &AtomicBool,
    shared: &Shared,
) -> (u64, Vec<String>) {
    let (mut reads, mut wrong) = (0, vec![]);
    while !stop.load(Ordering::Acquire) {
        let read = pool.fetch_all("SELECT count(*), sum(bal) FROM acct_p", ());
        match shared.timed("bank read", pool_call_deadline(), read).await {
            Ok(rows) => {
                if rows[0] != [Value::Integer(ACCOUNTS), Value::Integer(ACCOUNTS * OPENING)] {
                    wrong.push(format!("{:?}", rows[0]));
                }
                reads += 1;
                smol::Timer::after(Duration::from_millis(10)).await;
            }
            Err(_) => {
                smol::Timer::after(Duration::from_millis(50)).await;
            }
        }
    }
    (reads, wrong)
}

/// A small deterministic generator for the register tasks' choices.
pub struct XorShift(pub u64);

impl XorShift {
    /// A number below `below`.
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// One register task: reads, writes (unique values) and compare-and-sets (from the value it
/// last read of that key) on random keys until stopped.
pub async fn register_task(
    pool: Pool<Smol>,
    process: usize,
    history: &History,
    stop: &AtomicBool,
    shared: &Shared,
    plan: RegisterPlan,
) {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ ((process as u64 + 1) * 0x1000_0001));
    let mut last_read = [0i64; KEYS as usize];
    let mut n = 0i64;
    while !stop.load(Ordering::Acquire) {
        let slot = rng.next(KEYS as u64) as usize;
        let key = plan.first_key() + slot as i64;
        n += 1;
        let unique = (process as i64 + 1) * 1_000_000 + n;
        let op = match rng.next(3) {
            0 => RegisterOp::Read,
            1 => RegisterOp::Write(unique),
            _ => RegisterOp::Cas(last_read[slot], unique),
        };
        let id = history.invoke(process, key, op);
        let deadline = pool_call_deadline();
        let outcome = match op {
            RegisterOp::Read => {
                let read = pool.fetch_val::<i64>("SELECT v FROM reg WHERE k = ?", (key,));
                match shared.timed("register read", deadline, read).await {
                    Ok(v) => {
                        last_read[slot] = v;
                        Outcome::Ok(RegisterRet::Read(v))
                    }
                    Err(_) => Outcome::Failed,
                }
            }
            RegisterOp::Write(v) => {
                let write = pool.execute("UPDATE reg SET v = ? WHERE k = ?", (v, key));
                match shared.timed("register write", deadline, write).await {
                    Ok(_) => Outcome::Ok(RegisterRet::Written),
                    Err(e) if e.is_ambiguous() => Outcome::Ambiguous,
                    Err(_) => Outcome::Failed,
                }
            }
            RegisterOp::Cas(expected, new) => {
                let cas = pool.execute(
                    "UPDATE reg SET v = ? WHERE k = ? AND v = ?",
                    (new, key, expected),
                );
                match shared.timed("register cas", deadline, cas).await {
                    Ok(r) if r.rows_affected == 1 => Outcome::Ok(RegisterRet::Swapped),
                    Ok(_) => Outcome::Ok(RegisterRet::NotSwapped),
                    Err(e) if e.is_ambiguous() => Outcome::Ambiguous,
                    Err(_) => Outcome::Failed,
                }
            }
        };
        history.complete(id, outcome);
        let pause = if outcome == Outcome::Failed {
            plan.pause.max(Duration::from_millis(50))
        } else {
            plan.pause
        };
        smol::Timer::after(pause).await;
    }
}

/// Creates the workloads' tables: `set_p`, the accounts `acct_p` ([`ACCOUNTS`] of
/// [`OPENING`] each) and the registers `reg` ([`KEYS`] times [`KEY_GENERATIONS`], at 0).
pub async fn create_tables(seeds: &[&str]) {
    let setup = pool(seeds, 2).await;
    for table in [
        "set_p (v INTEGER)",
        "acct_p (id INTEGER PRIMARY KEY, bal INTEGER NOT NULL)",
        "reg (k INTEGER PRIMARY KEY, v INTEGER NOT NULL)",
    ] {
        setup
            .execute(&format!("CREATE TABLE {table}"), ())
            .await
            .unwrap();
    }
    for id in 0..ACCOUNTS {
        setup
            .execute("INSERT INTO acct_p VALUES (?, ?)", (id, OPENING))
            .await
            .unwrap();
    }
    setup
        .execute(
            "WITH RECURSIVE k(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM k WHERE x + 1 < ?) \
             INSERT INTO reg SELECT x, 0 FROM k",
            (KEYS * KEY_GENERATIONS,),
        )
        .await
        .unwrap();
    setup.close().await;
}

/// What the workload tasks returned.
pub struct Results {
    /// Each set writer's acknowledged, failed and ambiguous values.
    pub set: Vec<SetResult>,
    /// Transfers committed.
    pub transfers: u64,
    /// Consistent total reads.
    pub reads: u64,
    /// Totals read that were not the opening total.
    pub wrong_totals: Vec<String>,
}

/// The checks on what the healed cluster holds.
pub struct Verdict {
    acked: usize,
    failed: usize,
    ambiguous: usize,
    ambiguous_present: usize,
    lost: usize,
    duplicated: usize,
    failed_present: usize,
    transfers: u64,
    reads: u64,
    wrong_totals: Vec<String>,
    total: i64,
    register: dqlite_tests::register::CheckReport,
    checked_in: Duration,
    /// Whether the checker rejected the same history with its last read of a written
    /// value changed to one never written.
    tampered_rejected: bool,
}

/// Reads back what the workloads left (on a healed cluster) and checks it: the set against
/// the writers' records, the bank total, and the register history (with one final read per
/// written key appended, after everything else).
pub async fn verify(seeds: &[&str], results: Results, history: &History) -> Verdict {
    let pool = pool(seeds, 2).await;
    let rows = pool.fetch_all("SELECT v FROM set_p", ()).await.unwrap();
    let total: i64 = pool
        .fetch_val("SELECT sum(bal) FROM acct_p", ())
        .await
        .unwrap();
    let finals = pool
        .fetch_all("SELECT k, v FROM reg WHERE v != 0 ORDER BY k", ())
        .await
        .unwrap();
    pool.close().await;
    for row in finals {
        let (Value::Integer(k), Value::Integer(v)) = (&row[0], &row[1]) else {
            panic!("{row:?}");
        };
        let id = history.invoke(usize::MAX, *k, RegisterOp::Read);
        history.complete(id, Outcome::Ok(RegisterRet::Read(*v)));
    }
    let (mut acked, mut failed, mut ambiguous) = (vec![], vec![], vec![]);
    for (a, f, m) in results.set {
        acked.extend(a);
        failed.extend(f);
        ambiguous.extend(m);
    }
    let values: Vec<i64> = rows
        .into_iter()
        .map(|r| match r[0] {
            Value::Integer(v) => v,
            ref other => panic!("{other:?}"),
        })
        .collect();
    let present: HashSet<i64> = values.iter().copied().collect();
    let checked = Instant::now();
    let register = history.check();
    let checked_in = checked.elapsed();
    // The same history broken on purpose: the last read of a written value now returns a
    // value no task ever writes (they write positive ones).
    let tampered_rejected = history
        .with_last_read_changed(-1)
        .is_some_and(|h| !h.check().violations.is_empty());
    Verdict {
        acked: acked.len(),
        failed: failed.len(),
        ambiguous: ambiguous.len(),
        ambiguous_present: ambiguous.iter().filter(|v| present.contains(v)).count(),
        lost: acked.iter().filter(|v| !present.contains(v)).count(),
        duplicated: values.len() - present.len(),
        failed_present: failed.iter().filter(|v| present.contains(v)).count(),
        transfers: results.transfers,
        reads: results.reads,
        wrong_totals: results.wrong_totals,
        total,
        checked_in,
        register,
        tampered_rejected,
    }
}

impl Verdict {
    /// Prints the figures, each line prefixed with `name`.
    pub fn print(&self, name: &str) {
        println!(
            "{name}: set: {} acknowledged, {} failed, {} ambiguous ({} applied); lost {}, \
             duplicated {}, failed-but-present {}",
            self.acked,
            self.failed,
            self.ambiguous,
            self.ambiguous_present,
            self.lost,
            self.duplicated,
            self.failed_present
        );
        println!(
            "{name}: bank: {} transfers, {} reads, {} wrong totals seen, final total {}",
            self.transfers,
            self.reads,
            self.wrong_totals.len(),
            self.total
        );
        println!(
            "{name}: register: {} (checked in {:?}); with its last read changed to a value \
             never written: {}",
            self.register,
            self.checked_in,
            if self.tampered_rejected {
                "rejected"
            } else {
                "ACCEPTED"
            }
        );
    }

    /// Asserts every check held and every workload made progress.
    pub fn assert_holds(&self) {
        assert_eq!(self.lost, 0, "acknowledged writes lost");
        assert_eq!(self.duplicated, 0, "writes applied twice");
        assert_eq!(
            self.failed_present, 0,
            "writes reported as failed but applied"
        );
        assert!(
            self.wrong_totals.is_empty(),
            "readers saw partial transfers: {:?}",
            self.wrong_totals
        );
        assert_eq!(self.total, ACCOUNTS * OPENING, "money created or destroyed");
        assert!(
            self.register.violations.is_empty(),
            "register history not linearizable: {}",
            self.register
        );
        assert!(
            self.tampered_rejected,
            "the checker accepted the history with a read changed to a value never written"
        );
        assert!(
            self.acked > 20 && self.transfers > 5 && self.register.ok > 50,
            "too little progress"
        );
    }
}

impl Shared {
    /// Prints the longest call relative to its deadline, then asserts no call outran its
    /// deadline and no error was unexpected.
    pub fn assert_within_deadlines(&self, name: &str) {
        if let Some((took, deadline, what)) = self.longest.lock().unwrap().clone() {
            println!(
                "{name}: longest call relative to its deadline: {what}, {took:?} of {deadline:?}"
            );
        }
        let overruns = self.overruns.lock().unwrap();
        assert!(
            overruns.is_empty(),
            "calls past their deadline: {overruns:#?}"
        );
        let unexpected = self.unexpected.lock().unwrap();
        assert!(unexpected.is_empty(), "unexpected errors: {unexpected:#?}");
    }
}

/// Whether the call named `what` (as passed to [`Shared::timed`]) writes.
fn is_write(what: &str) -> bool {
    [
        "set insert",
        "bank transfer",
        "register write",
        "register cas",
    ]
    .contains(&what)
}
