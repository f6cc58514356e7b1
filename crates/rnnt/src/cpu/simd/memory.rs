//! The kernels' memory traffic beyond plain loads and stores: prefetches ahead of the row loops
//! (into L1, and further ahead into L2 only), and the writes of whole rows vector by vector
//! ([`write_vectors`]), with non-temporal stores ([`Lanes::stream`]) where the output is too large
//! to stay in cache, and the fence that orders them ([`store_fence`]).

use crate::cpu::simd::element::LoadStore;
use crate::cpu::simd::vector::{Lanes, SimdFloat};

/// How far ahead of the current element the row kernels prefetch into L1, in bytes, so that rows
/// arrive before they are needed even across the 4 KiB page boundaries where the hardware
/// prefetcher stops. With the L2 prefetch further ahead, the lines come from L2 by then, so a
/// short lead is enough: 1 KiB is the best of 0.5 to 3 KiB on long rows.
const PREFETCH_BYTES: usize = 1024;

/// How far ahead the row kernels also prefetch into L2 only, in bytes. The L2 requests leave the
/// L1 fill buffers free for the near prefetches and the loads; with both, a core keeps more
/// lines in flight than either gives, on both passes (3 to 6 KiB ahead do alike, 8 KiB worse).
const L2_PREFETCH_BYTES: usize = 4096;

/// [`PREFETCH_BYTES`] and [`L2_PREFETCH_BYTES`] in elements of `T`.
#[inline(always)]
pub(super) fn prefetch_distances<T>() -> (usize, usize) {
    let size = std::mem::size_of::<T>();
    (PREFETCH_BYTES / size, L2_PREFETCH_BYTES / size)
}

/// Hints that the cache line holding `*ptr` will be read soon (a no-op off x86-64). `ptr` may
/// point anywhere, in bounds or not: nothing is dereferenced and a prefetch never faults.
#[inline(always)]
pub(crate) fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    prefetch_with_hint::<{ std::arch::x86_64::_MM_HINT_T0 }, T>(ptr);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// Hints that the cache line holding `*ptr` will be read, but not so soon that it should take
/// an L1 line yet: it is brought into L2 (a no-op off x86-64). Like [`prefetch`], nothing is
/// dereferenced and any `ptr` is allowed.
#[inline(always)]
pub(super) fn prefetch_to_l2<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    prefetch_with_hint::<{ std::arch::x86_64::_MM_HINT_T2 }, T>(ptr);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// `_mm_prefetch` with the locality hint `HINT`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_with_hint<const HINT: i32, T>(ptr: *const T) {
    // SAFETY: SSE is part of the x86-64 baseline, and a prefetch reads nothing and never faults.
    unsafe { std::arch::x86_64::_mm_prefetch::<HINT>(ptr.cast::<i8>()) };
}

/// Stores `out` vector by vector from `source`: full vectors, and partial ones at the ends.
/// With `stream`, the vectors
/// of the output's aligned middle go out with [`Lanes::stream`], the partial ones (only where
/// the output is not aligned) with plain masked stores.
///
/// Each vector is read from `source` before it is stored, so a source may read the output
/// itself.
///
/// # Safety
/// The CPU must have `V`'s instruction set, `output` must be valid for `n` writes and `source`
/// readable over that range.
#[inline(always)]
pub(super) unsafe fn write_vectors<V: LoadStore<E>, E>(
    output: *mut E,
    n: usize,
    stream: bool,
    source: &impl VectorSource<V>,
) {
    let lanes = V::LANES;
    let head = if stream {
        let align = lanes * std::mem::size_of::<E>();
        let misaligned = output as usize % align;
        (((align - misaligned) % align) / std::mem::size_of::<E>()).min(n)
    } else {
        0
    };
    let body_end = head + (n - head) / lanes * lanes;
    if head > 0 {
        // SAFETY: the partial store touches elements 0..head < n only.
        source.vector(0, Some(head)).store_partial_to(output, head);
    }
    let mut i = head;
    while i < body_end {
        // SAFETY: i + lanes ≤ body_end ≤ n; with `stream`, output + i is aligned.
        let g = source.vector(i, None);
        if stream {
            g.stream_to(output.add(i));
        } else {
            g.store_to(output.add(i));
        }
        i += lanes;
    }
    if body_end < n {
        // SAFETY: the partial store touches elements body_end..n only.
        source
            .vector(body_end, Some(n - body_end))
            .store_partial_to(output.add(body_end), n - body_end);
    }
}

/// Where [`write_vectors`] gets its vectors from. (A trait, not a closure: closures are not
/// compiled with the caller's `#[target_feature]`s, so the vector methods would not inline.)
pub(super) trait VectorSource<V: Lanes> {
    /// The vector for elements i..i + LANES, or for the `len` < LANES elements i..i + len.
    ///
    /// # Safety
    /// The elements must be valid to read; the CPU must have `V`'s instruction set.
    unsafe fn vector(&self, i: usize, len: Option<usize>) -> V;
}

/// The elements of a slice, as they are.
struct CopySource<T>(*const T);

impl<V: LoadStore<E>, E> VectorSource<V> for CopySource<E> {
    #[inline(always)]
    unsafe fn vector(&self, i: usize, len: Option<usize>) -> V {
        match len {
            Some(len) => V::load_partial_from(self.0.add(i), len, V::Scalar::ZERO),
            None => V::load_from(self.0.add(i)),
        }
    }
}

/// Zero vectors.
struct Zeros;

impl<V: Lanes> VectorSource<V> for Zeros {
    #[inline(always)]
    unsafe fn vector(&self, _: usize, _: Option<usize>) -> V {
        V::splat(V::Scalar::ZERO)
    }
}

/// Copies `src` into `dst` (the same length) with the aligned middle written by
/// [`Lanes::stream`]: how the gradient pass flushes rows it staged in L1, so that the lines
/// shared by two rows are streamed too.
///
/// # Safety
/// The CPU must have `V`'s instruction set; `dst.len() == src.len()`.
#[inline(always)]
pub(super) unsafe fn stream_copy<V: LoadStore<E>, E>(src: &[E], dst: &mut [E]) {
    debug_assert_eq!(src.len(), dst.len());
    write_vectors::<V, E>(dst.as_mut_ptr(), dst.len(), true, &CopySource(src.as_ptr()));
}

/// Fills `out` with zeros, the aligned middle written by [`Lanes::stream`] when `stream` is set:
/// the gradient's padding, which reads no input.
///
/// # Safety
/// The CPU must have `V`'s instruction set.
#[inline(always)]
pub(super) unsafe fn write_zeros<V: LoadStore<E>, E>(out: &mut [E], stream: bool) {
    write_vectors::<V, E>(out.as_mut_ptr(), out.len(), stream, &Zeros);
}

/// Orders this thread's non-temporal stores ([`Lanes::stream`]) before whatever it does next (a
/// no-op off x86-64, where no store streams). Call it once after a run of streamed rows.
#[inline]
pub fn store_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}
