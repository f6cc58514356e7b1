//! Launch configurations and index arithmetic, as plain functions the kernels mirror.
//!
//! The kernels cannot be run without a GPU, but the arithmetic that decides which thread touches
//! which element can: the row ↔ (b, t, u) mapping, the 64-bit sizes, the anti-diagonal ranges of
//! the lattice and the grid sizes are defined here and tested on any machine; the CUDA source
//! states the same formulas.

use std::ops::Range;

use cudarc::driver::LaunchConfig;
use rnnt::{Error, Result};

/// Threads in a warp.
pub const WARP: u32 = 32;
/// Warps per block of the row kernels (front and gradient): one row per warp.
pub const ROW_WARPS_PER_BLOCK: u32 = 8;
/// Most blocks a row kernel is launched with; the kernels loop over the remaining rows.
pub const MAX_ROW_BLOCKS: u64 = 1 << 20;
/// Most threads of a lattice block.
pub const MAX_LATTICE_THREADS: u32 = 256;

/// The launch of a row kernel over `rows` (b, t, u) rows: one warp per row, a grid-stride loop
/// beyond [`MAX_ROW_BLOCKS`] blocks.
pub fn row_launch(rows: u64) -> LaunchConfig {
    let blocks = rows
        .div_ceil(u64::from(ROW_WARPS_PER_BLOCK))
        .clamp(1, MAX_ROW_BLOCKS);
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (ROW_WARPS_PER_BLOCK * WARP, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The launch of the lattice kernel: one block per item, as many threads as the longest
/// anti-diagonal of a (T, U+1) lattice has nodes, rounded up to whole warps, at most
/// [`MAX_LATTICE_THREADS`].
pub fn lattice_launch(
    batch_size: usize,
    max_frames: usize,
    label_positions: usize,
) -> LaunchConfig {
    let longest = max_frames.min(label_positions) as u64;
    let threads = longest
        .div_ceil(u64::from(WARP))
        .saturating_mul(u64::from(WARP))
        .clamp(u64::from(WARP), u64::from(MAX_LATTICE_THREADS));
    LaunchConfig {
        grid_dim: (batch_size as u32, 1, 1),
        block_dim: (threads as u32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The frames t of the nodes (t, d − t) on anti-diagonal `d` of an item with `frames` = T_b and
/// `labels` = U_b: t ∈ [max(0, d − U_b), min(T_b − 1, d)], empty past the last diagonal.
pub fn diagonal_frames(d: usize, frames: usize, labels: usize) -> Range<usize> {
    d.saturating_sub(labels)..d.min(frames - 1) + 1
}

/// The number of anti-diagonals of an item, T_b + U_b (d = 0 ..= T_b − 1 + U_b).
pub fn diagonal_count(frames: usize, labels: usize) -> usize {
    frames + labels
}

/// (b, t, u) of flat row `row` of a (B, T, U+1) grid, in 64-bit arithmetic (as `row_coords` in
/// `kernels/common.cu`).
pub fn row_coords(row: u64, max_frames: u64, label_positions: u64) -> (u64, u64, u64) {
    let per_item = max_frames * label_positions;
    let b = row / per_item;
    let rest = row - b * per_item;
    let t = rest / label_positions;
    (b, t, rest - t * label_positions)
}

/// The offset of element k of row `row` (rows of `vocab` elements), in 64 bits.
pub fn element_offset(row: u64, vocab: u64, k: u64) -> u64 {
    row * vocab + k
}

/// B·T·(U+1) rows and N = B·T·(U+1)·V elements of a score array of `shape`, checking that N
/// elements of `elem_size` bytes are addressable.
pub fn checked_sizes(shape: (usize, usize, usize, usize), elem_size: usize) -> Result<(u64, u64)> {
    let (b, t, u1, v) = shape;
    let rows = (b as u64)
        .checked_mul(t as u64)
        .and_then(|n| n.checked_mul(u1 as u64));
    let elements = rows.and_then(|rows| rows.checked_mul(v as u64));
    match (rows, elements) {
        (Some(rows), Some(n))
            if n.checked_mul(elem_size as u64)
                .is_some_and(|bytes| bytes <= isize::MAX as u64) =>
        {
            Ok((rows, n))
        }
        _ => Err(Error::Shape(format!(
            "scores of shape ({b}, {t}, {u1}, {v}) do not fit in memory addresses"
        ))),
    }
}

/// `value` as the `int` a kernel takes, or a shape error naming it.
pub fn kernel_int(value: usize, name: &str) -> Result<i32> {
    i32::try_from(value).map_err(|_| {
        Error::Shape(format!(
            "{name} = {value} exceeds {} (the kernels take it as a 32-bit int)",
            i32::MAX
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonals_cover_every_node_once_in_dependency_order() {
        for frames in 1..7 {
            for labels in 0..6 {
                let mut seen = vec![vec![None; labels + 1]; frames];
                for d in 0..diagonal_count(frames, labels) {
                    for t in diagonal_frames(d, frames, labels) {
                        let u = d - t;
                        assert!(u <= labels, "T_b={frames} U_b={labels} d={d} t={t}");
                        assert!(seen[t][u].is_none(), "node ({t},{u}) visited twice");
                        seen[t][u] = Some(d);
                    }
                }
                for t in 0..frames {
                    for u in 0..=labels {
                        let d = seen[t][u].expect("every node is on a diagonal");
                        // α(t,u) reads (t−1,u) and (t,u−1): both on the previous diagonal.
                        if t > 0 {
                            assert_eq!(seen[t - 1][u], Some(d - 1));
                        }
                        if u > 0 {
                            assert_eq!(seen[t][u - 1], Some(d - 1));
                        }
                    }
                }
                let past_end = diagonal_count(frames, labels);
                assert!(diagonal_frames(past_end, frames, labels).is_empty());
            }
        }
    }

    #[test]
    fn row_coordinates_round_trip_beyond_32_bits() {
        let (frames, positions, vocab) = (3000u64, 401u64, 5000u64);
        for row in [0, 1, 400, 401, 1_202_999, 1_203_000, 5_000_000_123] {
            let (b, t, u) = row_coords(row, frames, positions);
            assert!(t < frames && u < positions);
            assert_eq!((b * frames + t) * positions + u, row);
            let offset = element_offset(row, vocab, vocab - 1);
            assert_eq!(offset, row * vocab + vocab - 1);
        }
        // An offset past 2^31 and past 2^32 stays exact.
        assert_eq!(element_offset(1 << 20, 5000, 7), 5_242_880_007);
    }

    #[test]
    fn row_launch_gives_each_row_a_warp_up_to_the_grid_cap() {
        let small = row_launch(17);
        assert_eq!(small.block_dim, (256, 1, 1));
        assert_eq!(small.grid_dim, (3, 1, 1));
        assert_eq!(row_launch(0).grid_dim, (1, 1, 1));
        let huge = row_launch(1 << 40);
        assert_eq!(u64::from(huge.grid_dim.0), MAX_ROW_BLOCKS);
    }

    #[test]
    fn lattice_launch_has_whole_warps_for_the_longest_diagonal() {
        assert_eq!(lattice_launch(4, 500, 101).block_dim, (128, 1, 1));
        assert_eq!(lattice_launch(4, 1, 1).block_dim, (32, 1, 1));
        assert_eq!(lattice_launch(1, 3000, 401).block_dim, (256, 1, 1));
        assert_eq!(lattice_launch(7, 10, 10).grid_dim, (7, 1, 1));
    }

    #[test]
    fn sizes_are_64_bit_and_overflow_is_an_error() {
        // 2^31 + change elements: more than an i32 can index.
        let (rows, n) = checked_sizes((2, 1000, 201, 5400), 4).unwrap();
        assert_eq!(rows, 402_000);
        assert_eq!(n, 2_170_800_000);
        assert!(n > i32::MAX as u64);
        let err = checked_sizes((usize::MAX, 2, 2, 2), 4).unwrap_err();
        assert!(matches!(err, Error::Shape(m) if m.contains("do not fit")));
        assert_eq!(kernel_int(5000, "V").unwrap(), 5000);
        assert!(kernel_int(1 << 31, "V").is_err());
    }
}
