// C++ tests of the core: values and gradients against a plain float64 recursion (the textbook
// log-sum-exp forward and the expected alignment by the reverse recursion), bands and lengths,
// the squared Euclidean source, the thread count, a forked child and concurrent callers.
//
// Built by CMake with -DSOFTDTW_TESTS=ON (tests/test_core_cpp.py does it, natively and for
// aarch64 under qemu); exits non-zero on the first failed check.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "softdtw.hpp"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    if (!ok) {
        std::printf("FAIL: %s\n", what.c_str());
        ++failures;
    }
}

const double kInf = std::numeric_limits<double>::infinity();

// One pair, cost (n, m) row-major, cells outside [lo_i, hi_i) forbidden: value and E.
struct Ref {
    double value;
    std::vector<double> e;  // (n, m)
};

double softmin3(double a, double b, double c, double g) {
    double m = std::min({a, b, c});
    if (m == kInf) return kInf;
    return m - g * std::log(std::exp(-(a - m) / g) + std::exp(-(b - m) / g) + std::exp(-(c - m) / g));
}

Ref reference(const std::vector<double>& cost, int n, int m, const std::vector<int>& lo, const std::vector<int>& hi,
              double g) {
    std::vector<double> R((n + 2) * (m + 2), kInf);
    auto at = [&](int i, int j) -> double& { return R[i * (m + 2) + j]; };
    at(0, 0) = 0;
    for (int i = 1; i <= n; ++i)
        for (int j = 1; j <= m; ++j) {
            bool used = j - 1 >= lo[i - 1] && j - 1 < hi[i - 1];
            double s = softmin3(at(i - 1, j - 1), at(i - 1, j), at(i, j - 1), g);
            at(i, j) = used ? cost[(i - 1) * m + j - 1] + s : kInf;
        }
    Ref out{at(n, m), std::vector<double>(n * m, 0.0)};
    std::vector<double> E((n + 2) * (m + 2), 0.0);
    auto e = [&](int i, int j) -> double& { return E[i * (m + 2) + j]; };
    e(n, m) = 1;
    for (int i = n; i >= 1; --i)
        for (int j = m; j >= 1; --j) {
            if (at(i, j) == kInf) continue;
            double c = cost[(i - 1) * m + j - 1];
            double s = at(i, j) - c;  // softmin of the predecessors
            double wd = std::exp(-(at(i - 1, j - 1) - s) / g), wu = std::exp(-(at(i - 1, j) - s) / g),
                   wl = std::exp(-(at(i, j - 1) - s) / g);
            e(i - 1, j - 1) += e(i, j) * wd;
            e(i - 1, j) += e(i, j) * wu;
            e(i, j - 1) += e(i, j) * wl;
            out.e[(i - 1) * m + j - 1] = e(i, j);
        }
    return out;
}

template <class T> struct Case {
    int B, N, M, D;
    double gamma;
    std::vector<T> x, y, cost;
    std::vector<std::int32_t> xl, yl, lo, hi;
};

