// The core's thread pool (threads.hpp). No state outlives a fork: a forked child forgets the
// parent's pool (its threads do not exist there) and starts a new one on first use.
#include "threads.hpp"

#if !defined(_WIN32)
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#define SOFTDTW_MXCSR 1
#endif

namespace softdtw {

FlushDenormals::FlushDenormals() : saved_(0) {
#if defined(SOFTDTW_MXCSR)
    saved_ = _mm_getcsr();
    _mm_setcsr(static_cast<unsigned>(saved_) | 0x8040u);  // FTZ | DAZ
#elif defined(__aarch64__)
    std::uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    saved_ = v;
    v |= (1ull << 24);  // FZ
    __asm__ volatile("msr fpcr, %0" : : "r"(v));
#endif
}

FlushDenormals::~FlushDenormals() {
#if defined(SOFTDTW_MXCSR)
    _mm_setcsr(static_cast<unsigned>(saved_));
#elif defined(__aarch64__)
    std::uint64_t v = saved_;
    __asm__ volatile("msr fpcr, %0" : : "r"(v));
#endif
}

namespace {

// A participant that has nothing to do spins this long before it sleeps: waking a sleeping
// thread costs tens of microseconds (more on a virtual machine, whose idle vCPU the host halts),
// which a training step pays twice per loss call (forward, backward) when the workers sleep
// between them. Short enough not to take a core from the caller's own threads for long.
constexpr auto kSpin = std::chrono::microseconds(50);

inline void relax() {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

// Spins up to kSpin until ready() holds; whether it does.
template <class F> bool spin_until(F ready) {
    auto end = std::chrono::steady_clock::now() + kSpin;
    for (;;) {
        for (int k = 0; k < 64; ++k) {
            if (ready()) return true;
            relax();
        }
        if (std::chrono::steady_clock::now() >= end) return ready();
    }
}

struct Pool {
    std::mutex busy;  // held by the one parallel_for that uses the workers
    std::mutex m;     // for sleeping and waking only
    std::condition_variable work, done;
    std::vector<std::thread> workers;
    const std::function<void()>* job = nullptr;
    // a call's generation and its number of workers in one word: a late worker never pairs one
    // call's generation with another's count
    std::atomic<std::uint64_t> call{0};
    std::atomic<int> finished{0};

    static std::uint64_t pack(std::uint64_t generation, int wanted) { return generation << 16 | unsigned(wanted); }

    void run(int id) {
        std::uint64_t seen = 0;
        for (;;) {
            auto fresh = [&] { return call.load(std::memory_order_acquire) >> 16 != seen; };
            if (!spin_until(fresh)) {
                std::unique_lock<std::mutex> lk(m);
                work.wait(lk, fresh);
            }
            std::uint64_t c = call.load(std::memory_order_acquire);
            seen = c >> 16;
            int wanted = int(c & 0xffff);
            if (id >= wanted) continue;
            (*job)();  // (the call waits for this worker: job is still its job)
            if (finished.fetch_add(1, std::memory_order_acq_rel) + 1 == wanted) {
                std::lock_guard<std::mutex> lk(m);
                done.notify_one();
            }
        }
    }

    void grow(int n) {  // under busy
#if !defined(_WIN32)
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);  // signals go to the process's own threads
#endif
        while (int(workers.size()) < n) {
            int id = int(workers.size());
            workers.emplace_back([this, id] { run(id); });
            workers.back().detach();
        }
#if !defined(_WIN32)
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
#endif
    }
};

std::atomic<Pool*> g_pool{nullptr};
std::mutex* g_pool_mutex = new std::mutex;

// Set in a forked child (from the handler below, registered when the library loads): GNU
// OpenMP's pool does not survive a fork (a parallel region in a child whose parent ran one
// waits forever), so a child never uses the host's OpenMP, only its own pool.
std::atomic<bool> g_forked{false};

[[maybe_unused]] void forget_pool_in_child() {
    // The parent's workers do not exist in the child; its pool (and any lock held at the fork)
    // is left behind, never touched again.
    g_pool.store(nullptr);
    g_pool_mutex = new std::mutex;
    g_forked.store(true);
}

#if !defined(_WIN32)
[[maybe_unused]] const int g_atfork = pthread_atfork(nullptr, nullptr, forget_pool_in_child);
#endif

// The host's GNU OpenMP, when the process has loaded it (torch's CPU builds do): its
// GOMP_parallel, else null. A loss right after a model's torch ops then runs on torch's own
// OpenMP workers, which spin for milliseconds after each op (libgomp's default), instead of
// threads of its own that would share the cores with those spinners: on 2 vCPUs, the loss at
// (512, 32, 32, 2) after a torch matmul took ~1.0 ms on the core's pool, ~0.5 ms here (alone:
// 0.5 ms either way). The library is looked up, never loaded or linked; SOFTDTW_OPENMP=0 turns
// this off. Not in a forked child (above), nor on other platforms.
using GompParallel = void (*)(void (*)(void*), void*, unsigned, unsigned);

GompParallel host_openmp() {
#if defined(__linux__)
    static std::atomic<GompParallel> found{nullptr};
    static const bool allowed = [] {
        const char* v = std::getenv("SOFTDTW_OPENMP");
        return !(v && std::strcmp(v, "0") == 0);
    }();
    if (!allowed || g_forked.load(std::memory_order_relaxed)) return nullptr;
    GompParallel f = found.load(std::memory_order_acquire);
    if (f) return f;
    // (RTLD_NOLOAD: a handle only if a library of that name is loaded already; it stays loaded)
    if (void* h = dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD)) {
        f = reinterpret_cast<GompParallel>(dlsym(h, "GOMP_parallel"));
        if (f) found.store(f, std::memory_order_release);
    }
    return f;
#else
    return nullptr;
#endif
}

Pool* pool() {
    Pool* p = g_pool.load();
    if (p) return p;
    std::lock_guard<std::mutex> lk(*g_pool_mutex);
    p = g_pool.load();
    if (!p) {
        p = new Pool;  // never deleted: its detached workers wait on it until the process ends
        g_pool.store(p);
    }
    return p;
}

void serial(std::int64_t n, const std::function<void(std::int64_t)>& fn) {
    FlushDenormals ftz;
    for (std::int64_t i = 0; i < n; ++i) fn(i);
}

}  // namespace

