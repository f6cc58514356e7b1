//! The STREAM triad a[i] = b[i] + s·c[i] on f32 arrays: the memory bandwidth that the loss's cost
//! floor is measured against (DESIGN.md §3: the floor of a float32 forward + backward is 12·N bytes
//! over this bandwidth), measured on the same pool of threads as the loss.
//!
//! Two variants are timed, plain stores (each written line is first read into the cache) and, on
//! x86-64, non-temporal stores; the faster one is reported, so the floor is the stricter of the
//! two. [`Triad`] keeps its arrays, so that a benchmark can measure it between its own runs.

use rayon::prelude::*;

use crate::cpu::threads::run_in_pool;
use crate::error::Result;

/// Bytes moved per triad element: read b and c, write a (f32 each).
pub const BYTES_PER_ELEMENT: usize = 12;

/// Elements per parallel work unit (a multiple of 16, so NT stores stay aligned).
const CHUNK: usize = 1 << 16;

/// The triad's arrays, allocated once and mapped on the pool that measures them, so that it can
/// be measured again and again in a run, between the runs of what it is the floor of (on a
/// shared machine both then see the same moments; `rnnt bench` reports the best of each).
pub struct Triad {
    threads: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
}

impl Triad {
    /// Arrays of `elements` f32 each, first touched on a pool of `threads` workers (0:
    /// `RNNT_NUM_THREADS`, else every core), so that their pages are mapped (and placed) before
    /// any timing.
    ///
    /// # Errors
    /// [`crate::Error::Value`] for a bad `RNNT_NUM_THREADS`, [`crate::Error::Unavailable`] if the
    /// threads cannot start.
    pub fn new(threads: usize, elements: usize) -> Result<Triad> {
        let mut triad = Triad {
            threads,
            a: vec![0f32; elements],
            b: vec![0f32; elements],
            c: vec![0f32; elements],
        };
        let Triad { a, b, c, .. } = &mut triad;
        run_in_pool(threads, || {
            for (i, array) in [a, b, c].into_iter().enumerate() {
                array
                    .par_chunks_mut(CHUNK)
                    .for_each(|chunk| chunk.fill(i as f32));
            }
        })?;
        Ok(triad)
    }

    /// One run with plain stores and one with non-temporal stores: the faster one's bandwidth in
    /// bytes per second.
    ///
    /// # Errors
    /// As [`Triad::new`].
    pub fn bandwidth(&mut self) -> Result<f64> {
        let Triad { threads, a, b, c } = self;
        let elements = a.len();
        run_in_pool(*threads, || {
            let mut best = f64::INFINITY;
            for stream in [false, true] {
                let start = std::time::Instant::now();
                a.par_chunks_mut(CHUNK)
                    .zip(b.par_chunks(CHUNK))
                    .zip(c.par_chunks(CHUNK))
                    .for_each(|((a, b), c)| triad(a, b, c, 3.0, stream));
                best = best.min(start.elapsed().as_secs_f64());
            }
            std::hint::black_box(&a);
            (BYTES_PER_ELEMENT * elements) as f64 / best
        })
    }
}

/// a = b + scale·c over one chunk, with non-temporal stores when `stream` and the CPU allows.
fn triad(a: &mut [f32], b: &[f32], c: &[f32], scale: f32, stream: bool) {
    #[cfg(target_arch = "x86_64")]
    if stream {
        use std::arch::x86_64::{_mm_add_ps, _mm_loadu_ps, _mm_mul_ps, _mm_set1_ps, _mm_stream_ps};
        let head = a.as_ptr().align_offset(16).min(a.len());
        triad(&mut a[..head], &b[..head], &c[..head], scale, false);
        let body = head + (a.len() - head) / 4 * 4;
        let mut i = head;
        while i < body {
            // SAFETY: SSE is in the x86-64 baseline; i + 4 ≤ body ≤ every length; a + i is
            // 16-byte aligned (head aligned it and i advances by 16 bytes).
            unsafe {
                let sum = _mm_add_ps(
                    _mm_loadu_ps(b.as_ptr().add(i)),
                    _mm_mul_ps(_mm_set1_ps(scale), _mm_loadu_ps(c.as_ptr().add(i))),
                );
                _mm_stream_ps(a.as_mut_ptr().add(i), sum);
            }
            i += 4;
        }
        triad(&mut a[body..], &b[body..], &c[body..], scale, false);
        crate::cpu::simd::store_fence();
        return;
    }
    let _ = stream;
    for ((a, &b), &c) in a.iter_mut().zip(b).zip(c) {
        *a = b + scale * c;
    }
}