template <class T> Case<T> make_case(int B, int N, int M, int D, double gamma, int radius, bool ragged, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal;
    Case<T> c{B, N, M, D, gamma, {}, {}, {}, {}, {}, {}, {}};
    c.x.resize(std::size_t(B) * N * D);
    c.y.resize(std::size_t(B) * M * D);
    for (auto& v : c.x) v = T(normal(rng));
    for (auto& v : c.y) v = T(normal(rng));
    c.cost.assign(std::size_t(B) * N * M, T(0));
    c.xl.resize(B);
    c.yl.resize(B);
    c.lo.assign(std::size_t(B) * N, 0);
    c.hi.assign(std::size_t(B) * N, 0);
    for (int b = 0; b < B; ++b) {
        c.xl[b] = ragged ? 1 + int(rng() % N) : N;
        c.yl[b] = ragged ? 1 + int(rng() % M) : M;
        for (int i = 0; i < c.xl[b]; ++i) {
            int lo = 0, hi = c.yl[b];
            if (radius >= 0) {  // a band around the diagonal (i n/m), wide enough to hold a path
                double mid = double(i) * c.yl[b] / c.xl[b];
                lo = std::max(0, int(std::floor(mid)) - radius);
                hi = std::min<int>(c.yl[b], int(std::ceil(mid + double(c.yl[b]) / c.xl[b])) + radius);
            }
            c.lo[b * N + i] = lo;
            c.hi[b * N + i] = hi;
        }
        for (int i = 0; i < N; ++i)
            for (int j = 0; j < M; ++j) {
                double s = 0;
                for (int d = 0; d < D; ++d) {
                    double df = double(c.x[(b * N + i) * D + d]) - double(c.y[(b * M + j) * D + d]);
                    s += df * df;
                }
                c.cost[(std::size_t(b) * N + i) * M + j] = T(s);
            }
    }
    return c;
}

template <class T> softdtw::Problem<T> problem(const Case<T>& c, bool fused) {
    softdtw::Problem<T> pb;
    pb.B = c.B, pb.N = c.N, pb.M = c.M, pb.D = fused ? c.D : 0, pb.gamma = c.gamma;
    pb.cost = fused ? nullptr : c.cost.data();
    pb.x = fused ? c.x.data() : nullptr;
    pb.y = fused ? c.y.data() : nullptr;
    pb.xl = c.xl.data(), pb.yl = c.yl.data(), pb.lo = c.lo.data(), pb.hi = c.hi.data();
    return pb;
}

template <class T> struct Result {
    std::vector<T> value, gcost, gx, gy, ggamma;
};

template <class T> Result<T> run(const Case<T>& c, bool fused, int threads, std::int64_t seg = 0) {
    auto pb = problem(c, fused);
    softdtw::Plan pl = softdtw::make_plan(c.B, c.N, c.M, 256 / sizeof(T));
    std::vector<T> r(seg ? pl.ckpt_size(seg) : pl.r_size()), aux(pl.aux_size()), gv(c.B, T(1));
    Result<T> out;
    out.value.resize(c.B);
    softdtw::forward<T>(pb, out.value.data(), r.data(), aux.data(), seg, threads);
    out.gcost.assign(c.cost.size(), T(0));
    out.gx.assign(c.x.size(), T(0));
    out.gy.assign(c.y.size(), T(0));
    out.ggamma.assign(c.B, T(0));
    softdtw::Grads<T> g;
    if (fused) {
        g.x = out.gx.data();
        g.y = out.gy.data();
    } else {
        g.cost = out.gcost.data();
    }
    g.gamma = out.ggamma.data();
    softdtw::backward<T>(pb, r.data(), aux.data(), seg, gv.data(), g, threads);
    return out;
}

