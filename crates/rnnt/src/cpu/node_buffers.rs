//! Reuse of the per-node state buffers across calls.
//!
//! Every call keeps a few f64 numbers per lattice node (scores, α, β, arc occupancies): tens of
//! MB on long items. Freshly allocated, such buffers come from `mmap` and fault on first touch
//! (the kernel zeroes each 4 KiB page), thousands of faults a call on long items, a visible share
//! of the call's time. A [`NodeVec`] hands its allocation back to a
//! process-wide pool when dropped, so the next call of a training loop reuses warm memory.
//!
//! The pool is bounded ([`POOL_MAX_BYTES`], [`POOL_MAX_BUFFERS`]): a buffer that would exceed the
//! bounds is freed as usual, so an occasional huge batch does not pin its memory for good.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// The most bytes of idle buffers the pool keeps.
pub const POOL_MAX_BYTES: usize = 1 << 30;

/// The most idle buffers the pool keeps.
pub const POOL_MAX_BUFFERS: usize = 4096;

/// Idle buffers, with the sum of their capacities in bytes.
static POOL: Mutex<(Vec<Vec<f64>>, usize)> = Mutex::new((Vec::new(), 0));

/// A `Vec<f64>` whose allocation returns to the pool when it is dropped.
#[derive(Default, PartialEq)]
pub struct NodeVec(Vec<f64>);

impl NodeVec {
    /// `len` copies of `value`, in a pooled buffer when one is large enough (the smallest such).
    pub fn filled(len: usize, value: f64) -> NodeVec {
        let mut buffer = take(len);
        buffer.clear();
        buffer.resize(len, value);
        NodeVec(buffer)
    }

    /// `len` values left over from an earlier use (0 where there was none), for a caller that
    /// overwrites every element: unlike [`NodeVec::filled`], a reused buffer is not written.
    pub fn overwritable(len: usize) -> NodeVec {
        let mut buffer = take(len);
        buffer.resize(len, 0.0);
        NodeVec(buffer)
    }

    /// The values of `values`, in a pooled buffer.
    pub fn copied(values: &[f64]) -> NodeVec {
        let mut buffer = take(values.len());
        buffer.clear();
        buffer.extend_from_slice(values);
        NodeVec(buffer)
    }
}

/// A buffer of capacity ≥ `len` holding whatever it held before: the smallest pooled one that
/// fits, else a new empty one.
fn take(len: usize) -> Vec<f64> {
    if len == 0 {
        return Vec::new();
    }
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let (buffers, bytes) = &mut *pool;
    let best = buffers
        .iter()
        .enumerate()
        .filter(|(_, b)| b.capacity() >= len)
        .min_by_key(|(_, b)| b.capacity())
        .map(|(i, _)| i);
    match best {
        Some(i) => {
            let buffer = buffers.swap_remove(i);
            *bytes -= buffer.capacity() * size_of::<f64>();
            buffer
        }
        None => Vec::with_capacity(len),
    }
}

impl Drop for NodeVec {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.0);
        let size = buffer.capacity() * size_of::<f64>();
        if size == 0 {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        let (buffers, bytes) = &mut *pool;
        if buffers.len() < POOL_MAX_BUFFERS && *bytes + size <= POOL_MAX_BYTES {
            *bytes += size;
            buffers.push(buffer);
        }
    }
}

impl Clone for NodeVec {
    fn clone(&self) -> NodeVec {
        NodeVec::copied(&self.0)
    }
}

impl std::fmt::Debug for NodeVec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Deref for NodeVec {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        &self.0
    }
}

impl DerefMut for NodeVec {
    fn deref_mut(&mut self) -> &mut [f64] {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::NodeVec;

    #[test]
    fn reuses_a_dropped_buffer_and_fills_it() {
        drop(NodeVec::filled(5000, 1.5));
        // Whichever pooled buffer it gets, it is refilled.
        let again = NodeVec::filled(4000, -2.0);
        assert_eq!(again.len(), 4000);
        assert!(again.iter().all(|&x| x == -2.0));
        drop(again);
        assert_eq!(NodeVec::overwritable(3000).len(), 3000);
        let again = NodeVec::filled(10, 0.5);
        let copy = again.clone();
        assert_eq!(copy, again);
        assert_eq!(NodeVec::filled(0, 3.0).len(), 0);
    }
}