// One call's blocks, taken by each participating thread from a shared counter until none is
// left (after a first block of its own where `first` says so); the first exception stops the
// others after their current block and is kept for the caller. Both pools run their threads on it.
struct Blocks {
    std::int64_t n;
    const std::function<void(std::int64_t)>* fn;
    std::atomic<std::int64_t> next;
    std::exception_ptr error;
    std::mutex error_mutex;

    void run(std::int64_t first) {
        FlushDenormals ftz;
        try {
            for (std::int64_t i = first; i < n; i = next.fetch_add(1)) (*fn)(i);
        } catch (...) {
            std::lock_guard<std::mutex> lk(error_mutex);
            if (!error) error = std::current_exception();
            next.store(n);
        }
    }
};

// On the host's OpenMP threads (host_openmp) every thread takes blocks from the counter: a
// region may get fewer threads than asked. (Nothing may leave an OpenMP region: Blocks catches.)
void omp_body(void* data) {
    auto* b = static_cast<Blocks*>(data);
    b->run(b->next.fetch_add(1));
}

void parallel_for(int threads, std::int64_t n, const std::function<void(std::int64_t)>& fn) {
    if (n <= 0) return;
    int use = int(std::min<std::int64_t>(std::clamp(threads, 1, 1 << 15), n));  // (pack: < 2^16)
    if (use <= 1) return serial(n, fn);
    if (GompParallel omp = host_openmp()) {
        Blocks b{n, &fn, {0}, {}, {}};
        omp(&omp_body, &b, unsigned(use), 0);
        if (b.error) std::rethrow_exception(b.error);
        return;
    }
    Pool* p = pool();
    std::unique_lock<std::mutex> busy(p->busy, std::try_to_lock);
    if (!busy.owns_lock()) return serial(n, fn);  // another thread's call has the workers

    // participant p (the caller is 0) runs block p first, then takes blocks from the counter:
    // the caller does not take every block of a short call before a worker has woken up
    Blocks b{n, &fn, {use}, {}, {}};
    std::atomic<int> ids{0};
    const std::function<void()> job = [&] { b.run(ids.fetch_add(1)); };  // (use <= n: a first block each)
    p->grow(use - 1);
    p->job = &job;
    p->finished.store(0, std::memory_order_relaxed);
    {
        std::lock_guard<std::mutex> lk(p->m);  // (a worker about to sleep sees the new call)
        p->call.store(Pool::pack((p->call.load(std::memory_order_relaxed) >> 16) + 1, use - 1),
                      std::memory_order_release);
    }
    p->work.notify_all();
    job();
    auto all_done = [&] { return p->finished.load(std::memory_order_acquire) == use - 1; };
    if (!spin_until(all_done)) {
        std::unique_lock<std::mutex> lk(p->m);
        p->done.wait(lk, all_done);
    }
    p->job = nullptr;
    if (b.error) std::rethrow_exception(b.error);
}

bool uses_host_openmp() { return host_openmp() != nullptr; }

}  // namespace softdtw
