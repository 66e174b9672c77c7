//! A linearizable register workload's history, and its check by a real linearizability
//! checker (`stateright`'s [`LinearizabilityTester`]).
//!
//! Each key of a table is a register holding an integer: a read returns its value, a write
//! sets it, a compare-and-set sets it only if it holds the expected value. Clients record
//! every operation in a [`History`] when they invoke it ([`History::invoke`]) and when it
//! ends ([`History::complete`]), with its [`Outcome`]:
//!
//! * [`Outcome::Ok`]: it returned this result;
//! * [`Outcome::Failed`]: it failed and certainly had no effect (a read that failed, or a
//!   write the client reports as not applied); it is left out of the history;
//! * [`Outcome::Ambiguous`] (or never completed): it may or may not have taken effect, at any
//!   moment after its invocation. The checker keeps it in flight for ever: a linearization
//!   may place it anywhere after its invocation, or leave it out. The process that issued it
//!   continues under a new checker thread id, since a checker thread has one operation in
//!   flight at most.
//!
//! [`History::check`] replays the events in the order they were recorded, one
//! [`LinearizabilityTester`] per key (registers are independent, so a history is
//! linearizable exactly when each key's is), and reports the keys that admit no
//! linearization. The search is depth-first over the history, so it runs on a thread with a
//! large stack.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};

/// An operation on one register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    /// Read the value.
    Read,
    /// Set the value.
    Write(i64),
    /// Set the value to `.1` if it is `.0`.
    Cas(i64, i64),
}

/// The result of a [`RegisterOp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterRet {
    /// A read returned this value.
    Read(i64),
    /// A write was applied.
    Written,
    /// A compare-and-set found the expected value and set the new one.
    Swapped,
    /// A compare-and-set found another value and changed nothing.
    NotSwapped,
}

/// The sequential specification: one register, initially 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Register(pub i64);

impl SequentialSpec for Register {
    type Op = RegisterOp;
    type Ret = RegisterRet;

    fn invoke(&mut self, op: &RegisterOp) -> RegisterRet {
        match *op {
            RegisterOp::Read => RegisterRet::Read(self.0),
            RegisterOp::Write(v) => {
                self.0 = v;
                RegisterRet::Written
            }
            RegisterOp::Cas(expected, new) if self.0 == expected => {
                self.0 = new;
                RegisterRet::Swapped
            }
            RegisterOp::Cas(..) => RegisterRet::NotSwapped,
        }
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It returned this result.
    Ok(RegisterRet),
    /// It failed and certainly had no effect.
    Failed,
    /// It may or may not have taken effect.
    Ambiguous,
}

/// An operation's handle between [`History::invoke`] and [`History::complete`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpId(usize);

#[derive(Clone, Debug)]
enum Event {
    Invoke {
        id: usize,
        process: usize,
        key: i64,
        op: RegisterOp,
    },
    Complete {
        id: usize,
        outcome: Outcome,
    },
}

/// A concurrent history of register operations on several keys, recorded as it happens;
/// see the [module docs](self). Shared by reference between the client tasks.
#[derive(Debug, Default)]
pub struct History {
    events: Mutex<Vec<Event>>,
}

/// What [`History::check`] found.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Keys checked.
    pub keys: usize,
    /// Operations that returned a result.
    pub ok: usize,
    /// Operations that certainly had no effect (left out).
    pub failed: usize,
    /// Operations that may or may not have taken effect (kept in flight).
    pub ambiguous: usize,
    /// Keys whose history admits no linearization, with their operation count.
    pub violations: Vec<(i64, usize)>,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} keys, {} ok, {} failed, {} ambiguous; {} keys not linearizable",
            self.keys,
            self.ok,
            self.failed,
            self.ambiguous,
            self.violations.len()
        )?;
        for (key, ops) in &self.violations {
            write!(f, "; key {key} ({ops} operations)")?;
        }
        Ok(())
    }
}

