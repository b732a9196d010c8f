// The one extension module, pyface._C. Each op binds its own functions in
// csrc/ops/<op>.cpp (`bind_<op>`); CPU entry points end in _cpu, CUDA ones in
// _cuda and take the raw cudaStream_t as their last argument.
#include <pybind11/pybind11.h>

#include "pyface/parallel.h"
#include "ops/bind.h"

namespace py = pybind11;

// pyface._C_emu (csrc/emu/, test-only) compiles this file again under its own name.
#ifndef PYFACE_MODULE_NAME
#define PYFACE_MODULE_NAME _C
#endif
#ifdef PYFACE_CUDA_EMU
namespace pyface {
void bind_emu(py::module_& m);
}
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
  pyface::bind_common(m);
  pyface::bind_lpmc(m);
  pyface::bind_landmark(m);
  pyface::bind_selective_fit(m);
  pyface::bind_cosine_dups(m);
#ifdef PYFACE_CUDA_EMU
  pyface::bind_emu(m);
#endif
}
