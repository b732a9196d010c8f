// The active CPU path and what this CPU supports (compiled once, not per path).
#include "pyface/cpu_isa.h"

#include <stdexcept>
#include <string>

namespace pyface {

namespace {

constexpr int bit(CpuIsa isa) { return 1 << static_cast<int>(isa); }

#if defined(PYFACE_CPU_ISA_MULTI) && (defined(__GNUC__) && defined(__x86_64__))
#define PYFACE_X86_FEATURES 1
// __builtin_cpu_supports needs literal names; "x86-64-v3"/"-v4" include the OS
// support for the AVX / AVX-512 register state (XGETBV).
const char* const kFeatures[] = {"sse4.2",  "avx",      "avx2",     "fma",      "bmi",      "bmi2",       "f16c",
                                 "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx512vnni", "avx512bf16"};
bool has(int i) {
  switch (i) {
    case 0: return __builtin_cpu_supports("sse4.2");
    case 1: return __builtin_cpu_supports("avx");
    case 2: return __builtin_cpu_supports("avx2");
    case 3: return __builtin_cpu_supports("fma");
    case 4: return __builtin_cpu_supports("bmi");
    case 5: return __builtin_cpu_supports("bmi2");
    case 6: return __builtin_cpu_supports("f16c");
    case 7: return __builtin_cpu_supports("avx512f");
    case 8: return __builtin_cpu_supports("avx512bw");
    case 9: return __builtin_cpu_supports("avx512cd");
    case 10: return __builtin_cpu_supports("avx512dq");
    case 11: return __builtin_cpu_supports("avx512vl");
    case 12: return __builtin_cpu_supports("avx512vnni");
    case 13: return __builtin_cpu_supports("avx512bf16");
  }
  return false;
}
int detect() {
  __builtin_cpu_init();
  int m = bit(CpuIsa::Baseline);
  if (__builtin_cpu_supports("x86-64-v3")) m |= bit(CpuIsa::Avx2);
  if (__builtin_cpu_supports("x86-64-v4")) m |= bit(CpuIsa::Avx512);
  return m;
}
#else
const char* const kFeatures[] = {""};
bool has(int) { return false; }
int detect() { return bit(CpuIsa::Baseline); }
#endif

int best(int mask) {
  for (CpuIsa isa : {CpuIsa::Avx512, CpuIsa::Avx2}) {
    if (mask & bit(isa)) return static_cast<int>(isa);
  }
  return static_cast<int>(CpuIsa::Baseline);
}

}  // namespace

int cpu_isa_compiled() {
#ifdef PYFACE_CPU_ISA_MULTI
  return bit(CpuIsa::Baseline) | bit(CpuIsa::Avx2) | bit(CpuIsa::Avx512);
#else
  return bit(CpuIsa::Baseline);
#endif
}

int cpu_isa_supported() {
  static const int mask = detect() & cpu_isa_compiled();
  return mask;
}

namespace detail {
// Until pyface.ops._ext applies PYFACE_CPU_ISA, the best path this CPU runs.
std::atomic<int> g_cpu_isa{best(cpu_isa_supported())};
}  // namespace detail

void set_cpu_isa(CpuIsa isa) {
  const int b = static_cast<int>(isa);
  if (b < 0 || b > 2) throw std::invalid_argument("unknown CPU path " + std::to_string(b));
  if (!(cpu_isa_compiled() & bit(isa))) throw std::invalid_argument("this build has no such CPU path");
  if (!(cpu_isa_supported() & bit(isa)))
    throw std::invalid_argument("this CPU lacks the instructions of that CPU path");
  detail::g_cpu_isa.store(b, std::memory_order_relaxed);
}

const char* const* cpu_feature_names(int* count) {
#ifdef PYFACE_X86_FEATURES
  *count = static_cast<int>(sizeof(kFeatures) / sizeof(kFeatures[0]));
#else
  *count = 0;
#endif
  return kFeatures;
}

bool cpu_has_feature(int index) { return has(index); }

}  // namespace pyface
