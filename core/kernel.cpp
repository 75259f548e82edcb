// The forward and backward sweeps of one block of lanes (layout and numerics: softdtw.hpp).
//
// This file is compiled once per instruction set (CMakeLists.txt), each time into its own
// namespace SOFTDTW_ISA_NS; dispatch.cpp picks one at load. The kernels do not know which.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <cstdint>

#if (defined(__GNUC__) || defined(__clang__)) && !defined(SOFTDTW_SCALAR) && \
    (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define SOFTDTW_STREAM 1
#endif

#include "simd.hpp"
#include "softdtw.hpp"
#include "threads.hpp"

#ifndef SOFTDTW_ISA_NS
#define SOFTDTW_ISA_NS isa_default
#endif

namespace softdtw {
namespace SOFTDTW_ISA_NS {
namespace {

constexpr double kLn2 = 0.69314718055994530942;

// Base-2 softmin -log2(2^-a + 2^-b + 2^-c), the minimum factored out; +inf when all are.
template <class T> SOFTDTW_INLINE Lanes<T> softmin(Lanes<T> a, Lanes<T> b, Lanes<T> c) {
    using V = Lanes<T>;
    V lo_ab = vmin(a, b), hi_ab = vmax(a, b);
    V m = vmin(lo_ab, c);
    V mx = vmax(hi_ab, c);
    V md = vmax(lo_ab, vmin(hi_ab, c));
    const T cut = Exp2Consts<T>::flush;  // (m = inf: inf - inf is NaN, whose 2^ is 0)
    V s = T(1) + exp2_below<T>(m - md, cut) + exp2_below<T>(m - mx, cut);
    return m - log2_13(s);
}

// Normalised softmin weights of (a, b, c), all 0 when all are +inf; with `Ent`, also
// sum_k w_k log2 w_k (minus the local entropy in bits: d value / d gamma sums E times it).
// The minimum's term is 2^0 = 1: two exp2 per cell, not three.
template <class T, bool Ent>
SOFTDTW_INLINE void weights(Lanes<T> a, Lanes<T> b, Lanes<T> c, Lanes<T>& wa, Lanes<T>& wb, Lanes<T>& wc,
                            Lanes<T>& ent) {
    using V = Lanes<T>;
    const T inf = std::numeric_limits<T>::infinity();
    const T cut = Exp2Consts<T>::flush, lo = Exp2Consts<T>::lo;
    auto a_lt_b = a < b;
    V lo_ab = select(a_lt_b, a, b), hi_ab = select(a_lt_b, b, a);
    auto c_hi = lo_ab < c;  // the minimum is lo_ab (else c)
    V m = select(c_hi, lo_ab, c);
    V other = select(c_hi, c, lo_ab);  // the one of (lo_ab, c) that is not the minimum
    auto fin = m < inf;
    V zero = V{} + T(0), one = V{} + T(1);
    V mm = select(fin, m, zero);
    V t_hi = mm - hi_ab, t_other = mm - other;  // <= 0, -inf, or NaN (a NaN pair's value is NaN)
    V e_hi = exp2_below<T>(t_hi, cut), e_other = exp2_below<T>(t_other, cut);
    V e_min = select(fin, one, zero);
    V e_lo = select(c_hi, e_min, e_other);
    V ec = select(c_hi, e_other, e_min);
    V ea = select(a_lt_b, e_lo, e_hi);
    V eb = select(a_lt_b, e_hi, e_lo);
    V s = vmax(ea + eb + ec, one);  // s >= 1 whenever one input is finite
    V inv = T(1) / s;
    wa = ea * inv;
    wb = eb * inv;
    wc = ec * inv;
    if constexpr (Ent) {
        V l = V{} + lo;  // (a weight 0 times a clamped exponent: 0, not NaN)
        V w_hi = e_hi * inv, w_other = e_other * inv;
        ent = w_hi * vmax(t_hi, l) + w_other * vmax(t_other, l) - log2_13(s);
    }
}

// What each lane of a block holds.
template <class T> struct LaneMap {
    static constexpr int L = kLanes<T>;
    std::int64_t pair[L];    // -1: no pair
    std::int64_t strip[L];
    std::int64_t xlen[L];
    std::int64_t vstep[L];   // the step that computes the pair's value cell (-1: not this lane)
    std::int64_t vcol[L];
    std::int64_t steps = 0;  // steps the block needs (its longest pair's)
    bool full = true;        // every pair uses whole rows (no band): spans as vector operations
    using I = typename LaneInt<T>::type;
    I strip_i[L], xlen_i[L], width_i[L];  // (width: the strip's columns below the pair's length)
    std::int64_t slot[L];                 // slot[q], q < P: the pair in the block's q-th place, or -1

    // `order`: the pairs sorted by length, longest first (blocks of similar lengths skip steps)
    LaneMap(const Problem<T>& pb, const Plan& pl, std::int64_t blk, const std::int64_t* order) {
        for (std::int64_t q = 0; q < pl.P; ++q) slot[q] = blk * pl.P + q < pb.B ? order[blk * pl.P + q] : -1;
        for (int k = 0; k < L; ++k) {
            std::int64_t s = k / pl.P, p = slot[k % pl.P];
            bool live = s < pl.S && p >= 0;
            pair[k] = live ? p : -1;
            strip[k] = live ? s : 0;
            xlen[k] = live ? pb.xl[p] : 0;
            vstep[k] = -1;
            vcol[k] = 0;
            if (live && pb.xl[p] > 0 && pb.yl[p] > 0) {
                std::int64_t col = pb.yl[p] - 1;
                if (col / pl.W == s) {
                    vstep[k] = pb.xl[p] - 1 + s;
                    vcol[k] = col % pl.W;
                }
                steps = std::max(steps, pb.xl[p] + pl.S - 1);
            }
            strip_i[k] = I(strip[k]);
            xlen_i[k] = I(xlen[k]);
            width_i[k] = live ? I(std::clamp<std::int64_t>(pb.yl[p] - s * pl.W, 0, pl.W)) : I(0);
        }
        for (std::int64_t k = 0; k < pl.P && full; ++k) {
            std::int64_t p = slot[k];
            for (std::int64_t i = 0; p >= 0 && i < pb.xl[p] && full; ++i)
                full = pb.lo[p * pb.N + i] == 0 && pb.hi[p * pb.N + i] == pb.yl[p];
        }
    }
    // every lane's span at step t into a, b (per lane: columns [a, b) of its strip)
    void spans(const Problem<T>& pb, const Plan& pl, std::int64_t t, I* a, I* b) const {
        if (full) {
            using IV = ILanes<T>;
            IV i = (IV{} + I(t)) - load_int<T>(strip_i);
            auto row = (i >= I(0)) & (i < load_int<T>(xlen_i));
            IV zero = IV{} + I(0);
            std::memcpy(a, &zero, sizeof zero);
            IV w = select(row, load_int<T>(width_i), zero);
            std::memcpy(b, &w, sizeof w);
            return;
        }
        for (int k = 0; k < L; ++k) {
            std::int64_t lo_, hi_;
            span(pb, pl, t, k, lo_, hi_);
            a[k] = I(lo_);
            b[k] = I(hi_);
        }
    }
    // columns [a, b) of the strip that row t - s uses (empty outside the pair's rows)
    void span(const Problem<T>& pb, const Plan& pl, std::int64_t t, int k, std::int64_t& a, std::int64_t& b) const {
        std::int64_t i = t - strip[k];
        a = b = 0;
        if (pair[k] < 0 || i < 0 || i >= xlen[k]) return;
        std::int64_t off = strip[k] * pl.W, at = pair[k] * pb.N + i;
        a = std::clamp<std::int64_t>(pb.lo[at] - off, 0, pl.W);
        b = std::clamp<std::int64_t>(pb.hi[at] - off, 0, pl.W);
        if (b < a) b = a;
    }
};

template <class T> using Buf = std::vector<T>;

// A row of r, written once by the forward and read back only by the backward: streaming stores
// (x86, 16-byte pieces: r's base address is all the layout may not depend on) keep it out of the
// caches, where it would evict the block's working set (y in the lanes, the cost tile).
template <class T> SOFTDTW_INLINE void store_stream(T* p, const Lanes<T>& v, bool aligned16) {
#if defined(SOFTDTW_STREAM)
    if (aligned16) {
        const char* src = reinterpret_cast<const char*>(&v);
        for (std::size_t q = 0; q < sizeof(v); q += 16)
            _mm_stream_si128(reinterpret_cast<__m128i*>(reinterpret_cast<char*>(p) + q),
                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + q)));
        return;
    }
#endif
    (void)aligned16;
    store(p, v);
}
inline void stream_fence() {
#if defined(SOFTDTW_STREAM)
    _mm_sfence();
#endif
}

// The cost of one step's cells, lane by lane: gathered from the cost matrix into a tile, or formed
// from x (its rows gathered per step) and y (laid out in the lanes once per block). Cells outside
// a lane's span are +inf; nothing outside the spans is read.
template <class T> struct Source {
    using V = Lanes<T>;
    using IV = ILanes<T>;
    using I = typename LaneInt<T>::type;
    static constexpr int L = kLanes<T>;
    const Problem<T>& pb;
    const Plan& pl;
    const LaneMap<T>& map;
    const std::int64_t W, D;
    const T scale;
    Buf<T> tile, yt, xr, zeros;
    I ia[L], ib[L];
    bool bad[L] = {};  // (forward: a NaN or -inf cost, a non-finite entry of x or y)

    Source(const Problem<T>& pb_, const Plan& pl_, const LaneMap<T>& map_, bool check)
        : pb(pb_), pl(pl_), map(map_), W(pl_.W), D(pb_.D),
          // (no subnormal on the way under FTZ/DAZ: gamma ln 2 may be one, 1/gamma and 1/ln 2 are not)
          scale(T((1.0 / pb_.gamma) * (1.0 / kLn2))), tile(D ? 0 : pl_.row()), yt(D * pl_.row(), T(0)),
          xr(D * L, T(0)), zeros(D, T(0)) {
        if (!D) return;
        for (int k = 0; k < L; ++k) {
            std::int64_t p = map.pair[k];
            if (p < 0) continue;
            std::int64_t c0 = map.strip[k] * W, yl = pb.yl[p];
            for (std::int64_t j = 0; j < W && c0 + j < yl; ++j)
                for (std::int64_t d = 0; d < D; ++d) {
                    T v = pb.y[(p * pb.M + c0 + j) * D + d];
                    yt[(d * W + j) * L + k] = v;
                    bad[k] = bad[k] || (check && !std::isfinite(v));
                }
            if (check && map.strip[k] == 0)
                for (std::int64_t q = 0; q < map.xlen[k] * D; ++q)
                    bad[k] = bad[k] || !std::isfinite(pb.x[p * pb.N * D + q]);
        }
    }

    // step t's spans, x rows, and (cost) tile when `cost` is asked for
    void prepare(std::int64_t t, bool cost) {
        const T inf = std::numeric_limits<T>::infinity();
        map.spans(pb, pl, t, ia, ib);
        if (D) {
            for (int k = 0; k < L; ++k) {
                const T* src = ia[k] < ib[k] ? pb.x + (map.pair[k] * pb.N + t - map.strip[k]) * D : zeros.data();
                for (std::int64_t d = 0; d < D; ++d) xr[d * L + k] = src[d];
            }
        } else if (cost) {
            std::fill(tile.begin(), tile.end(), inf);
            for (int k = 0; k < L; ++k) {
                if (ia[k] >= ib[k]) continue;
                const T* src = pb.cost + (map.pair[k] * pb.N + (t - map.strip[k])) * pb.M + map.strip[k] * W;
                bool b_ = false;
                for (std::int64_t j = ia[k]; j < ib[k]; ++j) {
                    T v = src[j];
                    b_ = b_ || !(v > -inf);  // NaN or -inf
                    tile[j * L + k] = v * scale;
                }
                bad[k] = bad[k] || b_;
            }
        }
    }

    // one step's row: cr[j] = softmin(diag, up, left) + cost, from the previous row pr (both in
    // the lane's frame of this step after subtracting delta), the left boundary curB and the
    // previous row's boundary prevB
    void row(const T* pr, T* cr, V delta, V curB, V prevB) const {
        const T inf = std::numeric_limits<T>::infinity();
        V diag = prevB - delta, left = curB;
        if (D) {
            const IV va = load_int<T>(ia), vb = load_int<T>(ib);
            for (std::int64_t j = 0; j < W; ++j) {
                V up = load(pr + j * L) - delta;
                V c = V{} + T(0);
                for (std::int64_t d = 0; d < D; ++d) {
                    V df = load(xr.data() + d * L) - load(yt.data() + (d * W + j) * L);
                    c += df * df;
                }
                IV jv = IV{} + I(j);
                c = select((jv >= va) & (jv < vb), c * scale, V{} + inf);
                V v = softmin<T>(diag, up, left) + c;
                store(cr + j * L, v);
                diag = up;
                left = v;
            }
        } else {
            for (std::int64_t j = 0; j < W; ++j) {
                V up = load(pr + j * L) - delta;
                V v = softmin<T>(diag, up, left) + load(tile.data() + j * L);
                store(cr + j * L, v);
                diag = up;
                left = v;
            }
        }
    }
};

// The left boundary of strip 0 before the first row: R[0, 0] = 0; +inf for the other strips.
template <class T> Lanes<T> first_boundary(const LaneMap<T>& map) {
    constexpr int L = kLanes<T>;
    T tmp[L];
    for (int k = 0; k < L; ++k) tmp[k] = (map.strip[k] == 0) ? T(0) : std::numeric_limits<T>::infinity();
    return load(tmp);
}

// aux, per step: the lanes' re-basing offsets (delta) and left boundaries (curB)
enum { kDelta = 0, kCurB = 1, kAuxPerStep = 2 };

template <class T>
void forward_block(const Problem<T>& pb, const Plan& pl, std::int64_t blk, const std::int64_t* order, T* value, T* r,
                   T* aux, std::int64_t seg) {
    using V = Lanes<T>;
    constexpr int L = kLanes<T>;
    const T inf = std::numeric_limits<T>::infinity();
    const std::int64_t P = pl.P, W = pl.W, RW = pl.row();
    const LaneMap<T> map(pb, pl, blk, order);
    const bool keep = aux != nullptr;  // (r may hold no row: checkpoints with one short segment)
    const bool stream = (reinterpret_cast<std::uintptr_t>(r) & 15) == 0;
    if (keep) {
        if (r) r += blk * (seg ? pl.ckpt_rows(seg) * RW : pl.r_block());
        aux += blk * pl.aux_block();
    }
    Source<T> src(pb, pl, map, true);
    Buf<T> ring(2 * RW), infrow(RW, inf), lc(P + L, inf);
    double off[L] = {}, off_new[L];
    double val[L];
    T tmp[L];
    for (int k = 0; k < L; ++k) val[k] = std::numeric_limits<double>::quiet_NaN();

    V prevB = first_boundary(map);
    const T* pr = infrow.data();
    for (std::int64_t t = 0; t < map.steps; ++t) {
        T* cr = ring.data() + (t & 1) * RW;  // (computed in two cached rows, streamed to r below)
        src.prepare(t, true);
        // re-base: the minimum of the lane's previous row becomes its new zero
        V mn = load(pr);
        for (std::int64_t j = 1; j < W; ++j) mn = vmin(mn, load(pr + j * L));
        V delta = select(mn < inf, mn, V{} + T(0));
        store(tmp, delta);
        for (int k = 0; k < L; ++k) off_new[k] = off[k] + double(tmp[k]);
        for (int k = 0; k < L; ++k) tmp[k] = (k >= P) ? T(off[k - P] - off_new[k]) : T(0);
        V shift = load(tmp);
        V curB = load(lc.data()) + shift;
        src.row(pr, cr, delta, curB, prevB);
        if (keep) {
            store(aux + (t * kAuxPerStep + kDelta) * L, delta);
            store(aux + (t * kAuxPerStep + kCurB) * L, curB);
            // every row, or (checkpoints) the last row of each whole segment
            T* dst = !seg ? r + t * RW : ((t + 1) % seg == 0 ? r + ((t + 1) / seg - 1) * RW : nullptr);
            if (dst)
                for (std::int64_t j = 0; j < W; ++j) store_stream(dst + j * L, load(cr + j * L), stream);
        }
        prevB = curB;
        std::copy(cr + (W - 1) * L, cr + W * L, lc.begin() + P);
        for (int k = 0; k < L; ++k) {
            off[k] = off_new[k];
            if (map.vstep[k] == t) val[k] = double(cr[map.vcol[k] * L + k]) + off[k];
        }
        pr = cr;
    }
    stream_fence();
    if (keep) {  // what this block did not fill (the steps its pairs skip) holds zeros, not old memory
        const std::int64_t written = seg ? map.steps / seg : map.steps, total = seg ? pl.ckpt_rows(seg) : pl.steps;
        if (r) std::fill(r + std::min(written, total) * RW, r + total * RW, T(0));
        std::fill(aux + map.steps * kAuxPerStep * L, aux + pl.aux_block(), T(0));
    }
    // bad flags of a pair's strips, then the values
    bool bad[L] = {};
    for (int k = 0; k < L; ++k)
        if (map.pair[k] >= 0 && src.bad[k]) bad[k % P] = true;
    const double gamma = pb.gamma;
    for (int k = 0; k < L; ++k) {
        if (map.vstep[k] < 0) continue;
        std::int64_t p = map.pair[k];
        value[p] = bad[k % P] ? std::numeric_limits<T>::quiet_NaN() : T((val[k] * kLn2) * gamma);
    }
    for (int k = 0; k < P; ++k) {  // pairs without a value cell (a zero length): +inf, as no path
        std::int64_t p = map.slot[k];
        if (p >= 0 && (pb.xl[p] <= 0 || pb.yl[p] <= 0)) value[p] = std::numeric_limits<T>::infinity();
    }
}

template <class T, bool Ent>
void backward_block(const Problem<T>& pb, const Plan& pl, std::int64_t blk, const std::int64_t* order, const T* r,
                    const T* aux, std::int64_t seg, const T* gv, const Grads<T>& out) {
    using V = Lanes<T>;
    constexpr int L = kLanes<T>;
    const T inf = std::numeric_limits<T>::infinity();
    const std::int64_t P = pl.P, W = pl.W, RW = pl.row(), D = pb.D;
    const LaneMap<T> map(pb, pl, blk, order);
    if (r) r += blk * (seg ? pl.ckpt_rows(seg) * RW : pl.r_block());
    aux += blk * pl.aux_block();
    auto aux_at = [&](std::int64_t t, int what) { return load(aux + (t * kAuxPerStep + what) * L); };

    Source<T> src(pb, pl, map, false);
    Buf<T> infrow(RW, inf), accN(RW, T(0)), accP(RW, T(0)), etile(RW), gyt(D * RW, T(0)), gxs(D * L);
    // checkpoints: the rows of the current segment, recomputed from the row before it
    Buf<T> segrows(seg ? (seg + 1) * RW : 0);
    std::int64_t seg0 = 0;  // the segment's first step
    T H1[L] = {}, D1[L] = {}, D2[L] = {}, tmp[L], g[L];
    double gg[L] = {};
    for (int k = 0; k < L; ++k) g[k] = map.pair[k] >= 0 ? gv[map.pair[k]] : T(0);
    const V first = first_boundary(map);
    const bool need_y = out.y != nullptr;
    for (std::int64_t t = map.steps - 1; t >= 0; --t) {
        const T *cr, *pr;
        if (!seg) {
            cr = r + t * RW;
            pr = t > 0 ? cr - RW : infrow.data();
        } else {
            if (t == map.steps - 1 || (t + 1) % seg == 0) {  // the last step of a segment: recompute it
                seg0 = (t / seg) * seg;
                const T* start = seg0 > 0 ? r + (seg0 / seg - 1) * RW : infrow.data();
                std::copy(start, start + RW, segrows.begin());
                for (std::int64_t u = seg0; u <= t; ++u) {
                    src.prepare(u, true);
                    src.row(segrows.data() + (u - seg0) * RW, segrows.data() + (u - seg0 + 1) * RW,
                            aux_at(u, kDelta), aux_at(u, kCurB), u > 0 ? aux_at(u - 1, kCurB) : first);
                }
            }
            cr = segrows.data() + (t - seg0 + 1) * RW;
            pr = cr - RW;
        }
        const V delta = aux_at(t, kDelta);
        const V curB = aux_at(t, kCurB);
        const V diagB = (t > 0 ? aux_at(t - 1, kCurB) : first) - delta;
        for (int k = 0; k < L; ++k)  // E = 1 at the value's cell (a pair with no path, value +inf: E = 0)
            if (map.vstep[k] == t && cr[map.vcol[k] * L + k] < inf) accN[map.vcol[k] * L + k] += T(1);
        for (int k = 0; k < L; ++k) tmp[k] = k + P < L ? H1[k + P] + D2[k + P] : T(0);
        V carry = load(tmp);
        V ent = V{} + T(0), ggv = V{} + T(0);
        src.prepare(t, false);
        // accP[j] (the pushes into row i - 1) is e_j wb_j + e_(j+1) wa_(j+1): the second term
        // waits in `pend` one iteration, so each entry is stored once, never loaded
        V pend = V{} + T(0);
        V b = load(pr + (W - 1) * L) - delta;
        for (std::int64_t j = W - 1; j >= 0; --j) {
            V c = j > 0 ? load(cr + (j - 1) * L) : curB;
            V a = j > 0 ? load(pr + (j - 1) * L) - delta : diagB;
            V e = load(accN.data() + j * L) + carry;
            V wa, wb, wc;
            weights<T, Ent>(a, b, c, wa, wb, wc, ent);
            store(accP.data() + j * L, e * wb + pend);
            pend = e * wa;
            carry = e * wc;
            if constexpr (Ent) ggv += e * ent;
            store(etile.data() + j * L, e);
            b = a;  // (row i - 1, column j - 1 is the next cell's up)
            if (!seg && t >= 2)  // the row the step after next reads from memory (r is read once, in reverse)
                for (int q = 0; q < int(L * sizeof(T)); q += 64)
                    SOFTDTW_PREFETCH(reinterpret_cast<const char*>(pr - RW + j * L) + q);
        }
        if (D) {  // this row's gradients of x and y: a pass over E per feature (throughput, not latency)
            for (std::int64_t d = 0; d < D; ++d) {
                const V xd = load(src.xr.data() + d * L);
                const T* yd = src.yt.data() + d * W * L;
                T* gyd = gyt.data() + d * W * L;
                V acc = V{} + T(0);
                for (std::int64_t j = 0; j < W; ++j) {
                    V ed = load(etile.data() + j * L) * (xd - load(yd + j * L));
                    acc += ed;
                    if (need_y) store(gyd + j * L, load(gyd + j * L) - ed);
                }
                store(gxs.data() + d * L, acc);
            }
        }
        std::copy(D1, D1 + L, D2);
        store(D1, pend);  // (column 0's diagonal push, into the left strip's last column)
        store(H1, carry);
        accN.swap(accP);
        // this step's gradients
        for (int k = 0; k < L; ++k) {
            const std::int64_t a = src.ia[k], b = src.ib[k];
            if (a >= b) continue;
            std::int64_t p = map.pair[k], i = t - map.strip[k];
            if (D) {
                if (out.x)
                    for (std::int64_t d = 0; d < D; ++d) out.x[(p * pb.N + i) * D + d] += T(2) * g[k] * gxs[d * L + k];
            } else if (out.cost) {
                T* dst = out.cost + (p * pb.N + i) * pb.M + map.strip[k] * W;
                for (std::int64_t j = a; j < b; ++j) dst[j] = g[k] * etile[j * L + k];
            }
        }
        if constexpr (Ent) {
            store(tmp, ggv);
            for (int k = 0; k < L; ++k) gg[k] += double(tmp[k]);
        }
    }
    if (D && out.y) {
        for (int k = 0; k < L; ++k) {
            std::int64_t p = map.pair[k];
            if (p < 0) continue;
            std::int64_t c0 = map.strip[k] * W, yl = pb.yl[p];
            for (std::int64_t j = 0; j < W && c0 + j < yl; ++j)
                for (std::int64_t d = 0; d < D; ++d)
                    out.y[(p * pb.M + c0 + j) * D + d] += T(2) * g[k] * gyt[(d * W + j) * L + k];
        }
    }
    if (Ent && out.gamma) {
        double sum[L] = {};
        for (int k = 0; k < L; ++k)
            if (map.pair[k] >= 0) sum[k % P] += gg[k];
        for (int k = 0; k < P; ++k) {
            std::int64_t p = map.slot[k];
            if (p >= 0) out.gamma[p] = T(double(gv[p]) * kLn2 * sum[k]);
        }
    }
}

// The pairs in block order: by length, longest first (stable), so that a padded batch's blocks
// hold pairs of similar lengths and each runs only its longest pair's steps. The same order in
// the forward and the backward (a function of the lengths); each pair's numbers do not depend on
// its place.
std::vector<std::int64_t> block_order(std::int64_t B, const std::int32_t* xl) {
    std::vector<std::int64_t> order(B);
    for (std::int64_t b = 0; b < B; ++b) order[b] = b;
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return xl[a] > xl[b]; });
    return order;
}

}  // namespace

template <class T> void forward(const Problem<T>& pb, T* value, T* r, T* aux, std::int64_t seg, int threads) {
    const Plan pl = make_plan(pb.B, pb.N, pb.M, kLanes<T>);
    const std::vector<std::int64_t> order = block_order(pb.B, pb.xl);
    parallel_for(threads, pl.blocks,
                 [&](std::int64_t blk) { forward_block<T>(pb, pl, blk, order.data(), value, r, aux, seg); });
}

template <class T>
void backward(const Problem<T>& pb, const T* r, const T* aux, std::int64_t seg, const T* gv, const Grads<T>& out,
              int threads) {
    const Plan pl = make_plan(pb.B, pb.N, pb.M, kLanes<T>);
    const std::vector<std::int64_t> order = block_order(pb.B, pb.xl);
    parallel_for(threads, pl.blocks, [&](std::int64_t blk) {
        if (out.gamma)
            backward_block<T, true>(pb, pl, blk, order.data(), r, aux, seg, gv, out);
        else
            backward_block<T, false>(pb, pl, blk, order.data(), r, aux, seg, gv, out);
    });
}

SOFTDTW_INSTANTIATE

}  // namespace SOFTDTW_ISA_NS
}  // namespace softdtw
