// Bindings of the landmark loss kernels (csrc/ops/landmark.h). Tensors are float32,
// or float64 (LandmarkArgs[torch.float64]); flags is int32 [1].
#include "ops/landmark.h"

#include "ops/binding.h"

namespace pyface {

PYFACE_BINDINGS(landmark, b) {
  b.structs<LandmarkArgs, float, double>("LandmarkArgs", [](auto& s) {
    using S = typename std::decay_t<decltype(s)>::Struct;
    s.field("pred", &S::pred).field("target", &S::target).field("pose", &S::pose).field("shape", &S::shape);
    s.field("B", &S::B).field("w", &S::w).field("eps", &S::eps).field("lambda_", &S::lambda);
    s.field("dynamic", &S::dynamic);
  });
  for_each_type<float, double>([&](auto zero) {
    using T = decltype(zero);
    b.cpu.def(
        "landmark_fwd",
        [](const CpuKernels&, const LandmarkArgs<T>& a, py::handle rows, py::handle lam, py::handle flags) {
          T* r = tensor_ptr<T>(rows, "rows");
          T* l = tensor_ptr<T>(lam, "lam");
          int32_t* f = tensor_ptr<int32_t>(flags, "flags");
          py::gil_scoped_release nogil;
          PYFACE_CPU_KERNEL(landmark_fwd_cpu<T>)(a, r, l, f);
        },
        py::arg("args"), py::arg("rows"), py::arg("lam"), py::arg("flags"));
    b.cpu.def(
        "landmark_bwd",
        [](const CpuKernels&, const LandmarkArgs<T>& a, py::handle lam, py::handle grad_rows, py::handle dpred) {
          const T* l = tensor_ptr<const T>(lam, "lam");
          const T* g = tensor_ptr<const T>(grad_rows, "grad_rows");
          T* d = tensor_ptr<T>(dpred, "dpred");
          py::gil_scoped_release nogil;
          PYFACE_CPU_KERNEL(landmark_bwd_cpu<T>)(a, l, g, d);
        },
        py::arg("args"), py::arg("lam"), py::arg("grad_rows"), py::arg("dpred"));
#ifdef PYFACE_WITH_CUDA
    b.cuda.def(
        "landmark_fwd",
        [](const CudaKernels& k, const LandmarkArgs<T>& a, py::handle rows, py::handle lam, py::handle flags) {
          T* r = tensor_ptr<T>(rows, "rows");
          T* l = tensor_ptr<T>(lam, "lam");
          int32_t* f = tensor_ptr<int32_t>(flags, "flags");
          py::gil_scoped_release nogil;
          landmark_fwd_cuda<T>(a, r, l, f, k.stream);
        },
        py::arg("args"), py::arg("rows"), py::arg("lam"), py::arg("flags"));
    b.cuda.def(
        "landmark_bwd",
        [](const CudaKernels& k, const LandmarkArgs<T>& a, py::handle lam, py::handle grad_rows, py::handle dpred) {
          const T* l = tensor_ptr<const T>(lam, "lam");
          const T* g = tensor_ptr<const T>(grad_rows, "grad_rows");
          T* d = tensor_ptr<T>(dpred, "dpred");
          py::gil_scoped_release nogil;
          landmark_bwd_cuda<T>(a, l, g, d, k.stream);
        },
        py::arg("args"), py::arg("lam"), py::arg("grad_rows"), py::arg("dpred"));
#endif
  });
  // R [n, 3, 3] from pose [n, 3], float32 or float64: lets the tests cross-check
  // pyface.geometry against the kernels' rotation.
  b.cpu.def(
      "euler_to_matrix",
      [](const CpuKernels&, py::handle pose, int64_t n, py::handle R) {
        by_float_dtype(pose, "pose", [&](auto zero) {
          using T = decltype(zero);
          const T* p = tensor_ptr<const T>(pose, "pose");
          T* r = tensor_ptr<T>(R, "R");
          py::gil_scoped_release nogil;
          PYFACE_CPU_KERNEL(euler_to_matrix_cpu<T>)(p, n, r);
        });
      },
      py::arg("pose"), py::arg("n"), py::arg("R"));
#ifdef PYFACE_WITH_CUDA
  b.cuda.def(
      "euler_to_matrix",
      [](const CudaKernels& k, py::handle pose, int64_t n, py::handle R) {
        by_float_dtype(pose, "pose", [&](auto zero) {
          using T = decltype(zero);
          const T* p = tensor_ptr<const T>(pose, "pose");
          T* r = tensor_ptr<T>(R, "R");
          py::gil_scoped_release nogil;
          euler_to_matrix_cuda<T>(p, n, r, k.stream);
        });
      },
      py::arg("pose"), py::arg("n"), py::arg("R"));
#endif
}

}  // namespace pyface
