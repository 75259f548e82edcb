// The core's kernels alone, for work on the kernels: forward and backward of the fused squared
// Euclidean source on reused buffers (no allocation, no Python), best of 7, ns per cell.
//
//     cmake -S core -B /tmp/core -DSOFTDTW_PYTHON=OFF -DSOFTDTW_BENCH=ON && cmake --build /tmp/core
//     /tmp/core/bench_core 32 256 256 8 [threads] [float64]
//
// SOFTDTW_ISA=avx2 (or sse2) times a lower instruction set. The user-facing benchmarks are the
// Python scripts in benchmarks/ (beside the peers, inside a training step).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "softdtw.hpp"

template <class T> int run(int B, int N, int M, int D, int threads) {
    std::mt19937 rng(0);
    std::normal_distribution<double> normal;
    std::vector<T> x(std::size_t(B) * N * D), y(std::size_t(B) * M * D);
    for (auto& v : x) v = T(normal(rng));
    for (auto& v : y) v = T(normal(rng));
    std::vector<std::int32_t> xl(B, N), yl(B, M), lo(std::size_t(B) * N, 0), hi(std::size_t(B) * N, M);
    softdtw::Problem<T> pb;
    pb.B = B, pb.N = N, pb.M = M, pb.D = D, pb.gamma = 1.0;
    pb.x = x.data(), pb.y = y.data(), pb.xl = xl.data(), pb.yl = yl.data(), pb.lo = lo.data(), pb.hi = hi.data();
    const softdtw::Plan pl = softdtw::make_plan(B, N, M, 256 / sizeof(T));
    std::vector<T> r(pl.r_size()), aux(pl.aux_size()), value(B), gv(B, T(1)), gx(x.size());
    softdtw::Grads<T> g;
    g.x = gx.data();
    double fwd = 1e30, bwd = 1e30;
    for (int it = 0; it < 7; ++it) {
        auto t0 = std::chrono::steady_clock::now();
        softdtw::forward<T>(pb, value.data(), r.data(), aux.data(), 0, threads);
        auto t1 = std::chrono::steady_clock::now();
        softdtw::backward<T>(pb, r.data(), aux.data(), 0, gv.data(), g, threads);
        auto t2 = std::chrono::steady_clock::now();
        fwd = std::min(fwd, std::chrono::duration<double>(t1 - t0).count());
        bwd = std::min(bwd, std::chrono::duration<double>(t2 - t1).count());
    }
    const double cells = double(B) * N * M;
    std::printf("(%d,%d,%d,%d) %s, %s, %d thread(s), plan P=%lld S=%lld W=%lld blocks=%lld: "
                "forward %.2f, backward %.2f ns per cell\n",
                B, N, M, D, sizeof(T) == 4 ? "float32" : "float64", softdtw::isa(), threads, (long long)pl.P,
                (long long)pl.S, (long long)pl.W, (long long)pl.blocks, fwd / cells * 1e9, bwd / cells * 1e9);
    return 0;
}

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: bench_core B N M D [threads] [float64]\n");
        return 2;
    }
    int B = std::atoi(argv[1]), N = std::atoi(argv[2]), M = std::atoi(argv[3]), D = std::atoi(argv[4]);
    int threads = argc > 5 ? std::atoi(argv[5]) : 1;
    bool f64 = argc > 6 && std::strcmp(argv[6], "float64") == 0;
    return f64 ? run<double>(B, N, M, D, threads) : run<float>(B, N, M, D, threads);
}
