// Bindings of the selective-fitting kernel (csrc/ops/selective_fit.h). Floating
// tensors are float32, or float64 (SelFitArgs[torch.float64]); bool tensors are bytes.
#include "ops/selective_fit.h"

#include "ops/binding.h"

namespace pyface {

PYFACE_BINDINGS(selective_fit, b) {
  b.structs<SelFitArgs, float, double>("SelFitArgs", [](auto& s) {
    using S = typename std::decay_t<decltype(s)>::Struct;
    s.field("samples", &S::samples).field("poses", &S::poses).field("valid", &S::valid);
    s.field("face_size", &S::face_size).field("B", &S::B).field("N", &S::N).field("P", &S::P);
    s.field("threshold", &S::threshold).field("keep", &S::keep).field("min_samples", &S::min_samples);
    s.field("landmarks", &S::landmarks).field("pose", &S::pose).field("accepted", &S::accepted);
    s.field("kept", &S::kept);
  });
  for_each_type<float, double>([&](auto zero) {
    using T = decltype(zero);
    b.cpu.def(
        "selective_fit",
        [](const CpuKernels&, const SelFitArgs<T>& a) {
          py::gil_scoped_release nogil;
          PYFACE_CPU_KERNEL(selective_fit_cpu<T>)(a);
        },
        py::arg("args"));
#ifdef PYFACE_WITH_CUDA
    b.cuda.def(
        "selective_fit",
        [](const CudaKernels& k, const SelFitArgs<T>& a) {
          py::gil_scoped_release nogil;
          selective_fit_cuda<T>(a, k.stream);
        },
        py::arg("args"));
#endif
  });
}

}  // namespace pyface
