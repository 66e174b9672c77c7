//! Jittered exponential pauses, for retry loops in the core and in drivers.

use std::time::Duration;

/// Pauses that double from `base` up to `cap`, each scaled to 50-100 % of its nominal length
/// by a deterministic jitter (xorshift64 from a seed), so that clients retrying together
/// spread out. Pure computation: the caller sleeps.
///
/// ```
/// use std::time::Duration;
/// use dqlite_proto::Backoff;
///
/// let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(50), 7);
/// let first = b.pause(1);
/// assert!(first >= Duration::from_millis(5) && first <= Duration::from_millis(10));
/// let late = b.pause(30); // capped: 50 ms nominal
/// assert!(late >= Duration::from_millis(25) && late <= Duration::from_millis(50));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    rng: u64,
}

impl Backoff {
    /// Pauses starting at `base`, capped at `cap`, jittered from `seed`.
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            cap,
            // xorshift64 stays at zero from zero.
            rng: seed | 1,
        }
    }

    /// The pause before retry number `attempt` (1 for the first): nominally
    /// `base * 2^(attempt-1)`, capped, then scaled to 50-100 %.
    pub fn pause(&mut self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let nominal = self.base.saturating_mul(1 << exp).min(self.cap);
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let frac = 0.5 + (self.rng >> 11) as f64 / (1u64 << 53) as f64 / 2.0;
        nominal.mul_f64(frac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_stay_within_half_to_full_and_respect_the_cap() {
        let base = Duration::from_millis(8);
        let cap = Duration::from_millis(100);
        for seed in [0, 1, 42, u64::MAX] {
            let mut b = Backoff::new(base, cap, seed);
            for attempt in 1..40 {
                let nominal = base.saturating_mul(1 << (attempt - 1).min(20)).min(cap);
                let p = b.pause(attempt);
                assert!(
                    p >= nominal / 2 && p <= nominal,
                    "seed {seed} attempt {attempt}: {p:?}"
                );
            }
        }
        // The same seed gives the same pauses.
        let mut a = Backoff::new(base, cap, 5);
        let mut b = Backoff::new(base, cap, 5);
        assert!((1..10).all(|n| a.pause(n) == b.pause(n)));
    }
}
