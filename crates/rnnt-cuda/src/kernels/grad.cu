// Gradient pass: one more read of every row and one write of the gradient, one warp per row:
//   grad[b,t,u,k] = w_b · clip(c · exp(x[k] − lse) − [k = blank]·blank_arc − [k = y[u+1]]·s·emit_arc)
// with s = 1 + λ (FastEmit), c = blank_arc + s·emit_arc (0 in log-probs mode, where the softmax
// term is absent), clip to [−clamp, clamp] when clamp > 0, and w_b the upstream weight of item b.
// Rows outside the lengths, and every row of an impossible item (ln P = −inf), get zeros.

extern "C" __global__ void rnnt_grad(const elem_t* __restrict__ scores, elem_t* __restrict__ grad,
                                     i64 batch, i64 frames, i64 positions, i64 vocab, int blank,
                                     int fused, double emit_scale, double clamp,
                                     const int* __restrict__ item_frames,
                                     const int* __restrict__ item_labels,
                                     const i64* __restrict__ label_offsets,
                                     const int* __restrict__ labels,
                                     const double* __restrict__ node_lse,
                                     const double* __restrict__ blank_arc,
                                     const double* __restrict__ emit_arc,
                                     const double* __restrict__ log_p,
                                     const double* __restrict__ item_weights) {
    const int lane = threadIdx.x % RNNT_WARP;
    const i64 warps = (i64)gridDim.x * (blockDim.x / RNNT_WARP);
    const i64 rows = batch * frames * positions;
    for (i64 row = ((i64)blockIdx.x * blockDim.x + threadIdx.x) / RNNT_WARP; row < rows;
         row += warps) {
        const node_coords c = row_coords(row, frames, positions);
        elem_t* out = grad + row * vocab;
        if (!node_is_valid(c, item_frames, item_labels) || log_p[c.b] == -RNNT_INF) {
            warp_row_zero(out, vocab, lane);
            continue;
        }
        const double weight = item_weights[c.b];
        const double blank_occ = blank_arc[row];
        const double emit_occ = emit_scale * emit_arc[row];
        const double coef = fused ? blank_occ + emit_occ : 0.0;
        const int y = c.u < item_labels[c.b] ? labels[label_offsets[c.b] + c.u] : -1;
        const acc_t lse = (acc_t)node_lse[row];
        const acc_t coef_acc = (acc_t)coef;
        const acc_t weight_acc = (acc_t)weight;
        warp_row_map(scores + row * vocab, out, vocab, lane, [&](i64 k, acc_t x) {
            acc_t d = coef > 0.0 ? coef_acc * exp(x - lse) : (acc_t)0;
            if (k == blank || k == y) {
                // The arc terms in float64, as the CPU backend does.
                double dd = (double)d;
                if (k == blank) dd -= blank_occ;
                if (k == y) dd -= emit_occ;
                if (clamp > 0.0) dd = dd < -clamp ? -clamp : (dd > clamp ? clamp : dd);
                return (acc_t)(weight * dd);
            }
            if (clamp > 0.0 && d > (acc_t)clamp) d = (acc_t)clamp;
            return weight_acc * d;
        });
    }
}
