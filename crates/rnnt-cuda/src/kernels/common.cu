// Shared definitions of the rnnt kernels, compiled by NVRTC (no host headers, no includes).
//
// The host prepends `#define RNNT_ELEM <n>` to choose the stored element type of the scores and
// the gradient: 0 float, 1 double, 2 float16, 3 bfloat16. Half types are handled as raw 16-bit
// patterns so that no cuda_fp16.h / cuda_bf16.h header is needed at run time. Row arithmetic is
// done in `acc_t`: float for float/float16/bfloat16 input, double for double input (the float64
// golden tolerance, 1e-9, needs it). The lattice is float64 whatever the input.
//
// Every size and offset that can exceed 2^31 (rows, elements) is a 64-bit `i64`.

typedef long long i64;
typedef unsigned long long u64;

#define RNNT_WARP 32
#define RNNT_FULL_MASK 0xffffffffu

#if RNNT_ELEM == 0
typedef float elem_t;
typedef float acc_t;
__device__ __forceinline__ acc_t to_acc(elem_t x) { return x; }
__device__ __forceinline__ elem_t from_acc(acc_t x) { return x; }
#elif RNNT_ELEM == 1
typedef double elem_t;
typedef double acc_t;
__device__ __forceinline__ acc_t to_acc(elem_t x) { return x; }
__device__ __forceinline__ elem_t from_acc(acc_t x) { return x; }
#elif RNNT_ELEM == 2
typedef unsigned short elem_t;
typedef float acc_t;
__device__ __forceinline__ acc_t to_acc(elem_t x) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x));
    return f;
}
__device__ __forceinline__ elem_t from_acc(acc_t x) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    return h;
}
#elif RNNT_ELEM == 3
typedef unsigned short elem_t;
typedef float acc_t;
__device__ __forceinline__ acc_t to_acc(elem_t x) { return __uint_as_float(((unsigned)x) << 16); }
// Round to nearest even; NaN stays a (quiet) NaN.
__device__ __forceinline__ elem_t from_acc(acc_t x) {
    unsigned bits = __float_as_uint(x);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (elem_t)((bits >> 16) | 0x40u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (elem_t)(bits >> 16);
}
#else
#error "RNNT_ELEM must be 0 (float), 1 (double), 2 (float16) or 3 (bfloat16)"
#endif

#define RNNT_INF __longlong_as_double(0x7ff0000000000000LL)

// Elements per 16-byte vector load.
#define RNNT_VEC (16 / (int)sizeof(elem_t))

union vec16 {
    uint4 raw;
    elem_t e[RNNT_VEC];
};

__device__ __forceinline__ bool is_aligned16(const void* p) { return ((u64)p & 15u) == 0; }

// Visits x[k] (as acc_t, with its index k) for every k in [0, V) owned by `lane` of a warp, with
// 16-byte loads when the row is aligned. The caller's visitor sees each element exactly once.
template <typename Visit>
__device__ __forceinline__ void warp_row_read(const elem_t* row, i64 vocab, int lane, Visit visit) {
    i64 head = 0;
    if (is_aligned16(row)) {
        const i64 vectors = vocab / RNNT_VEC;
        const uint4* v = (const uint4*)row;
        for (i64 i = lane; i < vectors; i += RNNT_WARP) {
            vec16 chunk;
            chunk.raw = v[i];
#pragma unroll
            for (int j = 0; j < RNNT_VEC; ++j) visit(i * RNNT_VEC + j, to_acc(chunk.e[j]));
        }
        head = vectors * RNNT_VEC;
    }
    for (i64 k = head + lane; k < vocab; k += RNNT_WARP) visit(k, to_acc(row[k]));
}

// Writes out[k] = value(k, x[k]) for every k in [0, V) owned by `lane`, with 16-byte loads and
// stores when both rows are aligned.
template <typename Value>
__device__ __forceinline__ void warp_row_map(const elem_t* row, elem_t* out, i64 vocab, int lane,
                                             Value value) {
    i64 head = 0;
    if (is_aligned16(row) && is_aligned16(out)) {
        const i64 vectors = vocab / RNNT_VEC;
        const uint4* v = (const uint4*)row;
        uint4* o = (uint4*)out;
        for (i64 i = lane; i < vectors; i += RNNT_WARP) {
            vec16 chunk;
            chunk.raw = v[i];
#pragma unroll
            for (int j = 0; j < RNNT_VEC; ++j)
                chunk.e[j] = from_acc(value(i * RNNT_VEC + j, to_acc(chunk.e[j])));
            o[i] = chunk.raw;
        }
        head = vectors * RNNT_VEC;
    }
    for (i64 k = head + lane; k < vocab; k += RNNT_WARP) out[k] = from_acc(value(k, to_acc(row[k])));
}

// Writes zeros over out[0, V) (the lanes of a warp share the row).
__device__ __forceinline__ void warp_row_zero(elem_t* out, i64 vocab, int lane) {
    for (i64 k = lane; k < vocab; k += RNNT_WARP) out[k] = from_acc((acc_t)0);
}

// The (b, t, u) coordinates of flat row `row` of a (B, T, U+1) grid.
struct node_coords {
    i64 b, t, u;
};

__device__ __forceinline__ node_coords row_coords(i64 row, i64 frames, i64 positions) {
    node_coords c;
    c.b = row / (frames * positions);
    const i64 rest = row - c.b * frames * positions;
    c.t = rest / positions;
    c.u = rest - c.t * positions;
    return c;
}

// Whether node (t, u) of item b lies within its lengths: t < T_b and u <= U_b.
__device__ __forceinline__ bool node_is_valid(node_coords c, const int* item_frames,
                                              const int* item_labels) {
    return c.t < item_frames[c.b] && c.u <= item_labels[c.b];
}
