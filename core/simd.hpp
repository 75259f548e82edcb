// Lanes: the one vector type of the kernels, and the few functions on it they use.
//
// A `Lanes<T>` holds one value per lane of a block (64 float32 or 32 float64 lanes, 256
// bytes). With GCC or Clang it is a compiler vector of that size: the compiler splits it into
// the target's registers (four AVX-512, eight AVX2 or sixteen SSE vectors), so one source serves
// every ISA and each translation unit picks its ISA by its flags (dispatch.cpp). Other compilers
// get a plain array with the same operations (slow, but correct).
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

namespace softdtw {

inline constexpr int kBlockBytes = 256;

#if defined(__GNUC__) || defined(__clang__)
#define SOFTDTW_INLINE inline __attribute__((always_inline))
#define SOFTDTW_PREFETCH(p) __builtin_prefetch((p), 0, 0)
#else
#define SOFTDTW_INLINE inline
#define SOFTDTW_PREFETCH(p) ((void)(p))
#endif

template <class T> struct LaneInt;  // the integer of T's width (masks, exponent bits)
template <> struct LaneInt<float> { using type = std::int32_t; };
template <> struct LaneInt<double> { using type = std::int64_t; };
template <> struct LaneInt<std::int32_t> { using type = std::int32_t; };
template <> struct LaneInt<std::int64_t> { using type = std::int64_t; };

template <class T> inline constexpr int kLanes = kBlockBytes / int(sizeof(T));

#if (defined(__GNUC__) || defined(__clang__)) && !defined(SOFTDTW_SCALAR)
// The target's widest vector (the translation unit's flags decide), and the block as an array of
// such vectors: GCC scalarises comparisons and selects of vectors wider than the target's
// registers (one vcomiss per lane), so the block is K registers' worth of native vectors, every
// operation a loop over K that the compiler unrolls.
#if defined(__AVX512F__)
inline constexpr int kNativeBytes = 64;
#elif defined(__AVX__)
inline constexpr int kNativeBytes = 32;
#else
inline constexpr int kNativeBytes = 16;  // SSE2, NEON
#endif

template <class E, int L> struct Pack {
    typedef E N __attribute__((vector_size(kNativeBytes)));
    static constexpr int K = L * int(sizeof(E)) / kNativeBytes;
    using Mask = Pack<typename LaneInt<E>::type, L>;
    N v[K];

#define SOFTDTW_OP(op)                                                     \
    SOFTDTW_INLINE friend Pack operator op(Pack a, const Pack& b) {        \
        for (int k = 0; k < K; ++k) a.v[k] = a.v[k] op b.v[k];             \
        return a;                                                          \
    }                                                                      \
    SOFTDTW_INLINE friend Pack operator op(Pack a, E b) {                  \
        for (int k = 0; k < K; ++k) a.v[k] = a.v[k] op b;                  \
        return a;                                                          \
    }                                                                      \
    SOFTDTW_INLINE friend Pack operator op(E a, Pack b) {                  \
        for (int k = 0; k < K; ++k) b.v[k] = a op b.v[k];                  \
        return b;                                                          \
    }
    SOFTDTW_OP(+) SOFTDTW_OP(-) SOFTDTW_OP(*) SOFTDTW_OP(/) SOFTDTW_OP(&) SOFTDTW_OP(|)
#undef SOFTDTW_OP
#define SOFTDTW_CMP(op)                                                                                   \
    SOFTDTW_INLINE friend Mask operator op(const Pack& a, const Pack& b) {                        \
        Mask m;                                                                                   \
        for (int k = 0; k < K; ++k) m.v[k] = (typename Mask::N)(a.v[k] op b.v[k]);                \
        return m;                                                                                 \
    }                                                                                             \
    SOFTDTW_INLINE friend Mask operator op(const Pack& a, E b) {                                  \
        Mask m;                                                                                   \
        for (int k = 0; k < K; ++k) m.v[k] = (typename Mask::N)(a.v[k] op b);                     \
        return m;                                                                                 \
    }
    SOFTDTW_CMP(<) SOFTDTW_CMP(>) SOFTDTW_CMP(<=) SOFTDTW_CMP(>=) SOFTDTW_CMP(==)
#undef SOFTDTW_CMP
    SOFTDTW_INLINE friend Pack operator<<(Pack a, int n) { for (int k = 0; k < K; ++k) a.v[k] = a.v[k] << n; return a; }
    SOFTDTW_INLINE friend Pack operator>>(Pack a, int n) { for (int k = 0; k < K; ++k) a.v[k] = a.v[k] >> n; return a; }
    SOFTDTW_INLINE friend Pack operator~(Pack a) { for (int k = 0; k < K; ++k) a.v[k] = ~a.v[k]; return a; }
    SOFTDTW_INLINE Pack& operator+=(const Pack& b) { return *this = *this + b; }
    SOFTDTW_INLINE Pack& operator-=(const Pack& b) { return *this = *this - b; }
    SOFTDTW_INLINE Pack& operator*=(const Pack& b) { return *this = *this * b; }
};
template <class T> using Lanes = Pack<T, kLanes<T>>;
template <class T> using ILanes = Pack<typename LaneInt<T>::type, kLanes<T>>;

template <class M, class V> SOFTDTW_INLINE V select(const M& m, const V& a, const V& b) {
    V r;
    for (int k = 0; k < V::K; ++k) r.v[k] = m.v[k] ? a.v[k] : b.v[k];
    return r;
}
template <class T> SOFTDTW_INLINE Lanes<T> bits_to_float(const ILanes<T>& v) {
    Lanes<T> r;
    for (int k = 0; k < Lanes<T>::K; ++k) r.v[k] = (typename Lanes<T>::N)v.v[k];
    return r;
}
template <class T> SOFTDTW_INLINE ILanes<T> float_to_bits(const Lanes<T>& v) {
    ILanes<T> r;
    for (int k = 0; k < Lanes<T>::K; ++k) r.v[k] = (typename ILanes<T>::N)v.v[k];
    return r;
}
template <class V, class S> SOFTDTW_INLINE V splat(S s) { return V{} + s; }

#else
// Any other compiler (and SOFTDTW_SCALAR, which the C++ tests build): arrays with the same
// operations, correct and left to the compiler's auto-vectoriser.
template <class E, int L> struct Arr {
    E v[L];
    using Mask = Arr<std::int64_t, L>;
#define SOFTDTW_OP(op)                                                                              \
    friend Arr operator op(Arr a, Arr b) { for (int i = 0; i < L; ++i) a.v[i] = E(a.v[i] op b.v[i]); return a; } \
    friend Arr operator op(Arr a, E b) { for (int i = 0; i < L; ++i) a.v[i] = E(a.v[i] op b); return a; }         \
    friend Arr operator op(E a, Arr b) { for (int i = 0; i < L; ++i) b.v[i] = E(a op b.v[i]); return b; }
    SOFTDTW_OP(+) SOFTDTW_OP(-) SOFTDTW_OP(*) SOFTDTW_OP(/)
#undef SOFTDTW_OP
#define SOFTDTW_CMP(op)                                                                             \
    SOFTDTW_INLINE friend Mask operator op(Arr a, Arr b) {                                       \
        Mask m;                                                                                   \
        for (int i = 0; i < L; ++i) m.v[i] = a.v[i] op b.v[i] ? -1 : 0;                           \
        return m;                                                                                 \
    }                                                                                             \
    SOFTDTW_INLINE friend Mask operator op(Arr a, E b) {                                         \
        Mask m;                                                                                   \
        for (int i = 0; i < L; ++i) m.v[i] = a.v[i] op b ? -1 : 0;                                \
        return m;                                                                                 \
    }
    SOFTDTW_CMP(<) SOFTDTW_CMP(>) SOFTDTW_CMP(<=) SOFTDTW_CMP(>=) SOFTDTW_CMP(==)
#undef SOFTDTW_CMP
    friend Arr operator<<(Arr a, int n) { for (auto& e : a.v) e = E(e << n); return a; }
    friend Arr operator>>(Arr a, int n) { for (auto& e : a.v) e = E(e >> n); return a; }
    friend Arr operator&(Arr a, Arr b) { for (int i = 0; i < L; ++i) a.v[i] = a.v[i] & b.v[i]; return a; }
    friend Arr operator|(Arr a, Arr b) { for (int i = 0; i < L; ++i) a.v[i] = a.v[i] | b.v[i]; return a; }
    friend Arr operator~(Arr a) { for (auto& e : a.v) e = ~e; return a; }
    Arr& operator+=(Arr b) { return *this = *this + b; }
    Arr& operator-=(Arr b) { return *this = *this - b; }
    Arr& operator*=(Arr b) { return *this = *this * b; }
    E& operator[](int i) { return v[i]; }
    E operator[](int i) const { return v[i]; }
};
template <class T> using Lanes = Arr<T, kLanes<T>>;
template <class T> using ILanes = Arr<typename LaneInt<T>::type, kLanes<T>>;

template <class M, class V> SOFTDTW_INLINE V select(M m, V a, V b) {
    for (unsigned i = 0; i < sizeof(a.v) / sizeof(a.v[0]); ++i) a.v[i] = m.v[i] ? a.v[i] : b.v[i];
    return a;
}
template <class T> SOFTDTW_INLINE Lanes<T> bits_to_float(ILanes<T> v) {
    Lanes<T> r;
    std::memcpy(&r, &v, sizeof r);
    return r;
}
template <class T> SOFTDTW_INLINE ILanes<T> float_to_bits(Lanes<T> v) {
    ILanes<T> r;
    std::memcpy(&r, &v, sizeof r);
    return r;
}
template <class V, class S> SOFTDTW_INLINE V splat(S s) { V r; for (auto& e : r.v) e = s; return r; }
#endif

// Unaligned loads and stores of a block of lanes (the buffers come from NumPy and torch).
template <class T> SOFTDTW_INLINE Lanes<T> load(const T* p) { Lanes<T> v; std::memcpy(&v, p, sizeof v); return v; }
template <class T> SOFTDTW_INLINE void store(T* p, Lanes<T> v) { std::memcpy(p, &v, sizeof v); }
template <class T> SOFTDTW_INLINE ILanes<T> load_int(const typename LaneInt<T>::type* p) {
    ILanes<T> v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

template <class V> SOFTDTW_INLINE V vmin(V a, V b) { return select(a < b, a, b); }
template <class V> SOFTDTW_INLINE V vmax(V a, V b) { return select(a > b, a, b); }

// ---------------------------------------------------------------------------------------------
// Base-2 exponential and logarithm: polynomials that vectorise (libm's scalar calls took the
// forward+backward from ~3 to ~23 ns per cell, NUMERICS.md).
// ---------------------------------------------------------------------------------------------

template <class T> struct Exp2Consts;
template <> struct Exp2Consts<float> {
    static constexpr float lo = -127.0f, flush = -60.0f, magic = 12582912.0f;  // 1.5 * 2^23
    static constexpr int bias = 127, mant = 23;
};
template <> struct Exp2Consts<double> {
    static constexpr double lo = -1023.0, flush = -500.0, magic = 6755399441055744.0;  // 1.5 * 2^52
    static constexpr int bias = 1023, mant = 52;
};

// 2^f for f in [-1/2, 1/2]
SOFTDTW_INLINE Lanes<float> exp2_frac(Lanes<float> f) {
    // degree 5, relative error < 2e-7
    Lanes<float> q = splat<Lanes<float>>(0.001326472731307149f);
    q = q * f + 0.009671512991189957f;
    q = q * f + 0.05550733581185341f;
    q = q * f + 0.24022242426872253f;
    q = q * f + 0.6931470036506653f;
    return q * f + 1.0f;
}
SOFTDTW_INLINE Lanes<double> exp2_frac(Lanes<double> f) {
    // Taylor series of exp(f ln 2) to degree 13 (truncation < 5e-18 relative)
    static constexpr double c[] = {1.3691488853904128e-12, 2.5678435993488206e-11, 4.4455382718708116e-10,
                                   7.054911620801123e-09,  1.01780860092397e-07,   1.321548679014431e-06,
                                   1.5252733804059841e-05, 0.0001540353039338161,  0.0013333558146428443,
                                   0.009618129107628477,   0.05550410866482158,    0.24022650695910072,
                                   0.6931471805599453};
    Lanes<double> q = splat<Lanes<double>>(c[0]);
    for (int k = 1; k < 13; ++k) q = q * f + c[k];
    return q * f + 1.0;
}

// 2^t for t <= 0; exactly 0 below 2^`cut` (never a subnormal) and for NaN.
template <class T> SOFTDTW_INLINE Lanes<T> exp2_below(Lanes<T> t, T cut) {
    using C = Exp2Consts<T>;
    using I = typename LaneInt<T>::type;
    t = select(t > cut, t, splat<Lanes<T>>(C::lo));  // (NaN and -inf compare false)
    Lanes<T> big = t + C::magic;  // n = round(t) in the low bits of the mantissa
    Lanes<T> n = big - C::magic;
    Lanes<T> p = exp2_frac(t - n);
    ILanes<T> ni = float_to_bits<T>(big) - float_to_bits<T>(splat<Lanes<T>>(C::magic));
    ILanes<T> e = (ni + I(C::bias)) << C::mant;  // n = lo gives the bits of +0
    return p * bits_to_float<T>(e);
}

// log2(s) for 1 <= s <= 3: s = 2^k x with x in [1/sqrt 2, sqrt 2) from the bits, then a series
// in u = (x - 1) / (x + 1).
SOFTDTW_INLINE Lanes<float> log2_13(Lanes<float> s) {
    ILanes<float> i = float_to_bits<float>(s);
    ILanes<float> e = (i - 0x3F3504F3) >> 23;
    Lanes<float> x = bits_to_float<float>(i - (e << 23));
    Lanes<float> k = bits_to_float<float>(e + 0x4B400000) - 12582912.0f;  // (float)e, via 1.5 * 2^23
    Lanes<float> u = (x - 1.0f) / (x + 1.0f);
    Lanes<float> u2 = u * u;
    Lanes<float> q = splat<Lanes<float>>(0.430568128824234f);
    q = q * u2 + 0.5767596364021301f;
    q = q * u2 + 0.9617984294891357f;
    q = q * u2 + 2.885390043258667f;
    return k + u * q;
}
SOFTDTW_INLINE Lanes<double> log2_13(Lanes<double> s) {
    // c_k = 2 / ((2k + 1) ln 2), k <= 10 (truncation < 1e-18 relative)
    static constexpr double c[] = {0.1373995277037108,  0.15186263588304877, 0.16972882833987804,
                                   0.19235933878519512, 0.22195308321368667, 0.2623081892525388,
                                   0.3205988979753252,  0.4121985831111324,  0.5770780163555853,
                                   0.9617966939259756,  2.8853900817779268};
    ILanes<double> i = float_to_bits<double>(s);
    ILanes<double> e = (i - 0x3FE6A09E667F3BCDll) >> 52;
    Lanes<double> x = bits_to_float<double>(i - (e << 52));
    Lanes<double> k = bits_to_float<double>(e + 0x4338000000000000ll) - 6755399441055744.0;  // via 1.5 * 2^52
    Lanes<double> f = x - 1.0;
    Lanes<double> u = f / (x + 1.0);
    Lanes<double> u2 = u * u;
    Lanes<double> q = splat<Lanes<double>>(c[0]);
    for (int j = 1; j < 11; ++j) q = q * u2 + c[j];
    return k + u * q;
}

}  // namespace softdtw
