// The core's threads: the host's GNU OpenMP pool where the process has one (torch's), else a small
// pool of its own, started on first use, that a forked child forgets.
#pragma once

#include <cstdint>
#include <functional>

namespace softdtw {

// Runs fn(0) .. fn(n - 1), each once, on at most `threads` threads (the caller's included).
// Every participating thread runs with denormals flushed (FTZ/DAZ) and gets its own state back.
// Calls from several threads at once are safe: a call that finds the pool busy runs alone.
void parallel_for(int threads, std::int64_t n, const std::function<void(std::int64_t)>& fn);

// Whether parallel_for runs on the host's GNU OpenMP threads (torch's, when torch is loaded) rather
// than the core's own pool: see threads.cpp.
bool uses_host_openmp();

// Flush-to-zero for the calling thread while alive (restores the previous mode).
class FlushDenormals {
  public:
    FlushDenormals();
    ~FlushDenormals();
    FlushDenormals(const FlushDenormals&) = delete;
    FlushDenormals& operator=(const FlushDenormals&) = delete;

  private:
    std::uint64_t saved_;
};

}  // namespace softdtw
