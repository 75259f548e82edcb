// softdtw._core: the compiled core for NumPy (and torch through zero-copy NumPy views).
//
// Every function takes its outputs from the caller (softdtw/kernels/cpu.py allocates them),
// checks shapes and dtypes, and runs with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>

#include <optional>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "softdtw.hpp"
#include "threads.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

template <class T> using In = nb::ndarray<const T, nb::c_contig, nb::device::cpu>;
template <class T> using Out = nb::ndarray<T, nb::c_contig, nb::device::cpu>;
using Ints = nb::ndarray<const std::int32_t, nb::c_contig, nb::device::cpu>;

[[noreturn]] void fail(const std::string& msg) { throw nb::value_error(msg.c_str()); }

template <class A> void expect(const A& a, const char* name, std::initializer_list<std::int64_t> shape) {
    if (a.ndim() != shape.size())
        fail(std::string(name) + " must have " + std::to_string(shape.size()) + " dimensions");
    std::size_t d = 0;
    for (std::int64_t s : shape) {
        if (std::int64_t(a.shape(d)) != s)
            fail(std::string(name) + " has the wrong shape (dimension " + std::to_string(d) + " is " +
                 std::to_string(a.shape(d)) + ", expected " + std::to_string(s) + ")");
        ++d;
    }
}

template <class T> void check_series(const In<T>& x, const In<T>& y) {
    if (x.ndim() != 3 || y.ndim() != 3 || x.shape(0) != y.shape(0) || x.shape(2) != y.shape(2) || x.shape(2) < 1)
        fail("x and y must be (B, N, D) and (B, M, D) with D >= 1");
}

template <class T>
softdtw::Problem<T> problem(std::int64_t B, std::int64_t N, std::int64_t M, std::int64_t D, double gamma,
                            const Ints& xl, const Ints& yl, const Ints& lo, const Ints& hi) {
    if (!(gamma > 0)) fail("gamma must be > 0");
    expect(xl, "x_len", {B});
    expect(yl, "y_len", {B});
    expect(lo, "lo", {B, N});
    expect(hi, "hi", {B, N});
    for (std::int64_t b = 0; b < B; ++b)
        if (xl.data()[b] < 0 || xl.data()[b] > N || yl.data()[b] < 0 || yl.data()[b] > M)
            fail("x_len and y_len must lie in [0, N] and [0, M]");
    for (std::int64_t k = 0; k < B * N; ++k)  // (the kernels read row i's columns lo..hi)
        if (lo.data()[k] < 0 || hi.data()[k] > M) fail("lo and hi must lie in [0, M]");
    softdtw::Problem<T> pb;
    pb.B = B, pb.N = N, pb.M = M, pb.D = D, pb.gamma = gamma;
    pb.xl = xl.data(), pb.yl = yl.data(), pb.lo = lo.data(), pb.hi = hi.data();
    return pb;
}

template <class T>
void state(const softdtw::Problem<T>& pb, Out<T>* r, Out<T>* aux, std::int64_t seg, T** rp, T** ap,
           bool fill_margins = false) {
    *rp = *ap = nullptr;
    if (seg < 0) fail("seg must be >= 0");
    if (!r) return;
    softdtw::Plan pl = softdtw::make_plan(pb.B, pb.N, pb.M, 256 / sizeof(T));
    std::int64_t need = seg ? pl.ckpt_size(seg) : pl.r_size();
    if (std::int64_t(r->size()) < need)  // (softdtw.kernels.cpu rounds it up to whole rows of M)
        fail("r is too small for this problem: " + std::to_string(r->size()) + " < " + std::to_string(need));
    expect(*aux, "aux", {pl.aux_size()});
    *rp = r->data();
    *ap = aux->data();
    if (fill_margins) std::fill(*rp + need, *rp + r->size(), T(0));  // (the kernels fill the blocks; the rest is 0)
}

// forward's checks of its outputs, then the kernels with the GIL released
template <class T>
void run_forward(const softdtw::Problem<T>& pb, Out<T>& value, std::optional<Out<T>>& r, std::optional<Out<T>>& aux,
                 std::int64_t seg, int threads) {
    expect(value, "value", {pb.B});
    T *rp, *ap;
    state<T>(pb, r ? &*r : nullptr, aux ? &*aux : nullptr, seg, &rp, &ap, true);
    nb::gil_scoped_release unlocked;
    softdtw::forward<T>(pb, value.data(), rp, ap, seg, threads);
}

