// Bindings of the kernels shared by several ops (csrc/ops/common.h).
#include "ops/common.h"

#include "ops/binding.h"

namespace pyface {

PYFACE_BINDINGS(common, b) {
  b.structure<RowInvNormArgs>("RowInvNormArgs", [](auto& s) {
    using S = RowInvNormArgs;
    s.field("x", &S::x).field("n", &S::n).field("d", &S::d).field("dtype", &S::dtype).field("eps", &S::eps);
    s.field("out", &S::out);
  });
  b.cpu.def(
      "row_inv_norm",
      [](const CpuKernels&, const RowInvNormArgs& a) {
        py::gil_scoped_release nogil;
        PYFACE_CPU_KERNEL(row_inv_norm_cpu)(a);
      },
      py::arg("args"));
#ifdef PYFACE_WITH_CUDA
  b.cuda.def(
      "row_inv_norm",
      [](const CudaKernels& k, const RowInvNormArgs& a) {
        py::gil_scoped_release nogil;
        row_inv_norm_cuda(a, k.stream);
      },
      py::arg("args"));
#endif
}

}  // namespace pyface
