// The one extension module, pyface._C. Each op binds its own functions in
// csrc/ops/<op>.cpp (`bind_<op>`); CPU entry points end in _cpu, CUDA ones in
// _cuda and take the raw cudaStream_t as their last argument.
#include <pybind11/pybind11.h>

#include "pyface/parallel.h"
#include "ops/bind.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "pyface C++/CUDA kernels (no libtorch link: raw pointers in, raw pointers out)";
#ifdef PYFACE_WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  m.def("set_num_threads", &pyface::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &pyface::get_num_threads);
  pyface::bind_common(m);
  pyface::bind_lpmc(m);
  pyface::bind_landmark(m);
}
