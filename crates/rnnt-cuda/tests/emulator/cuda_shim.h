// A CPU stand-in for the few CUDA built-ins the rnnt kernels use, so that the kernel source can
// be compiled by a host C++20 compiler and run, slowly, without a GPU: each CUDA thread is an OS
// thread, a block's threads meet at a std::barrier for __syncthreads, and the 32 threads of a warp
// exchange values through shared slots for __shfl_xor_sync / __any_sync. Test use only.

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

using std::exp;
using std::log;
using std::log1p;

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict

struct alignas(16) uint4 {
    unsigned x, y, z, w;
};

struct emu_dim3 {
    unsigned x, y, z;
};

static thread_local emu_dim3 gridDim, blockDim, blockIdx, threadIdx;

struct emu_warp {
    std::barrier<> meet{32};
    double slots[32];
    bool flags[32];
};

struct emu_block {
    explicit emu_block(unsigned threads) : meet(threads), warps(threads / 32) {
        for (auto& w : warps) w = std::make_unique<emu_warp>();
    }
    std::barrier<> meet;
    std::vector<std::unique_ptr<emu_warp>> warps;
};

static thread_local emu_block* emu_this_block;

inline void __syncthreads() { emu_this_block->meet.arrive_and_wait(); }

inline emu_warp& emu_this_warp() { return *emu_this_block->warps[threadIdx.x / 32]; }

template <typename T>
T __shfl_xor_sync(unsigned, T value, int offset) {
    emu_warp& w = emu_this_warp();
    const unsigned lane = threadIdx.x % 32;
    w.slots[lane] = (double)value;
    w.meet.arrive_and_wait();
    const T other = (T)w.slots[lane ^ (unsigned)offset];
    w.meet.arrive_and_wait();
    return other;
}

inline bool __any_sync(unsigned, bool predicate) {
    emu_warp& w = emu_this_warp();
    w.flags[threadIdx.x % 32] = predicate;
    w.meet.arrive_and_wait();
    bool any = false;
    for (bool f : w.flags) any = any || f;
    w.meet.arrive_and_wait();
    return any;
}

inline unsigned long long atomicMin(unsigned long long* address, unsigned long long value) {
    std::atomic_ref<unsigned long long> cell(*address);
    unsigned long long old = cell.load();
    while (value < old && !cell.compare_exchange_weak(old, value)) {
    }
    return old;
}

inline double __longlong_as_double(long long bits) {
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
}

inline float __uint_as_float(unsigned bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

inline unsigned __float_as_uint(float f) {
    unsigned bits;
    std::memcpy(&bits, &f, sizeof bits);
    return bits;
}

// Runs `body` as a grid of `grid` blocks of `block` threads (blocks one after another).
template <typename Body>
void emu_launch(unsigned grid, unsigned block, Body body) {
    for (unsigned b = 0; b < grid; ++b) {
        emu_block state(block);
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < block; ++t) {
            threads.emplace_back([&, b, t] {
                gridDim = {grid, 1, 1};
                blockDim = {block, 1, 1};
                blockIdx = {b, 0, 0};
                threadIdx = {t, 0, 0};
                emu_this_block = &state;
                body();
            });
        }
        for (auto& thread : threads) thread.join();
    }
}
