#include "ops/landmark.h"

#include <pybind11/pybind11.h>

#include "ops/bind.h"
#include "ops/ptr.h"

namespace py = pybind11;

namespace pyface {

namespace {
template <typename T>
LandmarkArgs<T> make_args(uintptr_t pred, uintptr_t target, uintptr_t pose, uintptr_t shape, int64_t B, double w,
                          double eps, double lambda, bool dynamic) {
  return LandmarkArgs<T>{ptr<const T>(pred), ptr<const T>(target), ptr<const T>(pose), ptr<const T>(shape), B,
                         static_cast<T>(w), static_cast<T>(eps), static_cast<T>(lambda), dynamic};
}
}  // namespace

// Tensors are float32, or float64 when f64 is set; flags is int32 [1].
void bind_landmark(py::module_& m) {
  m.def("landmark_fwd_cpu", [](bool f64, uintptr_t pred, uintptr_t target, uintptr_t pose, uintptr_t shape,
                               int64_t B, double w, double eps, double lambda, bool dynamic, uintptr_t rows,
                               uintptr_t lam, uintptr_t flags) {
    py::gil_scoped_release nogil;
    auto run = [&](auto zero) {
      using T = decltype(zero);
      PYFACE_CPU_KERNEL(landmark_fwd_cpu<T>)(make_args<T>(pred, target, pose, shape, B, w, eps, lambda, dynamic), ptr<T>(rows),
                          ptr<T>(lam), ptr<int32_t>(flags));
    };
    f64 ? run(double()) : run(float());
  });
  m.def("landmark_bwd_cpu", [](bool f64, uintptr_t pred, uintptr_t target, int64_t B, double w, double eps,
                               uintptr_t lam, uintptr_t grad_rows, uintptr_t dpred) {
    py::gil_scoped_release nogil;
    auto run = [&](auto zero) {
      using T = decltype(zero);
      PYFACE_CPU_KERNEL(landmark_bwd_cpu<T>)(make_args<T>(pred, target, 0, 0, B, w, eps, 0.0, false), ptr<const T>(lam),
                          ptr<const T>(grad_rows), ptr<T>(dpred));
    };
    f64 ? run(double()) : run(float());
  });
  m.def("euler_to_matrix_cpu", [](bool f64, uintptr_t pose, int64_t n, uintptr_t R) {
    py::gil_scoped_release nogil;
    f64 ? PYFACE_CPU_KERNEL(euler_to_matrix_cpu<double>)(ptr<const double>(pose), n, ptr<double>(R))
        : PYFACE_CPU_KERNEL(euler_to_matrix_cpu<float>)(ptr<const float>(pose), n, ptr<float>(R));
  });
#ifdef PYFACE_WITH_CUDA
  m.def("landmark_fwd_cuda", [](bool f64, uintptr_t pred, uintptr_t target, uintptr_t pose, uintptr_t shape,
                                int64_t B, double w, double eps, double lambda, bool dynamic, uintptr_t rows,
                                uintptr_t lam, uintptr_t flags, uintptr_t stream) {
    py::gil_scoped_release nogil;
    auto run = [&](auto zero) {
      using T = decltype(zero);
      landmark_fwd_cuda<T>(make_args<T>(pred, target, pose, shape, B, w, eps, lambda, dynamic), ptr<T>(rows),
                           ptr<T>(lam), ptr<int32_t>(flags), stream_ptr(stream));
    };
    f64 ? run(double()) : run(float());
  });
  m.def("landmark_bwd_cuda", [](bool f64, uintptr_t pred, uintptr_t target, int64_t B, double w, double eps,
                                uintptr_t lam, uintptr_t grad_rows, uintptr_t dpred, uintptr_t stream) {
    py::gil_scoped_release nogil;
    auto run = [&](auto zero) {
      using T = decltype(zero);
      landmark_bwd_cuda<T>(make_args<T>(pred, target, 0, 0, B, w, eps, 0.0, false), ptr<const T>(lam),
                           ptr<const T>(grad_rows), ptr<T>(dpred), stream_ptr(stream));
    };
    f64 ? run(double()) : run(float());
  });
  m.def("euler_to_matrix_cuda", [](bool f64, uintptr_t pose, int64_t n, uintptr_t R, uintptr_t stream) {
    py::gil_scoped_release nogil;
    f64 ? euler_to_matrix_cuda<double>(ptr<const double>(pose), n, ptr<double>(R), stream_ptr(stream))
        : euler_to_matrix_cuda<float>(ptr<const float>(pose), n, ptr<float>(R), stream_ptr(stream));
  });
#endif
}

}  // namespace pyface