template <class T> void bind(nb::module_& m) {
    m.def(
        "forward",
        [](In<T> cost, double gamma, Ints xl, Ints yl, Ints lo, Ints hi, Out<T> value, std::optional<Out<T>> r,
           std::optional<Out<T>> aux, std::int64_t seg, int threads) {
            if (cost.ndim() != 3) fail("cost must be (B, N, M)");
            auto pb = problem<T>(cost.shape(0), cost.shape(1), cost.shape(2), 0, gamma, xl, yl, lo, hi);
            pb.cost = cost.data();
            run_forward(pb, value, r, aux, seg, threads);
        },
        "cost"_a.noconvert(), "gamma"_a, "x_len"_a.noconvert(), "y_len"_a.noconvert(), "lo"_a.noconvert(),
        "hi"_a.noconvert(), "value"_a.noconvert(), "r"_a.noconvert().none(), "aux"_a.noconvert().none(),
        "seg"_a, "threads"_a);
    m.def(
        "forward_sqeuclidean",
        [](In<T> x, In<T> y, double gamma, Ints xl, Ints yl, Ints lo, Ints hi, Out<T> value, std::optional<Out<T>> r,
           std::optional<Out<T>> aux, std::int64_t seg, int threads) {
            check_series(x, y);
            auto pb = problem<T>(x.shape(0), x.shape(1), y.shape(1), x.shape(2), gamma, xl, yl, lo, hi);
            pb.x = x.data();
            pb.y = y.data();
            run_forward(pb, value, r, aux, seg, threads);
        },
        "x"_a.noconvert(), "y"_a.noconvert(), "gamma"_a, "x_len"_a.noconvert(), "y_len"_a.noconvert(),
        "lo"_a.noconvert(), "hi"_a.noconvert(), "value"_a.noconvert(), "r"_a.noconvert().none(),
        "aux"_a.noconvert().none(),
        "seg"_a, "threads"_a);
    m.def(
        "backward",
        [](Out<T> r, Out<T> aux, std::int64_t N, std::int64_t M, double gamma, Ints xl, Ints yl, Ints lo, Ints hi,
           In<T> gv, Out<T> grad_cost, std::optional<Out<T>> grad_gamma, std::int64_t seg,
           std::optional<In<T>> cost, int threads) {
            std::int64_t B = gv.ndim() == 1 ? gv.shape(0) : -1;
            if (B < 0) fail("grad_value must be (B,)");
            auto pb = problem<T>(B, N, M, 0, gamma, xl, yl, lo, hi);
            if (seg > 0) {  // (the checkpointed backward recomputes rows from the cost)
                if (!cost) fail("cost is needed with seg > 0");
                expect(*cost, "cost", {B, N, M});
                pb.cost = cost->data();
            }
            T *rp, *ap;
            state<T>(pb, &r, &aux, seg, &rp, &ap);
            expect(grad_cost, "grad_cost", {B, N, M});
            softdtw::Grads<T> g;
            g.cost = grad_cost.data();
            if (grad_gamma) {
                expect(*grad_gamma, "grad_gamma", {B});
                g.gamma = grad_gamma->data();
            }
            nb::gil_scoped_release unlocked;
            softdtw::backward<T>(pb, rp, ap, seg, gv.data(), g, threads);
        },
        "r"_a.noconvert(), "aux"_a.noconvert(), "N"_a, "M"_a, "gamma"_a, "x_len"_a.noconvert(),
        "y_len"_a.noconvert(), "lo"_a.noconvert(), "hi"_a.noconvert(), "grad_value"_a.noconvert(),
        "grad_cost"_a.noconvert(),
        "grad_gamma"_a.noconvert().none(), "seg"_a, "cost"_a.noconvert().none(), "threads"_a);
    m.def(
        "backward_sqeuclidean",
        [](Out<T> r, Out<T> aux, In<T> x, In<T> y, double gamma, Ints xl, Ints yl, Ints lo, Ints hi, In<T> gv,
           std::optional<Out<T>> grad_x, std::optional<Out<T>> grad_y, std::optional<Out<T>> grad_gamma,
           std::int64_t seg, int threads) {
            check_series(x, y);
            std::int64_t B = x.shape(0), N = x.shape(1), M = y.shape(1), D = x.shape(2);
            auto pb = problem<T>(B, N, M, D, gamma, xl, yl, lo, hi);
            pb.x = x.data();
            pb.y = y.data();
            expect(gv, "grad_value", {B});
            T *rp, *ap;
            state<T>(pb, &r, &aux, seg, &rp, &ap);
            softdtw::Grads<T> g;
            if (grad_x) {
                expect(*grad_x, "grad_x", {B, N, D});
                g.x = grad_x->data();
            }
            if (grad_y) {
                expect(*grad_y, "grad_y", {B, M, D});
                g.y = grad_y->data();
            }
            if (grad_gamma) {
                expect(*grad_gamma, "grad_gamma", {B});
                g.gamma = grad_gamma->data();
            }
            nb::gil_scoped_release unlocked;
            softdtw::backward<T>(pb, rp, ap, seg, gv.data(), g, threads);
        },
        "r"_a.noconvert(), "aux"_a.noconvert(), "x"_a.noconvert(), "y"_a.noconvert(), "gamma"_a,
        "x_len"_a.noconvert(), "y_len"_a.noconvert(), "lo"_a.noconvert(), "hi"_a.noconvert(),
        "grad_value"_a.noconvert(),
        "grad_x"_a.noconvert().none(), "grad_y"_a.noconvert().none(), "grad_gamma"_a.noconvert().none(), "seg"_a,
        "threads"_a);
}

}  // namespace

