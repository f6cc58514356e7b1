// Front pass: per valid node (b, t, u), one read of the row x[b,t,u,:] gives its log-sum-exp
// (an online max / sum-exp per lane, merged across the warp), then
//   blank_lp = x[blank] - lse,  emit_lp = x[y[u+1]] - lse (-inf at u = U_b),  lse,
// all stored as float64 in (B, T, U+1) node arrays. In log-probs mode (`fused` = 0) lse is 0 and
// the inputs are used as they are. A row that is all -inf is a masked node (every score -inf).
// A NaN or +inf within the lengths sets *bad_row to the smallest such flat row index, for the host
// to report; padding rows are never read.

// Merges two (max, sum of exp(x - max)) pairs.
__device__ __forceinline__ void lse_merge(acc_t& m, acc_t& s, acc_t m2, acc_t s2) {
    const acc_t hi = m > m2 ? m : m2;
    if (hi == -(acc_t)RNNT_INF) return;
    s = (m == hi ? s : s * exp(m - hi)) + (m2 == hi ? s2 : s2 * exp(m2 - hi));
    m = hi;
}

extern "C" __global__ void rnnt_front(const elem_t* __restrict__ scores, i64 batch, i64 frames,
                                      i64 positions, i64 vocab, int blank, int fused,
                                      const int* __restrict__ item_frames,
                                      const int* __restrict__ item_labels,
                                      const i64* __restrict__ label_offsets,
                                      const int* __restrict__ labels, double* __restrict__ blank_lp,
                                      double* __restrict__ emit_lp, double* __restrict__ node_lse,
                                      u64* __restrict__ bad_row) {
    const int lane = threadIdx.x % RNNT_WARP;
    const i64 warps = (i64)gridDim.x * (blockDim.x / RNNT_WARP);
    const i64 rows = batch * frames * positions;
    for (i64 row = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / RNNT_WARP; row < rows;
         row += warps) {
        const node_coords c = row_coords(row, frames, positions);
        if (!node_is_valid(c, item_frames, item_labels)) continue;
        const elem_t* x = scores + row * vocab;
        acc_t m = -(acc_t)RNNT_INF, s = 0;
        bool bad = false;
        warp_row_read(x, vocab, lane, [&](i64, acc_t v) {
            if (v != v || v == (acc_t)RNNT_INF) {
                bad = true;
            } else if (v > m) {
                s = s * exp(m - v) + (acc_t)1;
                m = v;
            } else if (v != -(acc_t)RNNT_INF) {
                s += exp(v - m);
            }
        });
        for (int offset = RNNT_WARP / 2; offset > 0; offset /= 2) {
            const acc_t m2 = __shfl_xor_sync(RNNT_FULL_MASK, m, offset);
            const acc_t s2 = __shfl_xor_sync(RNNT_FULL_MASK, s, offset);
            lse_merge(m, s, m2, s2);
        }
        if (__any_sync(RNNT_FULL_MASK, bad)) {
            if (lane == 0) atomicMin(bad_row, (u64)row);
            continue;
        }
        if (lane != 0) continue;
        double lse = 0.0;
        if (fused) lse = m == -(acc_t)RNNT_INF ? -RNNT_INF : (double)m + log((double)s);
        const bool masked = lse == -RNNT_INF;
        const i64 node = row;
        blank_lp[node] = masked ? -RNNT_INF : (double)to_acc(x[blank]) - lse;
        if (c.u < item_labels[c.b]) {
            const int y = labels[label_offsets[c.b] + c.u];
            emit_lp[node] = masked ? -RNNT_INF : (double)to_acc(x[y]) - lse;
        } else {
            emit_lp[node] = -RNNT_INF;
        }
        node_lse[node] = lse;
    }
}