/// Checker thread ids: the process and how many ambiguous operations it had before.
type ThreadId = (usize, usize);

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    fn events(&self) -> std::sync::MutexGuard<'_, Vec<Event>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `process` invokes `op` on `key` now. A process has one operation under
    /// way at a time: complete it before the next.
    pub fn invoke(&self, process: usize, key: i64, op: RegisterOp) -> OpId {
        let mut events = self.events();
        let id = events.len();
        events.push(Event::Invoke {
            id,
            process,
            key,
            op,
        });
        OpId(id)
    }

    /// Records how operation `id` ended, now.
    pub fn complete(&self, id: OpId, outcome: Outcome) {
        self.events().push(Event::Complete { id: id.0, outcome });
    }

    /// Operations recorded so far.
    pub fn len(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| matches!(e, Event::Invoke { .. }))
            .count()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of this history in which the last read that returned a value other than the
    /// initial 0 returns `value` instead; `None` if no read did. For showing that the
    /// checker rejects a history broken on purpose.
    pub fn with_last_read_changed(&self, value: i64) -> Option<History> {
        let mut events = self.events().clone();
        let reads: HashMap<usize, ()> = events
            .iter()
            .filter_map(|e| match e {
                Event::Invoke {
                    id,
                    op: RegisterOp::Read,
                    ..
                } => Some((*id, ())),
                _ => None,
            })
            .collect();
        let last = events.iter_mut().rev().find_map(|e| match e {
            Event::Complete {
                id,
                outcome: Outcome::Ok(ret @ RegisterRet::Read(_)),
            } if reads.contains_key(id) && *ret != RegisterRet::Read(0) => Some(ret),
            _ => None,
        })?;
        *last = RegisterRet::Read(value);
        Some(History {
            events: Mutex::new(events),
        })
    }

    /// Checks every key's history for linearizability against [`Register`] (initially 0);
    /// see the [module docs](self). Panics if a process had two operations under way at once
    /// (a misuse of the recorder, not a finding).
    pub fn check(&self) -> CheckReport {
        let events = self.events().clone();
        std::thread::Builder::new()
            .name("linearizability".into())
            .stack_size(512 << 20)
            .spawn(move || check_events(&events))
            .expect("spawn the checker thread")
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

fn check_events(events: &[Event]) -> CheckReport {
    let outcomes: HashMap<usize, Outcome> = events
        .iter()
        .filter_map(|e| match *e {
            Event::Complete { id, outcome } => Some((id, outcome)),
            Event::Invoke { .. } => None,
        })
        .collect();
    let mut report = CheckReport::default();
    let mut testers: BTreeMap<i64, (LinearizabilityTester<ThreadId, Register>, usize)> =
        BTreeMap::new();
    let mut epochs: HashMap<usize, usize> = HashMap::new();
    // Operation id -> (key, checker thread).
    let mut live: HashMap<usize, (i64, ThreadId)> = HashMap::new();
    for event in events {
        match *event {
            Event::Invoke {
                id,
                process,
                key,
                op,
            } => {
                let outcome = outcomes.get(&id).copied().unwrap_or(Outcome::Ambiguous);
                let (tester, ops) = testers
                    .entry(key)
                    .or_insert_with(|| (LinearizabilityTester::new(Register(0)), 0));
                match outcome {
                    Outcome::Failed => {
                        report.failed += 1;
                        continue;
                    }
                    Outcome::Ambiguous => report.ambiguous += 1,
                    Outcome::Ok(_) => report.ok += 1,
                }
                *ops += 1;
                let epoch = epochs.entry(process).or_default();
                let thread = (process, *epoch);
                if outcome == Outcome::Ambiguous {
                    *epoch += 1;
                }
                if let Err(e) = tester.on_invoke(thread, op) {
                    panic!("process {process} invoked {op:?} on key {key} while busy: {e}");
                }
                live.insert(id, (key, thread));
            }
            Event::Complete { id, outcome } => {
                let (Outcome::Ok(ret), Some((key, thread))) = (outcome, live.remove(&id)) else {
                    continue;
                };
                let (tester, _) = testers.get_mut(&key).expect("invoked before");
                if let Err(e) = tester.on_return(thread, ret) {
                    panic!("operation {id} on key {key} returned twice: {e}");
                }
            }
        }
    }
    report.keys = testers.len();
    for (key, (tester, ops)) in &testers {
        if !tester.is_consistent() {
            report.violations.push((*key, *ops));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(h: &History, process: usize, key: i64, op: RegisterOp, outcome: Outcome) {
        let id = h.invoke(process, key, op);
        h.complete(id, outcome);
    }

    #[test]
    fn sequential_history_passes_and_a_stale_read_fails() {
        let h = History::new();
        run(
            &h,
            0,
            1,
            RegisterOp::Write(5),
            Outcome::Ok(RegisterRet::Written),
        );
        run(
            &h,
            1,
            1,
            RegisterOp::Read,
            Outcome::Ok(RegisterRet::Read(5)),
        );
        run(
            &h,
            1,
            1,
            RegisterOp::Cas(5, 6),
            Outcome::Ok(RegisterRet::Swapped),
        );
        run(
            &h,
            0,
            1,
            RegisterOp::Cas(5, 7),
            Outcome::Ok(RegisterRet::NotSwapped),
        );
        let report = h.check();
        assert!(report.violations.is_empty(), "{report}");
        run(
            &h,
            2,
            1,
            RegisterOp::Read,
            Outcome::Ok(RegisterRet::Read(5)),
        );
        let report = h.check();
        assert_eq!(report.violations, [(1, 5)], "{report}");
        // Changing the last read that returned something else than 0 breaks it too.
        let h = History::new();
        run(
            &h,
            0,
            1,
            RegisterOp::Write(5),
            Outcome::Ok(RegisterRet::Written),
        );
        run(
            &h,
            1,
            1,
            RegisterOp::Read,
            Outcome::Ok(RegisterRet::Read(5)),
        );
        assert!(h.check().violations.is_empty());
        let broken = h.with_last_read_changed(6).unwrap();
        assert_eq!(broken.check().violations, [(1, 2)]);
        assert!(History::new().with_last_read_changed(6).is_none());
    }

    #[test]
    fn ambiguous_writes_may_or_may_not_have_happened_and_failed_ones_did_not() {
        let h = History::new();
        run(&h, 0, 1, RegisterOp::Write(1), Outcome::Ambiguous);
        run(
            &h,
            1,
            1,
            RegisterOp::Read,
            Outcome::Ok(RegisterRet::Read(0)),
        );
        run(
            &h,
            1,
            1,
            RegisterOp::Read,
            Outcome::Ok(RegisterRet::Read(1)),
        );
        run(&h, 0, 2, RegisterOp::Write(3), Outcome::Failed);
        run(
            &h,
            0,
            2,
            RegisterOp::Read,
            Outcome::Ok(RegisterRet::Read(0)),
        );
        let report = h.check();
        assert!(report.violations.is_empty(), "{report}");
        assert_eq!((report.ok, report.failed, report.ambiguous), (3, 1, 1));
        // Once seen, the ambiguous write cannot be undone.
        run(
            &h,
            1,
            1,
            RegisterOp::Read,
            Outcome::Ok(RegisterRet::Read(0)),
        );
        assert_eq!(h.check().violations, [(1, 4)]);
        // A failed write that shows up is a violation.
        let h = History::new();
        run(&h, 0, 2, RegisterOp::Write(3), Outcome::Failed);
        run(
            &h,
            0,
            2,
            RegisterOp::Read,
            Outcome::Ok(RegisterRet::Read(3)),
        );
        assert_eq!(h.check().violations, [(2, 1)]);
    }
}
