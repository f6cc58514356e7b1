//! The anti-diagonal walk of one recursion over one lattice, a step at a time, so that a caller
//! can run it alone ([`DiagonalWalk::run`]) or interleave the steps of two walks through one
//! vectorised sum (see `alpha_beta`).

use crate::cpu::front::NodeScores;
use crate::cpu::node_buffers::NodeVec;
use crate::cpu::simd;

/// How far ahead of its current column a walk prefetches each row: 4 cache lines (on long
/// lattices, faster than no prefetch; a longer lead gains nothing).
const PREFETCH_COLUMNS: usize = 32;

/// Rows per band of a walk: enough lanes per step (2 AVX-512 vectors) to overlap the latency of
/// the log-space sum, few enough rows that a band's cache lines and pages stay in L1 and its TLB
/// (the best of 8 to 64 rows on long lattices).
const BAND: usize = 16;

/// Lattices of at most this many nodes are walked as one band: their α, scores and output, 24
/// bytes a node, stay within L2, so the bound that keeps a band's rows in L1 ([`BAND`]) is not
/// needed, and one band takes fewer, longer steps.
const SINGLE_BAND_NODES: usize = 1 << 14;

/// One recursion over one lattice: forward, v(t,u) = combine(v(t−1,u) + blank(t−1,u),
/// v(t,u−1) + emit(t,u−1)) from v(0,0) = `start`; `REVERSED`, v(t,u) = combine(v(t+1,u) +
/// blank(t,u), v(t,u+1) + emit(t,u)) from v(T−1,U) = `start`. Indexed like [`NodeScores`]; −inf
/// where no path reaches.
///
/// The nodes of one anti-diagonal do not depend on each other, so a step hands many nodes'
/// candidates at once, in contiguous scratch, to a combine that runs them through vector
/// instructions. The lattice is walked in bands of [`BAND`] rows; within a band, step s visits
/// the band's stretch of anti-diagonal s, lane r at row r and column s − r, so that each row is
/// still read in order (one cache line every 8 steps) and a band's rows stay in L1. A lane's two
/// predecessors are the previous step's values of lanes r−1 and r, kept in scratch indexed by
/// lane; lane 0 reads the row above the band from a copy of the previous band's last row.
///
/// The walk is written in walker coordinates (i, j): (t, u) forward, (T−1−t, U−u) reversed, so
/// that walker index n = i·P + j is node n forward and node N−1−n reversed and one loop serves
/// both directions.
pub struct DiagonalWalk<'a, const REVERSED: bool> {
    scores: &'a NodeScores,
    start: f64,
    out: NodeVec,
    /// Rows per band.
    band: usize,
    /// The current band's first row and the current step within it.
    band_start: usize,
    step: usize,
    /// `lanes[r]`: the value of walker node (band_start + r, step − r) after each step.
    lanes: Vec<f64>,
    /// The previous band's last row.
    above: Vec<f64>,
}

impl<'a, const REVERSED: bool> DiagonalWalk<'a, REVERSED> {
    /// A walk over `scores` from `start`.
    pub fn new(scores: &'a NodeScores, start: f64) -> Self {
        let (frames, positions) = (scores.frames, scores.positions);
        let nodes = frames * positions;
        // A small lattice fits in L2 whole: one band of every row makes fewer, longer steps.
        let band = if nodes <= SINGLE_BAND_NODES {
            frames
        } else {
            BAND.min(frames)
        };
        DiagonalWalk {
            scores,
            start,
            // Every node is written (each band's steps give each of its rows every column).
            out: NodeVec::overwritable(nodes),
            band,
            band_start: if positions == 0 { frames } else { 0 },
            step: 0,
            lanes: vec![f64::NEG_INFINITY; band],
            above: vec![f64::NEG_INFINITY; positions],
        }
    }

    /// Whether the lattice is walked as one band.
    pub fn is_single_band(&self) -> bool {
        self.band == self.scores.frames
    }

    /// The most lanes one step hands over.
    pub fn width(&self) -> usize {
        self.band.min(self.scores.positions)
    }

    /// Runs the walk to the end, each step's candidates through `combine(via_blank, via_emit,
    /// out)` (which must give `x` for the candidates `x` and −inf).
    pub fn run(&mut self, mut combine: impl FnMut(&[f64], &[f64], &mut [f64])) {
        let width = self.width();
        let mut via_blank = vec![f64::NEG_INFINITY; width];
        let mut via_emit = vec![f64::NEG_INFINITY; width];
        let mut values = vec![0.0; width];
        loop {
            let n = self.gather(&mut via_blank, &mut via_emit);
            if n == 0 {
                return;
            }
            combine(&via_blank[..n], &via_emit[..n], &mut values[..n]);
            self.scatter(&values[..n]);
        }
    }

    /// The values of every node.
    pub fn into_values(self) -> NodeVec {
        self.out
    }

    /// The nodes of the lattice.
    fn nodes(&self) -> usize {
        self.scores.frames * self.scores.positions
    }

    /// Rows in the current band.
    fn rows(&self) -> usize {
        self.band.min(self.scores.frames - self.band_start)
    }

    /// The current step's lanes: first..=last.
    fn lane_range(&self) -> (usize, usize) {
        let first = self.step.saturating_sub(self.scores.positions - 1);
        (first, self.step.min(self.rows() - 1))
    }

    /// The node holding walker index n. Wrapping, as the prefetches may look past the ends.
    fn node(&self, n: usize) -> usize {
        if REVERSED {
            (self.nodes() - 1).wrapping_sub(n)
        } else {
            n
        }
    }

