//! An allocation bound per input: the binary's global allocator counts the bytes each thread
//! holds, and [`bounded`] fails a check whose peak exceeds a budget proportional to its input.
//!
//! The core sizes buffers from lengths and counts written by the server; a decoder that
//! trusted such a number (`Vec::with_capacity(count)`) would pass every other check while
//! reserving gigabytes for a 20-byte input. Any input here is at most a few KiB, so a peak
//! above [`budget`] is such a bug.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use super::tracing;

thread_local! {
    /// Bytes this thread allocated and has not freed (memory freed by another thread than
    /// the one that allocated it only makes this smaller, never larger).
    static LIVE: Cell<usize> = const { Cell::new(0) };
    /// The most `LIVE` reached since [`bounded`] last reset it.
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting.
pub struct Counting;

fn grow(bytes: usize) {
    // `try_with`: never panic inside the allocator, even while a thread is torn down.
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(bytes);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrink(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(bytes)));
}

// SAFETY: every method forwards to `System` with the caller's own arguments, which meet
// `System`'s requirements because they meet `GlobalAlloc`'s; the counting touches only
// const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrink(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrink(layout.size());
            grow(new_size);
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Fixed part of the budget: the checks' own models, tables and the SQLite connection of the
/// `sql` target.
pub const BASE: usize = 4 << 20;
/// Bytes a check may hold per input byte: decoded values, the bytes a model keeps of what
/// was sent, `Debug` texts compared by the round trips.
pub const PER_INPUT_BYTE: usize = 512;

/// The most a check may hold at once for an input of `len` bytes.
pub fn budget(len: usize) -> usize {
    BASE.saturating_add(len.saturating_mul(PER_INPUT_BYTE))
}

/// Runs `f` and returns its result and the most bytes this thread held above what it held
/// before.
pub fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, peak.saturating_sub(start))
}

/// Runs `check` on `data` and fails if it held more than [`budget`] bytes at any moment.
pub fn bounded(name: &str, check: fn(&[u8]), data: &[u8]) {
    let ((), peak) = peak_of(|| check(data));
    let limit = budget(data.len());
    trace!(
        "{name}: held at most {peak} bytes for a {}-byte input",
        data.len()
    );
    assert!(
        peak <= limit,
        "{name}: {peak} bytes held at once for a {}-byte input (budget {limit})",
        data.len()
    );
}