// bad[b] = a[b, :lengths[b]] holds a NaN or an infinity (one pass, no temporaries)
template <class T> void nonfinite_pairs(In<T> a, Ints lengths, Out<bool> bad) {
    if (a.ndim() != 3) fail("a must be (B, N, D)");
    std::int64_t B = a.shape(0), N = a.shape(1), D = a.shape(2);
    expect(lengths, "lengths", {B});
    expect(bad, "bad", {B});
    for (std::int64_t b = 0; b < B; ++b)
        if (lengths.data()[b] < 0 || lengths.data()[b] > N) fail("lengths must lie in [0, N]");
    nb::gil_scoped_release unlocked;
    for (std::int64_t b = 0; b < B; ++b) {
        const T* p = a.data() + b * N * D;
        bool found = false;
        for (std::int64_t k = 0; k < std::int64_t(lengths.data()[b]) * D; ++k) found |= !std::isfinite(p[k]);
        bad.data()[b] = found;
    }
}

NB_MODULE(_core, m) {
    m.doc() = "The compiled core of softdtw (core/ in the repository); use softdtw.kernels.cpu.";
    bind<float>(m);
    bind<double>(m);
    m.def(
        "state_sizes",
        [](std::int64_t B, std::int64_t N, std::int64_t M, std::int64_t itemsize, std::int64_t seg) {
            if (itemsize != 4 && itemsize != 8) fail("itemsize must be 4 or 8");
            if (seg < 0) fail("seg must be >= 0");
            softdtw::Plan pl = softdtw::make_plan(B, N, M, 256 / itemsize);
            return nb::make_tuple(seg ? pl.ckpt_size(seg) : pl.r_size(), pl.aux_size(), pl.steps);
        },
        "B"_a, "N"_a, "M"_a, "itemsize"_a, "seg"_a = 0,
        "The lengths of r and aux for (B, N, M) pairs of this item size (seg > 0: checkpoints), and the steps "
        "of a block.");
    m.def("nonfinite_pairs", &nonfinite_pairs<float>, "a"_a.noconvert(), "lengths"_a.noconvert(), "bad"_a.noconvert());
    m.def("nonfinite_pairs", &nonfinite_pairs<double>, "a"_a.noconvert(), "lengths"_a.noconvert(), "bad"_a.noconvert());
    m.def("isa", &softdtw::isa, "The instruction set the kernels run on.");
    m.def("host_openmp", &softdtw::uses_host_openmp,
          "Whether the kernels' threads are the host's GNU OpenMP pool (torch's) rather than the core's own.");
}