template <class T> void compare(const Case<T>& c, const std::string& name) {
    const double vtol = sizeof(T) == 4 ? 2e-5 : 1e-11, gtol = sizeof(T) == 4 ? 3e-4 : 1e-9;
    for (bool fused : {false, true}) {
        Result<T> got = run(c, fused, 1);
        for (int b = 0; b < c.B; ++b) {
            int n = c.xl[b], m = c.yl[b];
            std::vector<double> cost(std::size_t(n) * m);
            std::vector<int> lo(n), hi(n);
            for (int i = 0; i < n; ++i) {
                lo[i] = c.lo[b * c.N + i];
                hi[i] = c.hi[b * c.N + i];
                for (int j = 0; j < m; ++j) cost[i * m + j] = double(c.cost[(std::size_t(b) * c.N + i) * c.M + j]);
            }
            Ref ref = reference(cost, n, m, lo, hi, c.gamma);
            std::string where = name + (fused ? " fused" : " cost") + " pair " + std::to_string(b);
            double v = double(got.value[b]);
            check(std::abs(v - ref.value) <= vtol * std::max(1.0, std::abs(ref.value)),
                  where + ": value " + std::to_string(v) + " vs " + std::to_string(ref.value));
            double scale = 1e-300, err = 0;
            if (!fused) {
                for (int i = 0; i < c.N; ++i)
                    for (int j = 0; j < c.M; ++j) {
                        double want = (i < n && j < m) ? ref.e[i * m + j] : 0.0;
                        double have = double(got.gcost[(std::size_t(b) * c.N + i) * c.M + j]);
                        scale = std::max(scale, std::abs(want));
                        err = std::max(err, std::abs(have - want));
                        if (i >= n || j >= m) check(have == 0.0, where + ": gradient past the lengths");
                    }
            } else {  // grad_x = 2 sum_j E_ij (x_i - y_j)
                for (int i = 0; i < c.N; ++i)
                    for (int d = 0; d < c.D; ++d) {
                        double want = 0;
                        for (int j = 0; i < n && j < m; ++j)
                            want += 2 * ref.e[i * m + j] *
                                    (double(c.x[(b * c.N + i) * c.D + d]) - double(c.y[(b * c.M + j) * c.D + d]));
                        double have = double(got.gx[(b * c.N + i) * c.D + d]);
                        scale = std::max(scale, std::abs(want));
                        err = std::max(err, std::abs(have - want));
                    }
            }
            check(err <= gtol * std::max(scale, 1.0), where + ": gradient error " + std::to_string(err));
        }
    }
}

template <class T> void thread_counts_agree(const Case<T>& c) {
    Result<T> one = run(c, true, 1), two = run(c, true, 2), three = run(c, true, 3);
    check(one.value == two.value && one.value == three.value, "values differ across thread counts");
    check(one.gx == two.gx && one.gy == three.gy && one.ggamma == two.ggamma, "gradients differ across thread counts");
}

template <class T> void gamma_gradient(double gamma) {
    // d value / d gamma against a central difference of the float64 reference
    Case<T> c = make_case<T>(3, 9, 11, 2, gamma, -1, true, 7);
    Result<T> got = run(c, false, 1);
    for (int b = 0; b < c.B; ++b) {
        int n = c.xl[b], m = c.yl[b];
        std::vector<double> cost(std::size_t(n) * m);
        std::vector<int> lo(n, 0), hi(n, m);
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < m; ++j) cost[i * m + j] = double(c.cost[(std::size_t(b) * c.N + i) * c.M + j]);
        double h = 1e-5 * gamma;
        double fd = (reference(cost, n, m, lo, hi, gamma + h).value - reference(cost, n, m, lo, hi, gamma - h).value) /
                    (2 * h);
        double tol = sizeof(T) == 4 ? 1e-3 : 1e-6;
        check(std::abs(double(got.ggamma[b]) - fd) <= tol * std::max(1.0, std::abs(fd)),
              "d value / d gamma " + std::to_string(double(got.ggamma[b])) + " vs " + std::to_string(fd));
    }
}

template <class T> void checkpoints_are_exact(const Case<T>& c) {
    // the checkpointed backward recomputes every row as the forward formed it: the same bits
    for (bool fused : {false, true}) {
        Result<T> full = run(c, fused, 2);
        for (std::int64_t seg : {1, 3, 7, 1000}) {
            Result<T> ck = run(c, fused, 2, seg);
            check(ck.value == full.value && ck.gcost == full.gcost && ck.gx == full.gx && ck.gy == full.gy &&
                      ck.ggamma == full.ggamma,
                  "checkpoints every " + std::to_string(seg) + " steps change the results");
        }
    }
}

