//! The per-connection cache of prepared statements: SQL sent with parameters is prepared
//! once and then executed by id, so the server parses it once per connection instead of
//! on every call. Least recently used statements are finalized when the cache is full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dqlite_proto::Stmt;

/// Statements (`T`: the core's handles) by SQL text, with the tick of their last use.
#[derive(Debug)]
pub(crate) struct StatementCache<T = Stmt> {
    capacity: usize,
    entries: HashMap<String, (T, u64)>,
    tick: u64,
}

/// A connection's cache, shared with the closures that encode requests.
pub(crate) type SharedCache = Arc<Mutex<StatementCache>>;

impl<T> StatementCache<T> {
    /// A cache holding at most `capacity` statements (0: caching off).
    pub(crate) fn new(capacity: usize) -> StatementCache<T> {
        StatementCache {
            capacity,
            entries: HashMap::new(),
            tick: 0,
        }
    }

    /// Whether caching is on.
    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The statement prepared for `sql`, marked as just used.
    pub(crate) fn get(&mut self, sql: &str) -> Option<&T> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(sql).map(|(stmt, used)| {
            *used = tick;
            &*stmt
        })
    }

    /// True when `sql` has a statement.
    pub(crate) fn contains(&self, sql: &str) -> bool {
        self.entries.contains_key(sql)
    }

    /// Keeps `stmt` for `sql`; returns the statements that no longer fit (the least
    /// recently used) or that it replaces, to be finalized.
    pub(crate) fn insert(&mut self, sql: &str, stmt: T) -> Vec<T> {
        let mut out = Vec::new();
        if self.capacity == 0 {
            out.push(stmt);
            return out;
        }
        while self.entries.len() >= self.capacity && !self.entries.contains_key(sql) {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((stmt, _)) = self.entries.remove(&oldest) {
                out.push(stmt);
            }
        }
        self.tick += 1;
        if let Some((old, _)) = self.entries.insert(sql.to_owned(), (stmt, self.tick)) {
            out.push(old);
        }
        out
    }

    /// Statements held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_goes_first() {
        let mut c: StatementCache<u32> = StatementCache::new(2);
        assert!(c.insert("a", 1).is_empty());
        assert!(c.insert("b", 2).is_empty());
        assert_eq!(c.get("a"), Some(&1)); // b is now the oldest
        assert_eq!(c.insert("c", 3), vec![2]);
        assert!(c.contains("a") && c.contains("c") && !c.contains("b"));
        assert_eq!(
            c.insert("a", 4),
            vec![1],
            "a replaced statement is finalized"
        );
        assert_eq!(c.len(), 2);
        let mut off: StatementCache<u32> = StatementCache::new(0);
        assert!(!off.enabled());
        assert_eq!(off.insert("a", 1), vec![1]);
        assert_eq!(off.get("a"), None);
    }
}