    /// The node whose blank score labels the arc into walker index n from walker (i−1, j).
    fn blank_arc(&self, n: usize) -> usize {
        if REVERSED {
            (self.nodes() - 1).wrapping_sub(n)
        } else {
            n.wrapping_sub(self.scores.positions)
        }
    }

    /// The node whose emission score labels the arc into walker index n from walker (i, j−1).
    fn emit_arc(&self, n: usize) -> usize {
        if REVERSED {
            (self.nodes() - 1).wrapping_sub(n)
        } else {
            n.wrapping_sub(1)
        }
    }

    /// Walker index n moves by this from lane r to lane r + 1 of a step (one row down, one
    /// column left); in node order that is ±(P − 1).
    fn node_stride(&self) -> isize {
        let diagonal_stride = self.scores.positions as isize - 1;
        if REVERSED {
            -diagonal_stride
        } else {
            diagonal_stride
        }
    }

    /// Walker index of the current step's lane `first`.
    fn first_index(&self, first: usize) -> usize {
        (self.band_start + first) * self.scores.positions + self.step - first
    }

    /// Writes the current step's candidates (via the blank arc, via the emission arc), one per
    /// lane, to the start of `blank_out` and `emit_out` (at least [`DiagonalWalk::width`] long);
    /// returns how many (0 once the walk is done).
    pub fn gather(&self, blank_out: &mut [f64], emit_out: &mut [f64]) -> usize {
        if self.band_start >= self.scores.frames {
            return 0;
        }
        let (scores, step, positions) = (self.scores, self.step, self.scores.positions);
        let (first, last) = self.lane_range();
        let count = last - first + 1;
        let (blank_out, emit_out) = (&mut blank_out[..count], &mut emit_out[..count]);
        let n_first = self.first_index(first);
        if self.band_start == 0 && step == 0 {
            // The start node: combine(start, −inf) is `start`.
            blank_out[0] = self.start;
            emit_out[0] = f64::NEG_INFINITY;
            return count;
        }
        // Lanes with both predecessors inside the band: r ≥ 1 (the row above is in the band)
        // and r < step (column j ≥ 1). The others are set apart below.
        let inner_first = first.max(1);
        let inner_last = last.min(step.wrapping_sub(1));
        if inner_first <= inner_last && step > 0 {
            let skip = inner_first - first;
            let n = n_first + skip * positions - skip;
            let (blank_at, emit_at) = (self.blank_arc(n) as isize, self.emit_arc(n) as isize);
            let node_stride = self.node_stride();
            let before = &self.lanes[inner_first - 1..inner_last];
            let here = &self.lanes[inner_first..=inner_last];
            let blank_out = &mut blank_out[skip..=inner_last - first];
            let emit_out = &mut emit_out[skip..=inner_last - first];
            for k in 0..blank_out.len() {
                let offset = k as isize * node_stride;
                // SAFETY: lane inner_first + k is the node n + k·(P − 1) (walker index), which
                // lies in the lattice with its predecessors (r ≥ 1, j ≥ 1), so both arc indices
                // are in 0..nodes.
                let (blank, emit) = unsafe {
                    (
                        *scores.blank.get_unchecked((blank_at + offset) as usize),
                        *scores.emit.get_unchecked((emit_at + offset) as usize),
                    )
                };
                blank_out[k] = before[k] + blank;
                emit_out[k] = here[k] + emit;
            }
        }
        if first == 0 {
            // Lane 0: its blank predecessor is the previous band's last row.
            blank_out[0] = if self.band_start > 0 {
                self.above[step] + scores.blank[self.blank_arc(n_first)]
            } else {
                f64::NEG_INFINITY
            };
            emit_out[0] = if step > 0 {
                self.lanes[0] + scores.emit[self.emit_arc(n_first)]
            } else {
                f64::NEG_INFINITY
            };
        }
        if last == step && step > 0 {
            // Column 0: no emission arc leads in.
            let n = (self.band_start + last) * positions;
            blank_out[last - first] = self.lanes[last - 1] + scores.blank[self.blank_arc(n)];
            emit_out[last - first] = f64::NEG_INFINITY;
        }
        // Fetch a line PREFETCH_COLUMNS ahead for the lanes at a line's start (j ≡ 0 mod 8): the
        // hardware prefetchers lose track of a band's dozens of streams.
        for r in (first + (step - first) % 8..=last).step_by(8) {
            let ahead = (self.band_start + r) * positions + step - r + PREFETCH_COLUMNS;
            simd::prefetch(scores.blank.as_ptr().wrapping_add(self.blank_arc(ahead)));
            simd::prefetch(scores.emit.as_ptr().wrapping_add(self.emit_arc(ahead)));
            simd::prefetch(self.out.as_ptr().wrapping_add(self.node(ahead)));
        }
        count
    }

    /// Stores the current step's combined `values` (as many as [`DiagonalWalk::gather`] gave)
    /// and moves to the next step.
    pub fn scatter(&mut self, values: &[f64]) {
        if values.is_empty() {
            return;
        }
        let (first, last) = self.lane_range();
        let rows = self.rows();
        self.lanes[first..=last].copy_from_slice(values);
        let out_at = self.node(self.first_index(first)) as isize;
        let node_stride = self.node_stride();
        for (k, &value) in values.iter().enumerate() {
            self.out[(out_at + k as isize * node_stride) as usize] = value;
        }
        if last == rows - 1 {
            self.above[self.step - last] = self.lanes[last];
        }
        self.step += 1;
        if self.step == self.scores.positions + rows - 1 {
            self.step = 0;
            self.band_start += rows;
        }
    }
}
