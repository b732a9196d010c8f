// A minimal fork-join parallel_for for the CPU backend (no OpenMP runtime to ship).
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>
#include <system_error>
#include <thread>
#include <vector>

// Obsolete: the CPU kernels are compiled once per instruction-set path (see
// pyface/cpu_isa.h), no longer as target_clones. Expands to nothing so that code
// written against it still builds; drop it where it appears.
#define PYFACE_CPU_CLONES

namespace pyface {

int get_num_threads();
void set_num_threads(int n);

// Calls f(begin, end) on contiguous ranges of [0, n) in up to get_num_threads()
// threads, each range at least `grain` long. The calling thread takes part.
// Exception-safe: an exception thrown by f in any range is rethrown here (the first
// range's first) after every thread has joined, and a range whose thread cannot be
// started runs in the calling thread -- never std::terminate on a joinable thread.
template <typename F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = (n + grain - 1) / grain;
  const int64_t nt = std::min<int64_t>(get_num_threads(), max_chunks);
  if (nt <= 1) {
    f(int64_t(0), n);
    return;
  }
  const int64_t step = (n + nt - 1) / nt;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(nt));
  auto run = [&f, &errors, step, n](int64_t t) {
    const int64_t b = t * step, e = std::min(n, b + step);
    if (b >= e) return;
    try {
      f(b, e);
    } catch (...) {
      errors[static_cast<size_t>(t)] = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  workers.reserve(nt - 1);
  int64_t started = 1;  // ranges [1, started) have a thread
  for (; started < nt; ++started) {
    try {
      workers.emplace_back(run, started);
    } catch (const std::system_error&) {
      break;  // no more threads: the caller runs the remaining ranges
    }
  }
  run(0);
  for (int64_t t = started; t < nt; ++t) run(t);
  for (auto& w : workers) w.join();
  for (auto& err : errors)
    if (err) std::rethrow_exception(err);
}

// Number of ranges parallel_for(n, grain, ...) would use; lets callers size
// per-thread scratch buffers.
inline int64_t parallel_chunks(int64_t n, int64_t grain) {
  grain = std::max<int64_t>(grain, 1);
  return std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), (n + grain - 1) / grain));
}

}  // namespace pyface
