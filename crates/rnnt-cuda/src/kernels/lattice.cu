// The α/β lattice in float64, one block per item, along anti-diagonals d = t + u: every node of a
// diagonal depends only on the previous one (α) or the next one (β), so the block's threads share
// a diagonal's nodes and synchronise between diagonals. Diagonal d of a T_b × (U_b+1) item holds
// the nodes t ∈ [max(0, d − U_b), min(T_b − 1, d)], u = d − t (`diagonal_frames` on the host).
//
//   α(0,0) = 0,  α(t,u) = logaddexp(α(t−1,u) + blank(t−1,u), α(t,u−1) + emit(t,u−1))
//   β(T_b−1,U_b) = blank(T_b−1,U_b),
//   β(t,u) = logaddexp(β(t+1,u) + blank(t,u), β(t,u+1) + emit(t,u))
//   ln P = β(0,0)
//
// Then the arc occupancies the gradient pass needs, per valid node:
//   blank_arc = exp(α + blank + β(t+1,u) − ln P)  (exp(α + blank − ln P) at the final node),
//   emit_arc  = exp(α + emit + β(t,u+1) − ln P)   (0 at u = U_b),
// both 0 for an impossible item (ln P = −inf). α and β are scratch (B, T, U+1) arrays.

__device__ __forceinline__ double log_add_exp(double a, double b) {
    const double hi = a > b ? a : b;
    const double lo = a > b ? b : a;
    return lo == -RNNT_INF ? hi : hi + log1p(exp(lo - hi));
}

extern "C" __global__ void rnnt_lattice(i64 frames, i64 positions,
                                        const int* __restrict__ item_frames,
                                        const int* __restrict__ item_labels,
                                        const double* __restrict__ blank_lp,
                                        const double* __restrict__ emit_lp, double* alpha,
                                        double* beta, double* __restrict__ blank_arc,
                                        double* __restrict__ emit_arc, double* __restrict__ log_p) {
    const i64 b = blockIdx.x;
    const i64 tb = item_frames[b];
    const i64 ub = item_labels[b];
    const i64 base = b * frames * positions;
    // Node (t, u) of this item in the padded (B, T, U+1) arrays.
#define NODE(t, u) (base + (t) * positions + (u))
    const i64 last = tb - 1 + ub;
    for (i64 d = 0; d <= last; ++d) {
        const i64 t_lo = d > ub ? d - ub : 0;
        const i64 t_hi = d < tb - 1 ? d : tb - 1;
        for (i64 t = t_lo + threadIdx.x; t <= t_hi; t += blockDim.x) {
            const i64 u = d - t;
            double a = 0.0;
            if (d > 0) {
                const double from_blank =
                    t > 0 ? alpha[NODE(t - 1, u)] + blank_lp[NODE(t - 1, u)] : -RNNT_INF;
                const double from_emit =
                    u > 0 ? alpha[NODE(t, u - 1)] + emit_lp[NODE(t, u - 1)] : -RNNT_INF;
                a = log_add_exp(from_blank, from_emit);
            }
            alpha[NODE(t, u)] = a;
        }
        __syncthreads();
    }
    for (i64 d = last; d >= 0; --d) {
        const i64 t_lo = d > ub ? d - ub : 0;
        const i64 t_hi = d < tb - 1 ? d : tb - 1;
        for (i64 t = t_lo + threadIdx.x; t <= t_hi; t += blockDim.x) {
            const i64 u = d - t;
            const i64 n = NODE(t, u);
            double by_blank = -RNNT_INF;
            if (t + 1 < tb) {
                by_blank = beta[NODE(t + 1, u)] + blank_lp[n];
            } else if (u == ub) {
                by_blank = blank_lp[n];
            }
            const double by_emit = u < ub ? beta[NODE(t, u + 1)] + emit_lp[n] : -RNNT_INF;
            beta[n] = log_add_exp(by_blank, by_emit);
        }
        __syncthreads();
    }
    const double lp = beta[NODE(0, 0)];
    if (threadIdx.x == 0) log_p[b] = lp;
    const i64 nodes = tb * (ub + 1);
    for (i64 i = threadIdx.x; i < nodes; i += blockDim.x) {
        const i64 t = i / (ub + 1);
        const i64 u = i - t * (ub + 1);
        const i64 n = NODE(t, u);
        double blank_occ = 0.0, emit_occ = 0.0;
        if (lp != -RNNT_INF) {
            const double a = alpha[n] - lp;
            if (t + 1 < tb) {
                blank_occ = exp(a + blank_lp[n] + beta[NODE(t + 1, u)]);
            } else if (u == ub) {
                blank_occ = exp(a + blank_lp[n]);
            }
            if (u < ub) emit_occ = exp(a + emit_lp[n] + beta[NODE(t, u + 1)]);
        }
        blank_arc[n] = blank_occ;
        emit_arc[n] = emit_occ;
    }
#undef NODE
}
