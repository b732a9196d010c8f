#include "ops/common.h"

#include <pybind11/pybind11.h>

#include "ops/bind.h"
#include "ops/ptr.h"

namespace py = pybind11;

namespace pyface {

void bind_common(py::module_& m) {
  m.def("row_inv_norm_cpu", [](uintptr_t x, int64_t n, int64_t d, int dtype, float eps, uintptr_t out) {
    py::gil_scoped_release nogil;
    PYFACE_CPU_KERNEL(row_inv_norm_cpu)(ptr<const void>(x), n, d, dtype, eps, ptr<void>(out));
  });
#ifdef PYFACE_WITH_CUDA
  m.def("row_inv_norm_cuda", [](uintptr_t x, int64_t n, int64_t d, int dtype, float eps, uintptr_t out, uintptr_t stream) {
    py::gil_scoped_release nogil;
    row_inv_norm_cuda(ptr<const void>(x), n, d, dtype, eps, ptr<void>(out), stream_ptr(stream));
  });
#endif
}

}  // namespace pyface