void forked_child_runs() {
    Case<float> c = make_case<float>(70, 20, 20, 2, 0.5, -1, false, 3);
    Result<float> parent = run(c, true, 2);  // starts the pool's threads
    pid_t pid = fork();
    if (pid == 0) {
        Result<float> child = run(c, true, 2);
        _exit(child.value == parent.value && child.gx == parent.gx ? 0 : 3);
    }
    int status = 0;
    for (int waited = 0; waited < 600; ++waited) {  // 60 s
        if (waitpid(pid, &status, WNOHANG) == pid) {
            check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the forked child's results differ");
            return;
        }
        usleep(100000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    check(false, "the forked child hung");
}

void concurrent_callers() {
    Case<float> c = make_case<float>(130, 17, 23, 3, 0.3, 2, true, 5);
    Result<float> serial = run(c, true, 2);
    std::vector<Result<float>> got(4);
    std::vector<std::thread> callers;
    for (int k = 0; k < 4; ++k) callers.emplace_back([&, k] { got[k] = run(c, true, 2); });
    for (auto& t : callers) t.join();
    for (auto& g : got) check(g.value == serial.value && g.gx == serial.gx, "concurrent callers differ");
}

void nonfinite_pair_is_nan() {
    Case<double> c = make_case<double>(3, 5, 6, 2, 1.0, -1, false, 9);
    c.x[(1 * c.N + 2) * c.D] = std::numeric_limits<double>::quiet_NaN();
    Result<double> fused = run(c, true, 1);
    check(std::isnan(fused.value[1]) && std::isfinite(fused.value[0]) && std::isfinite(fused.value[2]),
          "a NaN in x makes its pair's value NaN, and only its");
    c.cost[(std::size_t(2) * c.N + 1) * c.M + 3] = -kInf;
    Result<double> cost = run(c, false, 1);
    check(std::isnan(cost.value[2]) && std::isfinite(cost.value[0]), "a -inf cost makes its pair's value NaN");
}

}  // namespace

int main(int argc, char** argv) {
    // --no-fork: qemu-user (the aarch64 run) aborts in a forked child of a threaded process
    bool fork_test = !(argc > 1 && std::string(argv[1]) == "--no-fork");
    std::printf("isa: %s\n", softdtw::isa());
    struct Shape { int B, N, M, D; };
    const Shape shapes[] = {{1, 1, 1, 1}, {2, 1, 7, 2}, {3, 6, 1, 1}, {3, 5, 7, 2}, {70, 9, 13, 3},
                            {1, 40, 300, 1}, {2, 150, 200, 2}, {9, 64, 64, 8}};
    unsigned seed = 1;
    for (const Shape& s : shapes)
        for (int radius : {-1, 2})
            for (bool ragged : {false, true}) {
                std::string name = "(" + std::to_string(s.B) + "," + std::to_string(s.N) + "," + std::to_string(s.M) +
                                   "," + std::to_string(s.D) + ") radius " + std::to_string(radius) +
                                   (ragged ? " ragged" : "");
                compare(make_case<float>(s.B, s.N, s.M, s.D, 0.7, radius, ragged, seed), name + " float32");
                compare(make_case<double>(s.B, s.N, s.M, s.D, 0.7, radius, ragged, seed), name + " float64");
                ++seed;
            }
    for (double gamma : {0.01, 1.0, 10.0}) {
        compare(make_case<double>(4, 12, 10, 2, gamma, -1, true, 11), "gamma " + std::to_string(gamma));
        gamma_gradient<double>(gamma);
        gamma_gradient<float>(gamma);
    }
    thread_counts_agree(make_case<float>(130, 40, 50, 2, 1.0, 3, true, 13));
    thread_counts_agree(make_case<double>(5, 200, 300, 1, 1.0, -1, false, 17));
    nonfinite_pair_is_nan();
    checkpoints_are_exact(make_case<float>(70, 31, 45, 3, 0.5, 2, true, 19));
    checkpoints_are_exact(make_case<double>(3, 40, 300, 2, 0.5, -1, true, 23));
    concurrent_callers();
    if (fork_test) forked_child_runs();
    std::printf("%s (%d failed checks)\n", failures ? "FAILED" : "passed", failures);
    return failures ? 1 : 0;
}
