// The one extension module, pyface._C: the runtime (threads, CPU instruction-set
// paths) here; every op binds itself from csrc/ops/<op>.cpp (PYFACE_BINDINGS, see
// csrc/ops/binding.h): its argument structs, and its entry points as methods of
// CpuKernels and, with the CUDA backend, CudaKernels(stream).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "ops/binding.h"
#include "pyface/cpu_isa.h"
#include "pyface/parallel.h"

namespace py = pybind11;

namespace {

// Index = pyface::CpuIsa.
const char* const kCpuIsaNames[] = {"baseline", "avx2", "avx512"};

std::vector<std::string> isa_names(int mask) {
  std::vector<std::string> out;
  for (int i = 0; i < 3; ++i) {
    if (mask & (1 << i)) out.emplace_back(kCpuIsaNames[i]);
  }
  return out;
}

py::dict cpu_isa_info() {
  py::dict d;
  d["active"] = kCpuIsaNames[static_cast<int>(pyface::cpu_isa())];
  d["compiled"] = isa_names(pyface::cpu_isa_compiled());
  d["supported"] = isa_names(pyface::cpu_isa_supported());
  py::dict targets;
  targets["baseline"] = "";
  targets["avx2"] = PYFACE_CPU_TARGET_AVX2;
  targets["avx512"] = PYFACE_CPU_TARGET_AVX512;
  d["targets"] = targets;
  std::vector<std::string> features;
  int n = 0;
  const char* const* names = pyface::cpu_feature_names(&n);
  for (int i = 0; i < n; ++i) {
    if (pyface::cpu_has_feature(i)) features.emplace_back(names[i]);
  }
  d["cpu_features"] = features;
  return d;
}

void set_cpu_isa(const std::string& name) {
  for (int i = 0; i < 3; ++i) {
    if (name == kCpuIsaNames[i]) return pyface::set_cpu_isa(static_cast<pyface::CpuIsa>(i));
  }
  throw std::invalid_argument("unknown CPU path '" + name + "' (baseline, avx2, avx512)");
}

}  // namespace

// pyface._C_emu (csrc/emu/, test-only) compiles this file again under its own name.
#ifndef PYFACE_MODULE_NAME
#define PYFACE_MODULE_NAME _C
#endif

PYBIND11_MODULE(PYFACE_MODULE_NAME, m) {
  m.doc() = "pyface C++/CUDA kernels (no libtorch link: raw pointers in, raw pointers out)";
#ifdef PYFACE_WITH_CUDA
  m.attr("with_cuda") = true;
#ifdef PYFACE_CUDA_ARCHS
  m.attr("cuda_architectures") = PYFACE_CUDA_ARCHS;
#endif
#else
  m.attr("with_cuda") = false;
#endif
  m.def("set_num_threads", &pyface::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &pyface::get_num_threads);
  // Test hook for parallel_for's exception handling: fills out[0, n) with 1 per index
  // over `threads` threads and throws from the range holding `throw_at` (-1: none).
  m.def(
      "_parallel_for_selftest",
      [](int64_t n, int64_t throw_at, int threads) {
        const int saved = pyface::get_num_threads();
        pyface::set_num_threads(threads);
        std::vector<int> hits(static_cast<size_t>(std::max<int64_t>(n, 0)), 0);
        try {
          pyface::parallel_for(n, 1, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) {
              if (i == throw_at) throw std::runtime_error("parallel_for selftest: range holding " + std::to_string(i));
              hits[static_cast<size_t>(i)] += 1;
            }
          });
        } catch (...) {
          pyface::set_num_threads(saved);
          throw;
        }
        pyface::set_num_threads(saved);
        return hits;
      },
      py::arg("n"), py::arg("throw_at") = -1, py::arg("threads") = 4);
#if defined(__clang__)
  m.attr("compiler") = "clang " __VERSION__;
#elif defined(__GNUC__)
  m.attr("compiler") = "GCC " __VERSION__;
#else
  m.attr("compiler") = "unknown";
#endif
  // CPU instruction-set paths (csrc/include/pyface/cpu_isa.h); pyface.ops._ext
  // applies PYFACE_CPU_ISA with these.
  m.def("cpu_isa_info", &cpu_isa_info);
  m.def("set_cpu_isa", &set_cpu_isa, py::arg("name"));
  m.def("cpu_isa_probe", [] { return std::string(PYFACE_CPU_KERNEL(compiled_isa_path)()); });
  // The kernels of each backend, as objects; the ops add their entry points.
  py::class_<pyface::CpuKernels> cpu(m, "CpuKernels", py::module_local(),
                                     "The CPU kernels (csrc/cpu/), on the instruction-set path chosen at import.");
  cpu.def(py::init<>());
#ifdef PYFACE_WITH_CUDA
  py::class_<pyface::CudaKernels> cuda(m, "CudaKernels", py::module_local(),
                                       "The CUDA kernels (csrc/cuda/), launched on a raw cudaStream_t.");
  cuda.def(py::init([](uintptr_t stream) { return pyface::CudaKernels{reinterpret_cast<void*>(stream)}; }),
           py::arg("stream"));
  pyface::Bindings b{m, cpu, cuda};
#else
  pyface::Bindings b{m, cpu};
#endif
  pyface::run_bindings(b);
}
