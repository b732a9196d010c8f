// Bindings of the cosine duplicate search epilogues (csrc/ops/cosine_dups.h). All
// floating buffers are float32; the counter is one int64.
#include "ops/cosine_dups.h"

#include "ops/binding.h"

namespace pyface {

PYFACE_BINDINGS(cosine_dups, b) {
  b.structure<DupTileArgs>("DupTileArgs", [](auto& s) {
    using S = DupTileArgs;
    s.field("buf", &S::buf).field("ta", &S::ta).field("tb", &S::tb).field("i0", &S::i0).field("j0", &S::j0);
    s.field("inv_a", &S::inv_a).field("inv_b", &S::inv_b).field("threshold", &S::threshold).field("self", &S::self);
    s.field("pairs", &S::pairs).field("sim", &S::sim).field("capacity", &S::capacity).field("counter", &S::counter);
  });
  b.structure<DupSecondArgs>("DupSecondArgs", [](auto& s) {
    using S = DupSecondArgs;
    s.field("buf2", &S::buf2).field("tb", &S::tb).field("i0", &S::i0).field("j0", &S::j0);
    s.field("inv_a2", &S::inv_a2).field("inv_b2", &S::inv_b2).field("threshold2", &S::threshold2);
    s.field("pairs", &S::pairs).field("begin", &S::begin).field("end", &S::end).field("sim2", &S::sim2);
    s.field("keep", &S::keep);
  });
  b.cpu.def(
      "dup_tile",
      [](const CpuKernels&, const DupTileArgs& a) {
        py::gil_scoped_release nogil;
        PYFACE_CPU_KERNEL(dup_tile_cpu)(a);
      },
      py::arg("args"));
  b.cpu.def(
      "dup_second",
      [](const CpuKernels&, const DupSecondArgs& a) {
        py::gil_scoped_release nogil;
        PYFACE_CPU_KERNEL(dup_second_cpu)(a);
      },
      py::arg("args"));
#ifdef PYFACE_WITH_CUDA
  b.cuda.def(
      "dup_tile",
      [](const CudaKernels& k, const DupTileArgs& a) {
        py::gil_scoped_release nogil;
        dup_tile_cuda(a, k.stream);
      },
      py::arg("args"));
  b.cuda.def(
      "dup_second",
      [](const CudaKernels& k, const DupSecondArgs& a) {
        py::gil_scoped_release nogil;
        dup_second_cuda(a, k.stream);
      },
      py::arg("args"));
#endif
}

}  // namespace pyface
