// The forward and backward sweeps of one block of lanes (layout and numerics: softdtw.hpp).
//
// This file is compiled once per instruction set (CMakeLists.txt), each time into its own
// namespace SOFTDTW_ISA_NS; dispatch.cpp picks one at load. The kernels do not know which.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

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

    LaneMap(const Problem<T>& pb, const Plan& pl, std::int64_t blk) {
        for (int k = 0; k < L; ++k) {
            std::int64_t s = k / pl.P, p = blk * pl.P + k % pl.P;
            bool live = s < pl.S && p < pb.B;
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

template <class T> void forward_block(const Problem<T>& pb, const Plan& pl, std::int64_t blk, T* value, T* r, T* aux) {
    using V = Lanes<T>;
    using IV = ILanes<T>;
    using I = typename LaneInt<T>::type;
    constexpr int L = kLanes<T>;
    const T inf = std::numeric_limits<T>::infinity();
    const std::int64_t P = pl.P, W = pl.W, RW = pl.row(), D = pb.D;
    const T scale = T(1.0 / (pb.gamma * kLn2));
    const LaneMap<T> map(pb, pl, blk);
    const bool keep = r != nullptr;
    if (keep) {
        r += blk * pl.r_block();
        aux += blk * pl.aux_block();
    }

    Buf<T> ring(keep ? 0 : 2 * RW), infrow(RW, inf), tile(D ? 0 : RW), lc(P + L, inf), yt(D * RW, T(0)),
        xr(D * L, T(0));
    double off[L] = {}, off_new[L];
    double val[L];
    bool bad[L] = {};
    T tmp[L];
    I ia[L], ib[L];
    for (int k = 0; k < L; ++k) val[k] = std::numeric_limits<double>::quiet_NaN();

    if (D) {  // y in the lanes, once per block; x's rows gathered per step; non-finite entries flagged
        for (int k = 0; k < L; ++k) {
            std::int64_t p = map.pair[k];
            if (p < 0) continue;
            std::int64_t c0 = map.strip[k] * W, yl = pb.yl[p];
            for (std::int64_t j = 0; j < W && c0 + j < yl; ++j)
                for (std::int64_t d = 0; d < D; ++d) {
                    T v = pb.y[(p * pb.M + c0 + j) * D + d];
                    yt[(d * W + j) * L + k] = v;
                    bad[k] = bad[k] || !std::isfinite(v);
                }
            if (map.strip[k] == 0)
                for (std::int64_t q = 0; q < map.xlen[k] * D; ++q) bad[k] = bad[k] || !std::isfinite(pb.x[p * pb.N * D + q]);
        }
    }

    V prevB;
    for (int k = 0; k < L; ++k) tmp[k] = (map.strip[k] == 0) ? T(0) : inf;  // R[0, 0] = 0 left of strip 0
    prevB = load(tmp);
    const T* pr = infrow.data();
    for (std::int64_t t = 0; t < map.steps; ++t) {
        T* cr = keep ? r + t * RW : ring.data() + (t & 1) * RW;
        // the columns each lane uses this step, and its source
        for (int k = 0; k < L; ++k) {
            std::int64_t a, b;
            map.span(pb, pl, t, k, a, b);
            ia[k] = I(a);
            ib[k] = I(b);
        }
        if (D) {
            for (int k = 0; k < L; ++k) {
                std::int64_t i = t - map.strip[k];
                bool row = ia[k] < ib[k];
                for (std::int64_t d = 0; d < D; ++d)
                    xr[d * L + k] = row ? pb.x[(map.pair[k] * pb.N + i) * D + d] : T(0);
            }
        } else {
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
        // re-base: the minimum of the lane's previous row becomes its new zero
        V mn = load(pr);
        for (std::int64_t j = 1; j < W; ++j) mn = vmin(mn, load(pr + j * L));
        V delta = select(mn < inf, mn, V{} + T(0));
        store(tmp, delta);
        for (int k = 0; k < L; ++k) off_new[k] = off[k] + double(tmp[k]);
        for (int k = 0; k < L; ++k) tmp[k] = (k >= P) ? T(off[k - P] - off_new[k]) : T(0);
        V shift = load(tmp);
        if (keep) {
            store(aux + t * 2 * L, delta);
            store(aux + t * 2 * L + L, shift);
        }
        V curB = load(lc.data()) + shift;
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
        prevB = curB;
        std::copy(cr + (W - 1) * L, cr + W * L, lc.begin() + P);
        for (int k = 0; k < L; ++k) {
            off[k] = off_new[k];
            if (map.vstep[k] == t) val[k] = double(cr[map.vcol[k] * L + k]) + off[k];
        }
        pr = cr;
    }
    // bad flags of a pair's strips, then the values
    for (int k = 0; k < L; ++k)
        if (map.pair[k] >= 0 && bad[k]) bad[k % P] = true;
    const double out_scale = pb.gamma * kLn2;
    for (int k = 0; k < L; ++k) {
        if (map.vstep[k] < 0) continue;
        std::int64_t p = map.pair[k];
        value[p] = bad[k % P] ? std::numeric_limits<T>::quiet_NaN() : T(val[k] * out_scale);
    }
    for (int k = 0; k < P; ++k) {  // pairs without a value cell (a zero length): +inf, as no path
        std::int64_t p = blk * P + k;
        if (p < pb.B && (pb.xl[p] <= 0 || pb.yl[p] <= 0)) value[p] = std::numeric_limits<T>::infinity();
    }
}

template <class T, bool Ent>
void backward_block(const Problem<T>& pb, const Plan& pl, std::int64_t blk, const T* r, const T* aux, const T* gv,
                    const Grads<T>& out) {
    using V = Lanes<T>;
    constexpr int L = kLanes<T>;
    const T inf = std::numeric_limits<T>::infinity();
    const std::int64_t P = pl.P, W = pl.W, RW = pl.row(), D = pb.D;
    const LaneMap<T> map(pb, pl, blk);
    r += blk * pl.r_block();
    aux += blk * pl.aux_block();

    Buf<T> infrow(RW, inf), accN(RW, T(0)), accP(RW, T(0)), etile(RW), yt(D * RW, T(0)), gyt(D * RW, T(0)),
        xr(D * L, T(0)), lcb(P + L, inf), lcb2(P + L, inf);
    T H1[L] = {}, D1[L] = {}, D2[L] = {}, tmp[L], g[L];
    double gg[L] = {};
    for (int k = 0; k < L; ++k) g[k] = map.pair[k] >= 0 ? gv[map.pair[k]] : T(0);
    if (D) {
        for (int k = 0; k < L; ++k) {
            std::int64_t p = map.pair[k];
            if (p < 0) continue;
            std::int64_t c0 = map.strip[k] * W, yl = pb.yl[p];
            for (std::int64_t j = 0; j < W && c0 + j < yl; ++j)
                for (std::int64_t d = 0; d < D; ++d) yt[(d * W + j) * L + k] = pb.y[(p * pb.M + c0 + j) * D + d];
        }
    }
    Buf<T> gxs(D * L);
    const bool need_y = out.y != nullptr;
    for (std::int64_t t = map.steps - 1; t >= 0; --t) {
        const T* cr = r + t * RW;
        const T* pr = t > 0 ? cr - RW : infrow.data();
        const V delta = load(aux + t * 2 * L), shift = load(aux + t * 2 * L + L);
        // the left boundary of this row and of the previous one, as the forward formed them
        std::copy(pr + (W - 1) * L, pr + W * L, lcb.begin() + P);
        V curB = load(lcb.data()) + shift;
        V prevB;
        if (t >= 1) {
            const T* ppr = t >= 2 ? cr - 2 * RW : infrow.data();
            std::copy(ppr + (W - 1) * L, ppr + W * L, lcb2.begin() + P);
            prevB = load(lcb2.data()) + load(aux + (t - 1) * 2 * L + L);
        } else {
            for (int k = 0; k < L; ++k) tmp[k] = (map.strip[k] == 0) ? T(0) : inf;
            prevB = load(tmp);
        }
        V diagB = prevB - delta;
        for (int k = 0; k < L; ++k)
            if (map.vstep[k] == t) accN[map.vcol[k] * L + k] += T(1);
        for (int k = 0; k < L; ++k) tmp[k] = k + P < L ? H1[k + P] + D2[k + P] : T(0);
        V carry = load(tmp);
        std::fill(accP.begin(), accP.end(), T(0));
        V newD = V{} + T(0), ent = V{} + T(0), ggv = V{} + T(0);
        if (D) {
            for (int k = 0; k < L; ++k) {
                std::int64_t i = t - map.strip[k];
                bool row = map.pair[k] >= 0 && i >= 0 && i < map.xlen[k];
                for (std::int64_t d = 0; d < D; ++d) xr[d * L + k] = row ? pb.x[(map.pair[k] * pb.N + i) * D + d] : T(0);
            }
        }
        for (std::int64_t j = W - 1; j >= 0; --j) {
            V c = j > 0 ? load(cr + (j - 1) * L) : curB;
            V b = load(pr + j * L) - delta;
            V a = j > 0 ? load(pr + (j - 1) * L) - delta : diagB;
            V e = load(accN.data() + j * L) + carry;
            V wa, wb, wc;
            weights<T, Ent>(a, b, c, wa, wb, wc, ent);
            store(accP.data() + j * L, load(accP.data() + j * L) + e * wb);
            if (j > 0)
                store(accP.data() + (j - 1) * L, load(accP.data() + (j - 1) * L) + e * wa);
            else
                newD = e * wa;
            carry = e * wc;
            if constexpr (Ent) ggv += e * ent;
            store(etile.data() + j * L, e);
        }
        if (D) {  // this row's gradients of x and y: a pass over E per feature (throughput, not latency)
            for (std::int64_t d = 0; d < D; ++d) {
                const V xd = load(xr.data() + d * L);
                const T* yd = yt.data() + d * W * L;
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
        store(D1, newD);
        store(H1, carry);
        accN.swap(accP);
        // this step's gradients
        for (int k = 0; k < L; ++k) {
            std::int64_t a, b;
            map.span(pb, pl, t, k, a, b);
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
            std::int64_t p = blk * P + k;
            if (p < pb.B) out.gamma[p] = T(double(gv[p]) * kLn2 * sum[k]);
        }
    }
}

}  // namespace

template <class T> void forward(const Problem<T>& pb, T* value, T* r, T* aux, int threads) {
    const Plan pl = make_plan(pb.B, pb.N, pb.M, kLanes<T>);
    parallel_for(threads, pl.blocks, [&](std::int64_t blk) { forward_block<T>(pb, pl, blk, value, r, aux); });
}

template <class T>
void backward(const Problem<T>& pb, const T* r, const T* aux, const T* gv, const Grads<T>& out, int threads) {
    const Plan pl = make_plan(pb.B, pb.N, pb.M, kLanes<T>);
    parallel_for(threads, pl.blocks, [&](std::int64_t blk) {
        if (out.gamma)
            backward_block<T, true>(pb, pl, blk, r, aux, gv, out);
        else
            backward_block<T, false>(pb, pl, blk, r, aux, gv, out);
    });
}

SOFTDTW_INSTANTIATE

}  // namespace SOFTDTW_ISA_NS
}  // namespace softdtw
