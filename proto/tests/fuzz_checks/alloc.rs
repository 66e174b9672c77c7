//! The counting global allocator of the test binaries that bound allocations: the fuzz
//! targets and their stable replay (an allocation bound per input, `fuzz_checks::run`) and
//! the hostile-frame corpus (`hostile.rs`). Both include this file, so each binary has exactly
//! one.
//!
//! Counts are kept per thread: a measurement sees only what its own thread allocates, so tests
//! running at the same time in other threads do not disturb it. The core sizes buffers from
//! lengths and counts written by the server; a decoder that trusted such a number
//! (`Vec::with_capacity(count)`) would pass every other check while reserving gigabytes for a
//! 20-byte input, and a measurement here shows it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Bytes this thread allocated and has not freed (memory freed by another thread than
    /// the one that allocated it only makes this smaller, never larger).
    static LIVE: Cell<usize> = const { Cell::new(0) };
    /// The most `LIVE` reached since [`measure_start`] last reset it.
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting.
struct Counting;

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
            // Counted as a copy (old and new block live at once), so the peak is an upper bound.
            grow(new_size);
            shrink(layout.size());
        }
        p
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Starts a measurement on this thread: returns the bytes it holds now and resets the peak
/// to that.
pub fn measure_start() -> usize {
    let now = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(now));
    now
}

/// The most bytes this thread held above `base` since [`measure_start`] returned it.
pub fn measure_peak(base: usize) -> usize {
    PEAK.with(Cell::get).saturating_sub(base)
}
