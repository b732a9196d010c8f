#include "pyface/parallel.h"

#include <atomic>

namespace pyface {

namespace {
std::atomic<int> g_num_threads{static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))};
}

int get_num_threads() { return g_num_threads.load(std::memory_order_relaxed); }
void set_num_threads(int n) { g_num_threads.store(std::max(1, n), std::memory_order_relaxed); }

}  // namespace pyface
