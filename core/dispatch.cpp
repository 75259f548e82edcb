// The plan of a batch, and the one place that picks the instruction set (once, at first use).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

#include "softdtw.hpp"

namespace softdtw {

#define SOFTDTW_DECLARE_ISA(NS)                                                                         \
    namespace NS {                                                                                      \
    template <class T> void forward(const Problem<T>&, T*, T*, T*, std::int64_t, int);                   \
    template <class T>                                                                                  \
    void backward(const Problem<T>&, const T*, const T*, std::int64_t, const T*, const Grads<T>&, int);    \
    }
#if defined(SOFTDTW_X86_DISPATCH)
SOFTDTW_DECLARE_ISA(isa_avx512)
SOFTDTW_DECLARE_ISA(isa_avx2)
#endif
SOFTDTW_DECLARE_ISA(isa_base)

namespace {

template <class T> struct Fns {
    void (*forward)(const Problem<T>&, T*, T*, T*, std::int64_t, int);
    void (*backward)(const Problem<T>&, const T*, const T*, std::int64_t, const T*, const Grads<T>&, int);
};

struct Impl {
    const char* name;
    Fns<float> f32;
    Fns<double> f64;
};

#define SOFTDTW_IMPL(NAME, NS)                                                                     \
    Impl { NAME, {&NS::forward<float>, &NS::backward<float>}, {&NS::forward<double>, &NS::backward<double>} }

#if defined(SOFTDTW_SCALAR)
constexpr const char* kBaseName = "scalar";
#elif defined(__aarch64__)
constexpr const char* kBaseName = "neon";
#elif defined(__x86_64__) || defined(_M_X64)
constexpr const char* kBaseName = "sse2";
#else
constexpr const char* kBaseName = "scalar";
#endif

Impl choose() {
    // SOFTDTW_ISA=<name> asks for a lower instruction set than the best (the tests run each)
    const char* want = std::getenv("SOFTDTW_ISA");
    auto allowed = [&](const char* name) { return !want || !*want || std::strcmp(want, name) == 0; };
#if defined(SOFTDTW_X86_DISPATCH)
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (avx512 && allowed("avx512")) return SOFTDTW_IMPL("avx512", isa_avx512);
    if (avx2 && allowed("avx2")) return SOFTDTW_IMPL("avx2", isa_avx2);
#endif
    (void)allowed;
    return SOFTDTW_IMPL(kBaseName, isa_base);
}

const Impl& impl() {
    static const Impl chosen = choose();
    return chosen;
}

template <class T> const Fns<T>& fns();
template <> const Fns<float>& fns<float>() { return impl().f32; }
template <> const Fns<double>& fns<double>() { return impl().f64; }

}  // namespace

// The CPUs this process may use, read once (its affinity at first use: a container's or
// taskset's limit): a constant of the process, so the plan stays one function of the shapes in it.
std::int64_t process_cpus() {
    static const std::int64_t n = [] {
#if defined(__linux__)
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0) return std::int64_t(std::max(1, CPU_COUNT(&set)));
#endif
        return std::int64_t(std::max(1u, std::thread::hardware_concurrency()));
    }();
    return n;
}

Plan make_plan(std::int64_t B, std::int64_t N, std::int64_t M, std::int64_t lanes) {
    // Strips (S > 1) fill the lanes of a small batch and give threads blocks to share: halve
    // the strips' width while the batch has fewer than 8 blocks, strips stay >= 32 columns wide
    // and the skew (S - 1 extra steps) stays under N / 8. Below 64 columns only while there are
    // fewer blocks than CPUs: a step's fixed work per lane is paid per strip width (2 CPUs,
    // 2 threads, forward + backward ns per cell: (32, 256, 256, 8) 1.15 in 4 blocks of
    // 32-column strips, 1.03 in 2 of 64; (8, 1024, 1024, 4) 0.83 -> 0.73).
    Plan p;
    p.lanes = lanes;
    std::int64_t S = 1;
    const std::int64_t enough = std::min<std::int64_t>(8, process_cpus());
    while (2 * S <= lanes && B > 0) {
        std::int64_t s2 = 2 * S, blocks = (B + lanes / S - 1) / (lanes / S);
        if ((M + s2 - 1) / s2 < 32) break;
        if (blocks >= 8) break;
        if ((M + s2 - 1) / s2 < 64 && blocks >= enough) break;
        if (s2 - 1 > N / 8) break;
        S = s2;
    }
    // float32 accuracy: a lane's row is re-based on its minimum only, so values along a wide
    // strip drift from it (cumulative cost over W columns) and neighbours' differences lose
    // bits: strips stay <= 64 columns wide wherever the lanes allow, whatever the skew costs
    while (2 * S <= lanes && (M + S - 1) / S > 64) S *= 2;
    p.S = S;
    p.P = lanes / S;
    p.W = M > 0 ? (M + S - 1) / S : 1;
    p.blocks = (B + p.P - 1) / p.P;
    p.steps = N + S - 1;
    return p;
}

template <class T> void forward(const Problem<T>& pb, T* value, T* r, T* aux, std::int64_t seg, int threads) {
    fns<T>().forward(pb, value, r, aux, seg, threads);
}
template <class T>
void backward(const Problem<T>& pb, const T* r, const T* aux, std::int64_t seg, const T* gv, const Grads<T>& out,
              int threads) {
    fns<T>().backward(pb, r, aux, seg, gv, out, threads);
}
SOFTDTW_INSTANTIATE

const char* isa() { return impl().name; }

}  // namespace softdtw
