// CPU instruction-set paths of the CPU kernels: baseline (x86-64 / the compiler's
// default), avx2 (x86-64-v3: AVX2, FMA, BMI1/2, F16C, LZCNT, MOVBE) and avx512
// (x86-64-v4: v3 plus AVX-512 F/BW/CD/DQ/VL).
//
// CMake (pyface_add_cpu_kernels) compiles every csrc/cpu/*_kernel.cpp once per path
// with PYFACE_CPU_ISA_PATH set; the file's code goes into that path's namespace
// (pyface::isa_baseline, isa_avx2, isa_avx512). The ops call a kernel through
// PYFACE_CPU_KERNEL(name), which reads the path chosen at import
// (PYFACE_CPU_ISA=baseline|avx2|avx512, unset = the best the CPU supports; see
// pyface/ops/_ext.py). Only GCC on x86-64 builds the three paths (the
// PYFACE_CPU_ISA_MULTI definition); elsewhere only baseline exists.
//
// A kernel file: #includes first, then PYFACE_CPU_NAMESPACE_BEGIN ... _END in place
// of `namespace pyface { ... }`. Everything in between is compiled for the path's ISA
// by `#pragma GCC target`; what the headers define before it stays baseline code.
// That matters: inline functions and std:: templates are merged across object files
// by the linker, so compiling whole files with -march would let an AVX-512 copy of,
// say, std::fill serve the baseline path on a CPU without AVX-512.
// An ops header: PYFACE_CPU_KERNELS(declarations) declares a kernel's entry points in
// every path's namespace.
#pragma once
#include <atomic>

namespace pyface {

enum class CpuIsa : int { Baseline = 0, Avx2 = 1, Avx512 = 2 };

namespace detail {
extern std::atomic<int> g_cpu_isa;  // csrc/cpu/cpu_isa.cpp
}

// The path the kernels run now.
inline CpuIsa cpu_isa() { return static_cast<CpuIsa>(detail::g_cpu_isa.load(std::memory_order_relaxed)); }

// Paths compiled into this build / runnable on this CPU, as bit masks (1 << CpuIsa).
int cpu_isa_compiled();
int cpu_isa_supported();
// Makes `isa` the active path; std::invalid_argument if it was not compiled or the
// CPU lacks its instructions (running it would die with SIGILL).
void set_cpu_isa(CpuIsa isa);
// The CPU's x86 features that matter to the paths ("avx2", "avx512f", ...).
const char* const* cpu_feature_names(int* count);
bool cpu_has_feature(int index);

}  // namespace pyface

#define PYFACE_ISA_STR_(x) #x
#define PYFACE_ISA_PRAGMA_(x) _Pragma(PYFACE_ISA_STR_(x))

// The namespace macros read best as written.
// clang-format off
#ifdef PYFACE_CPU_ISA_MULTI
#define PYFACE_CPU_KERNELS(...)         \
  namespace isa_baseline { __VA_ARGS__ } \
  namespace isa_avx2 { __VA_ARGS__ }     \
  namespace isa_avx512 { __VA_ARGS__ }
#define PYFACE_CPU_KERNEL(fn)                                                  \
  (::pyface::cpu_isa() == ::pyface::CpuIsa::Avx512 ? &::pyface::isa_avx512::fn \
   : ::pyface::cpu_isa() == ::pyface::CpuIsa::Avx2 ? &::pyface::isa_avx2::fn   \
                                                   : &::pyface::isa_baseline::fn)
#else
#define PYFACE_CPU_KERNELS(...) \
  namespace isa_baseline { __VA_ARGS__ }
#define PYFACE_CPU_KERNEL(fn) (&::pyface::isa_baseline::fn)
#endif

// GCC target strings of the paths (also reported by pyface._C.cpu_isa_info()).
#define PYFACE_CPU_TARGET_AVX2 "arch=x86-64-v3"
#define PYFACE_CPU_TARGET_AVX512 "arch=x86-64-v4"

#if !defined(PYFACE_CPU_ISA_PATH) || PYFACE_CPU_ISA_PATH == 0
#define PYFACE_CPU_ISA_NAME "baseline"
#define PYFACE_CPU_NAMESPACE_BEGIN namespace pyface { namespace isa_baseline {
#define PYFACE_CPU_NAMESPACE_END }}
#else
#if PYFACE_CPU_ISA_PATH == 1
#define PYFACE_CPU_ISA_NAME "avx2"
#define PYFACE_CPU_ISA_NS_ isa_avx2
#define PYFACE_CPU_ISA_TARGET_ PYFACE_CPU_TARGET_AVX2
#elif PYFACE_CPU_ISA_PATH == 2
#define PYFACE_CPU_ISA_NAME "avx512"
#define PYFACE_CPU_ISA_NS_ isa_avx512
#define PYFACE_CPU_ISA_TARGET_ PYFACE_CPU_TARGET_AVX512
#else
#error "PYFACE_CPU_ISA_PATH must be 0 (baseline), 1 (avx2) or 2 (avx512)"
#endif
#define PYFACE_CPU_NAMESPACE_BEGIN                     \
  PYFACE_ISA_PRAGMA_(GCC push_options)                 \
  PYFACE_ISA_PRAGMA_(GCC target(PYFACE_CPU_ISA_TARGET_)) \
  namespace pyface { namespace PYFACE_CPU_ISA_NS_ {
#define PYFACE_CPU_NAMESPACE_END }} PYFACE_ISA_PRAGMA_(GCC pop_options)
#endif
// clang-format on

namespace pyface {
// Each path's name as compiled into it (csrc/cpu/cpu_isa_kernel.cpp): lets the tests
// check that PYFACE_CPU_KERNEL reaches the forced path.
PYFACE_CPU_KERNELS(const char* compiled_isa_path();)
}  // namespace pyface
