// The compiled core of softdtw: soft-DTW's forward and backward on raw buffers and shapes.
//
// The recursion is the one of softdtw/spec.py (docs/algorithm.md); this header is the whole
// interface the bindings use (nanobind for NumPy and torch today, XLA FFI next).
//
// Layout ("lanes"): a block of kLanes<T> lanes (64 float32 or 32 float64) holds P pairs, each cut
// into S column strips of width W (P S <= lanes). Lane k = s P + p holds strip s of pair p and
// runs one DP row behind lane k - P: at step t it computes row i = t - s of its strip, taking the
// strip's left boundary from lane k - P's previous step. All lanes of a step are independent, so
// every operation of the recursion is one vector operation over the block. A pair takes N + S - 1
// steps. `r` keeps, per block, per step, per column of the strip, the lanes (W x lanes values per
// step); `aux` keeps per block, per step, two values per lane (the re-basing offset and the
// left boundary below).
//
// Numerics: values in base-2 units R / (gamma ln 2), softmin = m - log2(1 + 2^(m - mid) +
// 2^(m - max)), vectorised polynomial exp2/log2 (simd.hpp). Each lane stores its row relative to
// an offset re-based at every step by the minimum of its previous row (so float32 R stays small
// and differences of neighbours accurate at any size); a strip's left boundary moves from its
// neighbour's offset to its own (kept in `aux`, in the lane's frame). The backward recomputes every cell's
// normalised softmin weights from its stored predecessors and pushes E[cell] * w back to them
// (mass is conserved, nothing overflows, no cost is needed).
#pragma once

#include <cstdint>

namespace softdtw {

struct Plan {
    std::int64_t lanes = 0, P = 0, S = 0, W = 0, blocks = 0, steps = 0;
    std::int64_t row() const { return W * lanes; }                 // values per step of a block
    std::int64_t r_block() const { return steps * row(); }         // r per block
    std::int64_t aux_block() const { return steps * 2 * lanes; }   // aux per block
    // checkpoints (memory O(B sqrt(N) M)): r holds the last row of each whole segment of `seg` steps
    std::int64_t ckpt_rows(std::int64_t seg) const { return steps / seg; }
    std::int64_t r_size() const { return blocks * r_block(); }
    std::int64_t ckpt_size(std::int64_t seg) const { return blocks * ckpt_rows(seg) * row(); }
    std::int64_t aux_size() const { return blocks * aux_block(); }
};

// The layout of (B, N, M) pairs for `lanes` lanes: a function of the shapes and of the CPUs the
// process may use (read once), not of a call's thread count, so that the state's size is known
// before the call and the forward and backward agree.
Plan make_plan(std::int64_t B, std::int64_t N, std::int64_t M, std::int64_t lanes);

// One call's inputs. D == 0: the cost source `cost` (B, N, M); D >= 1: the squared Euclidean
// cost of `x` (B, N, D) and `y` (B, M, D), formed cell by cell. Pair b uses rows < xl[b] and,
// in row i, the columns lo[b, i] <= j < hi[b, i] (softdtw.spec.band_bounds: lengths and band);
// nothing else of `cost`, `x` or `y` is read.
template <class T> struct Problem {
    std::int64_t B = 0, N = 0, M = 0, D = 0;
    const T* cost = nullptr;
    const T* x = nullptr;
    const T* y = nullptr;
    const std::int32_t* xl = nullptr;
    const std::int32_t* yl = nullptr;
    const std::int32_t* lo = nullptr;
    const std::int32_t* hi = nullptr;
    double gamma = 1.0;
};

// value (B): soft-DTW of each pair; NaN where the pair's used cost holds a NaN or -inf, or its
// used series a non-finite entry. r, aux: the backward's state, or null (values only: two rows
// per block are kept). seg == 0: r keeps every row (plan.r_size()); seg > 0: every seg-th row
// (plan.ckpt_size(seg), O(B sqrt(N) M) for seg ~ sqrt(N)), the backward recomputes the others
// to the last bit.
template <class T> void forward(const Problem<T>& pb, T* value, T* r, T* aux, std::int64_t seg, int threads);

// From forward's state: gv (B) the upstream gradient; outputs (each may be null, all zeroed by
// the caller): grad_cost (B, N, M) = gv E, grad_x (B, N, D), grad_y (B, M, D) (D >= 1),
// grad_gamma (B) = gv d value / d gamma.
template <class T> struct Grads {
    T* cost = nullptr;
    T* x = nullptr;
    T* y = nullptr;
    T* gamma = nullptr;
};
template <class T>
void backward(const Problem<T>& pb, const T* r, const T* aux, std::int64_t seg, const T* gv, const Grads<T>& out,
              int threads);

// Explicit instantiations of forward and backward for float32 and float64 (in the dispatcher
// and in each instruction set's namespace).
#define SOFTDTW_INSTANTIATE                                                                             \
    template void forward<float>(const Problem<float>&, float*, float*, float*, std::int64_t, int);       \
    template void forward<double>(const Problem<double>&, double*, double*, double*, std::int64_t, int);  \
    template void backward<float>(const Problem<float>&, const float*, const float*, std::int64_t,        \
                                  const float*, const Grads<float>&, int);                                \
    template void backward<double>(const Problem<double>&, const double*, const double*, std::int64_t,    \
                                   const double*, const Grads<double>&, int);

// The instruction set the kernels run on ("avx512", "avx2", "sse2", "neon", "scalar").
const char* isa();

}  // namespace softdtw
